//! Kafka: the hint log. A write meant for an unavailable node is appended to
//! that node's topic (key = customer_id, value = the copy as JSON) and only
//! acknowledged once the broker has it (acks=all, idempotent producer). Each
//! node's replay reads its topic as a member of consumer group
//! `regiondb-handoff-<node>` (Kafka spreads the topic's partitions over the
//! running instances) and commits offsets only after MongoDB took the batch.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};

mod offsets;

pub use offsets::QueueState;
use offsets::{backlog, log_offsets, partitions, read_uncommitted};

use crate::config::KafkaConfig;
use crate::domain::{CustomerCopy, NodeId};

/// Appended to a node topic's name to name its dead-letter topic.
pub const DEAD_LETTER_SUFFIX: &str = ".dead-letter";
/// The header of a dead letter that says why it could not be applied.
pub const REASON_HEADER: &str = "regiondb-reason";

#[derive(Debug, thiserror::Error)]
pub enum HintError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("kafka did not answer within {0:?}")]
    Timeout(Duration),
    #[error("kafka topic {topic}: {code}")]
    Topic {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("kafka: background task failed: {0}")]
    Join(String),
    #[error("{0} is not a node of this deployment")]
    UnknownNode(NodeId),
}

impl HintError {
    /// For clients: no broker addresses or client internals (those are
    /// logged).
    pub fn short_reason(&self) -> String {
        match self {
            HintError::Kafka(_) | HintError::Join(_) => "kafka could not be reached".into(),
            other => other.to_string(),
        }
    }
}

/// The producer side plus the admin and offset queries, shared by the whole
/// process.
pub struct HintLog {
    config: KafkaConfig,
    /// Replaced as a whole if it ever fails fatally (an idempotent producer
    /// can, and then refuses every message until it is recreated).
    producer: RwLock<FutureProducer>,
    admin: AdminClient<DefaultClientContext>,
    /// One idle consumer per node group, used only to read committed offsets.
    offsets: HashMap<NodeId, Arc<BaseConsumer>>,
}

impl HintLog {
    /// Builds the clients; connections are made lazily, so a broker that is
    /// down at start is not an error here.
    pub fn new<'a>(
        config: &KafkaConfig,
        nodes: impl IntoIterator<Item = &'a NodeId>,
    ) -> Result<HintLog, HintError> {
        let producer = RwLock::new(new_producer(config)?);
        let admin = base_config(config).create()?;
        let offsets = nodes
            .into_iter()
            .map(|node| {
                let consumer: BaseConsumer = base_config(config)
                    .set("group.id", group_name(config, node))
                    .set("enable.auto.commit", "false")
                    .create()?;
                Ok((node.clone(), Arc::new(consumer)))
            })
            .collect::<Result<_, KafkaError>>()?;
        Ok(HintLog {
            config: config.clone(),
            producer,
            admin,
            offsets,
        })
    }

    pub fn topic(&self, node: &NodeId) -> String {
        topic_name(&self.config, node)
    }

    pub fn group(&self, node: &NodeId) -> String {
        group_name(&self.config, node)
    }

    /// The topic where `node`'s hints that can never be applied are kept.
    pub fn dead_letter_topic(&self, node: &NodeId) -> String {
        format!("{}{DEAD_LETTER_SUFFIX}", self.topic(node))
    }

    /// Creates the node topics and their dead-letter topics that do not exist
    /// yet (the broker may not auto-create them), with the configured
    /// partitions, replication, retention and `min.insync.replicas`; then
    /// warns about existing topics whose settings could drop hints.
    pub async fn ensure_topics(&self, nodes: &[NodeId]) -> Result<(), HintError> {
        let names: Vec<String> = nodes
            .iter()
            .flat_map(|n| [self.topic(n), self.dead_letter_topic(n)])
            .collect();
        let retention = self.config.retention_ms.to_string();
        let min_insync = self.config.min_insync_replicas.map(|n| n.to_string());
        let new: Vec<NewTopic> = names
            .iter()
            .map(|name| {
                let replication = TopicReplication::Fixed(self.config.replication_factor);
                let topic = NewTopic::new(name, self.config.partitions, replication)
                    .set("retention.ms", &retention);
                match &min_insync {
                    Some(n) => topic.set("min.insync.replicas", n),
                    None => topic,
                }
            })
            .collect();
        let results = self
            .bounded(self.admin.create_topics(&new, &self.admin_options()))
            .await??;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => return Err(HintError::Topic { topic, code }),
            }
        }
        self.warn_about_retention(&names).await;
        Ok(())
    }

    /// Logs a warning for every topic whose retention could delete hints
    /// before they are replayed. A broker that cannot describe its topic
    /// configurations is only noted at debug level.
    async fn warn_about_retention(&self, topics: &[String]) {
        let specifiers: Vec<ResourceSpecifier> =
            topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
        let described = self
            .bounded(
                self.admin
                    .describe_configs(&specifiers, &self.admin_options()),
            )
            .await;
        let resources = match described.and_then(|r| r.map_err(HintError::from)) {
            Ok(resources) => resources,
            Err(e) => return tracing::debug!(error = %e, "cannot describe topic configs"),
        };
        for (topic, resource) in topics.iter().zip(resources) {
            let Ok(resource) = resource else { continue };
            let entries = resource.entry_map();
            let value = |key: &str| entries.get(key).and_then(|e| e.value.clone());
            if let Some(risk) = retention_risk(
                value("retention.ms").as_deref(),
                value("retention.bytes").as_deref(),
                value("cleanup.policy").as_deref(),
            ) {
                tracing::warn!(%topic, %risk,
                    "this topic's settings can delete hints before they are replayed");
            }
        }
    }

    fn admin_options(&self) -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(self.config.timeout))
            .operation_timeout(Some(self.config.timeout))
    }

    /// Appends a copy to `node`'s topic and waits for the broker's
    /// acknowledgement. `Ok` means durably queued.
    pub async fn park(&self, node: &NodeId, copy: &CustomerCopy) -> Result<(), HintError> {
        let topic = self.topic(node);
        let payload = copy.to_json_bytes();
        let record = FutureRecord::to(&topic)
            .key(copy.customer.customer_id.as_str())
            .payload(&payload);
        crate::metrics::timed("kafka", "produce", self.send(record)).await
    }

    /// Moves a hint that can never be applied to `node`'s dead-letter topic,
    /// keeping its key and payload as they were and saying why in the
    /// [`REASON_HEADER`] header (plus where it came from). `Ok` means the
    /// broker has it, so the hint's offset may be committed past.
    pub async fn dead_letter(
        &self,
        node: &NodeId,
        hint: &ParkedHint,
        reason: &str,
    ) -> Result<(), HintError> {
        let topic = self.dead_letter_topic(node);
        let partition = hint.partition.to_string();
        let offset = hint.offset.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: REASON_HEADER,
                value: Some(reason),
            })
            .insert(Header {
                key: "regiondb-source-topic",
                value: Some(&self.topic(node)),
            })
            .insert(Header {
                key: "regiondb-source-partition",
                value: Some(&partition),
            })
            .insert(Header {
                key: "regiondb-source-offset",
                value: Some(&offset),
            });
        let mut record = FutureRecord::<[u8], [u8]>::to(&topic)
            .payload(hint.payload.as_deref().unwrap_or_default())
            .headers(headers);
        if let Some(key) = hint.key.as_deref() {
            record = record.key(key);
        }
        crate::metrics::timed("kafka", "dead_letter", self.send(record)).await
    }

    /// How many hints of `node` were moved to its dead-letter topic (every
    /// message it holds).
    pub async fn dead_letters(&self, node: &NodeId) -> Result<u64, HintError> {
        let consumer = self.offsets_consumer(node)?;
        let topic = self.dead_letter_topic(node);
        let timeout = self.config.timeout;
        self.blocking(move || {
            let ids = partitions(consumer.client(), &topic, timeout)?;
            let low = log_offsets(consumer.as_ref(), &topic, &ids, Offset::Beginning, timeout)?;
            let high = log_offsets(consumer.as_ref(), &topic, &ids, Offset::End, timeout)?;
            Ok(ids
                .iter()
                .map(|p| {
                    let (l, h) = (
                        low.get(p).copied().unwrap_or(0),
                        high.get(p).copied().unwrap_or(0),
                    );
                    u64::try_from(h - l).unwrap_or(0)
                })
                .sum())
        })
        .await
    }

    fn offsets_consumer(&self, node: &NodeId) -> Result<Arc<BaseConsumer>, HintError> {
        self.offsets
            .get(node)
            .cloned()
            .ok_or_else(|| HintError::UnknownNode(node.clone()))
    }

    /// Produces one record and waits for the broker's acknowledgement.
    async fn send<K, P>(&self, record: FutureRecord<'_, K, P>) -> Result<(), HintError>
    where
        K: rdkafka::message::ToBytes + ?Sized,
        P: rdkafka::message::ToBytes + ?Sized,
    {
        let producer = self.producer();
        // librdkafka reports every message by `message.timeout.ms` (its
        // timeout scan runs once a second): the outer bound is only for a
        // wedged client, far enough out that it never cuts off a delivery
        // the client still holds (that would answer 503 for a hint that is
        // then queued after all).
        let limit = self.config.timeout * 2 + Duration::from_secs(5);
        let delivery = producer.send(record, Timeout::After(self.config.timeout));
        let sent = tokio::time::timeout(limit, delivery)
            .await
            .map_err(|_| HintError::Timeout(limit))?;
        sent.map(|_| ()).map_err(|(e, _)| {
            self.replace_producer_if_fatal(&producer);
            HintError::Kafka(e)
        })
    }

    fn producer(&self) -> FutureProducer {
        match self.producer.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// After a fatal producer error every later message would fail too: start
    /// a fresh producer (new producer id) so the next write can be queued.
    fn replace_producer_if_fatal(&self, failed: &FutureProducer) {
        let Some((code, reason)) = failed.client().fatal_error() else {
            return;
        };
        tracing::error!(?code, %reason, "kafka producer failed fatally; recreating it");
        match new_producer(&self.config) {
            Ok(fresh) => match self.producer.write() {
                Ok(mut p) => *p = fresh,
                Err(poisoned) => *poisoned.into_inner() = fresh,
            },
            Err(e) => tracing::error!(error = %e, "cannot recreate the kafka producer"),
        }
    }

    /// Records waiting for `node`: end offset minus committed offset of its
    /// group, summed over partitions (from the start of the log where the
    /// group has committed nothing yet).
    pub async fn queued(&self, node: &NodeId) -> Result<u64, HintError> {
        let consumer = self.offsets_consumer(node)?;
        let topic = self.topic(node);
        let timeout = self.config.timeout;
        let count =
            self.blocking(move || backlog(consumer.as_ref(), &topic, timeout).map(|q| q.queued));
        crate::metrics::timed("kafka", "queued", count).await
    }

    /// Whether the broker answers and every node topic exists.
    pub async fn check(&self, nodes: &[NodeId]) -> Result<(), HintError> {
        let wanted: Vec<String> = nodes.iter().map(|n| self.topic(n)).collect();
        let producer = self.producer();
        let timeout = self.config.timeout;
        self.blocking(move || {
            let metadata = producer.client().fetch_metadata(None, timeout)?;
            for topic in wanted {
                if !metadata.topics().iter().any(|t| t.name() == topic) {
                    return Err(HintError::Topic {
                        topic,
                        code: RDKafkaErrorCode::UnknownTopicOrPartition,
                    });
                }
            }
            Ok(())
        })
        .await
    }

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
        };
        let state = context.state.clone();
        let epoch = context.epoch.clone();
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
            // Bounds what is prefetched while the node is unavailable.
            .set("queued.max.messages.kbytes", "4096")
            .create_with_context(context)?;
        consumer.subscribe(&[&topic])?;
        Ok(HintConsumer {
            consumer: Arc::new(consumer),
            topic,
            timeout: self.config.timeout,
            state,
            epoch,
        })
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

    /// Waits until every acknowledged-to-be hint in flight is delivered.
    pub fn flush(&self, timeout: Duration) -> Result<(), HintError> {
        self.producer().flush(timeout).map_err(HintError::from)
    }

    async fn bounded<T>(&self, op: impl Future<Output = T>) -> Result<T, HintError> {
        // Slightly longer than librdkafka's own timeouts, which fire first
        // with a better error; this only guards against a wedged client.
        let limit = self.config.timeout + Duration::from_secs(1);
        tokio::time::timeout(limit, op)
            .await
            .map_err(|_| HintError::Timeout(limit))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, HintError> + Send + 'static,
    ) -> Result<T, HintError> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| HintError::Join(e.to_string()))?
    }
}

/// One hint read back from a topic.
#[derive(Debug)]
pub struct ParkedHint {
    pub partition: i32,
    pub offset: i64,
    /// The consumer's assignment epoch when it was read (see
    /// [`HintConsumer::still_ours`]).
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

/// Which partitions this member holds, and when each was last taken away.
#[derive(Debug, Default)]
struct Ownership {
    owned: std::collections::BTreeSet<i32>,
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

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
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

/// Reads one node's topic as a member of its handoff group.
pub struct HintConsumer {
    consumer: Arc<StreamConsumer<ReplayContext>>,
    topic: String,
    timeout: Duration,
    state: Arc<Mutex<Ownership>>,
    epoch: Arc<AtomicU64>,
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

    fn parked(&self, msg: &rdkafka::message::BorrowedMessage<'_>) -> ParkedHint {
        // Read after the message: a revocation that happened inside this
        // poll has already bumped the epoch, and the client never hands out
        // a message of a partition it no longer holds.
        parked(msg, self.epoch.load(Ordering::SeqCst))
    }

    /// Whether `hint` still belongs to this member: its partition was not
    /// revoked since it was read (even if it came back since: it is then
    /// read again from the committed offset).
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

/// Why a topic's settings could delete hints before they are replayed, if
/// they can: a finite time or size retention, or compaction.
fn retention_risk(ms: Option<&str>, bytes: Option<&str>, policy: Option<&str>) -> Option<String> {
    let finite = |v: Option<&str>| v.and_then(|v| v.parse::<i64>().ok()).filter(|n| *n >= 0);
    if let Some(ms) = finite(ms) {
        return Some(format!(
            "retention.ms={ms}: hints older than that are deleted"
        ));
    }
    if let Some(bytes) = finite(bytes) {
        return Some(format!(
            "retention.bytes={bytes}: the oldest hints are deleted past that size"
        ));
    }
    match policy {
        Some(p) if p.contains("compact") => Some(format!(
            "cleanup.policy={p}: compaction drops all but one hint per customer"
        )),
        _ => None,
    }
}

fn parked(msg: &rdkafka::message::BorrowedMessage<'_>, epoch: u64) -> ParkedHint {
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

fn new_producer(config: &KafkaConfig) -> Result<FutureProducer, KafkaError> {
    base_config(config)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // Bounds the whole delivery, retries included: past this the write
        // is answered 503 instead of hanging.
        .set("message.timeout.ms", config.timeout.as_millis().to_string())
        // Each request gives up well before the delivery does, so a request
        // that timed out is retried (deduplicated by idempotence) within the
        // delivery window, and a 503 mostly means "the broker never took
        // it". What remains: a broker that took the last try and answered
        // after the delivery deadline (see the README).
        .set(
            "request.timeout.ms",
            request_timeout(config.timeout).to_string(),
        )
        .set("linger.ms", "2")
        .create()
}

/// A third of the delivery timeout (at least 50 ms): room for the first
/// try and two retries.
fn request_timeout(delivery: Duration) -> u128 {
    (delivery.as_millis() / 3).max(50)
}

fn base_config(config: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap)
        .set("client.id", "regiondb")
        .set("log_level", "4");
    c
}

fn topic_name(config: &KafkaConfig, node: &NodeId) -> String {
    format!("{}{node}", config.topic_prefix)
}

fn group_name(config: &KafkaConfig, node: &NodeId) -> String {
    format!("{}regiondb-handoff-{node}", config.topic_prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_that_keeps_everything_is_no_risk() {
        assert_eq!(retention_risk(Some("-1"), Some("-1"), Some("delete")), None);
        assert_eq!(retention_risk(None, None, None), None);
    }

    #[test]
    fn finite_retention_or_compaction_is_a_risk() {
        assert!(retention_risk(Some("604800000"), None, None).is_some());
        assert!(retention_risk(Some("-1"), Some("1073741824"), None).is_some());
        assert!(retention_risk(None, None, Some("compact,delete")).is_some());
    }

    #[test]
    fn requests_time_out_before_the_delivery_does() {
        assert_eq!(request_timeout(Duration::from_secs(3)), 1000);
        assert_eq!(request_timeout(Duration::from_millis(100)), 50);
    }
}
