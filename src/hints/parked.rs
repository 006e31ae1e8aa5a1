//! A hint as read back from a node topic.

use rdkafka::message::{BorrowedMessage, Headers, Message};

use super::REASON_HEADER;
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
    /// When the message was produced (Unix ms), if the broker kept it.
    pub at_ms: Option<i64>,
    /// Why it was set aside (a dead letter's [`REASON_HEADER`]).
    pub reason: Option<String>,
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
        at_ms: msg.timestamp().to_millis(),
        reason: msg.headers().and_then(|headers| {
            (headers.iter())
                .find(|h| h.key == REASON_HEADER)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        }),
    }
}
