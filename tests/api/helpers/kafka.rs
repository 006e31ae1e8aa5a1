//! Kafka: the node topics' offsets and messages, producing hints by hand,
//! resetting a group, adding partitions.

use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::time::Instant;

use serde_json::Value;

use super::*;

impl TestApp {
    pub fn topic(&self, node: &str) -> String {
        format!("{}{node}", self.topic_prefix)
    }

    pub fn group(&self, node: &str) -> String {
        format!("{}regiondb-handoff-{node}", self.topic_prefix)
    }

    pub fn kafka_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.kafka.bootstrap)
            .set("log_level", "3");
        c
    }

    /// (end offsets, committed offsets of the node's handoff group), each
    /// summed over the topic's partitions as Kafka reports them (a
    /// partition without a commit counts from its start; `None` if the
    /// group committed nothing at all).
    pub async fn offsets(&self, node: &str) -> (i64, Option<i64>) {
        let parts = self.partition_offsets(node).await;
        let end = parts.iter().map(|p| p.high).sum();
        let any = parts.iter().any(|p| p.committed.is_some());
        let done = (parts.iter()).map(|p| p.committed.unwrap_or(p.low)).sum();
        (end, any.then_some(done))
    }

    /// Each partition of the node's topic: its log's start and end, and
    /// the handoff group's committed offset.
    pub async fn partition_offsets(&self, node: &str) -> Vec<PartitionOffsets> {
        let topic = self.topic(node);
        let consumer: BaseConsumer = self
            .kafka_config()
            .set("group.id", self.group(node))
            .create()
            .expect("consumer");
        tokio::task::spawn_blocking(move || {
            let ids = partition_ids(&consumer, &topic);
            let mut tpl = TopicPartitionList::new();
            for p in &ids {
                tpl.add_partition(&topic, *p);
            }
            let committed = consumer
                .committed_offsets(tpl, Duration::from_secs(10))
                .expect("committed");
            (ids.into_iter())
                .map(|p| {
                    let (low, high) = consumer
                        .fetch_watermarks(&topic, p, Duration::from_secs(10))
                        .expect("watermarks");
                    let committed = match committed.find_partition(&topic, p).map(|e| e.offset()) {
                        Some(Offset::Offset(n)) => Some(n),
                        _ => None,
                    };
                    PartitionOffsets {
                        partition: p,
                        low,
                        high,
                        committed,
                    }
                })
                .collect()
        })
        .await
        .expect("offsets")
    }

    /// Every message in the node's topic, parsed.
    pub async fn hints(&self, node: &str) -> Vec<Value> {
        self.read_topic(self.topic(node))
            .await
            .into_iter()
            .map(|(payload, _)| serde_json::from_slice(&payload).expect("json hint"))
            .collect()
    }

    /// Every message of the node's dead-letter topic: (payload, reason).
    pub async fn dead_letters(&self, node: &str) -> Vec<(String, String)> {
        let topic = format!("{}.dead-letter", self.topic(node));
        self.read_topic(topic)
            .await
            .into_iter()
            .map(|(payload, reason)| {
                let payload = String::from_utf8_lossy(&payload).into_owned();
                (payload, reason.unwrap_or_default())
            })
            .collect()
    }

    /// Every message of partition 0 of `topic`: payload and
    /// `regiondb-reason` header.
    pub async fn read_topic(&self, topic: String) -> Vec<(Vec<u8>, Option<String>)> {
        let consumer: BaseConsumer = self
            .kafka_config()
            .set("group.id", format!("{}reader", self.topic_prefix))
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        tokio::task::spawn_blocking(move || {
            let mut tpl = TopicPartitionList::new();
            let mut total = 0;
            for p in partition_ids(&consumer, &topic) {
                let (low, high) = consumer
                    .fetch_watermarks(&topic, p, Duration::from_secs(10))
                    .expect("watermarks");
                total += high - low;
                tpl.add_partition_offset(&topic, p, Offset::Offset(low))
                    .expect("tpl");
            }
            consumer.assign(&tpl).expect("assign");
            let mut out = Vec::new();
            let start = Instant::now();
            while (out.len() as i64) < total {
                assert!(start.elapsed() < DEADLINE, "could not read {topic}");
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                    let reason = m
                        .headers()
                        .and_then(|h| h.iter().find(|h| h.key == "regiondb-reason"))
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned());
                    out.push((m.payload().unwrap_or_default().to_vec(), reason));
                }
            }
            out
        })
        .await
        .expect("read topic")
    }

    /// Waits until the node's group has committed everything in its topic.
    pub async fn wait_drained(&self, node: &str) {
        wait_until(
            &format!("{node}'s topic to be drained"),
            DEADLINE,
            || async {
                let (end, committed) = self.offsets(node).await;
                end == 0 || committed == Some(end)
            },
        )
        .await;
    }

    /// Moves the node's handoff group back to the start of its topic (the
    /// app must not be running: a group with members refuses this).
    pub async fn reset_group(&self, node: &str) {
        let topic = self.topic(node);
        let consumer: BaseConsumer = self
            .kafka_config()
            .set("group.id", self.group(node))
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        tokio::task::spawn_blocking(move || {
            let mut tpl = TopicPartitionList::new();
            for p in partition_ids(&consumer, &topic) {
                tpl.add_partition_offset(&topic, p, Offset::Offset(0))
                    .expect("tpl");
            }
            consumer.assign(&tpl).expect("assign");
            consumer.commit(&tpl, CommitMode::Sync).expect("commit");
        })
        .await
        .expect("reset");
    }

    /// Appends any bytes to the node's topic, as a stray writer would.
    pub async fn produce_raw(&self, node: &str, key: &str, payload: &[u8]) {
        self.produce(node, None, key, payload).await;
    }

    /// Appends a hint to one partition of the node's topic.
    pub async fn produce_hint_to(&self, node: &str, partition: i32, key: &str, hint: &Value) {
        self.produce(node, Some(partition), key, hint.to_string().as_bytes())
            .await;
    }

    pub async fn produce(&self, node: &str, partition: Option<i32>, key: &str, payload: &[u8]) {
        self.produce_to(&self.topic(node), partition, key, payload)
            .await;
    }

    /// Appends a message to `topic` (a node topic, or its dead-letter one).
    pub async fn produce_to(&self, topic: &str, partition: Option<i32>, key: &str, payload: &[u8]) {
        let producer: FutureProducer = self
            .kafka_config()
            .set("acks", "all")
            .create()
            .expect("producer");
        let mut record = FutureRecord::to(topic).key(key).payload(payload);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .expect("produce");
    }

    /// Grows the node's topic to `total` partitions; false if the broker
    /// cannot (tansu 0.6 does not implement CreatePartitions).
    pub async fn add_partitions(&self, node: &str, total: usize) -> bool {
        let admin: AdminClient<DefaultClientContext> = self.kafka_config().create().expect("admin");
        let topic = self.topic(node);
        let results = admin
            .create_partitions(
                &[NewPartitions::new(&topic, total)],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await;
        match results {
            Err(rdkafka::error::KafkaError::AdminOp(
                rdkafka::types::RDKafkaErrorCode::UnsupportedFeature,
            )) => false,
            Err(e) => panic!("create partitions: {e}"),
            Ok(results) => {
                for r in results {
                    r.expect("partitions added");
                }
                true
            }
        }
    }

    /// Appends a raw hint to the node's topic, as another writer would.
    pub async fn produce_hint(&self, node: &str, key: &str, hint: &Value) {
        self.produce(node, None, key, hint.to_string().as_bytes())
            .await;
    }
}

/// The partition ids of `topic`.
/// One partition of a node topic (see [`TestApp::partition_offsets`]).
#[derive(Debug, Clone, Copy)]
pub struct PartitionOffsets {
    pub partition: i32,
    pub low: i64,
    pub high: i64,
    pub committed: Option<i64>,
}

pub fn partition_ids(consumer: &BaseConsumer, topic: &str) -> Vec<i32> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let ids: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    assert!(!ids.is_empty(), "topic {topic} has no partitions");
    ids
}
