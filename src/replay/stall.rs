//! The replay's stall watch: a node whose queue stands still while it is
//! available (see the module docs of `replay`) is noticed, said, counted,
//! and recovered: by re-joining the group and applying the stuck hints
//! outside it, by turns, one stall period apart, until the group commits.

use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use super::apply::applicable;
use super::{BACKLOG_RECHECK, Replay};
use crate::domain::CustomerCopy;
use crate::hints::QueueState;

impl Replay {
    /// One look at the queue, begun at `looking`: if it has stood still for
    /// a stall period, recovers, by turns: re-joining the group (the first
    /// time in a row, and every other time after), then applying outside it
    /// (so a group that stays wedged is asked again to hand its partitions
    /// out, while the node gets its writes meanwhile). A member the group gave no
    /// partition at all (an instance restarted while the broker still counts
    /// the killed one, which holds them) also applies outside the group at
    /// once, before re-joining: the node gets its writes a stall period
    /// sooner, and the re-join makes the group hand the partitions out, so
    /// they are committed. True when it acted.
    pub(super) async fn recover_if_stalled(
        &mut self,
        watch: &mut StallWatch,
        queue: QueueState,
        looking: Instant,
    ) -> bool {
        let now = Instant::now();
        let Some(still) = watch.stalled(queue, looking, now, self.config.stall_after) else {
            return false;
        };
        if watch.in_a_row.is_multiple_of(2) {
            if !self.hints.owns_any() {
                self.apply_outside_the_group(queue).await;
            }
            self.rejoin(queue, still).await;
        } else {
            self.apply_outside_the_group(queue).await;
        }
        watch.restart(Instant::now());
        true
    }

    /// The queue stood still with hints in it: leaves the group and joins it
    /// again with a fresh consumer. Nothing is pending here, so nothing read
    /// is dropped; what the old consumer had fetched is uncommitted and read
    /// again by whoever gets its partition.
    async fn rejoin(&mut self, queue: QueueState, still: Duration) {
        let node = &self.node;
        tracing::warn!(%node, queued = queue.queued, still_for = ?still,
            "replay stalled: hints are queued for an available node and no instance \
             commits any; re-joining the consumer group");
        crate::metrics::replay_stalled(node.as_str());
        match self.log.consumer(node).await {
            Ok(fresh) => {
                let old = std::mem::replace(&mut self.hints, fresh);
                // Closing a consumer leaves the group, which can block.
                tokio::task::spawn_blocking(move || drop(old));
            }
            Err(e) => tracing::warn!(%node, error = %e, "cannot re-join the group yet"),
        }
    }

    /// The queue is stuck (even after re-joining, or with no partition
    /// given to this member): applies, outside the
    /// group, everything it holds beyond the committed offsets, a batch at a
    /// time, each read on from where the last one ended (the committed
    /// offsets do not move meanwhile). Last writer wins, so whatever is
    /// applied again later changes nothing. Unreadable or refused hints are
    /// left to the group's replay, which dead-letters them.
    async fn apply_outside_the_group(&self, queue: QueueState) {
        let node = &self.node;
        crate::metrics::replay_stalled(node.as_str());
        let chunk = self.config.batch_size;
        let mut after: BTreeMap<i32, i64> = BTreeMap::new();
        let mut applied = 0;
        loop {
            let hints = match self.log.uncommitted(node, &after, chunk).await {
                Ok(hints) => hints,
                Err(e) => {
                    tracing::warn!(%node, error = %e, "cannot read the stuck queue outside the group");
                    return;
                }
            };
            let horizon = self.clock.horizon();
            let copies: Vec<CustomerCopy> = hints
                .iter()
                .filter_map(|h| applicable(h, horizon).ok())
                .cloned()
                .collect();
            if let Err(e) = self.store.apply(&copies).await {
                tracing::warn!(%node, error = %e, "stuck hints not applied outside the group");
                return;
            }
            applied += copies.len();
            for h in &hints {
                let next = after.entry(h.partition).or_insert(h.offset + 1);
                *next = (*next).max(h.offset + 1);
            }
            if hints.len() < chunk {
                break;
            }
        }
        tracing::warn!(%node, applied, queued = queue.queued,
            "replay stalled: applied the stuck hints outside the group; the group \
             commits them once it hands their partitions out");
    }
}

/// Notices a queue that stands still: not empty, and the group's committed
/// offsets unchanged across every look for a whole stall period. A gap
/// between one look's end and the next one's start (the node was
/// unavailable, or this replay was applying a batch of its own) starts the
/// period again; a slow look (the broker is slow to answer) does not.
pub(super) struct StallWatch {
    committed: i64,
    since: Instant,
    last_look: Instant,
    /// Stalls acted on since the queue last moved or emptied.
    in_a_row: u32,
}

impl StallWatch {
    pub(super) fn new(now: Instant) -> Self {
        StallWatch {
            committed: -1,
            since: now,
            last_look: now,
            in_a_row: 0,
        }
    }

    /// A stall was acted on: watch a whole period again.
    fn restart(&mut self, now: Instant) {
        self.in_a_row += 1;
        self.since = now;
        self.last_look = now;
    }

    /// One look, begun at `started`, ended `now`; answers for how long the
    /// queue has stood still once that is at least `after`.
    fn stalled(
        &mut self,
        queue: QueueState,
        started: Instant,
        now: Instant,
        after: Duration,
    ) -> Option<Duration> {
        let gap = started.saturating_duration_since(self.last_look) > BACKLOG_RECHECK * 3;
        self.last_look = now;
        if queue.queued == 0 || queue.committed != self.committed || gap {
            if queue.queued == 0 || queue.committed != self.committed {
                self.in_a_row = 0;
            }
            self.committed = queue.committed;
            self.since = now;
            return None;
        }
        let still = now.saturating_duration_since(self.since);
        (still >= after).then_some(still)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(queued: u64, committed: i64) -> QueueState {
        QueueState { queued, committed }
    }

    #[test]
    fn a_queue_that_does_not_move_for_the_whole_period_is_a_stall() {
        let t0 = Instant::now();
        let after = Duration::from_secs(10);
        let mut watch = StallWatch::new(t0);
        let at = |secs| t0 + Duration::from_secs(secs);
        for s in 0..10 {
            assert_eq!(
                watch.stalled(queue(5, 100), at(s), at(s), after),
                None,
                "{s}"
            );
        }
        assert_eq!(
            watch.stalled(queue(5, 100), at(10), at(10), after),
            Some(after)
        );
        // Slow looks (4 s each) are no gap.
        let mut watch = StallWatch::new(t0);
        assert_eq!(watch.stalled(queue(5, 100), at(0), at(4), after), None);
        assert_eq!(watch.stalled(queue(5, 100), at(5), at(9), after), None);
        assert!(
            watch
                .stalled(queue(5, 100), at(10), at(14), after)
                .is_some()
        );
    }

    #[test]
    fn progress_an_empty_queue_or_a_gap_starts_the_period_again() {
        let t0 = Instant::now();
        let after = Duration::from_secs(3);
        let at = |secs| t0 + Duration::from_secs(secs);
        let mut watch = StallWatch::new(t0);
        watch.stalled(queue(5, 100), at(0), at(0), after);
        watch.stalled(queue(5, 100), at(2), at(2), after);
        // Another instance committed.
        assert_eq!(watch.stalled(queue(4, 101), at(3), at(3), after), None);
        assert_eq!(watch.stalled(queue(4, 101), at(5), at(5), after), None);
        assert!(watch.stalled(queue(4, 101), at(6), at(6), after).is_some());
        // Empty: nothing to stall on.
        let mut watch = StallWatch::new(t0);
        for s in 0..10 {
            assert_eq!(watch.stalled(queue(0, 100), at(s), at(s), after), None);
        }
        // Not looked at for a while (node unavailable): start again.
        let mut watch = StallWatch::new(t0);
        watch.stalled(queue(5, 100), at(0), at(0), after);
        assert_eq!(watch.stalled(queue(5, 100), at(20), at(20), after), None);
    }
}
