//! The hinted-handoff replay: one task per node moves that node's parked
//! hints from its Kafka topic into its MongoDB database.
//!
//! The loop, while the node is available and its replay not paused by an
//! operator (a paused replay waits like one for an unavailable node, and
//! is no stall): take a batch of hints, apply it
//! (last-writer-wins, so a hint that is older than what the node holds
//! changes nothing), and only then commit the batch's offsets. A crash
//! anywhere replays at most the last batch again, which changes nothing
//! either: at-least-once delivery plus idempotent apply is an exactly-once
//! effect.
//!
//! Nothing read is ever skipped: hints taken from the consumer go straight
//! into `pending` (the consumer's position has moved past them), and stay
//! there until they are applied or dead-lettered, whatever pauses the loop.
//! A hint that can never be applied (unreadable, from the future, or refused
//! by MongoDB for good) moves to the node's dead-letter topic with its
//! reason, so the queue behind it drains. Any other failure keeps the batch
//! and retries it.
//!
//! Nothing stalls silently: a replay with nothing of its own to apply keeps
//! looking at its node's whole queue (every partition, whoever holds it).
//! If the queue is not empty and no instance has committed anything for
//! `REPLAY_STALL_MS` (longer than a session timeout plus a rebalance), the
//! group is not handing the work to anyone alive: the replay says so, counts
//! it (`regiondb_replay_stalls_total`) and re-joins the group with a fresh
//! consumer, which makes the broker hand the partitions out again. If the
//! queue still stands still a stall period later (a member the broker
//! still counts holds partitions and does nothing with them), the replay
//! reads the uncommitted hints outside the group and applies them, so the
//! node gets its writes whatever the group does; the group's own replay
//! applies them again later (a no-op) and commits. While the queue stands
//! still, the two go on by turns, a stall period apart: a group that stays
//! wedged is asked again and again to hand its partitions out.

mod apply;
pub mod dead_letters;
mod stall;

use stall::StallWatch;

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::backlog::Backlogs;
use crate::config::ReplayConfig;
use crate::domain::NodeId;
use crate::hints::{HintConsumer, HintLog, ParkedHint, QueueState};
use crate::retry::backoff;
use crate::store::NodeStore;

/// How long a replay waits for hints its consumer already fetched before
/// asking Kafka whether its queue is empty.
const QUICK_FILL: Duration = Duration::from_millis(50);
/// How often a replay with nothing to apply looks whether the rest of its
/// node's queue (other instances' partitions) has been applied.
const BACKLOG_RECHECK: Duration = Duration::from_secs(1);
/// How long a replay whose commit failed polls its consumer for rebalances.
const REBALANCE_POLL: Duration = Duration::from_millis(100);

pub struct Replay {
    pub node: NodeId,
    pub store: NodeStore,
    pub hints: HintConsumer,
    /// For the dead-letter topic.
    pub log: std::sync::Arc<HintLog>,
    pub backlogs: std::sync::Arc<Backlogs>,
    /// Open while the node is available and its replay not paused (see
    /// `nodes::pause`).
    pub gate: watch::Receiver<bool>,
    pub config: ReplayConfig,
    /// Told when this node's queue drained after a replay (automatic repair).
    pub drained: Option<crate::backlog::DrainedQueues>,
    /// The cluster's clock: a hint is from the future only beyond it.
    pub clock: std::sync::Arc<crate::domain::VersionClock>,
}

/// What the replay does after waiting with nothing pending.
enum Idle {
    /// Look at the queue again (the status changed, time to recheck).
    Again,
    /// Hints arrived: apply them.
    Apply,
    /// Reading hints failed: pause, then again.
    Failed,
    Stop,
}

/// What became of the head of `pending`.
enum Step {
    /// Applied (or dead-lettered) and committed: drop it from `pending`.
    Done,
    /// Not applied; try again after a pause.
    Retry,
    /// MongoDB did not answer in time: try again after a pause, with half
    /// as many hints.
    TooSlow,
    /// Try again at once, one hint at a time, to find the one MongoDB refuses.
    Narrow,
    /// Applied, but Kafka did not take the commit (perhaps the group moved
    /// on without this member): let the consumer catch up on rebalances,
    /// then apply again (a no-op) and commit what is still ours.
    CommitFailed,
}

/// What the loop does next.
enum Flow {
    /// Go on with this round.
    Go,
    /// Start the next round.
    Again,
    Stop,
}

/// What a replay carries from one round to the next.
struct Cursor {
    /// Hints taken from Kafka and not yet applied, in consumption order.
    pending: Vec<ParkedHint>,
    /// How many of them go into one apply: halved when the node is too
    /// slow for a batch, doubled back after each success, so a slow node
    /// still makes progress instead of timing out on the same batch.
    chunk: usize,
    delays: Box<dyn Iterator<Item = Duration> + Send>,
    /// Whether hints were applied since the queue was last seen empty.
    replayed: bool,
    watch: StallWatch,
}

impl Replay {
    /// Runs until `shutdown`. A batch being applied when shutdown comes is
    /// finished and committed first.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut cursor = Cursor {
            pending: Vec::new(),
            chunk: self.config.batch_size,
            delays: Box::new(backoff()),
            replayed: false,
            watch: StallWatch::new(Instant::now()),
        };
        loop {
            if !self.wait_until_available(&shutdown).await {
                break;
            }
            match self.have_hints(&mut cursor, &shutdown).await {
                Flow::Go => {}
                Flow::Again => continue,
                Flow::Stop => break,
            }
            if !*self.gate.borrow() {
                // Switched off or paused while hints were being read (a
                // wait that both ended may report either): they stay
                // pending until the gate opens again.
                continue;
            }
            match self.apply_head(&mut cursor, &shutdown).await {
                Flow::Go => {}
                Flow::Again => continue,
                Flow::Stop => break,
            }
            let throttle = tokio::time::sleep(self.config.throttle);
            if !self.config.throttle.is_zero()
                && shutdown.run_until_cancelled(throttle).await.is_none()
            {
                break;
            }
        }
        tracing::info!(node = %self.node, unapplied = cursor.pending.len(), "replay stopped");
    }

    /// Makes sure hints are pending: whatever the consumer already holds
    /// comes first (asking Kafka how much is left costs several requests,
    /// worth making only once nothing more arrives), else the idle wait.
    async fn have_hints(&mut self, c: &mut Cursor, shutdown: &CancellationToken) -> Flow {
        if !c.pending.is_empty() {
            return Flow::Go;
        }
        let quick = self.hints.fill(&mut c.pending, self.config.batch_size);
        let _ = tokio::time::timeout(QUICK_FILL, quick).await;
        self.took(&mut c.pending);
        if !c.pending.is_empty() {
            return Flow::Go;
        }
        match self
            .idle(&mut c.pending, &mut c.replayed, &mut c.watch, shutdown)
            .await
        {
            Idle::Apply => Flow::Go,
            Idle::Again => Flow::Again,
            Idle::Stop => Flow::Stop,
            Idle::Failed if self.pause(&mut c.delays, shutdown).await => Flow::Again,
            Idle::Failed => Flow::Stop,
        }
    }

    /// Applies and commits a prefix of what was consumed (so committing its
    /// positions never skips an unapplied hint), and adapts to the outcome.
    async fn apply_head(&mut self, c: &mut Cursor, shutdown: &CancellationToken) -> Flow {
        let max = self.config.batch_size;
        let take = c.chunk.min(c.pending.len());
        let step = self.apply_and_commit(&mut c.pending[..take]).await;
        match step {
            Step::Done => {
                c.pending.drain(..take);
                c.replayed = true;
                c.delays = Box::new(backoff());
                c.chunk = c.chunk.saturating_mul(2).min(max);
                return Flow::Go;
            }
            Step::Narrow => {
                c.chunk = 1;
                return Flow::Again;
            }
            Step::TooSlow => c.chunk = (take / 2).max(1),
            Step::Retry | Step::CommitFailed => {}
        }
        if !self.pause(&mut c.delays, shutdown).await {
            return Flow::Stop;
        }
        if matches!(step, Step::CommitFailed) {
            // One short poll: serves any rebalance (taking at most one more
            // hint), then drops what moved away.
            let one_more = c.pending.len() + 1;
            let poll = self.hints.fill(&mut c.pending, one_more);
            let _ = tokio::time::timeout(REBALANCE_POLL, poll).await;
            self.took(&mut c.pending);
        }
        Flow::Again
    }

    /// With nothing pending: confirms a drained queue (telling automatic
    /// repair if hints were `replayed` since), recovers a stalled one, then
    /// waits for hints, or for a reason to look at the queue again.
    async fn idle(
        &mut self,
        pending: &mut Vec<ParkedHint>,
        replayed: &mut bool,
        watch: &mut StallWatch,
        shutdown: &CancellationToken,
    ) -> Idle {
        let node = self.node.clone();
        let looking = Instant::now();
        let (caught_up, queue) = self.look_at_queue().await;
        if caught_up && *replayed {
            *replayed = false;
            if let Some(drained) = &self.drained {
                drained.node_drained(&node);
            }
        }
        if let Some(queue) = queue
            && self.recover_if_stalled(watch, queue, looking).await
        {
            return Idle::Again;
        }
        // Whatever `fill` took before another arm won stays in `pending`.
        let got = tokio::select! {
            _ = shutdown.cancelled() => return Idle::Stop,
            _ = gate_closed(&mut self.gate) => None,
            // Hints in partitions other instances hold arrive elsewhere:
            // while any are pending, look again now and then, so reads come
            // back to this node once they are applied.
            _ = tokio::time::sleep(BACKLOG_RECHECK), if !self.backlogs.caught_up(&node) => None,
            // Another instance queued a hint for this node: look.
            () = self.backlogs.fell_behind(&node) => None,
            got = self.hints.fill(pending, self.config.batch_size) => Some(got),
        };
        self.took(pending);
        match got {
            None => Idle::Again,
            Some(Err(e)) => {
                tracing::warn!(%node, error = %e, "reading hints failed");
                Idle::Failed
            }
            Some(Ok(())) => Idle::Apply,
        }
    }

    /// After a poll of the consumer: drops the hints of partitions a
    /// rebalance took from this instance since they were read (never
    /// applied here, they are read again by their new owner from the
    /// group's committed offset); if hints remain (possibly queued by
    /// another instance), reads must not trust this node until they are
    /// applied.
    fn took(&self, pending: &mut Vec<ParkedHint>) {
        let before = pending.len();
        pending.retain(|h| self.hints.still_ours(h));
        if pending.len() < before {
            tracing::info!(node = %self.node, dropped = before - pending.len(),
                "hints of revoked partitions left to their new owner");
        }
        if !pending.is_empty() {
            self.backlogs.mark_behind(&self.node);
        }
    }

    /// With nothing pending: if the topic holds nothing uncommitted, the
    /// node has caught up as of the epoch read before looking. Answers
    /// whether it is caught up, and the queue if it was looked at.
    async fn look_at_queue(&self) -> (bool, Option<QueueState>) {
        if self.backlogs.caught_up(&self.node) {
            return (true, None);
        }
        let epoch = self.backlogs.epoch(&self.node);
        match self.hints.backlog().await {
            Ok(queue) if queue.queued == 0 => {
                self.backlogs.confirm(&self.node, epoch);
                tracing::debug!(node = %self.node, "caught up");
                (true, Some(queue))
            }
            Ok(queue) => (false, Some(queue)),
            Err(e) => {
                tracing::debug!(node = %self.node, error = %e, "cannot read the backlog");
                (false, None)
            }
        }
    }

    /// Waits while the node is unavailable or its replay paused, with the
    /// consumer's fetching held meanwhile. Returns false on shutdown.
    async fn wait_until_available(&mut self, shutdown: &CancellationToken) -> bool {
        if !*self.gate.borrow() {
            self.hints.hold(true).await;
        }
        let waited = shutdown.run_until_cancelled(self.gate.wait_for(|open| *open));
        // A closed channel means the registry is gone: we are shutting down.
        let open = matches!(waited.await, Some(Ok(_)));
        if open {
            self.hints.hold(false).await;
        }
        open
    }

    /// Sleeps the next backoff delay; wakes early if the gate changes.
    /// Returns false on shutdown.
    async fn pause(
        &mut self,
        delays: &mut impl Iterator<Item = Duration>,
        shutdown: &CancellationToken,
    ) -> bool {
        let delay = delays.next().unwrap_or(Duration::from_secs(5));
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
            _ = self.gate.changed() => true,
        }
    }
}

async fn gate_closed(gate: &mut watch::Receiver<bool>) {
    if gate.wait_for(|open| !*open).await.is_err() {
        // Sender gone (shutdown): never resolve; the shutdown branch wins.
        std::future::pending::<()>().await;
    }
}
