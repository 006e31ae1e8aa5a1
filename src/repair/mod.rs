//! Anti-entropy: make every region's home copy and replica copy agree.
//!
//! For each region, its home `customers` collection and its `replica_<region>`
//! collection are walked side by side in `_id` order, a page at a time (never
//! a whole collection in memory), comparing versions. Wherever they differ,
//! the newer copy is written over the older one (or the missing one) with
//! the same last-writer-wins apply as every other write, so a repair that
//! races live traffic, or runs twice, changes nothing wrong.
//!
//! Tombstones are copies like any other: a newer tombstone goes over an
//! older live copy, so a repair never brings a deleted record back. A live
//! copy whose record has a newer version in another region (a move whose
//! old copies were never removed) becomes a tombstone too (`moved_away`);
//! `purge` removes the tombstones no copy or hint can need any more.
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

use crate::domain::{NodeId, Region, RegionMap};
use crate::hints::HintLog;
use crate::locate::Locate;
use crate::store::Stores;

mod auto;
mod auto_purge;
mod compare;
mod purge;
mod record;

pub use auto::AutoRepair;
pub use auto_purge::{AutoPurge, blocked_by, purge_rule};
use compare::{Sides, repair_one, repair_region};
pub use purge::{PurgeRule, purge};
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
    /// Live copies of records whose newest version is in another region
    /// (a move whose old copies were never removed), replaced by tombstones.
    #[serde(default)]
    pub moved_away: u64,
    /// Tombstones removed because no copy or hint could need them any more
    /// (see `purge`).
    #[serde(default)]
    pub purged: u64,
    /// Why the region could not be fully compared, if it could not.
    pub unreachable: Option<String>,
}

impl RegionRepair {
    /// A report of `region` with nothing found yet.
    pub fn of(region: &Region) -> RegionRepair {
        RegionRepair {
            region: region.id.to_string(),
            ..RegionRepair::default()
        }
    }
}

/// Repairs every region (or only `only`). With `dry_run` nothing is
/// written; `fixed` stays 0. `queues` tells whether a region's queues are
/// empty (see `compare::remove_moved_away`; without it, copies superseded
/// only by a tombstone elsewhere are left alone).
pub async fn repair(
    regions: &RegionMap,
    stores: &Stores,
    queues: Option<&HintLog>,
    only: Option<&NodeId>,
    dry_run: bool,
) -> Vec<RegionRepair> {
    let mut reports = Vec::new();
    for region in regions.regions() {
        if only.is_some_and(|o| o != &region.id) {
            continue;
        }
        let mut report = RegionRepair::of(region);
        let (Some(home), Some(replica)) = (stores.get(&region.id), stores.get(&region.replica))
        else {
            report.unreachable = Some("no store configured".into());
            reports.push(report);
            continue;
        };
        let locate = Locate::offline(regions, stores);
        let sides = Sides {
            region,
            home,
            replica,
            locate: &locate,
            queues,
        };
        if let Err(e) = repair_region(&sides, dry_run, &mut report).await {
            tracing::warn!(region = %region.id, error = %e, "repair incomplete");
            report.unreachable = Some(e.short_reason());
        }
        tracing::info!(region = %region.id, compared = report.compared,
            differing = report.differing, fixed = report.fixed, dry_run, "repair done");
        reports.push(report);
    }
    reports
}

/// Repairs one record, in every region (`POST /admin/repair?customer_id=`):
/// in each region that holds a copy, the newer copy goes over the older or
/// missing one, and a live copy outside the region of the record's newest
/// version becomes a tombstone. One line per region that holds a copy.
pub async fn repair_record(
    regions: &RegionMap,
    stores: &Stores,
    queues: Option<&HintLog>,
    id: &str,
) -> Vec<RegionRepair> {
    let locate = Locate::offline(regions, stores);
    let mut reports = Vec::new();
    for region in regions.regions() {
        let (Some(home), Some(replica)) = (stores.get(&region.id), stores.get(&region.replica))
        else {
            continue;
        };
        let mut report = RegionRepair::of(region);
        let sides = Sides {
            region,
            home,
            replica,
            locate: &locate,
            queues,
        };
        if let Err(e) = repair_one(&sides, id, &mut report).await {
            report.unreachable = Some(e.short_reason());
        }
        if report.compared > 0 || report.unreachable.is_some() {
            reports.push(report);
        }
    }
    reports
}
