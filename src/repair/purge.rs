//! Purge: removing tombstones once they are provably no longer needed.
//!
//! A tombstone at version v (a delete, or a move away) keeps a late copy
//! older than v from bringing the record back. After a purge, any live
//! copy of the id left anywhere would be the newest and repair would spread
//! it, so a tombstone may go only when nothing older than v exists or can
//! still arrive anywhere:
//! - every node is available, caught up and has not lost its data, and
//!   every node's queue is empty *now* (a hint for this id may wait in any
//!   node's queue, not only its region's): nothing is purged otherwise;
//! - it is older than the grace (`PURGE_GRACE_MS`, more than the longest a
//!   hint takes from acceptance to the broker), so every write accepted
//!   before it has been queued or stored, and the queues, seen empty after
//!   the cut-off, have applied it;
//! - both copies of its region hold it, at v;
//! - every copy of every other region (home *and* replica) answered, and
//!   none holds a live copy older than v (an old copy of a move whose own
//!   tombstone a settler never placed).
//!
//! That is stricter than Cassandra's fixed `gc_grace_seconds`, which lets a
//! late repair or hint resurrect data. Both copies' tombstones are removed
//! only where they are still the tombstone at v (a newer write is kept).

use std::collections::BTreeSet;

use super::RegionRepair;
use crate::domain::{CustomerCopy, NodeId, Region, RegionMap};
use crate::locate::Locate;
use crate::store::{StoreError, Stores};

/// Tombstones examined per page.
const PAGE: usize = 500;

/// When tombstones may go.
pub struct PurgeRule {
    /// Only tombstones with a version below this (now minus the grace).
    pub before: i64,
    /// The nodes whose hint queue was seen empty, after `before` was fixed.
    pub empty_queues: BTreeSet<NodeId>,
    /// Why nothing may be purged now, whatever the queues: a node is
    /// unavailable, catching up or lost its data (or that is not known).
    pub blocked: Option<String>,
}

impl PurgeRule {
    /// Why nothing may be purged in `regions` under this rule, if so.
    fn refusal(&self, regions: &RegionMap) -> Option<String> {
        if let Some(why) = &self.blocked {
            return Some(format!("{why}: nothing purged"));
        }
        let waiting: Vec<&str> = (regions.nodes())
            .filter(|n| !self.empty_queues.contains(*n))
            .map(NodeId::as_str)
            .collect();
        (!waiting.is_empty()).then(|| {
            format!(
                "the hint queue of {} is not empty (or not known): nothing purged",
                waiting.join(", ")
            )
        })
    }
}

/// Purges every region (or only `only`), if the rule allows any purge.
pub async fn purge(
    regions: &RegionMap,
    stores: &Stores,
    only: Option<&NodeId>,
    rule: &PurgeRule,
) -> Vec<RegionRepair> {
    let locate = Locate::offline(regions, stores);
    let refusal = rule.refusal(regions);
    if let Some(why) = &refusal {
        tracing::info!(reason = %why, "no tombstone purged");
    }
    let mut reports = Vec::new();
    for region in regions.regions() {
        if only.is_some_and(|o| o != &region.id) {
            continue;
        }
        let mut report = RegionRepair::of(region);
        if let Some(why) = &refusal {
            report.unreachable = Some(why.clone());
        } else if let Err(e) = purge_region(region, &locate, rule, &mut report).await {
            tracing::warn!(region = %region.id, error = %e, "purge incomplete");
            report.unreachable = Some(e.short_reason());
        }
        if report.purged > 0 {
            tracing::info!(region = %region.id, purged = report.purged, "tombstones purged");
        }
        reports.push(report);
    }
    reports
}

async fn purge_region(
    region: &Region,
    locate: &Locate<'_>,
    rule: &PurgeRule,
    report: &mut RegionRepair,
) -> Result<(), StoreError> {
    let (Some(home), Some(replica)) = (locate.store(&region.id), locate.store(&region.replica))
    else {
        return Ok(());
    };
    let home_coll = CustomerCopy::PRIMARY_COLLECTION;
    let replica_coll = CustomerCopy::replica_collection(&region.id);
    let mut after: Option<String> = None;
    loop {
        let page = home
            .tombstones_page(home_coll, after.as_deref(), rule.before, PAGE)
            .await?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        after = Some(last.clone());
        let ids: Vec<&str> = page.iter().map(|(id, _)| id.as_str()).collect();
        let on_replica = replica.held(&replica_coll, &ids).await?;
        // Every copy of every other region; one that cannot be read stops
        // the purge (an old live copy may be there).
        let elsewhere = locate.every_copy(Some(&region.id), &ids).await?;
        let purgeable: Vec<(String, i64)> = (page.iter())
            .filter(|(id, v)| {
                let both = on_replica
                    .get(id)
                    .is_some_and(|h| h.deleted && h.version == Some(*v));
                let older_live_elsewhere = elsewhere.iter().any(|held| {
                    held.get(id)
                        .is_some_and(|h| !h.deleted && h.version.is_none_or(|theirs| theirs < *v))
                });
                both && !older_live_elsewhere
            })
            .cloned()
            .collect();
        replica.remove_tombstones(&replica_coll, &purgeable).await?;
        report.purged += home.remove_tombstones(home_coll, &purgeable).await?;
        if page.len() < PAGE {
            return Ok(());
        }
    }
}
