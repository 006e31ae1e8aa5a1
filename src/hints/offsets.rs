//! Offsets: where each partition of a node topic starts and ends, how far
//! its handoff group has committed, and reading what is past that outside
//! the group.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::{HintError, ParkedHint, parked};

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
    let ids = partitions(consumer.client(), topic, timeout)?;
    let mut wanted = TopicPartitionList::new();
    for p in &ids {
        wanted.add_partition(topic, *p);
    }
    let committed = consumer.committed_offsets(wanted, timeout)?;
    let high = log_offsets(&consumer, topic, &ids, Offset::End, timeout)?;
    let mut start = TopicPartitionList::new();
    let mut left = 0;
    for p in &ids {
        let from = match committed.find_partition(topic, *p).map(|e| e.offset()) {
            Some(Offset::Offset(n)) => Offset::Offset(n),
            _ => Offset::Beginning,
        };
        let from = match (from, after.get(p)) {
            (Offset::Offset(n), Some(a)) => Offset::Offset(n.max(*a)),
            (_, Some(a)) => Offset::Offset(*a),
            (from, None) => from,
        };
        let end = high.get(p).copied().unwrap_or(0);
        if matches!(from, Offset::Offset(n) if n >= end) || end == 0 {
            continue;
        }
        start.add_partition_offset(topic, *p, from)?;
        left += 1;
    }
    let mut hints = Vec::new();
    if left == 0 {
        return Ok(hints);
    }
    consumer.assign(&start)?;
    let deadline = std::time::Instant::now() + timeout;
    let mut done = std::collections::BTreeSet::new();
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
    }
    Ok(state)
}
