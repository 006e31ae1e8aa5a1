//! How old a node's queue is: the acceptance time of its oldest hint not
//! yet applied, read from the hints themselves (each message's Kafka
//! timestamp, set by the producer when the write was queued).
//!
//! The first unapplied hint of each partition is read once and remembered
//! by its position, so a queue that does not move costs no reads; one
//! that drains costs a fetch of a few kilobytes per partition whose head
//! moved, per look.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::offsets::backlog_heads;
use super::{HintError, HintLog, of_node};
use crate::domain::NodeId;

/// The longest a look waits for the head hints it does not know yet.
const PEEK_WAIT: Duration = Duration::from_millis(500);
/// A whole look (offsets, then head hints) ends within this, so that the
/// overview, which gives it a second, gets at least the queue's size.
const LOOK_BUDGET: Duration = Duration::from_millis(800);

/// A node queue: its size, its group's progress and its age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueDetail {
    /// Hints not yet committed, over every partition.
    pub queued: u64,
    /// The group's committed offsets, summed (see `QueueState`).
    pub committed: i64,
    /// Unix ms when the oldest of them was accepted; `None` when nothing
    /// waits or a head hint could not be read in time.
    pub oldest_ms: Option<i64>,
}

/// One node's reader of head hints, and the timestamps it already read.
pub(super) struct Peek {
    /// Assigned (never subscribed, never committing) only while it reads:
    /// the node's idle dead-letter consumer, so a node costs no client more.
    consumer: Arc<BaseConsumer>,
    /// (partition, offset) -> Unix ms.
    known: HashMap<(i32, i64), i64>,
}

impl Peek {
    pub(super) fn new(consumer: Arc<BaseConsumer>) -> Peek {
        Peek {
            consumer,
            known: HashMap::new(),
        }
    }

    /// The earliest timestamp of the hints at `heads`; `None` if one of
    /// them could not be read within `wait`.
    fn oldest(&mut self, topic: &str, heads: &[(i32, i64)], wait: Duration) -> Option<i64> {
        self.known.retain(|k, _| heads.contains(k));
        let missing: Vec<(i32, i64)> = (heads.iter())
            .filter(|h| !self.known.contains_key(*h))
            .copied()
            .collect();
        if !missing.is_empty() && !wait.is_zero() {
            self.read(topic, &missing, wait);
        }
        heads
            .iter()
            .map(|h| self.known.get(h).copied())
            .collect::<Option<Vec<i64>>>()?
            .into_iter()
            .min()
    }

    /// Reads the first message at or after each of `wanted`, one partition
    /// at a time, until `wait` is over. One at a time because a broker may
    /// spend a fetch's whole budget on the first partition it lists (tansu
    /// does): each partition then gets a fetch of its own, a few kilobytes
    /// (see `PEEK_FETCH_BYTES`), instead of every partition being fetched
    /// again and again, each up to its end, until the last head is in.
    fn read(&mut self, topic: &str, wanted: &[(i32, i64)], wait: Duration) {
        let deadline = Instant::now() + wait;
        for &(partition, offset) in wanted {
            let Some(ms) = self.first_at(topic, partition, offset, deadline) else {
                break;
            };
            self.known.insert((partition, offset), ms);
        }
        let _ = self.consumer.unassign();
    }

    /// The timestamp of the first message of `topic`'s `partition` at or
    /// after `offset` (retention may have removed the wanted offset: the
    /// first one read stands for it), if read by `deadline`.
    fn first_at(&self, topic: &str, partition: i32, offset: i64, deadline: Instant) -> Option<i64> {
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, partition, Offset::Offset(offset))
            .ok()?;
        if let Err(e) = self.consumer.assign(&list) {
            tracing::debug!(topic, error = %e, "cannot read the queue's head hints");
            return None;
        }
        while Instant::now() < deadline {
            let Some(Ok(msg)) = self.consumer.poll(Duration::from_millis(50)) else {
                continue;
            };
            if msg.partition() == partition && msg.offset() >= offset {
                return msg.timestamp().to_millis();
            }
        }
        None
    }
}

impl HintLog {
    /// `node`'s queue: size, progress and the age of its oldest hint.
    pub async fn queue_detail(&self, node: &NodeId) -> Result<QueueDetail, HintError> {
        let consumer = self.offsets_consumer(node)?;
        let peek: Arc<Mutex<Peek>> = of_node(&self.peeks, node)?;
        let topic = self.topic(node);
        let timeout = self.config.timeout;
        let detail = self.blocking(move || {
            let started = Instant::now();
            let (state, heads) = backlog_heads(consumer.as_ref(), &topic, timeout)?;
            let wait = LOOK_BUDGET.saturating_sub(started.elapsed()).min(PEEK_WAIT);
            let oldest_ms = match heads.is_empty() {
                true => None,
                false => peek
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .oldest(&topic, &heads, wait),
            };
            Ok(QueueDetail {
                queued: state.queued,
                committed: state.committed,
                oldest_ms,
            })
        });
        crate::metrics::timed("kafka", "queued", detail).await
    }
}
