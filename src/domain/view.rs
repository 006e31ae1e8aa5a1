//! What the pages, the API, the event stream and the metrics show of a
//! node, and how times are written for people and clients.

use serde::Serialize;

use super::{NodeId, NodeStatus, StatusSource};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NodeView {
    pub node_id: NodeId,
    pub status: NodeStatus,
    /// Who set the status: an operator (`manual`: API, page or redis-cli)
    /// or the failure detector (`probe`).
    pub source: StatusSource,
    /// When the status was set (RFC 3339, UTC); null when unknown (set
    /// before regiondb recorded it, or with redis-cli).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// Records waiting in Kafka; `None` (null) when Kafka cannot be asked.
    pub queued: Option<u64>,
    /// Hints moved to the node's dead-letter topic because they can never
    /// be applied; `None` (null) when Kafka cannot be asked.
    pub dead_letters: Option<u64>,
    pub hosts_replicas_of: Vec<NodeId>,
    /// This instance knows every hint queued for the node to be applied;
    /// until then its regions are read from the other copy.
    pub caught_up: bool,
    /// The node came back without its data (restarted empty, or replaced):
    /// its regions are read from the other copies until repaired.
    pub lost_data: bool,
}

impl NodeView {
    /// The status in words, with who set it: "unavailable — detected
    /// 14:02:11 UTC" (the failure detector) or "switched off" (an
    /// operator). `static/app.js` says the same for live updates.
    pub fn status_note(&self) -> String {
        let at = self.since.as_deref().and_then(|s| s.get(11..19));
        match (self.status, self.source, at) {
            (NodeStatus::Unavailable, StatusSource::Probe, Some(t)) => {
                format!("unavailable — detected {t} UTC")
            }
            (NodeStatus::Unavailable, StatusSource::Probe, None) => "unavailable — detected".into(),
            (NodeStatus::Unavailable, StatusSource::Manual, Some(t)) => {
                format!("switched off at {t} UTC")
            }
            (NodeStatus::Unavailable, StatusSource::Manual, None) => "switched off".into(),
            (NodeStatus::Available, StatusSource::Probe, Some(t)) => {
                format!("available — answering again since {t} UTC")
            }
            (NodeStatus::Available, _, _) => "available".into(),
        }
    }
}

/// Unix milliseconds as RFC 3339 (UTC, milliseconds).
pub fn rfc3339(ms: i64) -> Option<String> {
    mongodb::bson::DateTime::from_millis(ms)
        .try_to_rfc3339_string()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_says_who_set_the_status() {
        let mut v = NodeView {
            node_id: NodeId::parse("region_2").unwrap(),
            status: NodeStatus::Unavailable,
            source: StatusSource::Probe,
            since: rfc3339(1_764_338_531_123),
            queued: None,
            dead_letters: None,
            hosts_replicas_of: Vec::new(),
            caught_up: true,
            lost_data: false,
        };
        assert_eq!(v.since.as_deref(), Some("2025-11-28T14:02:11.123Z"));
        assert_eq!(v.status_note(), "unavailable — detected 14:02:11 UTC");
        v.source = StatusSource::Manual;
        assert_eq!(v.status_note(), "switched off at 14:02:11 UTC");
        v.since = None;
        assert_eq!(v.status_note(), "switched off");
        v.status = NodeStatus::Available;
        assert_eq!(v.status_note(), "available");
    }
}
