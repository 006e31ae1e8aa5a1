//! Kafka: the hint log. A write meant for an unavailable node is appended to
//! that node's topic (key = customer_id, value = the copy as JSON) and only
//! acknowledged once the broker has it (acks=all, idempotent producer). Each
//! node's replay reads its topic as consumer group `regiondb-handoff-<node>`
//! and commits offsets only after MongoDB took the batch.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::domain::{CustomerCopy, NodeId};

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

    /// Creates the node topics that do not exist yet (the broker may not
    /// auto-create them; ours are created with the configured partitions and
    /// replication).
    pub async fn ensure_topics(&self, nodes: &[NodeId]) -> Result<(), HintError> {
        let names: Vec<String> = nodes.iter().map(|n| self.topic(n)).collect();
        let new: Vec<NewTopic> = names
            .iter()
            .map(|name| {
                let replication = TopicReplication::Fixed(self.config.replication_factor);
                NewTopic::new(name, self.config.partitions, replication)
            })
            .collect();
        let options = AdminOptions::new()
            .request_timeout(Some(self.config.timeout))
            .operation_timeout(Some(self.config.timeout));
        let results = self
            .bounded(self.admin.create_topics(&new, &options))
            .await??;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => return Err(HintError::Topic { topic, code }),
            }
        }
        Ok(())
    }

    /// Appends a copy to `node`'s topic and waits for the broker's
    /// acknowledgement. `Ok` means durably queued.
    pub async fn park(&self, node: &NodeId, copy: &CustomerCopy) -> Result<(), HintError> {
        let topic = self.topic(node);
        let payload = copy.to_json_bytes();
        let record = FutureRecord::to(&topic)
            .key(copy.customer.customer_id.as_str())
            .payload(&payload);
        let producer = self.producer();
        let sent = self
            .bounded(producer.send(record, Timeout::After(self.config.timeout)))
            .await?;
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
        let consumer = self
            .offsets
            .get(node)
            .cloned()
            .ok_or_else(|| HintError::UnknownNode(node.clone()))?;
        let topic = self.topic(node);
        let timeout = self.config.timeout;
        self.blocking(move || {
            let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
            let partitions: Vec<i32> = metadata
                .topics()
                .iter()
                .filter(|t| t.name() == topic)
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            if partitions.is_empty() {
                return Err(HintError::Topic {
                    topic,
                    code: RDKafkaErrorCode::UnknownTopicOrPartition,
                });
            }
            let mut wanted = TopicPartitionList::new();
            for p in &partitions {
                wanted.add_partition(&topic, *p);
            }
            let committed = consumer.committed_offsets(wanted, timeout)?;
            let mut total = 0u64;
            for p in partitions {
                let (low, high) = consumer.fetch_watermarks(&topic, p, timeout)?;
                let from = match committed.find_partition(&topic, p).map(|e| e.offset()) {
                    Some(Offset::Offset(n)) => n.max(low),
                    _ => low,
                };
                total += u64::try_from(high - from).unwrap_or(0);
            }
            Ok(total)
        })
        .await
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

    /// A consumer of every partition of `node`'s topic, starting at the
    /// handoff group's committed offsets.
    ///
    /// Partitions are assigned directly rather than through group
    /// membership: a replay then starts the moment the process does, instead
    /// of waiting for a crashed predecessor's session to expire and the
    /// group to rebalance. Offsets are still committed under the group, which
    /// is what "queued" and a restart read. (Several instances would each
    /// replay every topic; last-writer-wins makes the overlap harmless.)
    pub async fn consumer(&self, node: &NodeId) -> Result<HintConsumer, HintError> {
        let topic = self.topic(node);
        let consumer: StreamConsumer = base_config(&self.config)
            .set("group.id", self.group(node))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // Bounds what is prefetched while the node is unavailable.
            .set("queued.max.messages.kbytes", "4096")
            .create()?;
        let consumer = Arc::new(consumer);
        let timeout = self.config.timeout;
        let (c, t) = (consumer.clone(), topic.clone());
        self.blocking(move || {
            let metadata = c.fetch_metadata(Some(&t), timeout)?;
            let mut assignment = TopicPartitionList::new();
            for p in metadata
                .topics()
                .iter()
                .filter(|m| m.name() == t)
                .flat_map(|m| m.partitions())
            {
                assignment.add_partition_offset(&t, p.id(), Offset::Stored)?;
            }
            if assignment.count() == 0 {
                return Err(HintError::Topic {
                    topic: t,
                    code: RDKafkaErrorCode::UnknownTopicOrPartition,
                });
            }
            c.assign(&assignment)?;
            Ok(())
        })
        .await?;
        Ok(HintConsumer {
            consumer,
            topic,
            timeout,
        })
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
    /// The copy, or why it could not be read.
    pub copy: Result<CustomerCopy, String>,
}

/// Reads one node's topic in its handoff group.
pub struct HintConsumer {
    consumer: Arc<StreamConsumer>,
    topic: String,
    timeout: Duration,
}

impl HintConsumer {
    /// Waits for at least one hint, then takes whatever else is already
    /// there, up to `max`.
    pub async fn next_batch(&self, max: usize) -> Result<Vec<ParkedHint>, HintError> {
        let first = self.consumer.recv().await?;
        let mut batch = vec![parked(&first)];
        drop(first);
        while batch.len() < max {
            match tokio::time::timeout(Duration::from_millis(20), self.consumer.recv()).await {
                Ok(Ok(msg)) => batch.push(parked(&msg)),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "kafka error while filling a batch");
                    break;
                }
                Err(_) => break,
            }
        }
        Ok(batch)
    }

    /// Commits the positions after `batch` (synchronously: the caller moves
    /// on only once the broker has them).
    pub async fn commit(&self, batch: &[ParkedHint]) -> Result<(), HintError> {
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for hint in batch {
            let slot = next.entry(hint.partition).or_insert(hint.offset + 1);
            *slot = (*slot).max(hint.offset + 1);
        }
        let consumer = self.consumer.clone();
        let topic = self.topic.clone();
        let timeout = self.timeout;
        let commit = tokio::task::spawn_blocking(move || {
            let mut tpl = TopicPartitionList::new();
            for (partition, offset) in next {
                tpl.add_partition_offset(&topic, partition, Offset::Offset(offset))?;
            }
            consumer.commit(&tpl, CommitMode::Sync)
        });
        match tokio::time::timeout(timeout + Duration::from_secs(1), commit).await {
            Err(_) => Err(HintError::Timeout(timeout)),
            Ok(Err(e)) => Err(HintError::Join(e.to_string())),
            Ok(Ok(result)) => result.map_err(HintError::from),
        }
    }
}

fn parked(msg: &rdkafka::message::BorrowedMessage<'_>) -> ParkedHint {
    ParkedHint {
        partition: msg.partition(),
        offset: msg.offset(),
        copy: match msg.payload() {
            Some(bytes) => CustomerCopy::from_json_bytes(bytes),
            None => Err("empty message".into()),
        },
    }
}

fn new_producer(config: &KafkaConfig) -> Result<FutureProducer, KafkaError> {
    base_config(config)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // Bounds the whole delivery, retries included: past this the write
        // is answered 503 instead of hanging.
        .set("message.timeout.ms", config.timeout.as_millis().to_string())
        .set("linger.ms", "2")
        .create()
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
