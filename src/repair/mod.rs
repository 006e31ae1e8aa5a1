//! Anti-entropy: make every region's home copy and replica copy agree.
//!
//! For each region, its home `customers` collection and its `replica_<region>`
//! collection are walked side by side in `_id` order, a page at a time (never
//! a whole collection in memory), comparing versions. Wherever they differ,
//! the newer copy is written over the older one (or the missing one) with
//! the same last-writer-wins apply as every other write, so a repair that
//! races live traffic, or runs twice, changes nothing wrong.
//!
//! This heals what hinted handoff cannot: a process that crashed between a
//! write's home copy and its replica, a replica answered `missing`, a
//! document deleted by hand, a node restarted empty.
//!
//! The comparison is in `compare`, the saved report in `record`. The
//! service also repairs by itself ([`AutoRepair`], in `auto`): whenever a node's
//! replay has drained its queue, the regions that node is home or replica
//! for are repaired, at most once per configured interval across every
//! instance (a lock in Redis whose expiry is the interval).

use serde::{Deserialize, Serialize};

use crate::domain::{NodeId, RegionMap};
use crate::store::Stores;

mod auto;
mod compare;
mod record;

pub use auto::AutoRepair;
use compare::repair_region;
pub use record::{RepairRecord, RepairTrigger, render_table};

/// What a repair found and did for one region.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RegionRepair {
    pub region: String,
    /// Distinct ids seen in either copy.
    pub compared: u64,
    /// Ids whose copies differed (missing on one side, or other versions).
    pub differing: u64,
    /// Copies written to make them agree (0 in a dry run).
    pub fixed: u64,
    /// Copies that could not be rebuilt (a document written by another tool
    /// that is not a valid customer) or that the other node refused for
    /// good (e.g. a unique index another record holds).
    pub skipped: u64,
    /// Why the region could not be fully compared, if it could not.
    pub unreachable: Option<String>,
}

/// Repairs every region (or only `only`). With `dry_run` nothing is
/// written; `fixed` stays 0.
pub async fn repair(
    regions: &RegionMap,
    stores: &Stores,
    only: Option<&NodeId>,
    dry_run: bool,
) -> Vec<RegionRepair> {
    let mut reports = Vec::new();
    for region in regions.regions() {
        if only.is_some_and(|o| o != &region.id) {
            continue;
        }
        let mut report = RegionRepair {
            region: region.id.to_string(),
            ..RegionRepair::default()
        };
        let (Some(home), Some(replica)) = (stores.get(&region.id), stores.get(&region.replica))
        else {
            report.unreachable = Some("no store configured".into());
            reports.push(report);
            continue;
        };
        if let Err(e) = repair_region(region, home, replica, dry_run, &mut report).await {
            tracing::warn!(region = %region.id, error = %e, "repair incomplete");
            report.unreachable = Some(e.short_reason());
        }
        tracing::info!(region = %region.id, compared = report.compared,
            differing = report.differing, fixed = report.fixed, dry_run, "repair done");
        reports.push(report);
    }
    reports
}
