//! A record lives in exactly one region, the one its newest version's zip
//! routes to. After a write is placed (home, then replica), every other
//! region is looked up by `_id` (one query per region, all at once, after
//! the write's own copies, so of two racing writes the later always sees
//! the earlier): a live copy there that is older is replaced by a
//! tombstone at the write's version, in that region's home and replica (and
//! so is one that already holds that very tombstone: a crash between the
//! two placements may have left the other copy live), and
//! if another region already holds a newer version, this write's own
//! region gets the tombstone instead. A region none of whose copies can be
//! read is looked at again every few seconds until it can be. No crash
//! loses a move: every write is recorded as unsettled in Redis before it is
//! answered (`nodes::unsettled`) and forgotten once settled; what stays
//! there longer than 15 s (its instance crashed) is settled by one
//! instance's sweep every 10 s (`settle`), so an old copy outlives its move
//! by well under a minute without any repair. Reads leave out, and do not
//! count, a copy another region holds a newer version of. A region only a
//! node still replaying its queue (or one that lost its data) could answer
//! for counts as one that cannot be read: what it lacks may be on its way
//! (see `Locate::held_for_sure`). Every tombstone is placed like any copy:
//! stored, or queued for an unavailable node.
//!
//! A delete is the same move to nowhere: a tombstone at a new version in
//! the region the record lives in, and in every region that cannot be read.

use tokio::sync::mpsc;

use super::{PlaceError, Placement, WriteError, WritePath, WriteReceipt, outcome};
use crate::domain::{CopyTarget, CustomerCopy, CustomerId, NodeId, Region, RegionMap, Version};
use crate::locate::{Locate, RegionHeld};

/// A record whose copies were placed: where, and at which version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedRecord {
    pub id: CustomerId,
    pub region: NodeId,
    pub version: Version,
}

/// Where single writes leave their placed records for [`WritePath::settle`]
/// to settle in batches (one lookup per region for many writes).
pub type MoveQueue = mpsc::UnboundedSender<PlacedRecord>;

impl WritePath {
    pub(super) fn locate(&self) -> Locate<'_> {
        Locate {
            regions: &self.regions,
            stores: &self.stores,
            statuses: Some((&self.statuses, &self.backlogs)),
        }
    }

    /// Removes the other regions' copies of records that were just placed
    /// (see the module docs). Runs to the end; failures are logged and left
    /// to repair. Answers the records some region of which could not be
    /// read: they are looked at again later (see [`WritePath::settle`]).
    pub async fn settle_moves(&self, placed: &[PlacedRecord]) -> Vec<PlacedRecord> {
        if placed.is_empty() || self.regions.regions().len() < 2 {
            return Vec::new();
        }
        let ids: Vec<&str> = placed.iter().map(|p| p.id.as_str()).collect();
        // A batch of one region (every single write's, most of the
        // settler's) need not ask that region.
        let first = &placed[0].region;
        let except = placed.iter().all(|p| p.region == *first).then_some(first);
        let locate = self.locate();
        let elsewhere = locate.elsewhere_for_sure(except, &ids).await;
        let mut tombstones = Vec::new();
        for record in placed {
            let own = self.regions.get(record.region.as_str());
            tombstones.extend(tombstones_for(record, own, &elsewhere));
        }
        let unread =
            (elsewhere.iter()).any(|(region, held)| held.is_none() && except != Some(&region.id));
        let mut unsettled = if unread { placed.to_vec() } else { Vec::new() };
        if tombstones.is_empty() {
            return unsettled;
        }
        let results = self.place_tombstones(&tombstones).await;
        for (copy, result) in tombstones.iter().zip(results) {
            if let Err(e) = result {
                tracing::error!(region = %copy.region, customer_id = %copy.customer_id(),
                    error = %e, "an old copy of a moved record could not be removed yet");
                let record = placed.iter().find(|p| p.id == *copy.customer_id());
                if let Some(record) = record.filter(|r| !unsettled.contains(r)) {
                    unsettled.push(record.clone());
                }
            }
        }
        unsettled
    }

    /// Places tombstones on the node each belongs to: the primary ones on
    /// their region's home node, the replica ones on its replica node.
    pub(super) async fn place_tombstones(
        &self,
        tombstones: &[CustomerCopy],
    ) -> Vec<Result<Placement, PlaceError>> {
        let copies: Vec<(usize, CustomerCopy)> = tombstones.iter().cloned().enumerate().collect();
        let regions = &self.regions;
        let placed = self
            .place_many(&copies, |c| tombstone_node(regions, c), false)
            .await;
        let mut queued = Vec::new();
        for ((_, copy), result) in copies.iter().zip(&placed) {
            crate::metrics::write("tombstone", outcome(result));
            if matches!(result, Ok(Placement::Queued)) {
                queued.push(tombstone_node(regions, copy));
            }
        }
        self.notes_landed(&queued).await;
        placed
    }

    /// `DELETE /customers/{id}`: a tombstone at a new version on the home
    /// node and the replica of the region the record lives in (stored or
    /// queued, home first), and in every region that could not be read.
    /// `Ok(None)` when no region holds it (and all could be read): nothing
    /// is written.
    pub async fn delete_customer(
        &self,
        id: CustomerId,
    ) -> Result<Option<WriteReceipt>, WriteError> {
        let Some(version) = self.version().await else {
            return Err(WriteError::NoVersion);
        };
        let locate = self.locate();
        let held = locate.elsewhere_for_sure(None, &[id.as_str()]).await;
        let live: Vec<&Region> = (held.iter())
            .filter(|(_, h)| {
                h.as_ref()
                    .and_then(|h| h.get(id.as_str()))
                    .is_some_and(|h| !h.deleted)
            })
            .map(|(r, _)| *r)
            .collect();
        let blind: Vec<&Region> = (held.iter())
            .filter(|(_, h)| h.is_none())
            .map(|(r, _)| *r)
            .collect();
        let Some(home) = live.first().or(blind.first()).copied() else {
            return Ok(None);
        };
        let mut receipt = self.delete_in(home, &id, version).await?;
        let rest: Vec<CustomerCopy> = (live.iter().chain(&blind))
            .filter(|r| r.id != home.id)
            .flat_map(|r| both_tombstones(r, &id, version))
            .collect();
        let _ = self.place_tombstones(&rest).await;
        if live.is_empty() {
            // Only regions that could not be read: the record may be there.
            receipt.status = Placement::Queued;
        }
        Ok(Some(receipt))
    }

    /// The delete's own region: its home tombstone (503 if neither stored
    /// nor queued: then nothing is written anywhere), then its replica's.
    async fn delete_in(
        &self,
        region: &Region,
        id: &CustomerId,
        version: Version,
    ) -> Result<WriteReceipt, WriteError> {
        let [home, replica] = both_tombstones(region, id, version);
        let placed = self.place(&region.id, &home, true).await;
        crate::metrics::write("tombstone", outcome(&placed));
        let status = placed.map_err(|e| e.for_write(&region.id))?;
        let replica = self.place(&region.replica, &replica, false).await;
        crate::metrics::write("tombstone", outcome(&replica));
        let replica = replica.unwrap_or_else(|e| {
            tracing::error!(region = %region.id, error = %e, "replica tombstone missing");
            Placement::Missing
        });
        let queued = [(status, &region.id), (replica, &region.replica)];
        (self.notes_landed(
            queued
                .iter()
                .filter(|(p, _)| *p == Placement::Queued)
                .map(|(_, n)| *n),
        ))
        .await;
        Ok(WriteReceipt {
            status,
            region: region.id.clone(),
            node: region.id.clone(),
            replica_node: region.replica.clone(),
            replica,
            version,
        })
    }
}

/// The node a tombstone belongs on: a primary one on its region's home
/// node, a replica one on the region's replica node.
fn tombstone_node(regions: &RegionMap, copy: &CustomerCopy) -> NodeId {
    match (copy.target, regions.get(copy.region.as_str())) {
        (CopyTarget::Replica, Some(r)) => r.replica.clone(),
        _ => copy.region.clone(),
    }
}

/// The home and replica tombstones of `id` in `region` at `version`.
fn both_tombstones(region: &Region, id: &CustomerId, version: Version) -> [CustomerCopy; 2] {
    [CopyTarget::Primary, CopyTarget::Replica]
        .map(|target| CustomerCopy::tombstone(target, region.id.clone(), version, id.clone()))
}

/// The tombstones `record`'s write (in its region `own`) calls for, given
/// what the other regions hold of it (`elsewhere` may list `own` too: it is
/// skipped).
fn tombstones_for(
    record: &PlacedRecord,
    own: Option<&Region>,
    elsewhere: &[(&Region, RegionHeld)],
) -> Vec<CustomerCopy> {
    let mine = record.version.get();
    let mut newest_elsewhere: Option<i64> = None;
    let mut out = Vec::new();
    for (region, held) in elsewhere {
        if region.id == record.region {
            continue;
        }
        match held {
            // Nothing readable: looked at again later.
            None => {}
            Some(held) => match held.get(record.id.as_str()) {
                Some(h) if !h.deleted && h.version.is_none_or(|v| v < mine) => {
                    out.extend(both_tombstones(region, &record.id, record.version));
                }
                // This write's own tombstone, read from the copy that got
                // it: the other copy may not have (a crash between the two
                // placements). Placed again: a no-op where it is, the old
                // copy's removal where it is not.
                Some(h) if h.deleted && h.version == Some(mine) => {
                    out.extend(both_tombstones(region, &record.id, record.version));
                }
                // A newer live copy elsewhere: this write lost a race, its own
                // copies go. (Not a newer tombstone: that may be the one a
                // later move back into this very region left behind, whose
                // live copy here must not get a tombstone at its own
                // version.)
                Some(h) if !h.deleted && h.version.is_some_and(|v| v > mine) => {
                    newest_elsewhere = newest_elsewhere.max(h.version);
                }
                _ => {}
            },
        }
    }
    if let (Some(newer), Some(region)) = (newest_elsewhere, own) {
        // A newer write of this record won elsewhere meanwhile: this
        // write's own copies go.
        out.extend(both_tombstones(region, &record.id, Version::new(newer)));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::domain::{RegionMap, Text};
    use crate::store::Held;

    fn record(region: &str, version: i64) -> PlacedRecord {
        PlacedRecord {
            id: Text::parse("customer_id", "c1").unwrap(),
            region: NodeId::parse(region).unwrap(),
            version: Version::new(version),
        }
    }

    fn holding(version: i64, deleted: bool) -> RegionHeld {
        let held = Held {
            version: Some(version),
            deleted,
        };
        Some(HashMap::from([("c1".to_owned(), held)]))
    }

    /// Where each tombstone goes, and at which version.
    fn placed(tombstones: &[CustomerCopy]) -> Vec<(String, i64)> {
        let mut out: Vec<(String, i64)> = (tombstones.iter())
            .map(|t| (t.region.to_string(), t.version.get()))
            .collect();
        out.dedup();
        out
    }

    #[test]
    fn an_older_live_copy_elsewhere_gets_tombstones_at_the_writes_version() {
        let regions = RegionMap::default_regions();
        let r = regions.regions();
        let elsewhere = vec![
            (&r[0], holding(5, false)),
            (&r[1], Some(HashMap::new())),
            (&r[2], None),
        ];
        let out = tombstones_for(&record("region_2", 9), Some(&r[1]), &elsewhere);
        assert_eq!(placed(&out), vec![("region_1".to_owned(), 9)]);
    }

    #[test]
    fn a_newer_live_copy_elsewhere_tombstones_the_writes_own_region() {
        let regions = RegionMap::default_regions();
        let r = regions.regions();
        let elsewhere = vec![(&r[0], holding(12, false)), (&r[1], Some(HashMap::new()))];
        let out = tombstones_for(&record("region_2", 9), Some(&r[1]), &elsewhere);
        assert_eq!(placed(&out), vec![("region_2".to_owned(), 12)]);
    }

    #[test]
    fn the_writes_own_tombstone_elsewhere_is_placed_again_in_both_copies() {
        // A crash between the two placements left it in one copy only; the
        // copy read may be the one that has it.
        let regions = RegionMap::default_regions();
        let r = regions.regions();
        let elsewhere = vec![(&r[0], holding(9, true)), (&r[2], holding(7, true))];
        let out = tombstones_for(&record("region_2", 9), Some(&r[1]), &elsewhere);
        assert_eq!(out.len(), 2);
        assert_eq!(placed(&out), vec![("region_1".to_owned(), 9)]);
    }

    #[test]
    fn a_newer_tombstone_elsewhere_tombstones_nothing() {
        // The tombstone a later move back into region_2 left in region_1:
        // region_2's live copy at 12 must not get a tombstone at 12.
        let regions = RegionMap::default_regions();
        let r = regions.regions();
        let elsewhere = vec![(&r[0], holding(12, true)), (&r[1], holding(12, false))];
        assert!(tombstones_for(&record("region_2", 9), Some(&r[1]), &elsewhere).is_empty());
    }
}
