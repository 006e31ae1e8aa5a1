//! The automatic purge: every `PURGE_INTERVAL_MS`, one instance (a lock in
//! Redis whose expiry is the interval) purges the tombstones the rule allows
//! (see `purge`): only while every node is available, caught up and kept
//! its data, and every queue is empty.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{PurgeRule, purge};
use crate::domain::{NodeId, RegionMap, now_micros};
use crate::hints::HintLog;
use crate::nodes::NodeStatuses;
use crate::store::Stores;

pub struct AutoPurge {
    pub regions: RegionMap,
    pub stores: Arc<Stores>,
    pub statuses: Arc<NodeStatuses>,
    pub hints: Arc<HintLog>,
    /// This instance's name in the lock.
    pub instance: String,
    pub every: Duration,
    pub grace: Duration,
}

impl AutoPurge {
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let wait = tokio::time::sleep(self.every);
            if shutdown.run_until_cancelled(wait).await.is_none() {
                return;
            }
            match self.statuses.claim_purge(&self.instance, self.every).await {
                Ok(None) => {}
                Ok(Some(_)) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot take the purge lock");
                    continue;
                }
            }
            let rule = self.rule().await;
            let purged: u64 = (purge(&self.regions, &self.stores, None, &rule).await)
                .iter()
                .map(|r| r.purged)
                .sum();
            crate::metrics::tombstones_purged(purged);
        }
    }

    /// The cut-off first, then the queues: a queue seen empty after the
    /// cut-off holds no hint written before it.
    async fn rule(&self) -> PurgeRule {
        let nodes: Vec<NodeId> = self.regions.nodes().cloned().collect();
        let blocked = blocked_by(&self.statuses, &nodes);
        purge_rule(&self.hints, &nodes, self.grace, blocked).await
    }
}

/// Why no tombstone may be purged now, from this view of the nodes: a node
/// unavailable, catching up on its queue, or flagged as having lost data.
pub fn blocked_by(statuses: &NodeStatuses, nodes: &[NodeId]) -> Option<String> {
    let backlogs = statuses.backlogs();
    let why = |n: &NodeId| {
        if !statuses.status(n).is_available() {
            Some(format!("{n} is unavailable"))
        } else if backlogs.lost(n) {
            Some(format!("{n} lost its data and is not repaired yet"))
        } else if !backlogs.caught_up(n) {
            Some(format!("{n} is catching up on its queue"))
        } else {
            None
        }
    };
    let reasons: Vec<String> = nodes.iter().filter_map(why).collect();
    (!reasons.is_empty()).then(|| reasons.join(", "))
}

/// Which of `nodes` have an empty hint queue now, and the version a
/// tombstone must be below (now minus `grace`; this host's clock, never
/// ahead of the cluster's, which follows the fastest).
pub async fn purge_rule(
    hints: &HintLog,
    nodes: &[NodeId],
    grace: Duration,
    blocked: Option<String>,
) -> PurgeRule {
    let grace = i64::try_from(grace.as_micros()).unwrap_or(i64::MAX);
    let before = now_micros().saturating_sub(grace);
    let mut empty_queues = BTreeSet::new();
    for node in nodes {
        match hints.queued(node).await {
            Ok(0) => {
                empty_queues.insert(node.clone());
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(%node, error = %e, "queue unknown: not purging its regions"),
        }
    }
    PurgeRule {
        before,
        empty_queues,
        blocked,
    }
}
