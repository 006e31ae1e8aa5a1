//! Kafka: the hint log. A write meant for an unavailable node is appended to
//! that node's topic (key = customer_id, value = the copy as JSON; the
//! partition turns per instance, see `partitions`) and only acknowledged
//! once the broker has it (acks=all, idempotent producer). Each
//! node's replay reads its topic as a member of consumer group
//! `regiondb-handoff-<node>` (Kafka spreads the topic's partitions over the
//! running instances) and commits offsets only after MongoDB took the batch.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;

mod admin;
mod age;
mod consumer;
mod dead_letters;
mod offsets;
mod parked;
mod partitions;
mod producer;
mod security;

use partitions::PartitionCounts;
pub use producer::LINGER_MS;
use producer::new_producer;

pub use age::QueueDetail;
pub use consumer::{HintConsumer, ReplayContext};
pub use offsets::QueueState;
pub use parked::ParkedHint;

use crate::config::KafkaConfig;
use crate::domain::NodeId;

/// Appended to a node topic's name to name its dead-letter topic.
pub const DEAD_LETTER_SUFFIX: &str = ".dead-letter";
/// The header of a dead letter that says why it could not be applied.
pub const REASON_HEADER: &str = "regiondb-reason";

/// How many Kafka timeouts one call on the blocking pool may take (it makes
/// up to five bounded librdkafka calls; see [`HintLog::blocking`]).
const BLOCKING_CALLS: u32 = 6;

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
    /// A client setting the library or the brokers refuse, under the
    /// variable that set it.
    #[error("{variable}: {reason}")]
    Setting { variable: String, reason: String },
}

impl HintError {
    /// For clients: no broker addresses or client internals (those are
    /// logged).
    pub fn short_reason(&self) -> String {
        match self {
            HintError::Kafka(_) | HintError::Join(_) => "kafka could not be reached".into(),
            HintError::Setting { .. } => "kafka refused a client setting".into(),
            other => other.to_string(),
        }
    }
}

/// The producer side plus the admin and offset queries, shared by the whole
/// process.
pub struct HintLog {
    config: KafkaConfig,
    /// One producer (one broker connection) per node topic: a broker
    /// answers one connection's requests one at a time, so a node's hints
    /// never wait behind another node's. Each is replaced as a whole if it
    /// ever fails fatally (an idempotent producer can, and then refuses
    /// every message until it is recreated).
    producers: Vec<(NodeId, RwLock<FutureProducer>)>,
    /// Which partition hints go to (see `partitions`).
    partitions: PartitionCounts,
    admin: AdminClient<DefaultClientContext>,
    /// One idle consumer per node group, used only to read committed offsets.
    offsets: HashMap<NodeId, Arc<BaseConsumer>>,
    /// The same for each node's dead-letter group (see `dead_letters`).
    dead_offsets: HashMap<NodeId, Arc<BaseConsumer>>,
    /// One reader per node of its queue's head hints (see `age`), on the
    /// node's dead-letter consumer.
    peeks: HashMap<NodeId, Arc<std::sync::Mutex<age::Peek>>>,
}

impl HintLog {
    /// Builds the clients as `client_id` (each instance its own, so the
    /// brokers' logs and quotas tell them apart); connections are made
    /// lazily, so a broker that is down at start is not an error here. A
    /// property librdkafka refuses is, under its variable's name.
    pub fn new<'a>(
        config: &KafkaConfig,
        nodes: impl IntoIterator<Item = &'a NodeId>,
        client_id: &str,
    ) -> Result<HintLog, HintError> {
        let config = &KafkaConfig {
            client_id: client_id.to_owned(),
            ..config.clone()
        };
        let nodes: Vec<&NodeId> = nodes.into_iter().collect();
        let idle_in = |group: String| -> Result<Arc<BaseConsumer>, KafkaError> {
            let consumer = (base_config(config).set("group.id", group))
                .set("enable.auto.commit", "false")
                // They never follow a topic: the age look reads one hint
                // per partition with one of them (see `age`), so a fetch
                // brings a few kilobytes, not a partition up to its end.
                // librdkafka wants no fetch below the largest message.
                .set("fetch.max.bytes", PEEK_FETCH_BYTES)
                .set("max.partition.fetch.bytes", PEEK_FETCH_BYTES)
                .set("message.max.bytes", PEEK_FETCH_BYTES)
                .set("fetch.wait.max.ms", PEEK_FETCH_WAIT_MS)
                .create()?;
            Ok(Arc::new(consumer))
        };
        let producers = (nodes.iter())
            .map(|node| Ok(((*node).clone(), RwLock::new(new_producer(config)?))))
            .collect::<Result<_, KafkaError>>()
            .map_err(|e| security::setting_error(config, e))?;
        let offsets = per_node(config, &nodes, |node| idle_in(group_name(config, node)))?;
        let dead_offsets = per_node(config, &nodes, |node| {
            idle_in(dead_letter_group_name(config, node))
        })?;
        let peeks = (dead_offsets.iter())
            .map(|(node, consumer)| {
                let peek = age::Peek::new(consumer.clone());
                (node.clone(), Arc::new(std::sync::Mutex::new(peek)))
            })
            .collect();
        let admin =
            (base_config(config).create()).map_err(|e| security::setting_error(config, e))?;
        Ok(HintLog {
            config: config.clone(),
            producers,
            partitions: PartitionCounts::new(),
            admin,
            offsets,
            dead_offsets,
            peeks,
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

    fn offsets_consumer(&self, node: &NodeId) -> Result<Arc<BaseConsumer>, HintError> {
        of_node(&self.offsets, node)
    }

    async fn bounded<T>(&self, op: impl Future<Output = T>) -> Result<T, HintError> {
        // Slightly longer than librdkafka's own timeouts, which fire first
        // with a better error; this only guards against a wedged client.
        let limit = self.config.timeout + Duration::from_secs(1);
        tokio::time::timeout(limit, op)
            .await
            .map_err(|_| HintError::Timeout(limit))
    }

    /// Runs `f` (a few librdkafka calls, each bounded by the timeout) on
    /// the blocking pool. One that has not come back after
    /// [`BLOCKING_CALLS`] timeouts (a wedged client, or a consumer whose
    /// close never completes) is given up on, so that its caller, a replay
    /// among them, goes on; the thread is left to finish by itself.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, HintError> + Send + 'static,
    ) -> Result<T, HintError> {
        let limit = self.config.timeout * BLOCKING_CALLS + Duration::from_secs(1);
        match tokio::time::timeout(limit, tokio::task::spawn_blocking(f)).await {
            Err(_) => {
                tracing::warn!(?limit, "a kafka call did not come back; given up on");
                Err(HintError::Timeout(limit))
            }
            Ok(joined) => joined.map_err(|e| HintError::Join(e.to_string()))?,
        }
    }
}

/// What one fetch of an idle consumer may bring (see `HintLog::new`):
/// several times the largest hint (four text fields of at most 200
/// characters), which a broker that keeps to the limit strictly must still
/// be able to send.
const PEEK_FETCH_BYTES: &str = "16384";
/// How long a broker may hold an idle consumer's fetch for more data: the
/// age look reads only hints already there (below the high watermark), so
/// a long poll would only delay it (librdkafka's default is 500 ms, and
/// tansu holds every fetch for half of it).
const PEEK_FETCH_WAIT_MS: &str = "10";

/// `node`'s entry of a per-node map of clients.
fn of_node<T: Clone>(map: &HashMap<NodeId, T>, node: &NodeId) -> Result<T, HintError> {
    (map.get(node).cloned()).ok_or_else(|| HintError::UnknownNode(node.clone()))
}

/// One client (or reader) per node, built by `make`; a property the
/// library refuses is named under its variable.
fn per_node<T>(
    config: &KafkaConfig,
    nodes: &[&NodeId],
    make: impl Fn(&NodeId) -> Result<T, KafkaError>,
) -> Result<HashMap<NodeId, T>, HintError> {
    (nodes.iter())
        .map(|node| Ok(((*node).clone(), make(node)?)))
        .collect::<Result<_, KafkaError>>()
        .map_err(|e| security::setting_error(config, e))
}

/// The settings every client of regiondb's starts from (brokers, client
/// id, TLS and SASL): for a tool that must reach the same cluster the same
/// way (`regiondb bench`'s broker baseline).
pub fn client_config(config: &KafkaConfig) -> ClientConfig {
    base_config(config)
}

fn base_config(config: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap)
        .set("client.id", &config.client_id)
        .set("log_level", "4");
    security::apply(config, &mut c);
    c
}

fn topic_name(config: &KafkaConfig, node: &NodeId) -> String {
    format!("{}{node}", config.topic_prefix)
}

fn group_name(config: &KafkaConfig, node: &NodeId) -> String {
    format!("{}regiondb-handoff-{node}", config.topic_prefix)
}

/// The group whose committed offsets mark the dead letters an operator
/// has dealt with (see `dead_letters`).
fn dead_letter_group_name(config: &KafkaConfig, node: &NodeId) -> String {
    format!("{}regiondb-dead-letters-{node}", config.topic_prefix)
}
