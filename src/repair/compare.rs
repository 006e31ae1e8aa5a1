//! The comparison: a region's home and replica collections walked side by
//! side in `_id` order, a page at a time, and the newer copy of every id
//! that differs written over the older or missing one.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::RegionRepair;
use crate::domain::{CopyTarget, Customer, CustomerCopy, Region, Text, Version};
use crate::hints::HintLog;
use crate::locate::Locate;
use crate::store::{NodeStore, StoreError, StoredCustomer};

/// Ids compared per page.
const PAGE: usize = 500;

/// One side's view of an id: `None` when it lacks the id, `Some(None)` when
/// its document has no version.
type Seen = Option<Option<i64>>;

/// Which side of a region holds a copy.
#[derive(Clone, Copy)]
enum Side {
    Home,
    Replica,
}

/// A region's two copies, and how to find the other regions' (and whether
/// its nodes' queues are empty: without Kafka, never known).
pub(super) struct Sides<'a> {
    pub region: &'a Region,
    pub home: &'a NodeStore,
    pub replica: &'a NodeStore,
    pub locate: &'a Locate<'a>,
    pub queues: Option<&'a HintLog>,
}

impl Sides<'_> {
    /// Whether no hint waits for this region's home or replica node now.
    async fn queues_empty(&self) -> bool {
        let Some(hints) = self.queues else {
            return false;
        };
        for node in [&self.region.id, &self.region.replica] {
            match hints.queued(node).await {
                Ok(0) => {}
                Ok(_) => return false,
                Err(e) => {
                    tracing::debug!(%node, error = %e, "queue unknown");
                    return false;
                }
            }
        }
        true
    }

    /// The home and replica collections of this region's copies.
    fn collections(&self) -> (&'static str, String) {
        (
            CustomerCopy::PRIMARY_COLLECTION,
            CustomerCopy::replica_collection(&self.region.id),
        )
    }
}

pub(super) async fn repair_region(
    sides: &Sides<'_>,
    dry_run: bool,
    report: &mut RegionRepair,
) -> Result<(), StoreError> {
    let Sides { home, replica, .. } = *sides;
    let (home_coll, replica_coll) = sides.collections();
    let mut after: Option<String> = None;
    loop {
        let (h, r) = tokio::try_join!(
            home.versions_page(home_coll, after.as_deref(), PAGE),
            replica.versions_page(&replica_coll, after.as_deref(), PAGE),
        )?;
        let (both, upper) = pair_pages(h, r);
        fix(sides, &both, dry_run, report).await?;
        match upper {
            Some(u) => after = Some(u),
            None => return Ok(()),
        }
    }
}

/// One record's copies in this region: made to agree (the newer copy over
/// the older or missing one), and replaced by tombstones if the record's
/// newest version is in another region.
pub(super) async fn repair_one(
    sides: &Sides<'_>,
    id: &str,
    report: &mut RegionRepair,
) -> Result<(), StoreError> {
    let (home_coll, replica_coll) = sides.collections();
    let ids = [id];
    let (h, r) = tokio::try_join!(
        sides.home.held(home_coll, &ids),
        sides.replica.held(&replica_coll, &ids),
    )?;
    let seen = (h.get(id).map(|x| x.version), r.get(id).map(|x| x.version));
    if seen == (None, None) {
        return Ok(());
    }
    let both = BTreeMap::from([(id.to_owned(), seen)]);
    fix(sides, &both, false, report).await
}

/// Makes the copies of the ids in `both` agree (the newer over the older or
/// missing one, unless `dry_run`), then replaces by tombstones the live ones
/// whose record's newest version is in another region.
async fn fix(
    sides: &Sides<'_>,
    both: &BTreeMap<String, (Seen, Seen)>,
    dry_run: bool,
    report: &mut RegionRepair,
) -> Result<(), StoreError> {
    let Sides {
        region,
        home,
        replica,
        ..
    } = *sides;
    report.compared += both.len() as u64;
    let (to_replica, to_home) = differing(both);
    report.differing += (to_replica.len() + to_home.len()) as u64;
    if !dry_run {
        let (home_coll, replica_coll) = sides.collections();
        let into_replica = (replica, CopyTarget::Replica);
        copy_over(region, (home, home_coll), into_replica, &to_replica, report).await?;
        let into_home = (home, CopyTarget::Primary);
        copy_over(
            region,
            (replica, &replica_coll),
            into_home,
            &to_home,
            report,
        )
        .await?;
    }
    remove_moved_away(sides, both, dry_run, report).await
}

/// The live copies of this page whose record has a newer version in
/// another region (a move whose old copies were never removed: a crash in
/// between) become tombstones at that version, in both copies.
///
/// A newer *tombstone* elsewhere is either a delete (whose tombstone here
/// was never placed) or a move into this very region, which left that
/// tombstone behind and whose live copy at the same version is on its way
/// here, queued for a node that was off. A tombstone placed here at that
/// version first would tie with it and win. So those are only acted on if
/// this region's two queues are empty, asked after the other regions were
/// read: a move's tombstone elsewhere is placed after its copies here were
/// stored or queued, so with the queues empty its live copy is here
/// already, and a tombstone at its version changes nothing.
async fn remove_moved_away(
    sides: &Sides<'_>,
    both: &BTreeMap<String, (Seen, Seen)>,
    dry_run: bool,
    report: &mut RegionRepair,
) -> Result<(), StoreError> {
    let mut newer = newer_elsewhere(sides, both).await;
    if newer.values().any(|(_, live)| !live) && !sides.queues_empty().await {
        tracing::info!(region = %sides.region.id,
            "copies superseded only by a tombstone in another region are left for a \
             repair once this region's queues are empty (it may be a move into this \
             region whose copies are still queued)");
        newer.retain(|_, (_, live)| *live);
    }
    if newer.is_empty() {
        return Ok(());
    }
    // Only the live ones: a tombstone here already says "not in this region".
    let candidates: Vec<&str> = newer.keys().copied().collect();
    let (home_coll, replica_coll) = sides.collections();
    let (h, r) = tokio::try_join!(
        sides.home.held(home_coll, &candidates),
        sides.replica.held(&replica_coll, &candidates),
    )?;
    let live = |id: &str| {
        [h.get(id), r.get(id)]
            .iter()
            .any(|x| x.is_some_and(|x| !x.deleted))
    };
    for (id, (version, _)) in newer.into_iter().filter(|(id, _)| live(id)) {
        report.moved_away += 1;
        if dry_run {
            continue;
        }
        let Ok(id) = Text::parse("customer_id", id) else {
            continue;
        };
        let version = Version::new(version);
        let region = sides.region.id.clone();
        let home_copy =
            CustomerCopy::tombstone(CopyTarget::Primary, region.clone(), version, id.clone());
        let replica_copy = CustomerCopy::tombstone(CopyTarget::Replica, region, version, id);
        sides.home.apply(&[home_copy]).await?;
        sides.replica.apply(&[replica_copy]).await?;
        report.fixed += 2;
    }
    Ok(())
}

/// For each id of `both`, the newest version another region holds, if it
/// is newer than this region's, and whether that copy is live.
async fn newer_elsewhere<'b>(
    sides: &Sides<'_>,
    both: &'b BTreeMap<String, (Seen, Seen)>,
) -> BTreeMap<&'b str, (i64, bool)> {
    let newest = |(h, r): &(Seen, Seen)| h.flatten().max(r.flatten());
    let ids: Vec<&str> = both.keys().map(String::as_str).collect();
    let elsewhere = sides.locate.elsewhere(Some(&sides.region.id), &ids).await;
    let mut newer: BTreeMap<&str, (i64, bool)> = BTreeMap::new();
    for (id, seen) in both {
        let mine = newest(seen);
        for held in elsewhere
            .iter()
            .filter_map(|(_, held)| held.as_ref()?.get(id))
        {
            let Some(theirs) = held.version.filter(|t| mine.is_none_or(|m| *t > m)) else {
                continue;
            };
            let slot = newer.entry(id.as_str()).or_insert((theirs, !held.deleted));
            if theirs > slot.0 {
                *slot = (theirs, !held.deleted);
            }
        }
    }
    newer
}

/// Both sides' versions of every id of one page each, up to where both
/// pages are complete: the smaller of their last ids (a page that is not
/// full runs to the end of its collection), which is returned as where the
/// next pages start (`None`: both collections are done).
fn pair_pages(
    home: Vec<(String, Option<i64>)>,
    replica: Vec<(String, Option<i64>)>,
) -> (BTreeMap<String, (Seen, Seen)>, Option<String>) {
    let upper = [
        (&home, home.len() == PAGE),
        (&replica, replica.len() == PAGE),
    ]
    .into_iter()
    .filter(|(page, full)| *full && !page.is_empty())
    .filter_map(|(page, _)| page.last().map(|(id, _)| id.clone()))
    .min();
    let within = |id: &String| upper.as_ref().is_none_or(|u| id <= u);
    let mut both: BTreeMap<String, (Seen, Seen)> = BTreeMap::new();
    for (id, v) in home.into_iter().filter(|(id, _)| within(id)) {
        both.entry(id).or_default().0 = Some(v);
    }
    for (id, v) in replica.into_iter().filter(|(id, _)| within(id)) {
        both.entry(id).or_default().1 = Some(v);
    }
    (both, upper)
}

/// The ids the replica must take from home, and those home must take from
/// the replica.
fn differing(both: &BTreeMap<String, (Seen, Seen)>) -> (Vec<&str>, Vec<&str>) {
    let mut to_replica = Vec::new();
    let mut to_home = Vec::new();
    for (id, (h, r)) in both {
        match newer_side(*h, *r) {
            None => {}
            Some(Side::Home) => to_replica.push(id.as_str()),
            Some(Side::Replica) => to_home.push(id.as_str()),
        }
    }
    (to_replica, to_home)
}

/// Which side holds the copy the other must take, if they differ. A side
/// is `None` when it lacks the id, `Some(None)` when its document has no
/// version (written by another tool: older than any versioned copy).
fn newer_side(home: Seen, replica: Seen) -> Option<Side> {
    match (home, replica) {
        (Some(h), Some(r)) if h == r => None,
        (Some(h), Some(r)) => Some(if h > r { Side::Home } else { Side::Replica }),
        (Some(_), None) => Some(Side::Home),
        (None, Some(_)) => Some(Side::Replica),
        (None, None) => None,
    }
}

/// Reads `ids` from `from` (a store and its collection) and applies them
/// to `to` as copies of the given target.
async fn copy_over(
    region: &Region,
    (from, from_collection): (&NodeStore, &str),
    (to, target): (&NodeStore, CopyTarget),
    ids: &[&str],
    report: &mut RegionRepair,
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let records = from.find_ids(from_collection, ids).await?;
    let mut copies = Vec::new();
    for record in &records {
        match rebuild(region, record, target) {
            Some(copy) => copies.push(copy),
            None => {
                tracing::warn!(region = %region.id, customer_id = %record.customer_id,
                    "cannot repair a document that is not a valid customer");
                report.skipped += 1;
            }
        }
    }
    match to.apply(&copies).await {
        Ok(()) => report.fixed += copies.len() as u64,
        // Refused for good (e.g. a unique index another record holds): one
        // by one, so the others are fixed and the refused ones are counted.
        Err(e) if e.is_permanent() => {
            for copy in &copies {
                match to.apply(std::slice::from_ref(copy)).await {
                    Ok(()) => report.fixed += 1,
                    Err(e) if e.is_permanent() => {
                        tracing::warn!(region = %region.id, node = %to.node(),
                            customer_id = %copy.customer_id(), error = %e,
                            "repair copy refused; skipped");
                        report.skipped += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// The copy a stored record stands for, as a hint would carry it: a
/// tombstone stays a tombstone, so a repair never brings a deleted record
/// back.
pub(super) fn rebuild(
    region: &Region,
    record: &StoredCustomer,
    target: CopyTarget,
) -> Option<CustomerCopy> {
    let version = Version::new(record.version.unwrap_or(0));
    if record.deleted {
        let id = Text::parse("customer_id", &record.customer_id).ok()?;
        return Some(CustomerCopy::tombstone(
            target,
            region.id.clone(),
            version,
            id,
        ));
    }
    let body: Map<String, Value> = match json!({
        "customer_id": record.customer_id,
        "customer_unique_id": record.customer_unique_id,
        "customer_zip_code_prefix": record.customer_zip_code_prefix,
        "customer_city": record.customer_city,
        "customer_state": record.customer_state,
    }) {
        Value::Object(map) => map,
        _ => return None,
    };
    let customer = Customer::parse(&body).ok()?;
    Some(CustomerCopy::live(
        target,
        region.id.clone(),
        version,
        customer,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newer_or_only_copy_wins() {
        assert!(newer_side(Some(Some(5)), Some(Some(5))).is_none());
        assert!(matches!(
            newer_side(Some(Some(6)), Some(Some(5))),
            Some(Side::Home)
        ));
        assert!(matches!(
            newer_side(Some(Some(5)), Some(Some(6))),
            Some(Side::Replica)
        ));
        assert!(matches!(
            newer_side(Some(None), Some(Some(1))),
            Some(Side::Replica)
        ));
        assert!(matches!(newer_side(Some(Some(1)), None), Some(Side::Home)));
        assert!(matches!(newer_side(None, Some(None)), Some(Side::Replica)));
    }
}
