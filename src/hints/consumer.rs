//! Reading hints back: a member of a node's handoff group, and the
//! rebalance bookkeeping that tells which hints it still owns.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};

use super::offsets::{backlog, partitions};
use super::parked::parked;
use super::{HintError, HintLog, ParkedHint, QueueState, base_config};
use crate::domain::NodeId;

impl HintLog {
    /// A member of `node`'s handoff group, subscribed to its topic: Kafka
    /// gives it a share of the topic's partitions (all of them when it is
    /// the only instance), each from the group's committed offset, and moves
    /// partitions between instances as they come and go. Partitions added to
    /// the topic are picked up at the next metadata refresh.
    ///
    /// Assignment is cooperative-sticky, so a rebalance revokes only the
    /// partitions that move; the session timeout is short
    /// (`KAFKA_SESSION_TIMEOUT_MS`, 6 s), so the partitions of a crashed
    /// instance move to the others within seconds: measured here, a replay
    /// finished about 8.5 s after one of two instances was SIGKILLed in the
    /// middle of it. (With the eager `roundrobin` strategy the test broker
    /// handed the dead member's partitions to nobody; static membership
    /// would need a stable id per instance, which a crashed-and-replaced
    /// container does not have.)
    pub async fn consumer(&self, node: &NodeId) -> Result<HintConsumer, HintError> {
        let topic = self.topic(node);
        // The topic must exist: a subscription to a missing topic waits
        // silently.
        let offsets = self.offsets_consumer(node)?;
        let check_topic = topic.clone();
        let timeout = self.config.timeout;
        self.blocking(move || partitions(offsets.client(), &check_topic, timeout).map(|_| ()))
            .await?;
        let session = self.config.session_timeout.as_millis();
        let context = ReplayContext {
            topic: topic.clone(),
            state: Arc::new(Mutex::new(Ownership::default())),
            epoch: Arc::new(AtomicU64::new(0)),
            held: Arc::new(AtomicBool::new(false)),
        };
        let state = context.state.clone();
        let epoch = context.epoch.clone();
        let held = context.held.clone();
        let consumer: StreamConsumer<ReplayContext> = base_config(&self.config)
            .set("group.id", self.group(node))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", session.to_string())
            .set("heartbeat.interval.ms", (session / 3).max(100).to_string())
            // A replay waiting for its node does not poll; it must not be
            // dropped from the group for that (heartbeats go on by
            // themselves; a dead process still loses its session).
            .set("max.poll.interval.ms", "86400000")
            .set(
                "topic.metadata.refresh.interval.ms",
                self.config.partition_refresh.as_millis().to_string(),
            )
            // Bounds what is prefetched ahead of the replay (a replay
            // waiting for its node fetches nothing: see `hold`).
            .set("queued.max.messages.kbytes", "4096")
            .create_with_context(context)?;
        consumer.subscribe(&[&topic])?;
        Ok(HintConsumer {
            consumer: Arc::new(consumer),
            topic,
            timeout: self.config.timeout,
            state,
            epoch,
            held,
        })
    }
}

/// Which partitions this member holds, and when each was last taken away.
#[derive(Debug, Default)]
struct Ownership {
    owned: BTreeSet<i32>,
    /// Partition -> the epoch in which it was last revoked.
    revoked_in: HashMap<i32, u64>,
}

/// Follows the group's rebalances. Kafka calls it from inside the
/// consumer's poll, which only the replay task does, between batches: so
/// whatever the replay applied has been committed by then, and what it read
/// but did not apply is dropped here (by epoch) and read again by the new
/// owner from the committed offset.
pub struct ReplayContext {
    topic: String,
    state: Arc<Mutex<Ownership>>,
    /// Bumped by every revocation.
    epoch: Arc<AtomicU64>,
    /// Whether fetching is held (see [`HintConsumer::hold`]).
    held: Arc<AtomicBool>,
}

impl ClientContext for ReplayContext {}

impl ConsumerContext for ReplayContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let revoked: Vec<i32> = match rebalance {
            Rebalance::Revoke(tpl) => tpl
                .elements_for_topic(&self.topic)
                .iter()
                .map(|e| e.partition())
                .collect(),
            // On an error the client gives up its whole assignment.
            Rebalance::Error(e) => {
                tracing::warn!(topic = %self.topic, error = %e, "rebalance failed");
                let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                state.owned.iter().copied().collect()
            }
            Rebalance::Assign(_) => return,
        };
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for p in &revoked {
            state.owned.remove(p);
            state.revoked_in.insert(*p, epoch);
        }
        tracing::info!(topic = %self.topic, partitions = ?revoked, "partitions revoked");
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            // A partition's pause outlives its assignment in librdkafka:
            // what is assigned now follows the hold as it stands.
            let hold = self.held.load(Ordering::SeqCst);
            if let Err(e) = hold_partitions(consumer, tpl, hold) {
                tracing::warn!(topic = %self.topic, hold, error = %e, "cannot hold or resume fetching hints");
            }
            let assigned: Vec<i32> = tpl
                .elements_for_topic(&self.topic)
                .iter()
                .map(|e| e.partition())
                .collect();
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.owned.extend(assigned.iter().copied());
            tracing::info!(topic = %self.topic, partitions = ?assigned,
                owned = ?state.owned, "partitions assigned");
        }
    }
}

/// Pauses (`hold`) or resumes fetching `partitions`.
fn hold_partitions<C: Consumer<X>, X: ConsumerContext>(
    consumer: &C,
    partitions: &TopicPartitionList,
    hold: bool,
) -> KafkaResult<()> {
    match hold {
        true => consumer.pause(partitions),
        false => consumer.resume(partitions),
    }
}

/// Reads one node's topic as a member of its handoff group.
pub struct HintConsumer {
    consumer: Arc<StreamConsumer<ReplayContext>>,
    topic: String,
    timeout: Duration,
    state: Arc<Mutex<Ownership>>,
    epoch: Arc<AtomicU64>,
    held: Arc<AtomicBool>,
}

impl HintConsumer {
    /// Waits for at least one hint, then takes whatever else is already
    /// there, until `into` holds `max`. Rebalances happen in here (and only
    /// here): afterwards the caller drops what [`HintConsumer::still_ours`]
    /// rejects.
    ///
    /// Cancel-safe: every message taken from the consumer is pushed into
    /// `into` at once, so dropping this future (a pause, a shutdown) never
    /// loses a hint that was read but not yet applied.
    pub async fn fill(&self, into: &mut Vec<ParkedHint>, max: usize) -> Result<(), HintError> {
        if into.len() >= max {
            return Ok(());
        }
        let first = self.consumer.recv().await?;
        into.push(self.parked(&first));
        drop(first);
        while into.len() < max {
            match tokio::time::timeout(Duration::from_millis(20), self.consumer.recv()).await {
                Ok(Ok(msg)) => into.push(self.parked(&msg)),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "kafka error while filling a batch");
                    break;
                }
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Holds (`true`) or resumes (`false`) fetching: a replay waiting for
    /// its node holds it, so the client neither buffers a queue that cannot
    /// be applied yet nor keeps the broker serving it while writes are
    /// being queued. Membership is untouched (heartbeats go on), and
    /// nothing is skipped: librdkafka drops what it prefetched and, on
    /// resume, fetches again from the last hint taken by [`Self::fill`].
    /// Partitions assigned while held are held too. A call that fails is
    /// made again by the next one (the replay asks before every round).
    pub async fn hold(&self, hold: bool) {
        if self.held.load(Ordering::SeqCst) == hold {
            return;
        }
        // Set first: a rebalance from now on follows it.
        self.held.store(hold, Ordering::SeqCst);
        let done = self.blocking(move |consumer| {
            Ok(hold_partitions(consumer, &consumer.assignment()?, hold)?)
        });
        if let Err(e) = done.await {
            tracing::warn!(topic = %self.topic, hold, error = %e, "cannot hold or resume fetching hints");
            self.held.store(!hold, Ordering::SeqCst);
        }
    }

    fn parked(&self, msg: &rdkafka::message::BorrowedMessage<'_>) -> ParkedHint {
        // Read after the message: a revocation that happened inside this
        // poll has already bumped the epoch, and the client never hands out
        // a message of a partition it no longer holds.
        parked(msg, self.epoch.load(Ordering::SeqCst))
    }

    /// Whether `hint` still belongs to this member: its partition was not
    /// revoked since it was read (even if it came back since: it is then
    /// read again from the committed offset).
    /// Whether the group has given this member any partition of the topic.
    pub fn owns_any(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        !state.owned.is_empty()
    }

    pub fn still_ours(&self, hint: &ParkedHint) -> bool {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.owned.contains(&hint.partition)
            && state
                .revoked_in
                .get(&hint.partition)
                .is_none_or(|revoked| *revoked <= hint.epoch)
    }

    /// Commits the positions after `batch` (synchronously: the caller moves
    /// on only once the broker has them), for the partitions this member
    /// still holds; another member's partitions are never committed.
    pub async fn commit(&self, batch: &[ParkedHint]) -> Result<(), HintError> {
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for hint in batch.iter().filter(|h| self.still_ours(h)) {
            let slot = next.entry(hint.partition).or_insert(hint.offset + 1);
            *slot = (*slot).max(hint.offset + 1);
        }
        if next.is_empty() {
            return Ok(());
        }
        let topic = self.topic.clone();
        let commit = self.blocking(move |consumer| {
            let mut tpl = TopicPartitionList::new();
            for (partition, offset) in next {
                tpl.add_partition_offset(&topic, partition, Offset::Offset(offset))?;
            }
            consumer.commit(&tpl, CommitMode::Sync)?;
            Ok(())
        });
        crate::metrics::timed("kafka", "commit", commit).await
    }

    /// Hints in the topic not yet committed by the group (every partition,
    /// whichever member holds it), and how far the group has committed.
    pub async fn backlog(&self) -> Result<QueueState, HintError> {
        let (topic, timeout) = (self.topic.clone(), self.timeout);
        self.blocking(move |consumer| backlog(consumer, &topic, timeout))
            .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&StreamConsumer<ReplayContext>) -> Result<T, HintError> + Send + 'static,
    ) -> Result<T, HintError> {
        let consumer = self.consumer.clone();
        let call = tokio::task::spawn_blocking(move || f(&consumer));
        match tokio::time::timeout(self.timeout + Duration::from_secs(1), call).await {
            Err(_) => Err(HintError::Timeout(self.timeout)),
            Ok(Err(e)) => Err(HintError::Join(e.to_string())),
            Ok(Ok(result)) => result,
        }
    }
}
