//! Which nodes may still have hints waiting for them.
//!
//! Reads must never go back to a home node that has not caught up on its
//! backlog: a record acknowledged as queued would vanish from reads until the
//! replay reaches it. A node counts as *caught up* only once its replay has
//! confirmed, after the last event that may have queued something for it,
//! that every hint in its topic is applied and committed.
//!
//! The events that put a node behind: this process queued a hint for it, it
//! was seen unavailable, its replay took a hint from its topic, or another
//! instance queued a hint for it (announced through Redis: see
//! `nodes`). Confirmation is tagged with the epoch it started in, so a
//! confirmation that raced with a newer event never counts.
//!
//! Apart from its backlog, a node can have *lost its data* (restarted
//! empty: see `recovery`). Reads do not trust it either until it is
//! repaired from the replicas.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::domain::NodeId;

/// Where replays say that a node's queue drained (automatic repair
/// listens on the other end).
#[derive(Clone)]
pub struct DrainedQueues(mpsc::UnboundedSender<NodeId>);

impl DrainedQueues {
    /// The sending side, and the receiver automatic repair reads.
    pub fn channel() -> (DrainedQueues, mpsc::UnboundedReceiver<NodeId>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (DrainedQueues(tx), rx)
    }

    pub fn node_drained(&self, node: &NodeId) {
        // Closed only at shutdown, when no repair should start anyway.
        let _ = self.0.send(node.clone());
    }
}

#[derive(Debug)]
struct NodeBacklog {
    /// Bumped by every event that may have queued a hint.
    epoch: AtomicU64,
    /// The epoch in which the replay last saw an empty backlog.
    confirmed: AtomicU64,
    /// The node lost its data and is not repaired yet.
    lost: AtomicBool,
    /// The shared count of hints queued for the node (by any instance) as
    /// last seen in Redis.
    shared_seen: AtomicI64,
    /// Wakes the node's replay when the node falls behind (a permit is kept
    /// if it is not waiting, so no wake-up is lost).
    fell_behind: tokio::sync::Notify,
}

/// Every node's catch-up state; shared by the write path (which puts nodes
/// behind), the replay (which confirms) and the read path (which asks).
#[derive(Debug)]
pub struct Backlogs(BTreeMap<NodeId, NodeBacklog>, AtomicBool);

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
                        lost: AtomicBool::new(false),
                        shared_seen: AtomicI64::new(0),
                        fell_behind: tokio::sync::Notify::new(),
                    };
                    (n.clone(), state)
                })
                .collect(),
            AtomicBool::new(false),
        )
    }

    /// Every node's queue was looked at once since start (see
    /// `startup::tasks::first_look`).
    pub fn set_looked(&self) {
        self.1.store(true, Ordering::SeqCst);
    }

    /// Whether the first look at every queue is done: before it, every
    /// node counts as behind, and the instance is not ready.
    pub fn looked(&self) -> bool {
        self.1.load(Ordering::SeqCst)
    }

    /// Something may have been queued for `node`.
    pub fn mark_behind(&self, node: &NodeId) {
        if let Some(b) = self.0.get(node) {
            b.epoch.fetch_add(1, Ordering::SeqCst);
            b.fell_behind.notify_one();
        }
    }

    /// Resolves once `node` falls behind (after the last time it did).
    pub async fn fell_behind(&self, node: &NodeId) {
        match self.0.get(node) {
            Some(b) => b.fell_behind.notified().await,
            None => std::future::pending().await,
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

    /// The shared count of hints queued for `node`, as read from Redis: if
    /// it changed since last seen, another instance queued something (it
    /// only grows, except when Redis lost its data and it starts again).
    pub fn shared_queued(&self, node: &NodeId, count: i64) {
        if self
            .0
            .get(node)
            .is_some_and(|b| b.shared_seen.swap(count, Ordering::SeqCst) != count)
        {
            self.mark_behind(node);
        }
    }

    /// Whether `node` lost its data and awaits its repair.
    pub fn set_lost(&self, node: &NodeId, lost: bool) {
        if let Some(b) = self.0.get(node) {
            b.lost.store(lost, Ordering::SeqCst);
        }
    }

    pub fn lost(&self, node: &NodeId) -> bool {
        self.0
            .get(node)
            .is_some_and(|b| b.lost.load(Ordering::SeqCst))
    }

    /// Whether reads may trust `node`: caught up, and not awaiting a repair
    /// after losing its data.
    pub fn readable(&self, node: &NodeId) -> bool {
        self.caught_up(node) && !self.lost(node)
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
    fn hints_queued_elsewhere_put_the_node_behind_once() {
        let b = Backlogs::new([&node()]);
        b.shared_queued(&node(), 3);
        b.confirm(&node(), b.epoch(&node()));
        assert!(b.caught_up(&node()));
        // The same count read again changes nothing; a higher one does.
        b.shared_queued(&node(), 3);
        assert!(b.caught_up(&node()));
        b.shared_queued(&node(), 4);
        assert!(!b.caught_up(&node()));
        // Redis lost its data: the count starts again, and still counts.
        b.confirm(&node(), b.epoch(&node()));
        b.shared_queued(&node(), 0);
        b.confirm(&node(), b.epoch(&node()));
        b.shared_queued(&node(), 1);
        assert!(!b.caught_up(&node()));
    }

    #[test]
    fn a_node_that_lost_its_data_is_not_readable_until_repaired() {
        let b = Backlogs::new([&node()]);
        b.confirm(&node(), b.epoch(&node()));
        b.set_lost(&node(), true);
        assert!(b.caught_up(&node()) && !b.readable(&node()));
        b.set_lost(&node(), false);
        assert!(b.readable(&node()));
    }

    #[test]
    fn unknown_nodes_are_never_caught_up() {
        let b = Backlogs::new([&node()]);
        assert!(!b.caught_up(&NodeId::parse("region_9").unwrap()));
    }
}
