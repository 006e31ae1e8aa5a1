//! A hint as read back from a node topic.

use rdkafka::message::{BorrowedMessage, Message};

use crate::domain::CustomerCopy;

/// One hint read back from a topic.
#[derive(Debug)]
pub struct ParkedHint {
    pub partition: i32,
    pub offset: i64,
    /// The consumer's assignment epoch when it was read (see
    /// [`super::HintConsumer::still_ours`]).
    pub epoch: u64,
    /// The copy, or why it could not be read.
    pub copy: Result<CustomerCopy, String>,
    /// The message as it was, for the dead-letter topic.
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// Already moved to the dead-letter topic (so a retry of its batch does
    /// not move it twice).
    pub dead_lettered: bool,
}

pub(super) fn parked(msg: &BorrowedMessage<'_>, epoch: u64) -> ParkedHint {
    ParkedHint {
        partition: msg.partition(),
        offset: msg.offset(),
        epoch,
        copy: match msg.payload() {
            Some(bytes) => CustomerCopy::from_json_bytes(bytes),
            None => Err("empty message".into()),
        },
        key: msg.key().map(<[u8]>::to_vec),
        payload: msg.payload().map(<[u8]>::to_vec),
        dead_lettered: false,
    }
}
