//! What the pages, the API, the event stream and the metrics show of a
//! node, and how times are written for people and clients.

use serde::Serialize;

use super::drain::human_seconds;
use super::{NodeId, NodeStatus, StatusSource};

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
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
    /// An operator paused the replay of the node's queue (on every
    /// instance); hints wait until it is resumed.
    pub replay_paused: bool,
    /// When the oldest hint not yet applied was accepted (RFC 3339, UTC;
    /// read from the hint's own Kafka timestamp); null when nothing waits
    /// or Kafka cannot be asked.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub oldest_queued_at: Option<String>,
    /// Seconds since then: 0 when nothing waits, null when unknown.
    pub lag_seconds: Option<f64>,
    /// Hints applied per second (by every instance: the handoff group's
    /// commits), smoothed over 10 s, counted from the first commit since
    /// the replay could last run; null until measured.
    pub replay_rate: Option<f64>,
    /// Seconds until the queue is empty at that rate (0 when it is); null
    /// while the node is unavailable, the replay paused, nothing moves or
    /// the rate is still being measured, with the reason in
    /// `drain_eta_note`.
    pub drain_eta_seconds: Option<f64>,
    pub drain_eta_note: Option<String>,
}

impl NodeView {
    /// A node as known before anything is read of it: available, set by
    /// no one known, nothing counted, not caught up.
    pub fn new(node_id: NodeId, hosts_replicas_of: Vec<NodeId>) -> NodeView {
        NodeView {
            node_id,
            status: NodeStatus::Available,
            source: StatusSource::Manual,
            since: None,
            queued: None,
            dead_letters: None,
            hosts_replicas_of,
            caught_up: false,
            lost_data: false,
            replay_paused: false,
            oldest_queued_at: None,
            lag_seconds: None,
            replay_rate: None,
            drain_eta_seconds: None,
            drain_eta_note: None,
        }
    }

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

impl NodeView {
    /// The queue in words: "412 queued, draining at 230/s, about 2 s
    /// left". `static/app.js` says the same for live updates.
    pub fn queue_summary(&self) -> String {
        let Some(queued) = self.queued else {
            return "queue size unknown".into();
        };
        if queued == 0 {
            return "nothing queued".into();
        }
        let lag = self
            .lag_seconds
            .map(|l| format!(", oldest {} old", human_seconds(l)))
            .unwrap_or_default();
        match (self.drain_eta_seconds, self.replay_rate) {
            (Some(eta), Some(rate)) => format!(
                "{queued} queued, draining at {rate:.0}/s, about {} left",
                human_seconds(eta)
            ),
            _ => {
                let why = self.drain_eta_note.as_deref().unwrap_or("no estimate");
                format!("{queued} queued{lag}; {why}")
            }
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
            status: NodeStatus::Unavailable,
            source: StatusSource::Probe,
            since: rfc3339(1_764_338_531_123),
            ..NodeView::new(NodeId::parse("region_2").unwrap(), Vec::new())
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

    #[test]
    fn the_queue_in_words() {
        let mut v = NodeView {
            queued: Some(412),
            lag_seconds: Some(75.0),
            replay_rate: Some(230.2),
            drain_eta_seconds: Some(1.8),
            ..NodeView::new(NodeId::parse("region_2").unwrap(), Vec::new())
        };
        assert_eq!(
            v.queue_summary(),
            "412 queued, draining at 230/s, about 2 s left"
        );
        v.drain_eta_seconds = None;
        v.drain_eta_note = Some("the replay is paused".into());
        assert_eq!(
            v.queue_summary(),
            "412 queued, oldest 1 min 15 s old; the replay is paused"
        );
        v.queued = Some(0);
        assert_eq!(v.queue_summary(), "nothing queued");
    }
}
