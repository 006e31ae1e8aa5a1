//! Failure detection: one task per node pings the node's MongoDB every
//! interval, with its own short timeout. After `threshold` consecutive
//! failures the node is marked `unavailable` (source `probe`), so writes for
//! it are queued at once instead of each waiting out a MongoDB timeout; after
//! as many consecutive successes it is marked `available` again, but only if
//! the detector is who took it down. An operator's switch (API, page,
//! `redis-cli`) is never overridden, and a switch on starts the count of
//! failures again: pings older than it (one still in flight when a frozen
//! node was switched back on) never take the node down again.
//!
//! Several instances agree through Redis: every instance pings every node
//! (so its counts are warm), but only the holder of the node's short lease
//! in Redis changes its status; the lease is renewed with every report, in
//! the same Lua script that makes the change. When the holder stops (crash,
//! partition), its lease expires and another instance takes over. So two
//! instances' opinions never alternate on one node.
//!
//! The lease holder also checks, after each ping that answered, that the
//! node still has its data (see `recovery`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::ProbeConfig;
use crate::domain::{NodeId, NodeStatus};
use crate::nodes::{NodeStatuses, ProbeReport};
use crate::recovery::Recovery;
use crate::store::NodeStore;

pub struct Prober {
    pub store: NodeStore,
    /// Checks, after each answered ping, that the node kept its data.
    pub recovery: Arc<Recovery>,
    pub statuses: Arc<NodeStatuses>,
    /// This instance's name in the lease.
    pub instance: String,
    pub interval: Duration,
    pub config: ProbeConfig,
}

/// Consecutive outcomes of one node's pings.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Streak {
    failures: u32,
    successes: u32,
}

impl Streak {
    /// Counts one ping; answers the status the node should have once a
    /// streak reaches `threshold`, and `None` before.
    pub fn record(&mut self, ok: bool, threshold: u32) -> Option<NodeStatus> {
        if ok {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
        } else {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
        }
        if self.failures >= threshold {
            Some(NodeStatus::Unavailable)
        } else if self.successes >= threshold {
            Some(NodeStatus::Available)
        } else {
            None
        }
    }
}

impl Prober {
    fn node(&self) -> &NodeId {
        self.store.node()
    }

    /// How long a lease lasts without renewal: a few rounds, so one slow
    /// round never hands the node to another instance.
    fn lease(&self) -> Duration {
        self.interval
            .saturating_mul(3)
            .saturating_add(self.config.timeout)
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let node = self.node().clone();
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut streak = Streak::default();
        let mut view = self.statuses.watch(&node);
        let mut redis_failing = false;
        while shutdown.run_until_cancelled(tick.tick()).await.is_some() {
            if switched_on(&mut view) {
                streak = Streak::default();
            }
            let ok = matches!(
                tokio::time::timeout(self.config.timeout, self.store.ping()).await,
                Ok(Ok(()))
            );
            crate::metrics::probe(node.as_str(), ok);
            let verdict = match switched_on(&mut view) {
                // Switched on while this ping ran: it and the failures
                // before it are older than that word; count again.
                true => {
                    streak = Streak::default();
                    None
                }
                false => streak.record(ok, self.config.threshold),
            };
            let report = self
                .statuses
                .probe_report(&node, &self.instance, self.lease(), verdict)
                .await;
            if ok && matches!(report, Ok(ProbeReport::Unchanged | ProbeReport::Changed)) {
                self.recovery.check(&self.store).await;
            }
            match report {
                Ok(ProbeReport::Changed) => {
                    let status = verdict.map_or("", NodeStatus::as_str);
                    crate::metrics::probe_changed(node.as_str(), status);
                    tracing::warn!(%node, status, threshold = self.config.threshold,
                        "failure detector changed the node's status");
                    redis_failing = false;
                }
                Ok(_) => redis_failing = false,
                Err(e) => {
                    // Said once per outage, not every round.
                    if !redis_failing {
                        tracing::warn!(%node, error = %e, "failure detector cannot report to redis");
                    }
                    redis_failing = true;
                }
            }
        }
        self.statuses
            .release_probe_lease(&node, &self.instance)
            .await;
    }
}

/// Whether the node was switched on (by anyone) since `view` was last
/// looked at: the pings before that are evidence older than the switch, and
/// the detector's count starts again (so a ping sent while the node was
/// frozen, timing out just after an operator switched it back on, cannot
/// take it down again).
fn switched_on(view: &mut Option<watch::Receiver<NodeStatus>>) -> bool {
    let Some(view) = view else {
        return false;
    };
    view.has_changed().unwrap_or(false) && view.borrow_and_update().is_available()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_is_decided_only_by_a_full_streak() {
        let mut s = Streak::default();
        assert_eq!(s.record(false, 3), None);
        assert_eq!(s.record(false, 3), None);
        // One success breaks the streak.
        assert_eq!(s.record(true, 3), None);
        assert_eq!(s.record(false, 3), None);
        assert_eq!(s.record(false, 3), None);
        assert_eq!(s.record(false, 3), Some(NodeStatus::Unavailable));
        assert_eq!(s.record(false, 3), Some(NodeStatus::Unavailable));
        assert_eq!(s.record(true, 3), None);
        assert_eq!(s.record(true, 3), None);
        assert_eq!(s.record(true, 3), Some(NodeStatus::Available));
    }
}
