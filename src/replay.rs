//! The hinted-handoff replay: one task per node moves that node's parked
//! hints from its Kafka topic into its MongoDB database.
//!
//! The loop, while the node is available: take a batch of hints, apply it
//! (last-writer-wins, so a hint that is older than what the node holds
//! changes nothing), and only then commit the batch's offsets. A crash
//! anywhere replays at most the last batch again, which changes nothing
//! either: at-least-once delivery plus idempotent apply is an exactly-once
//! effect. A batch that fails to apply is kept and retried; flipping the node
//! to unavailable pauses the loop between batches.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::ReplayConfig;
use crate::domain::{NodeId, NodeStatus};
use crate::hints::{HintConsumer, ParkedHint};
use crate::retry::backoff;
use crate::store::NodeStore;

pub struct Replay {
    pub node: NodeId,
    pub store: NodeStore,
    pub hints: HintConsumer,
    pub status: watch::Receiver<NodeStatus>,
    pub config: ReplayConfig,
}

impl Replay {
    /// Runs until `shutdown`. A batch being applied when shutdown comes is
    /// finished and committed first.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let node = self.node.clone();
        let max = self.config.batch_size;
        // Hints taken from Kafka and not yet applied, in consumption order.
        let mut pending: Vec<ParkedHint> = Vec::new();
        // How many of them go into one apply: halved when the node is too
        // slow for a batch, doubled back after each success, so a slow node
        // still makes progress instead of timing out on the same batch.
        let mut chunk = max;
        let mut delays = backoff();
        loop {
            if !self.wait_until_available(&shutdown).await {
                break;
            }
            if pending.is_empty() {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    // Paused: whatever is not taken yet stays in Kafka.
                    _ = became_unavailable(&mut self.status) => continue,
                    got = self.hints.next_batch(max) => match got {
                        Ok(batch) => pending = batch,
                        Err(e) => {
                            tracing::warn!(%node, error = %e, "reading hints failed");
                            if !self.pause(&mut delays, &shutdown).await { break; }
                            continue;
                        }
                    },
                }
            }

            // A prefix of what was consumed, so committing its positions
            // never skips an unapplied hint.
            let take = chunk.min(pending.len());
            let head = &pending[..take];
            let copies: Vec<_> = head
                .iter()
                .filter_map(|h| match &h.copy {
                    Ok(copy) => Some(copy.clone()),
                    Err(why) => {
                        // Not written by regiondb: skipping it is the only way
                        // forward, so say so loudly.
                        tracing::error!(%node, partition = h.partition, offset = h.offset,
                            reason = %why, "skipping unreadable hint");
                        None
                    }
                })
                .collect();
            if let Err(e) = self.store.apply(&copies).await {
                if e.is_timeout() {
                    chunk = (chunk / 2).max(1);
                }
                tracing::warn!(%node, error = %e, hints = take, next = chunk,
                    "replay batch not applied; will retry");
                if !self.pause(&mut delays, &shutdown).await {
                    break;
                }
                continue;
            }
            delays = backoff();
            match self.hints.commit(head).await {
                Ok(()) => tracing::info!(%node, hints = take, "replayed hints"),
                // Applied but not committed: a later replay re-applies these,
                // which changes nothing.
                Err(e) => tracing::warn!(%node, error = %e, "offset commit failed after apply"),
            }
            pending.drain(..take);
            chunk = chunk.saturating_mul(2).min(max);
            if !self.config.throttle.is_zero()
                && shutdown
                    .run_until_cancelled(tokio::time::sleep(self.config.throttle))
                    .await
                    .is_none()
            {
                break;
            }
        }
        tracing::info!(%node, "replay stopped");
    }

    /// Returns false on shutdown.
    async fn wait_until_available(&mut self, shutdown: &CancellationToken) -> bool {
        let waited = shutdown
            .run_until_cancelled(self.status.wait_for(|s| s.is_available()))
            .await;
        // A closed channel means the registry is gone: we are shutting down.
        matches!(waited, Some(Ok(_)))
    }

    /// Sleeps the next backoff delay; wakes early if the status changes.
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
            _ = self.status.changed() => true,
        }
    }
}

async fn became_unavailable(status: &mut watch::Receiver<NodeStatus>) {
    if status.wait_for(|s| !s.is_available()).await.is_err() {
        // Sender gone (shutdown): never resolve; the shutdown branch wins.
        std::future::pending::<()>().await;
    }
}
