//! Where a record is: what each region holds of some ids, read from the
//! region's best readable copy (the read path's rule: an available,
//! caught-up node first, home before replica). A record lives in exactly
//! one region, the one its newest version is in; this is how writes, reads,
//! deletes and repair find the other regions' copies of it.
//!
//! The one rule every user applies: a live copy is superseded when any
//! copy of the same id, in any region, has a newer version (a move or a
//! delete decided after it).

use std::collections::HashMap;

use futures::future::join_all;

use crate::backlog::Backlogs;
use crate::domain::{CustomerCopy, NodeId, Region, RegionMap};
use crate::nodes::NodeStatuses;
use crate::store::{Held, NodeStore, StoreError, Stores};

/// What a region holds of some ids; `None` when no copy of the region
/// could be read.
pub type RegionHeld = Option<HashMap<String, Held>>;

/// How copies are chosen. With the node statuses (a serving instance),
/// unavailable nodes are skipped and caught-up ones come first; without
/// (`regiondb repair`), home then replica, whichever answers.
pub struct Locate<'a> {
    pub regions: &'a RegionMap,
    pub stores: &'a Stores,
    pub statuses: Option<(&'a NodeStatuses, &'a Backlogs)>,
}

impl<'a> Locate<'a> {
    /// Without node statuses (`regiondb repair`, repair and purge, which
    /// ask whichever copy answers).
    pub fn offline(regions: &'a RegionMap, stores: &'a Stores) -> Locate<'a> {
        Locate {
            regions,
            stores,
            statuses: None,
        }
    }

    /// A region's two copies, in the order they are trusted.
    pub fn order<'r>(&self, region: &'r Region) -> Vec<(&'r NodeId, String, bool)> {
        let home = (
            &region.id,
            CustomerCopy::PRIMARY_COLLECTION.to_owned(),
            false,
        );
        let replica = (
            &region.replica,
            CustomerCopy::replica_collection(&region.id),
            true,
        );
        let Some((statuses, backlogs)) = self.statuses else {
            return vec![home, replica];
        };
        let mut copies: Vec<_> = [home, replica]
            .into_iter()
            .filter(|(node, _, _)| statuses.status(node).is_available())
            .collect();
        // Stable: caught-up copies first, home before replica in each group.
        copies.sort_by_key(|(node, _, _)| !backlogs.readable(node));
        copies
    }

    /// What `region` holds of `ids`, from its first copy that answers
    /// (a caught-up one if any does, else one still catching up).
    pub async fn held(&self, region: &Region, ids: &[&str]) -> RegionHeld {
        self.held_from(region, ids, false).await
    }

    /// What `region` holds of `ids` for a decision that an absent copy
    /// settles (a delete, a move's settling): only a caught-up copy that
    /// has not lost its data answers. A node still replaying its queue, or
    /// flagged as having lost data, may not hold yet what it will: a region
    /// only such a node answers for is `None`, as if it could not be read.
    /// (Without node statuses, `regiondb repair`: any copy that answers.)
    pub async fn held_for_sure(&self, region: &Region, ids: &[&str]) -> RegionHeld {
        self.held_from(region, ids, true).await
    }

    /// The copies of `region` whose answer settles what is absent, in the
    /// order they are trusted: available, caught up and not flagged as
    /// having lost data (see [`Locate::held_for_sure`]).
    pub fn sure_copies<'r>(&self, region: &'r Region) -> Vec<(&'r NodeId, String, bool)> {
        let mut copies = self.order(region);
        if let Some((_, backlogs)) = self.statuses {
            copies.retain(|(node, _, _)| backlogs.readable(node));
        }
        copies
    }

    async fn held_from(&self, region: &Region, ids: &[&str], sure: bool) -> RegionHeld {
        let copies = match sure {
            true => self.sure_copies(region),
            false => self.order(region),
        };
        for (node, collection, _) in copies {
            let Some(store) = self.stores.get(node) else {
                continue;
            };
            match store.held(&collection, ids).await {
                Ok(held) => return Some(held),
                Err(e) => tracing::debug!(region = %region.id, %node, error = %e,
                    "lookup failed; trying the next copy"),
            }
        }
        None
    }

    /// What every region but `except` holds of `ids`, all asked at once.
    pub async fn elsewhere<'r>(
        &'r self,
        except: Option<&NodeId>,
        ids: &[&str],
    ) -> Vec<(&'r Region, RegionHeld)> {
        self.elsewhere_from(except, ids, false).await
    }

    /// [`Locate::elsewhere`], each region asked with
    /// [`Locate::held_for_sure`].
    pub async fn elsewhere_for_sure<'r>(
        &'r self,
        except: Option<&NodeId>,
        ids: &[&str],
    ) -> Vec<(&'r Region, RegionHeld)> {
        self.elsewhere_from(except, ids, true).await
    }

    async fn elsewhere_from<'r>(
        &'r self,
        except: Option<&NodeId>,
        ids: &[&str],
        sure: bool,
    ) -> Vec<(&'r Region, RegionHeld)> {
        let others: Vec<&Region> = (self.regions.regions().iter())
            .filter(|r| except != Some(&r.id))
            .collect();
        let held = join_all(others.iter().map(|r| self.held_from(r, ids, sure))).await;
        others.into_iter().zip(held).collect()
    }

    /// What every copy (home and replica) of every region but `except`
    /// holds of `ids`; an error if any copy cannot be read (a purge must
    /// see them all: see `repair::purge`).
    pub async fn every_copy(
        &self,
        except: Option<&NodeId>,
        ids: &[&str],
    ) -> Result<Vec<HashMap<String, Held>>, StoreError> {
        let copies: Vec<(&NodeId, String)> = (self.regions.regions().iter())
            .filter(|r| except != Some(&r.id))
            .flat_map(|r| {
                [
                    (&r.id, CustomerCopy::PRIMARY_COLLECTION.to_owned()),
                    (&r.replica, CustomerCopy::replica_collection(&r.id)),
                ]
            })
            .collect();
        let asked = copies.iter().map(|(node, collection)| async move {
            match self.stores.get(node) {
                Some(store) => store.held(collection, ids).await,
                None => Ok(HashMap::new()),
            }
        });
        join_all(asked).await.into_iter().collect()
    }

    /// The store of `node`.
    pub fn store(&self, node: &NodeId) -> Option<&NodeStore> {
        self.stores.get(node)
    }
}

/// Whether a live copy at `version` is superseded by what `held` says
/// another region holds of it.
pub fn superseded(version: Option<i64>, held: Option<&Held>) -> bool {
    match (version, held.and_then(|h| h.version)) {
        (Some(mine), Some(theirs)) => theirs > mine,
        (None, Some(_)) => true,
        _ => false,
    }
}
