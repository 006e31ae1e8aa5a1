//! Which partition a hint goes to. librdkafka batches per partition and
//! sends one produce request per partition, so hints keyed by customer id
//! spread over every partition make batches a partition-count's fraction of
//! what they could be. Hints need no key affinity (last-writer-wins orders
//! the copies of a record whatever their order in the topic), so all of an
//! instance's hints for a topic go to one partition at a time: the partition
//! turns every [`ROTATION`], from a starting point of the instance's own, so
//! concurrent hints share a batch, each partition gets its share over time,
//! and instances mostly write different partitions. The key stays in the
//! message.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::producer::Producer;

use super::HintLog;

/// How long an instance keeps writing one partition of a topic.
pub const ROTATION: Duration = Duration::from_millis(100);
/// How long a topic's partition count is trusted before it is read again
/// (partitions can be added to a topic, never removed).
const COUNT_KEPT: Duration = Duration::from_secs(60);
/// How long a failed read of the count waits before the next try (hints are
/// spread by key meanwhile).
const RETRY_COUNT: Duration = Duration::from_secs(5);
/// Bound on one metadata read.
const METADATA_TIMEOUT: Duration = Duration::from_secs(1);

/// Each topic's partition count as last read (0: unknown), and when.
pub(super) struct PartitionCounts {
    counts: Mutex<HashMap<String, (i32, Instant)>>,
    /// Where this instance's rotation starts.
    seed: u64,
    /// One metadata read at a time.
    reading: tokio::sync::Mutex<()>,
}

impl PartitionCounts {
    pub(super) fn new() -> PartitionCounts {
        PartitionCounts {
            counts: Mutex::new(HashMap::new()),
            seed: rand::random(),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    /// The count of `topic` if known and fresh.
    fn fresh(&self, topic: &str) -> Option<i32> {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let (count, at) = counts.get(topic)?;
        let kept = if *count > 0 { COUNT_KEPT } else { RETRY_COUNT };
        (at.elapsed() < kept).then_some(*count)
    }

    fn remember(&self, topic: &str, count: i32) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.insert(topic.to_owned(), (count, Instant::now()));
    }

    /// The partition this instance writes `topic`'s hints to now, given its
    /// partition count.
    fn current(&self, count: i32) -> i32 {
        let turns = crate::domain::now_millis().unsigned_abs() / ROTATION.as_millis() as u64;
        let count = u64::from(count.unsigned_abs().max(1));
        i32::try_from(turns.wrapping_add(self.seed) % count).unwrap_or(0)
    }
}

impl HintLog {
    /// The partition the next hint for `topic` goes to; `None` (spread by
    /// key) while the topic's partition count cannot be read.
    pub(super) async fn partition_for(&self, topic: &str) -> Option<i32> {
        let counts = &self.partitions;
        if let Some(count) = counts.fresh(topic) {
            return (count > 0).then(|| counts.current(count));
        }
        let _reading = counts.reading.lock().await;
        if let Some(count) = counts.fresh(topic) {
            return (count > 0).then(|| counts.current(count));
        }
        let producer = self.producer()?;
        let name = topic.to_owned();
        let read = tokio::task::spawn_blocking(move || {
            let metadata = producer
                .client()
                .fetch_metadata(Some(&name), METADATA_TIMEOUT)
                .ok()?;
            let topic = metadata.topics().iter().find(|t| t.name() == name)?;
            if topic.error().is_some() {
                return None;
            }
            i32::try_from(topic.partitions().len()).ok()
        });
        let count = read.await.ok().flatten().unwrap_or(0);
        counts.remember(topic, count);
        (count > 0).then(|| counts.current(count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partition_stays_within_the_count() {
        let counts = PartitionCounts::new();
        for count in [1, 2, 6, 7] {
            let p = counts.current(count);
            assert!((0..count).contains(&p), "{p} of {count}");
        }
    }

    #[test]
    fn counts_are_kept_until_they_go_stale() {
        let counts = PartitionCounts::new();
        assert_eq!(counts.fresh("t"), None);
        counts.remember("t", 6);
        assert_eq!(counts.fresh("t"), Some(6));
        counts.remember("u", 0);
        assert_eq!(counts.fresh("u"), Some(0));
    }
}
