//! Purge: removing tombstones once they are provably no longer needed.
//!
//! A tombstone at version v (a delete, or a move away) keeps a late copy
//! older than v from bringing the record back. It may go only when nothing
//! older than v can still arrive:
//! - both copies of its region hold it, at v;
//! - it is older than the grace (`PURGE_GRACE_MS`, more than the longest a
//!   hint takes from acceptance to the broker), and the queues of both the
//!   region's nodes are empty *now*: so every hint written before the
//!   delete has been applied or dead-lettered;
//! - every other region could be read, and none holds a live copy older
//!   than v (an old copy of a move still waiting for its own tombstone).
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
}

/// Purges every region (or only `only`) the rule allows (both nodes'
/// queues empty).
pub async fn purge(
    regions: &RegionMap,
    stores: &Stores,
    only: Option<&NodeId>,
    rule: &PurgeRule,
) -> Vec<RegionRepair> {
    let locate = Locate::offline(regions, stores);
    let mut reports = Vec::new();
    for region in regions.regions() {
        if only.is_some_and(|o| o != &region.id) {
            continue;
        }
        let mut report = RegionRepair::of(region);
        if !(rule.empty_queues.contains(&region.id) && rule.empty_queues.contains(&region.replica))
        {
            report.unreachable = Some("a node's hint queue is not empty: nothing purged".into());
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
        let elsewhere = locate.elsewhere(Some(&region.id), &ids).await;
        if elsewhere.iter().any(|(_, held)| held.is_none()) {
            // Another region cannot be read: an old live copy may be there.
            return Ok(());
        }
        let purgeable: Vec<(String, i64)> = (page.iter())
            .filter(|(id, v)| {
                let both = on_replica
                    .get(id)
                    .is_some_and(|h| h.deleted && h.version == Some(*v));
                let older_live_elsewhere = elsewhere.iter().any(|(_, held)| {
                    held.as_ref()
                        .and_then(|h| h.get(id))
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
