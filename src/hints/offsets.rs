//! Offsets: where each partition of a node topic starts and ends, how far
//! its handoff group has committed, and reading what is past that outside
//! the group.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::parked::parked;
use super::{HintError, HintLog, ParkedHint, base_config};
use crate::domain::NodeId;

/// See [`HintLog::uncommitted`].
pub(super) fn read_uncommitted(
    mut config: ClientConfig,
    group: &str,
    topic: &str,
    after: &BTreeMap<i32, i64>,
    max: usize,
    timeout: Duration,
) -> Result<Vec<ParkedHint>, HintError> {
    let consumer: BaseConsumer = config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()?;
    let high = log_offsets(
        &consumer,
        topic,
        &partitions(consumer.client(), topic, timeout)?,
        Offset::End,
        timeout,
    )?;
    let start = uncommitted_starts(&consumer, topic, after, &high, timeout)?;
    if start.count() == 0 {
        return Ok(Vec::new());
    }
    consumer.assign(&start)?;
    let left = start.count();
    let deadline = std::time::Instant::now() + timeout;
    let mut done = std::collections::BTreeSet::new();
    let mut hints = Vec::new();
    while hints.len() < max && done.len() < left && std::time::Instant::now() < deadline {
        let Some(msg) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let msg = msg?;
        if high
            .get(&msg.partition())
            .is_some_and(|end| msg.offset() + 1 >= *end)
        {
            done.insert(msg.partition());
        }
        hints.push(parked(&msg, 0));
    }
    Ok(hints)
}

/// Where to start reading each partition of `topic` that holds something
/// past the group's committed offset (and past `after`): partitions with
/// nothing left are not in the list.
fn uncommitted_starts(
    consumer: &BaseConsumer,
    topic: &str,
    after: &BTreeMap<i32, i64>,
    high: &HashMap<i32, i64>,
    timeout: Duration,
) -> Result<TopicPartitionList, HintError> {
    let mut wanted = TopicPartitionList::new();
    for p in high.keys() {
        wanted.add_partition(topic, *p);
    }
    let committed = consumer.committed_offsets(wanted, timeout)?;
    let mut start = TopicPartitionList::new();
    for (p, end) in high {
        let from = match committed.find_partition(topic, *p).map(|e| e.offset()) {
            Some(Offset::Offset(n)) => Offset::Offset(n),
            _ => Offset::Beginning,
        };
        let from = match (from, after.get(p)) {
            (Offset::Offset(n), Some(a)) => Offset::Offset(n.max(*a)),
            (_, Some(a)) => Offset::Offset(*a),
            (from, None) => from,
        };
        if matches!(from, Offset::Offset(n) if n >= *end) || *end == 0 {
            continue;
        }
        start.add_partition_offset(topic, *p, from)?;
    }
    Ok(start)
}

/// The partition ids of `topic`; an error if it does not exist.
pub(super) fn partitions<C: rdkafka::client::ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i32>, HintError> {
    let metadata = client.fetch_metadata(Some(topic), timeout)?;
    let ids: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if ids.is_empty() {
        return Err(HintError::Topic {
            topic: topic.to_owned(),
            code: RDKafkaErrorCode::UnknownTopicOrPartition,
        });
    }
    Ok(ids)
}

/// The first (`Offset::Beginning`) or next (`Offset::End`) offset of each of
/// `partitions`, in one request per broker (asking partition by partition
/// costs two requests each).
pub(super) fn log_offsets<X: ConsumerContext, C: Consumer<X>>(
    consumer: &C,
    topic: &str,
    partitions: &[i32],
    which: Offset,
    timeout: Duration,
) -> Result<HashMap<i32, i64>, HintError> {
    let mut wanted = TopicPartitionList::new();
    for p in partitions {
        // As a timestamp, -1 asks for the latest offset and -2 the earliest.
        wanted.add_partition_offset(topic, *p, which)?;
    }
    let found = consumer.offsets_for_times(wanted, timeout)?;
    let mut out = HashMap::new();
    for e in found.elements_for_topic(topic) {
        e.error()?;
        if let Offset::Offset(n) = e.offset() {
            out.insert(e.partition(), n);
        }
    }
    Ok(out)
}

/// A node queue as its group sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueState {
    /// Hints not yet committed, over every partition.
    pub queued: u64,
    /// The group's committed offsets, summed: grows with every commit of
    /// any member.
    pub committed: i64,
}

/// End offset minus the group's committed offset, summed over `topic`'s
/// partitions (from the start of the log where nothing is committed yet).
/// Four requests whatever the number of partitions.
pub(super) fn backlog<X: ConsumerContext, C: Consumer<X>>(
    consumer: &C,
    topic: &str,
    timeout: Duration,
) -> Result<QueueState, HintError> {
    backlog_heads(consumer, topic, timeout).map(|(state, _)| state)
}

/// [`backlog`], and where each partition that holds unapplied hints has
/// its first one: (partition, offset).
pub(super) fn backlog_heads<X: ConsumerContext, C: Consumer<X>>(
    consumer: &C,
    topic: &str,
    timeout: Duration,
) -> Result<(QueueState, Vec<(i32, i64)>), HintError> {
    let ids = partitions(consumer.client(), topic, timeout)?;
    let mut wanted = TopicPartitionList::new();
    for p in &ids {
        wanted.add_partition(topic, *p);
    }
    let committed = consumer.committed_offsets(wanted, timeout)?;
    let low = log_offsets(consumer, topic, &ids, Offset::Beginning, timeout)?;
    let high = log_offsets(consumer, topic, &ids, Offset::End, timeout)?;
    let mut state = QueueState {
        queued: 0,
        committed: 0,
    };
    let mut heads = Vec::new();
    for p in &ids {
        let start = low.get(p).copied().unwrap_or(0);
        let from = match committed.find_partition(topic, *p).map(|e| e.offset()) {
            // Below the log's start: retention deleted the rest.
            Some(Offset::Offset(n)) => n.max(start),
            _ => start,
        };
        let end = high.get(p).copied().unwrap_or(0);
        state.queued += u64::try_from(end - from).unwrap_or(0);
        state.committed += from;
        if end > from {
            heads.push((*p, from));
        }
    }
    Ok((state, heads))
}

impl HintLog {
    /// Records waiting for `node`: end offset minus committed offset of its
    /// group, summed over partitions (from the start of the log where the
    /// group has committed nothing yet).
    pub async fn queued(&self, node: &NodeId) -> Result<u64, HintError> {
        let consumer = self.offsets_consumer(node)?;
        self.past_commits(consumer, self.topic(node), "queued")
            .await
    }

    /// How many messages of `topic` lie past the committed offsets of
    /// `consumer`'s group (from the start of the log where it has
    /// committed nothing), timed as the Kafka call `call`.
    pub(super) async fn past_commits(
        &self,
        consumer: Arc<BaseConsumer>,
        topic: String,
        call: &'static str,
    ) -> Result<u64, HintError> {
        let timeout = self.config.timeout;
        let count =
            self.blocking(move || backlog(consumer.as_ref(), &topic, timeout).map(|q| q.queued));
        crate::metrics::timed("kafka", call, count).await
    }

    /// Reads up to `max` hints of `node`'s topic past the group's committed
    /// offsets (and, per partition, from `after` where that is further on),
    /// outside the group: assigned, never subscribed, never committing. For
    /// a replay whose group hands the partitions to no one alive (see
    /// `replay`): what it applies this way is applied again, a no-op, when
    /// the group gets going.
    pub async fn uncommitted(
        &self,
        node: &NodeId,
        after: &BTreeMap<i32, i64>,
        max: usize,
    ) -> Result<Vec<ParkedHint>, HintError> {
        let topic = self.topic(node);
        let group = self.group(node);
        let config = base_config(&self.config);
        let timeout = self.config.timeout;
        let after = after.clone();
        self.blocking(move || read_uncommitted(config, &group, &topic, &after, max, timeout))
            .await
    }
}
