//! How old a node's queue is: the acceptance time of its oldest hint not
//! yet applied, read from the hints themselves (each message's Kafka
//! timestamp, set by the producer when the write was queued).
//!
//! The first unapplied hint of each partition is read once and remembered
//! by its position, so a queue that does not move costs no reads; one
//! that drains costs one fetch per look (a partition stops being fetched
//! once its first hint is in).

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

    /// Reads the first message at or after each of `wanted`.
    fn read(&mut self, topic: &str, wanted: &[(i32, i64)], wait: Duration) {
        let mut list = TopicPartitionList::new();
        for (p, offset) in wanted {
            if list
                .add_partition_offset(topic, *p, Offset::Offset(*offset))
                .is_err()
            {
                return;
            }
        }
        // A pause outlives an assignment in librdkafka: none is left over.
        let assigned = self.consumer.assign(&list);
        if let Err(e) = assigned.and_then(|()| self.consumer.resume(&list)) {
            tracing::debug!(topic, error = %e, "cannot read the queue's head hints");
            return;
        }
        let deadline = Instant::now() + wait;
        let mut left: HashMap<i32, i64> = wanted.iter().copied().collect();
        while !left.is_empty() && Instant::now() < deadline {
            let Some(Ok(msg)) = self.consumer.poll(Duration::from_millis(50)) else {
                continue;
            };
            let partition = msg.partition();
            // Retention may have removed the wanted offset: the first one
            // read stands for it. Later ones (fetched before the pause below
            // took hold) are not needed.
            let Some(offset) = left.remove(&partition) else {
                continue;
            };
            if let Some(ms) = msg.timestamp().to_millis() {
                self.known.insert((partition, offset), ms);
            }
            drop(msg);
            // Its first hint is all a look needs from a partition: fetching
            // stops there, and the fetches left go to the others.
            let mut done = TopicPartitionList::new();
            done.add_partition(topic, partition);
            let _ = self.consumer.pause(&done);
        }
        let _ = self.consumer.unassign();
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
