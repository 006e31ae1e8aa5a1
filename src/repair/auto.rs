//! Automatic repair: whenever a node's replay drained its queue, the
//! regions that node is home or replica for are repaired, at most once per
//! interval across every instance (a lock in Redis whose expiry is the
//! interval).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{RepairRecord, RepairTrigger, repair};
use crate::backlog::DrainedQueues;
use crate::domain::{NodeId, RegionMap};
use crate::hints::HintLog;
use crate::nodes::NodeStatuses;
use crate::store::Stores;

/// Runs a repair after queues drain, throttled across every instance.
pub struct AutoRepair {
    pub regions: RegionMap,
    pub stores: Arc<Stores>,
    pub statuses: Arc<NodeStatuses>,
    /// Whether a region's queues are empty (see `repair`).
    pub hints: Arc<HintLog>,
    /// This instance's name in the lock.
    pub instance: String,
    /// Shortest time between two automatic repairs.
    pub every: Duration,
    drained: mpsc::UnboundedReceiver<NodeId>,
}

impl AutoRepair {
    pub fn new(
        regions: RegionMap,
        stores: Arc<Stores>,
        statuses: Arc<NodeStatuses>,
        hints: Arc<HintLog>,
        instance: String,
        every: Duration,
    ) -> (AutoRepair, DrainedQueues) {
        let (tx, drained) = DrainedQueues::channel();
        let auto = AutoRepair {
            regions,
            stores,
            statuses,
            hints,
            instance,
            every,
            drained,
        };
        (auto, tx)
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut after: BTreeSet<NodeId> = BTreeSet::new();
        loop {
            let Some(Some(node)) = shutdown.run_until_cancelled(self.drained.recv()).await else {
                return;
            };
            after.insert(node);
            if !self.wait_turn(&shutdown).await {
                return;
            }
            // Drains that came while we waited join this repair.
            while let Ok(node) = self.drained.try_recv() {
                after.insert(node);
            }
            self.repair_after(std::mem::take(&mut after).into_iter().collect())
                .await;
        }
    }

    /// Waits for our turn: at most one automatic repair per interval,
    /// across instances. `false` when shut down meanwhile.
    async fn wait_turn(&self, shutdown: &CancellationToken) -> bool {
        loop {
            let wait = match self
                .statuses
                .claim_auto_repair(&self.instance, self.every)
                .await
            {
                Ok(None) => return true,
                Ok(Some(wait)) => wait,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take the repair lock; retrying");
                    Duration::from_secs(1)
                }
            };
            let slept = shutdown.run_until_cancelled(tokio::time::sleep(wait));
            if slept.await.is_none() {
                return false;
            }
        }
    }

    /// Repairs the regions of the nodes whose queues drained, and saves the
    /// report (if anything could be repaired).
    async fn repair_after(&self, after: Vec<NodeId>) {
        let mut reports = Vec::new();
        for region in self.repairable(&after) {
            reports.extend(
                repair(
                    &self.regions,
                    &self.stores,
                    Some(&self.hints),
                    Some(&region),
                    false,
                )
                .await,
            );
        }
        if reports.is_empty() {
            return;
        }
        tracing::info!(after = ?after, regions = reports.len(), "automatic repair done");
        let after = after.iter().map(ToString::to_string).collect();
        RepairRecord::new(RepairTrigger::Auto, after, reports)
            .save(&self.statuses)
            .await;
    }

    /// The regions `nodes` are home or replica for, whose two nodes are
    /// both available now: a node an operator switched off is not written
    /// behind their back (its repair waits for the next drain, or the API).
    fn repairable(&self, nodes: &[NodeId]) -> Vec<NodeId> {
        self.regions
            .regions()
            .iter()
            .filter(|r| nodes.contains(&r.id) || nodes.contains(&r.replica))
            .filter(|r| {
                self.statuses.status(&r.id).is_available()
                    && self.statuses.status(&r.replica).is_available()
            })
            .map(|r| r.id.clone())
            .collect()
    }
}
