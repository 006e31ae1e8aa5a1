//! Which nodes may still have hints waiting for them.
//!
//! Reads must never go back to a home node that has not caught up on its
//! backlog: a record acknowledged as queued would vanish from reads until the
//! replay reaches it. A node counts as *caught up* only once its replay has
//! confirmed, after the last event that may have queued something for it,
//! that every hint in its topic is applied and committed.
//!
//! The events that put a node behind: this process queued a hint for it, it
//! was seen unavailable, or its replay took a hint from its topic (which also
//! covers hints queued by other instances). Confirmation is tagged with the
//! epoch it started in, so a confirmation that raced with a newer event
//! never counts.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::domain::NodeId;

#[derive(Debug)]
struct NodeBacklog {
    /// Bumped by every event that may have queued a hint.
    epoch: AtomicU64,
    /// The epoch in which the replay last saw an empty backlog.
    confirmed: AtomicU64,
}

/// Every node's catch-up state; shared by the write path (which puts nodes
/// behind), the replay (which confirms) and the read path (which asks).
#[derive(Debug)]
pub struct Backlogs(BTreeMap<NodeId, NodeBacklog>);

impl Backlogs {
    /// Every node starts *behind*: nothing is known until its replay has
    /// looked at its topic.
    pub fn new<'a>(nodes: impl IntoIterator<Item = &'a NodeId>) -> Backlogs {
        Backlogs(
            nodes
                .into_iter()
                .map(|n| {
                    let state = NodeBacklog {
                        epoch: AtomicU64::new(1),
                        confirmed: AtomicU64::new(0),
                    };
                    (n.clone(), state)
                })
                .collect(),
        )
    }

    /// Something may have been queued for `node`.
    pub fn mark_behind(&self, node: &NodeId) {
        if let Some(b) = self.0.get(node) {
            b.epoch.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The current epoch, to be passed to [`Backlogs::confirm`] once the
    /// backlog, read *after* this call, turned out empty.
    pub fn epoch(&self, node: &NodeId) -> u64 {
        self.0
            .get(node)
            .map_or(0, |b| b.epoch.load(Ordering::SeqCst))
    }

    /// The backlog was empty in `epoch`. Counts only if nothing happened
    /// since.
    pub fn confirm(&self, node: &NodeId, epoch: u64) {
        if let Some(b) = self.0.get(node) {
            b.confirmed.fetch_max(epoch, Ordering::SeqCst);
        }
    }

    /// Whether every hint ever queued for `node` is known to be applied.
    /// Unknown nodes are never caught up.
    pub fn caught_up(&self, node: &NodeId) -> bool {
        self.0
            .get(node)
            .is_some_and(|b| b.confirmed.load(Ordering::SeqCst) == b.epoch.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> NodeId {
        NodeId::parse("region_2").unwrap()
    }

    #[test]
    fn a_node_is_behind_until_confirmed() {
        let b = Backlogs::new([&node()]);
        assert!(!b.caught_up(&node()));
        let e = b.epoch(&node());
        b.confirm(&node(), e);
        assert!(b.caught_up(&node()));
        b.mark_behind(&node());
        assert!(!b.caught_up(&node()));
    }

    #[test]
    fn a_confirmation_that_raced_with_new_hints_does_not_count() {
        let b = Backlogs::new([&node()]);
        let e = b.epoch(&node());
        // A hint is queued while the replay is looking at its topic.
        b.mark_behind(&node());
        b.confirm(&node(), e);
        assert!(!b.caught_up(&node()));
        b.confirm(&node(), b.epoch(&node()));
        assert!(b.caught_up(&node()));
    }

    #[test]
    fn unknown_nodes_are_never_caught_up() {
        let b = Backlogs::new([&node()]);
        assert!(!b.caught_up(&NodeId::parse("region_9").unwrap()));
    }
}
