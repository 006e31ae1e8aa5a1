//! Appending hints: the idempotent producer (acks=all), the dead-letter
//! topic, and replacing a producer that failed fatally.

use std::sync::RwLock;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use super::{HintError, HintLog, ParkedHint, REASON_HEADER, base_config};
use crate::config::KafkaConfig;
use crate::domain::{CustomerCopy, NodeId};

impl HintLog {
    /// Appends a copy to `node`'s topic and waits for the broker's
    /// acknowledgement. `Ok` means durably queued.
    pub async fn park(&self, node: &NodeId, copy: &CustomerCopy) -> Result<(), HintError> {
        let topic = self.topic(node);
        let payload = copy.to_json_bytes();
        let mut record = FutureRecord::to(&topic)
            .key(copy.customer_id().as_str())
            .payload(&payload);
        if let Some(partition) = self.partition_for(&topic).await {
            record = record.partition(partition);
        }
        crate::metrics::timed("kafka", "produce", self.send(node, record)).await
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
        crate::metrics::timed("kafka", "dead_letter", self.send(node, record)).await
    }

    /// Produces one record with `node`'s producer and waits for the
    /// broker's acknowledgement.
    async fn send<K, P>(
        &self,
        node: &NodeId,
        record: FutureRecord<'_, K, P>,
    ) -> Result<(), HintError>
    where
        K: rdkafka::message::ToBytes + ?Sized,
        P: rdkafka::message::ToBytes + ?Sized,
    {
        let slot = self.producer_slot(node)?;
        let producer = read(slot);
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
            self.replace_producer_if_fatal(slot, &producer);
            HintError::Kafka(e)
        })
    }

    /// `node`'s producer's slot.
    fn producer_slot(&self, node: &NodeId) -> Result<&RwLock<FutureProducer>, HintError> {
        (self.producers.iter())
            .find(|(n, _)| n == node)
            .map(|(_, slot)| slot)
            .ok_or_else(|| HintError::UnknownNode(node.clone()))
    }

    /// A producer, for metadata queries (`None` only without nodes, which
    /// no region map allows).
    pub(super) fn producer(&self) -> Option<FutureProducer> {
        self.producers.first().map(|(_, slot)| read(slot))
    }

    /// After a fatal producer error every later message would fail too: start
    /// a fresh producer (new producer id) so the next write can be queued.
    fn replace_producer_if_fatal(&self, slot: &RwLock<FutureProducer>, failed: &FutureProducer) {
        let Some((code, reason)) = failed.client().fatal_error() else {
            return;
        };
        tracing::error!(?code, %reason, "kafka producer failed fatally; recreating it");
        match new_producer(&self.config) {
            Ok(fresh) => match slot.write() {
                Ok(mut p) => *p = fresh,
                Err(poisoned) => *poisoned.into_inner() = fresh,
            },
            Err(e) => tracing::error!(error = %e, "cannot recreate the kafka producer"),
        }
    }

    /// Waits until every acknowledged-to-be hint in flight is delivered.
    pub fn flush(&self, timeout: Duration) -> Result<(), HintError> {
        for (_, slot) in &self.producers {
            read(slot).flush(timeout).map_err(HintError::from)?;
        }
        Ok(())
    }
}

fn read(slot: &RwLock<FutureProducer>) -> FutureProducer {
    match slot.read() {
        Ok(p) => p.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

pub(super) fn new_producer(config: &KafkaConfig) -> Result<FutureProducer, KafkaError> {
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
        // after the delivery deadline (see docs/losing-nothing.md, "Unknown
        // outcomes").
        .set(
            "request.timeout.ms",
            request_timeout(config.timeout).to_string(),
        )
        // Long enough for the hints of concurrent writes to share a batch
        // (they share a partition: see `partitions`), short next to the
        // broker's own acknowledgement (measured: 0.5 ms beat 0, 0.3, 0.7,
        // 1, 2 and 5 ms; docs/BENCHMARKS.md).
        .set("linger.ms", LINGER_MS)
        .create()
}

/// See [`new_producer`].
pub const LINGER_MS: &str = "0.5";

/// A third of the delivery timeout (at least 50 ms): room for the first
/// try and two retries.
fn request_timeout(delivery: Duration) -> u128 {
    (delivery.as_millis() / 3).max(50)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_time_out_before_the_delivery_does() {
        assert_eq!(request_timeout(Duration::from_secs(3)), 1000);
        assert_eq!(request_timeout(Duration::from_millis(100)), 50);
    }
}
