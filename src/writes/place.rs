//! Placing copies on nodes: each node's share of a batch in one bulk apply
//! when the node is available, else (or when the apply fails for a reason a
//! later replay can overcome) queued in the node's topic.

use std::collections::BTreeMap;

use std::sync::Arc;

use super::commit::Committed;
use super::{PlaceError, Placement, WritePath};
use crate::domain::{CustomerCopy, NodeId};
use crate::store::{CopyOutcome, NodeStore, StoreError};

impl WritePath {
    /// Writes `copy` to `node` directly if it is available (through the
    /// node's committer for its collection, sharing a command with the
    /// copies that arrive meanwhile), else (or if that fails for a reason a
    /// later replay can overcome) parks it in the node's topic. A `home`
    /// copy that finds the committer's queue full is refused as busy; a
    /// replica waits for room.
    pub(super) async fn place(
        &self,
        node: &NodeId,
        copy: &CustomerCopy,
        home: bool,
    ) -> Result<Placement, PlaceError> {
        let Some(store) = self.stores.get(node) else {
            return self.queue(node, copy).await;
        };
        if !self.statuses.status(node).is_available() {
            return self.queue(node, copy).await;
        }
        let failed = match self.committers.commit(node, copy, !home).await {
            Committed::Outcome(CopyOutcome::Stored) => return Ok(Placement::Stored),
            Committed::Outcome(CopyOutcome::Rejected(message)) => {
                return Err(PlaceError::Rejected(message));
            }
            Committed::Outcome(CopyOutcome::NotTried) | Committed::Narrow => {
                return self.place_alone(node, copy).await;
            }
            Committed::Unavailable => return self.queue(node, copy).await,
            Committed::Busy => return Err(PlaceError::Busy),
            Committed::Outcome(CopyOutcome::Failed(message)) => Arc::new(StoreError::NotDurable {
                node: node.clone(),
                message,
            }),
            Committed::CommandFailed(e) => e,
        };
        self.fall_back(store, copy, &failed).await
    }

    /// Writes `copy` to `node` directly, in a command of its own, with the
    /// same fallback as [`WritePath::place`].
    async fn place_alone(
        &self,
        node: &NodeId,
        copy: &CustomerCopy,
    ) -> Result<Placement, PlaceError> {
        let Some(store) = self.stores.get(node) else {
            return self.queue(node, copy).await;
        };
        match store.apply(std::slice::from_ref(copy)).await {
            Ok(()) => Ok(Placement::Stored),
            Err(StoreError::Rejected { message, .. }) => Err(PlaceError::Rejected(message)),
            Err(failed) => self.fall_back(store, copy, &failed).await,
        }
    }

    /// The direct write of `copy` failed (`failed`) in a way a later replay
    /// can overcome: it is treated as unavailable for this write, and
    /// queued.
    async fn fall_back(
        &self,
        store: &NodeStore,
        copy: &CustomerCopy,
        failed: &StoreError,
    ) -> Result<Placement, PlaceError> {
        let node = store.node();
        tracing::warn!(%node, error = %failed, "direct write failed; queueing");
        let queued = self.queue(node, copy).await;
        let Err(PlaceError::Unplaced(reason)) = queued else {
            return queued;
        };
        // Neither took it. A write that timed out or was not confirmed
        // durable may still have been applied: rather than answer 503 with
        // an unknown outcome, try the node once more (the same version, so
        // a second apply changes nothing).
        match store.apply(std::slice::from_ref(copy)).await {
            Ok(()) => Ok(Placement::Stored),
            Err(StoreError::Rejected { message, .. }) => Err(PlaceError::Rejected(message)),
            Err(again) => {
                tracing::warn!(%node, error = %again, "direct write failed again");
                if failed.may_have_applied() {
                    return Err(PlaceError::Unknown(format!(
                        "{reason}; the direct write's outcome is unknown (it may have been \
                         applied): a retry is safe"
                    )));
                }
                Err(PlaceError::Unplaced(reason))
            }
        }
    }

    /// Parks `copy` in `node`'s topic, and starts telling the other
    /// instances (see [`WritePath::notes_landed`], which a write waits on
    /// before its answer).
    pub(super) async fn queue(
        &self,
        node: &NodeId,
        copy: &CustomerCopy,
    ) -> Result<Placement, PlaceError> {
        match self.hints.park(node, copy).await {
            Ok(()) => {
                // Before the acknowledgement: reads (here and, through
                // Redis, on every instance) must not trust this node until
                // its replay has applied what was just queued.
                self.backlogs.mark_behind(node);
                self.statuses.notes().owe(node);
                Ok(Placement::Queued)
            }
            Err(e) => {
                tracing::warn!(%node, error = %e, "hint not queued");
                Err(PlaceError::Unplaced(e.short_reason()))
            }
        }
    }

    /// Waits until every instance has been told (or telling them was given
    /// up: it is best effort) about the hints queued for `nodes` so far.
    /// Called before a write that queued a copy is answered.
    pub(super) async fn notes_landed<'a>(&self, nodes: impl IntoIterator<Item = &'a NodeId>) {
        let mut nodes: Vec<&NodeId> = nodes.into_iter().collect();
        nodes.sort();
        nodes.dedup();
        let notes = self.statuses.notes();
        futures::future::join_all(nodes.into_iter().map(|n| notes.landed(n))).await;
    }

    /// Places `copies` on the nodes `node_of` names: per node, one bulk
    /// apply if the node is available (a refusal for good is narrowed down
    /// one copy at a time; any other failure queues the lot), else each copy
    /// queued. One result per copy, in order.
    pub(super) async fn place_many(
        &self,
        copies: &[(usize, CustomerCopy)],
        node_of: impl Fn(&CustomerCopy) -> NodeId,
        home: bool,
    ) -> Vec<Result<Placement, PlaceError>> {
        let mut by_node: BTreeMap<NodeId, Vec<usize>> = BTreeMap::new();
        for (k, (_, copy)) in copies.iter().enumerate() {
            by_node.entry(node_of(copy)).or_default().push(k);
        }
        let mut results: Vec<Option<Result<Placement, PlaceError>>> =
            copies.iter().map(|_| None).collect();
        let per_node = by_node.iter().map(|(node, ks)| async move {
            let group: Vec<CustomerCopy> = ks.iter().map(|k| copies[*k].1.clone()).collect();
            (ks, self.place_group(node, &group, home).await)
        });
        for (ks, placed) in futures::future::join_all(per_node).await {
            for (k, result) in ks.iter().zip(placed) {
                results[*k] = Some(result);
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(PlaceError::Unplaced("not placed".into()))))
            .collect()
    }

    /// One node's share of a batch.
    pub(super) async fn place_group(
        &self,
        node: &NodeId,
        group: &[CustomerCopy],
        home: bool,
    ) -> Vec<Result<Placement, PlaceError>> {
        if let [copy] = group {
            return vec![self.place(node, copy, home).await];
        }
        if self.statuses.status(node).is_available()
            && let Some(store) = self.stores.get(node)
        {
            match store.apply(group).await {
                Ok(()) => return group.iter().map(|_| Ok(Placement::Stored)).collect(),
                Err(e) if e.is_permanent() => {
                    // Someone in the batch is refused for good: find who,
                    // one at a time (the others are stored or queued).
                    let one_by_one = group.iter().map(|copy| self.place_alone(node, copy));
                    return futures::future::join_all(one_by_one).await;
                }
                Err(e) => {
                    tracing::warn!(%node, error = %e, copies = group.len(),
                        "bulk write failed; queueing");
                }
            }
        }
        let queued = group.iter().map(|copy| self.queue(node, copy));
        futures::future::join_all(queued).await
    }
}
