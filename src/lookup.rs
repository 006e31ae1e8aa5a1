//! One record by id, with every copy of it: `GET /customers/{id}` and the
//! record page. The record is its newest version across every copy of every
//! region; its fields come from the best copy of that version's region (the
//! read path's rule), and each copy says whether it is current, stale,
//! missing, a tombstone, or on a node that could not be asked.
//!
//! A node still replaying its queue, or flagged as having lost its data,
//! is asked but is not the only answer: a region none of whose other
//! copies answered is *unconfirmed* (the record, or a newer version of it,
//! may be on its way there). A record found nowhere with a region
//! unconfirmed is not "not found" but "not known yet" ([`Unsure`]).

use futures::future::join_all;
use serde::Serialize;

use crate::backlog::Backlogs;
use crate::domain::{CustomerCopy, NodeId, Region, RegionMap};
use crate::locate::Locate;
use crate::nodes::NodeStatuses;
use crate::store::{Held, StoredCustomer, Stores};

/// Which copy of its region a copy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Home,
    Replica,
}

/// What a copy holds, against the record's newest version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CopyState {
    /// The newest version.
    Current,
    /// An older live version.
    Stale,
    /// Nothing: the node holds no copy.
    Missing,
    /// A tombstone: deleted, or moved away from this region.
    Deleted,
    /// The node is marked unavailable or did not answer.
    Unreachable,
}

/// One copy of the record.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CopyView {
    pub node: NodeId,
    /// The region whose copy this is.
    pub region: NodeId,
    pub role: Role,
    pub state: CopyState,
    pub version: Option<i64>,
}

/// A record and its copies.
#[derive(Debug, Clone)]
pub struct Found {
    /// The newest version's fields (`None` when it is a tombstone).
    pub record: Option<StoredCustomer>,
    pub served_by: Option<NodeId>,
    /// The region the newest version is in.
    pub region: NodeId,
    pub version: Option<i64>,
    pub deleted: bool,
    pub copies: Vec<CopyView>,
    /// The copies disagree: a copy of the record's region is not current,
    /// or another region still holds a live copy.
    pub divergent: bool,
    /// Regions no caught-up copy answered for: a newer version may still
    /// be on its way there.
    pub unconfirmed: Vec<NodeId>,
}

/// No copy that answered holds the record, but these regions could not be
/// ruled out: their copies are unavailable, did not answer, are still
/// replaying their queues or lost their data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no copy that could be read holds it, but {} could not be ruled out \
     (unavailable, unreachable, still replaying its queue, or lost its data): \
     it may be on its way there; try again shortly",
    .regions.iter().map(NodeId::as_str).collect::<Vec<_>>().join(", ")
)]
pub struct Unsure {
    pub regions: Vec<NodeId>,
}

/// What one copy holds of the record: its node, its role, and what it
/// holds (`Err` when it could not be asked).
type Asked = (NodeId, Role, Result<Option<Held>, ()>);

pub struct Lookup<'a> {
    pub regions: &'a RegionMap,
    pub stores: &'a Stores,
    pub statuses: &'a NodeStatuses,
    pub backlogs: &'a Backlogs,
}

impl Lookup<'_> {
    /// The record `id` and its copies; `Ok(None)` when no copy holds it
    /// and every region was ruled out.
    pub async fn find(&self, id: &str) -> Result<Option<Found>, Unsure> {
        let regions = self.regions.regions();
        let held = join_all(regions.iter().map(|r| self.both(r, id))).await;
        let unconfirmed: Vec<NodeId> = (regions.iter().zip(&held))
            .filter(|(_, copies)| !copies.iter().any(|c| self.confirms(c)))
            .map(|(r, _)| r.id.clone())
            .collect();
        let newest = (held.iter().flatten())
            .filter_map(|(_, _, h)| h.as_ref().ok().and_then(|h| h.as_ref()))
            .filter_map(|h| h.version.map(|v| (v, !h.deleted)))
            .max();
        let Some((version, live)) = newest else {
            return match unconfirmed.is_empty() {
                true => Ok(None),
                false => Err(Unsure {
                    regions: unconfirmed,
                }),
            };
        };
        let home_region = (regions.iter().zip(&held))
            .find(|(_, copies)| copies.iter().any(|(_, _, h)| holds(h, version, live)))
            .map(|(r, _)| r);
        let Some(home_region) = home_region else {
            return Ok(None);
        };
        let copies = copy_views(regions, &held, version, &home_region.id);
        let expected = if live {
            CopyState::Current
        } else {
            CopyState::Deleted
        };
        let divergent = copies.iter().any(|c| match c.state {
            CopyState::Unreachable => false,
            _ if c.region == home_region.id => c.state != expected,
            state => matches!(state, CopyState::Current | CopyState::Stale),
        });
        let (record, served_by) = if live {
            self.fields(home_region, id)
                .await
                .map_or((None, None), |(r, n)| (Some(r), Some(n)))
        } else {
            (None, None)
        };
        Ok(Some(Found {
            record,
            served_by,
            region: home_region.id.clone(),
            version: Some(version),
            deleted: !live,
            copies,
            divergent,
            unconfirmed,
        }))
    }

    /// Whether a copy's answer rules its region out or in: it answered,
    /// and its node is caught up and kept its data.
    fn confirms(&self, (node, _, held): &Asked) -> bool {
        held.is_ok() && self.backlogs.readable(node)
    }

    /// What both copies of `region` hold of `id` (per copy: its node, role
    /// and holding, or that it could not be asked).
    async fn both(
        &self,
        region: &Region,
        id: &str,
    ) -> Vec<(NodeId, Role, Result<Option<Held>, ()>)> {
        let copies = [
            (
                &region.id,
                Role::Home,
                CustomerCopy::PRIMARY_COLLECTION.to_owned(),
            ),
            (
                &region.replica,
                Role::Replica,
                CustomerCopy::replica_collection(&region.id),
            ),
        ];
        let asked = copies.iter().map(|(node, _, collection)| async move {
            let store = self
                .stores
                .get(node)
                .filter(|_| self.statuses.status(node).is_available());
            match store {
                None => Err(()),
                Some(store) => store
                    .held(collection, &[id])
                    .await
                    .map(|mut h| h.remove(id))
                    .map_err(|_| ()),
            }
        });
        let answers = join_all(asked).await;
        copies
            .into_iter()
            .zip(answers)
            .map(|((node, role, _), held)| (node.clone(), role, held))
            .collect()
    }

    /// The record's fields from the best copy of its region.
    async fn fields(&self, region: &Region, id: &str) -> Option<(StoredCustomer, NodeId)> {
        let locate = Locate {
            regions: self.regions,
            stores: self.stores,
            statuses: Some((self.statuses, self.backlogs)),
        };
        for (node, collection, _) in locate.order(region) {
            let Some(store) = self.stores.get(node) else {
                continue;
            };
            if let Ok(mut found) = store.find_ids(&collection, &[id]).await
                && let Some(record) = found.pop().filter(|r| !r.deleted)
            {
                return Some((record, node.clone()));
            }
        }
        None
    }
}

/// Whether a copy holds `version`, live or (`live == false`) a tombstone:
/// of a move, the new copy and the old region's tombstone share it.
fn holds(held: &Result<Option<Held>, ()>, version: i64, live: bool) -> bool {
    matches!(held, Ok(Some(h)) if h.version == Some(version) && h.deleted != live)
}

/// Every copy of the record's region, and every copy elsewhere that holds
/// something, each with its state against the newest `version`.
fn copy_views(
    regions: &[Region],
    held: &[Vec<Asked>],
    version: i64,
    home: &NodeId,
) -> Vec<CopyView> {
    let mut views = Vec::new();
    for (region, copies) in regions.iter().zip(held) {
        for (node, role, h) in copies {
            let state = match h {
                Err(()) => CopyState::Unreachable,
                Ok(None) => CopyState::Missing,
                Ok(Some(h)) if h.deleted => CopyState::Deleted,
                Ok(Some(h)) if h.version == Some(version) => CopyState::Current,
                Ok(Some(_)) => CopyState::Stale,
            };
            let elsewhere_and_empty =
                region.id != *home && matches!(state, CopyState::Missing | CopyState::Unreachable);
            if elsewhere_and_empty {
                continue;
            }
            views.push(CopyView {
                node: node.clone(),
                region: region.id.clone(),
                role: *role,
                state,
                version: h.as_ref().ok().and_then(|h| h.map(|h| h.version)).flatten(),
            });
        }
    }
    views
}
