//! Topic administration: creating each node's hint and dead-letter topics,
//! warning about settings that could delete hints, and the readiness check.

use rdkafka::admin::{AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::producer::Producer;
use rdkafka::types::RDKafkaErrorCode;

use super::{HintError, HintLog};
use crate::domain::NodeId;

impl HintLog {
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

    /// Whether the broker answers and every node topic exists.
    pub async fn check(&self, nodes: &[NodeId]) -> Result<(), HintError> {
        let wanted: Vec<String> = nodes.iter().map(|n| self.topic(n)).collect();
        let Some(producer) = self.producer() else {
            return Ok(());
        };
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
}
