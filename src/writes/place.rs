//! Placing copies on nodes: each node's share of a batch in one bulk apply
//! when the node is available, else (or when the apply fails for a reason a
//! later replay can overcome) queued in the node's topic.

use std::collections::BTreeMap;

use super::{PlaceError, Placement, WritePath};
use crate::domain::{CustomerCopy, NodeId};
use crate::store::StoreError;

impl WritePath {
    /// Writes `copy` to `node` directly if it is available, else (or if that
    /// fails for a reason a later replay can overcome) parks it in the
    /// node's topic.
    pub(super) async fn place(
        &self,
        node: &NodeId,
        copy: &CustomerCopy,
    ) -> Result<Placement, PlaceError> {
        let Some(store) = self.stores.get(node) else {
            return self.queue(node, copy).await;
        };
        if !self.statuses.status(node).is_available() {
            return self.queue(node, copy).await;
        }
        let failed = match store.apply(std::slice::from_ref(copy)).await {
            Ok(()) => return Ok(Placement::Stored),
            Err(StoreError::Rejected { message, .. }) => return Err(PlaceError::Rejected(message)),
            Err(e) => e,
        };
        // Treated as unavailable for this write: queue it.
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

    /// Parks `copy` in `node`'s topic.
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
                self.statuses.note_queued(node).await;
                Ok(Placement::Queued)
            }
            Err(e) => {
                tracing::warn!(%node, error = %e, "hint not queued");
                Err(PlaceError::Unplaced(e.short_reason()))
            }
        }
    }

    /// Places `copies` on the nodes `node_of` names: per node, one bulk
    /// apply if the node is available (a refusal for good is narrowed down
    /// one copy at a time; any other failure queues the lot), else each copy
    /// queued. One result per copy, in order.
    pub(super) async fn place_many(
        &self,
        copies: &[(usize, CustomerCopy)],
        node_of: impl Fn(&CustomerCopy) -> NodeId,
    ) -> Vec<Result<Placement, PlaceError>> {
        let mut by_node: BTreeMap<NodeId, Vec<usize>> = BTreeMap::new();
        for (k, (_, copy)) in copies.iter().enumerate() {
            by_node.entry(node_of(copy)).or_default().push(k);
        }
        let mut results: Vec<Option<Result<Placement, PlaceError>>> =
            copies.iter().map(|_| None).collect();
        let per_node = by_node.iter().map(|(node, ks)| async move {
            let group: Vec<CustomerCopy> = ks.iter().map(|k| copies[*k].1.clone()).collect();
            (ks, self.place_group(node, &group).await)
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
    ) -> Vec<Result<Placement, PlaceError>> {
        if let [copy] = group {
            return vec![self.place(node, copy).await];
        }
        if self.statuses.status(node).is_available()
            && let Some(store) = self.stores.get(node)
        {
            match store.apply(group).await {
                Ok(()) => return group.iter().map(|_| Ok(Placement::Stored)).collect(),
                Err(e) if e.is_permanent() => {
                    // Someone in the batch is refused for good: find who,
                    // one at a time (the others are stored or queued).
                    let one_by_one = group.iter().map(|copy| self.place(node, copy));
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
