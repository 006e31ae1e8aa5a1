//! The read path: for each region asked for, read its home node if it is
//! available, caught up and answers, else the node keeping its replica;
//! merge the regions in region order and cut one page out of the whole.
//!
//! "Caught up" (see `backlog`) is what keeps read-your-acknowledged-writes
//! while a node that was down replays its backlog: until its replay has
//! applied every hint, a record acknowledged as queued may only be on the
//! replica, so the replica serves the region. Only when no caught-up copy
//! is available does a node that is still catching up serve, and the answer
//! says so (`catching_up`). A node that lost its data (see `recovery`) is
//! treated the same way until it is repaired.
//!
//! Paging is exact across regions: every serving node is first asked how
//! many records match, which tells each region's share of the requested
//! window; only those slices are then fetched. Tombstones never match; a
//! record some other region holds a newer version of (a move whose old
//! copies are not removed yet) is left out of the page, so no answer shows
//! one id twice. Such old copies can only belong to writes still recorded
//! as unsettled (see `nodes::unsettled`): those are looked up first and
//! left out of the counts as well as the pages, so `total` is exact and no
//! page comes back short.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::join_all;
use serde::Serialize;

use crate::backlog::Backlogs;
use crate::domain::{NodeId, RecordFilter, Region, RegionMap};
use crate::locate::{Locate, superseded};
use crate::nodes::NodeStatuses;
use crate::store::{NodeStore, StoredCustomer, Stores};

/// One record of a read, with the node that served it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecordView {
    #[serde(flatten)]
    pub record: StoredCustomer,
    pub served_by: NodeId,
}

/// Which node served a region, and whether that was its replica.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RegionSource {
    pub region: NodeId,
    pub served_by: NodeId,
    pub replica: bool,
    /// The serving node may still be replaying hints for this region: the
    /// newest writes may be missing from this answer.
    pub catching_up: bool,
    pub matched: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FilterResult {
    pub records: Vec<RecordView>,
    /// All matching records in the regions that answered.
    pub total: u64,
    /// Regions whose home and replica nodes both could not be read.
    pub unavailable_regions: Vec<NodeId>,
    /// For each region that answered, the node that served it.
    pub sources: Vec<RegionSource>,
}

pub struct ReadPath {
    regions: RegionMap,
    statuses: Arc<NodeStatuses>,
    stores: Arc<Stores>,
    backlogs: Arc<Backlogs>,
}

impl RegionSource {
    fn of((source, matched): &(Source<'_>, u64)) -> RegionSource {
        RegionSource {
            region: source.region.id.clone(),
            served_by: source.store.node().clone(),
            replica: source.replica,
            catching_up: source.catching_up,
            matched: *matched,
        }
    }
}

/// The page `offset..offset + limit` of the regions' matches laid end to
/// end, as `(region index, skip, take)` slices, in region order.
fn window(matched: &[u64], offset: u64, limit: u64) -> Vec<(usize, u64, u64)> {
    let (mut skip, mut want) = (offset, limit);
    let mut slices = Vec::new();
    for (i, n) in matched.iter().enumerate() {
        if want == 0 || skip >= *n {
            skip = skip.saturating_sub(*n);
            continue;
        }
        let take = (n - skip).min(want);
        slices.push((i, skip, take));
        skip = 0;
        want -= take;
    }
    slices
}

/// A region's data on one node: its home `customers` or a replica collection.
struct Source<'a> {
    region: &'a Region,
    store: &'a NodeStore,
    collection: String,
    replica: bool,
    catching_up: bool,
    /// Old copies of moved records, left out of the count and the page.
    except: Vec<String>,
}

/// Unsettled writes looked at, at most, for old copies to leave out.
const GHOST_CANDIDATES: usize = 10_000;

impl ReadPath {
    pub fn new(
        regions: RegionMap,
        statuses: Arc<NodeStatuses>,
        stores: Arc<Stores>,
        backlogs: Arc<Backlogs>,
    ) -> Self {
        ReadPath {
            regions,
            statuses,
            stores,
            backlogs,
        }
    }

    pub async fn filter(&self, filter: &RecordFilter) -> FilterResult {
        let regions: Vec<&Region> = match &filter.region {
            Some(id) => self.regions.get(id.as_str()).into_iter().collect(),
            None => self.regions.regions().iter().collect(),
        };
        // 1. Each region: pick a serving node and count its matches (but
        // the old copies of moved records).
        let ghosts = self.ghosts().await;
        let except = |r: &Region| ghosts.get(&r.id).cloned().unwrap_or_default();
        let counted =
            join_all((regions.iter()).map(|r| self.count_region(r, filter, except(r)))).await;
        let mut unavailable = Vec::new();
        let mut answered = Vec::new();
        for (region, counted) in regions.iter().zip(counted) {
            match counted {
                Some((source, n)) => answered.push((source, n)),
                None => unavailable.push(region.id.clone()),
            }
        }
        // 2. Cut the requested window out of the regions, in order.
        let mut sources: Vec<RegionSource> = answered.iter().map(RegionSource::of).collect();
        let matched: Vec<u64> = answered.iter().map(|(_, n)| *n).collect();
        let slices = window(&matched, filter.offset, u64::from(filter.limit));
        // 3. Fetch the slices.
        let fetched = join_all(slices.iter().map(|&(i, skip, take)| {
            let source = &answered[i].0;
            async move {
                let rows =
                    (source.store).find(&source.collection, filter, &source.except, (skip, take));
                (source, rows.await)
            }
        }))
        .await;
        let mut records = Vec::new();
        for (source, rows) in fetched {
            match rows {
                Ok(rows) => records.extend(rows.into_iter().map(|record| {
                    let view = RecordView {
                        record,
                        served_by: source.store.node().clone(),
                    };
                    (&source.region.id, view)
                })),
                Err(e) => {
                    // Answered the count, then failed: report it as not read.
                    tracing::warn!(region = %source.region.id, error = %e, "read failed");
                    unavailable.push(source.region.id.clone());
                    sources.retain(|s| s.region != source.region.id);
                }
            }
        }
        let records = self.drop_superseded(records).await;
        FilterResult {
            records,
            total: sources.iter().map(|s| s.matched).sum(),
            unavailable_regions: unavailable,
            sources,
        }
    }

    /// Leaves out every record some other region holds a newer version of
    /// (a move whose old copies are not removed yet: their node is down),
    /// so no answer shows one `customer_id` twice or an old copy of it.
    async fn drop_superseded(&self, records: Vec<(&NodeId, RecordView)>) -> Vec<RecordView> {
        if records.is_empty() || self.regions.regions().len() < 2 {
            return records.into_iter().map(|(_, r)| r).collect();
        }
        let ids: Vec<&str> = records
            .iter()
            .map(|(_, r)| r.record.customer_id.as_str())
            .collect();
        let locate = self.locate();
        let elsewhere = locate.elsewhere(None, &ids).await;
        let newer_elsewhere = |region: &NodeId, view: &RecordView| {
            elsewhere.iter().any(|(other, held)| {
                other.id != *region
                    && held.as_ref().is_some_and(|held| {
                        superseded(view.record.version, held.get(&view.record.customer_id))
                    })
            })
        };
        let kept: Vec<RecordView> = (records.iter())
            .filter(|(region, view)| !newer_elsewhere(region, view))
            .map(|(_, view)| view.clone())
            .collect();
        kept
    }

    /// Per region, the ids of its live copies that another region holds a
    /// newer version of: old copies of moves not settled yet. Only the
    /// writes recorded as unsettled can have left one.
    async fn ghosts(&self) -> HashMap<NodeId, Vec<String>> {
        let mut ghosts: HashMap<NodeId, Vec<String>> = HashMap::new();
        if self.regions.regions().len() < 2 {
            return ghosts;
        }
        let unsettled = match self.statuses.unsettled(GHOST_CANDIDATES).await {
            Ok(u) if !u.is_empty() => u,
            Ok(_) => return ghosts,
            Err(e) => {
                tracing::debug!(error = %e, "unsettled writes unknown; old copies are left out of pages only");
                return ghosts;
            }
        };
        let mut ids: Vec<&str> = unsettled.iter().map(|u| u.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let locate = self.locate();
        let held = locate.elsewhere(None, &ids).await;
        for (region, copies) in &held {
            for (id, copy) in copies.iter().flatten() {
                let newer = (held.iter()).any(|(other, theirs)| {
                    other.id != region.id
                        && theirs
                            .as_ref()
                            .is_some_and(|t| superseded(copy.version, t.get(id)))
                });
                if !copy.deleted && newer {
                    ghosts
                        .entry(region.id.clone())
                        .or_default()
                        .push(id.clone());
                }
            }
        }
        ghosts
    }

    /// How this instance picks a region's copies (see `locate`).
    fn locate(&self) -> Locate<'_> {
        Locate {
            regions: &self.regions,
            stores: &self.stores,
            statuses: Some((&self.statuses, &self.backlogs)),
        }
    }

    /// The first copy of the region that is marked available and answers
    /// the count, preferring caught-up nodes: home, replica, then (only if
    /// neither is caught up) home and replica again.
    async fn count_region<'a>(
        &'a self,
        region: &'a Region,
        filter: &RecordFilter,
        except: Vec<String>,
    ) -> Option<(Source<'a>, u64)> {
        for (node, collection, replica) in self.locate().order(region) {
            let Some(store) = self.stores.get(node) else {
                continue;
            };
            match store.count(&collection, filter, &except).await {
                Ok(n) => {
                    let source = Source {
                        region,
                        store,
                        collection,
                        replica,
                        catching_up: !self.backlogs.readable(node),
                        except,
                    };
                    return Some((source, n));
                }
                Err(e) => tracing::warn!(region = %region.id, %node, error = %e,
                    "count failed; trying the next copy"),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::window;

    #[test]
    fn a_page_is_cut_across_regions_in_order() {
        // 3 + 5 + 4 matches; records 2..8 are the last of the first region,
        // all of the second, none of the third.
        assert_eq!(window(&[3, 5, 4], 2, 6), vec![(0, 2, 1), (1, 0, 5)]);
        assert_eq!(window(&[3, 5, 4], 8, 10), vec![(2, 0, 4)]);
        assert_eq!(window(&[3, 0, 4], 3, 2), vec![(2, 0, 2)]);
        assert!(window(&[3, 5], 20, 5).is_empty());
        assert!(window(&[3, 5], 0, 0).is_empty());
    }
}
