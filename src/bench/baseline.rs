//! The baselines a workload is measured against, on the same servers and in
//! the same run, written the way a simple client would, with no regiondb in
//! the way (so they use the drivers directly, not regiondb's adapters):
//!
//! - **naive**: per record, one versioned upsert of the home copy and then
//!   one of the replica copy, each `w: majority, j: true` (regiondb's write
//!   concern), on the driver's default pool;
//! - **broker**: per record, two acknowledged produces one after the other
//!   (acks=all, idempotent, keyed by the customer id, librdkafka's default
//!   partitioner), to two topics of the node topics' partition count,
//!   `<prefix>regiondb-bench-home` and `-replica`, made by the first run and
//!   kept (deleting a topic while regiondb runs made its librdkafka crash
//!   against the test broker, tansu; keeping them costs a little disk).
//!
//! The naive client writes to collection [`NAIVE_COLLECTION`] of the home
//! and replica nodes' databases, emptied after the run.

use std::time::Duration;

use mongodb::bson::{Document, doc};
use mongodb::options::{Acknowledgment, WriteConcern};
use mongodb::{Client, Collection};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;

use super::BenchError;
use super::load::{Op, Outcome};
use super::records::BenchRecord;
use crate::config::KafkaConfig;

/// Where the naive client writes, in each node's database.
pub const NAIVE_COLLECTION: &str = "regiondb_bench_naive";

/// The home and replica collections of the naive client for one region.
#[derive(Clone)]
pub struct NaivePair {
    pub home: Collection<Document>,
    pub replica: Collection<Document>,
}

/// A naive client's connection to one node's database.
pub async fn naive_collection(uri: &str, node: &str) -> Result<Collection<Document>, BenchError> {
    let client = Client::with_uri_str(uri)
        .await
        .map_err(|e| BenchError::Deployment(format!("mongodb {node}: {e}")))?;
    let concern = WriteConcern::builder()
        .w(Acknowledgment::Majority)
        .journal(true)
        .build();
    Ok(client
        .database(node)
        .collection_with_options(NAIVE_COLLECTION, {
            mongodb::options::CollectionOptions::builder()
                .write_concern(concern)
                .build()
        }))
}

/// One worker of the naive client: `next` picks the record and its pair.
pub struct NaiveOp<F> {
    pub next: F,
}

impl<F: FnMut(u64) -> (BenchRecord, NaivePair) + Send + 'static> Op for NaiveOp<F> {
    async fn call(&mut self, seq: u64) -> Outcome {
        let (record, pair) = (self.next)(seq);
        let version = crate::domain::now_millis() * 1000 + (seq % 1000) as i64;
        for coll in [&pair.home, &pair.replica] {
            let filter = doc! {"_id": &record.customer_id, "version": {"$not": {"$gte": version}}};
            let mut set = record.document();
            set.insert("version", version);
            let upserted = coll
                .update_one(filter, doc! {"$set": set})
                .upsert(true)
                .await;
            if let Err(e) = upserted {
                return Outcome::Failed(e.to_string());
            }
        }
        Outcome::Status(200)
    }
}

/// Empties the naive client's collections.
pub async fn clean_naive(collections: &[Collection<Document>]) {
    for coll in collections {
        if let Err(e) = coll.delete_many(doc! {}).await {
            tracing::warn!(error = %e, "could not empty the naive client's collection");
        }
    }
}

/// The broker baseline's two topics.
pub struct BrokerTopics {
    pub names: [String; 2],
}

impl BrokerTopics {
    /// Makes the topics unless they exist.
    pub async fn create(config: &KafkaConfig) -> Result<BrokerTopics, BenchError> {
        let kafka = |e: rdkafka::error::KafkaError| BenchError::Deployment(format!("kafka: {e}"));
        let admin: AdminClient<DefaultClientContext> = crate::hints::client_config(config)
            .create()
            .map_err(kafka)?;
        let names =
            ["home", "replica"].map(|side| format!("{}regiondb-bench-{side}", config.topic_prefix));
        let topics: Vec<NewTopic> = (names.iter())
            .map(|n| {
                NewTopic::new(
                    n,
                    config.partitions,
                    TopicReplication::Fixed(config.replication_factor),
                )
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for result in admin
            .create_topics(&topics, &options)
            .await
            .map_err(kafka)?
        {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, code)) => {
                    return Err(BenchError::Deployment(format!("topic {t}: {code}")));
                }
            }
        }
        Ok(BrokerTopics { names })
    }
}

/// The broker baseline's producer: regiondb's producer settings, with
/// librdkafka's own partitioning.
pub fn raw_producer(config: &KafkaConfig) -> Result<FutureProducer, BenchError> {
    crate::hints::client_config(config)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", crate::hints::LINGER_MS)
        .create()
        .map_err(|e| BenchError::Deployment(format!("kafka: {e}")))
}

/// One worker of the broker baseline.
pub struct BrokerOp<F> {
    pub producer: FutureProducer,
    pub topics: [String; 2],
    pub next: F,
}

impl<F: FnMut(u64) -> BenchRecord + Send + 'static> Op for BrokerOp<F> {
    async fn call(&mut self, seq: u64) -> Outcome {
        let record = (self.next)(seq);
        let payload = record.json();
        for topic in &self.topics {
            let message = FutureRecord::to(topic)
                .key(&record.customer_id)
                .payload(&payload);
            let sent = self
                .producer
                .send(message, Timeout::After(Duration::from_secs(5)))
                .await;
            if let Err((e, _)) = sent {
                return Outcome::Failed(e.to_string());
            }
        }
        Outcome::Status(200)
    }
}
