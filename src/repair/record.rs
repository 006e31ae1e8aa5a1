//! A finished repair as it is kept (in Redis, for the home page) and shown
//! (the CLI's table).

use serde::{Deserialize, Serialize};

use super::RegionRepair;
use crate::domain::now_millis;
use crate::nodes::NodeStatuses;

/// What started a repair.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RepairTrigger {
    /// A node's queue drained.
    Auto,
    /// `POST /admin/repair`.
    Api,
    /// A node came back without its data (see `recovery`).
    #[serde(rename = "data_loss")]
    DataLoss,
}

impl RepairTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            RepairTrigger::Auto => "auto",
            RepairTrigger::Api => "api",
            RepairTrigger::DataLoss => "data_loss",
        }
    }
}

/// A finished repair (not a dry run), kept in Redis for the home page.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RepairRecord {
    /// When it finished (Unix ms).
    pub at_ms: i64,
    pub trigger: RepairTrigger,
    /// For `auto`: the nodes whose drained queues started it; for
    /// `data_loss`: the node that lost its data.
    pub after: Vec<String>,
    pub regions: Vec<RegionRepair>,
}

impl RepairRecord {
    pub fn new(
        trigger: RepairTrigger,
        after: Vec<String>,
        regions: Vec<RegionRepair>,
    ) -> RepairRecord {
        RepairRecord {
            at_ms: now_millis(),
            trigger,
            after,
            regions,
        }
    }

    pub fn complete(&self) -> bool {
        self.regions.iter().all(|r| r.unreachable.is_none())
    }

    /// Saves it as the last repair; a failure only costs the home page's
    /// line, so it is logged, not returned.
    pub async fn save(&self, statuses: &NodeStatuses) {
        let differing = self
            .regions
            .iter()
            .map(|r| r.differing + r.moved_away)
            .sum();
        crate::metrics::repair(self.trigger.as_str(), self.complete(), differing);
        let raw = serde_json::to_string(self).unwrap_or_default();
        if let Err(e) = statuses.save_last_repair(&raw).await {
            tracing::warn!(error = %e, "cannot save the repair report");
        }
    }

    /// The last repair saved by any instance, if any.
    pub async fn last(statuses: &NodeStatuses) -> Option<RepairRecord> {
        match statuses.last_repair().await {
            Ok(raw) => serde_json::from_str(&raw?).ok(),
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the last repair");
                None
            }
        }
    }
}

/// The report as a plain-text table, one region a line.
pub fn render_table(reports: &[RegionRepair], dry_run: bool) -> String {
    let mut out = format!(
        "{:<12} {:>9} {:>9} {:>9} {:>8} {:>10} {:>7}  {}\n",
        "region",
        "compared",
        "differing",
        "fixed",
        "skipped",
        "moved_away",
        "purged",
        "unreachable"
    );
    for r in reports {
        out.push_str(&format!(
            "{:<12} {:>9} {:>9} {:>9} {:>8} {:>10} {:>7}  {}\n",
            r.region,
            r.compared,
            r.differing,
            r.fixed,
            r.skipped,
            r.moved_away,
            r.purged,
            r.unreachable.as_deref().unwrap_or("-")
        ));
    }
    if dry_run {
        out.push_str("(dry run: nothing was written)\n");
    }
    out.trim_end().to_owned()
}
