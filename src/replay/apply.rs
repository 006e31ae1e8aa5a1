//! Applying the head of a replay's pending hints: what can never be
//! applied goes to the dead-letter topic, the rest to MongoDB with
//! last-writer-wins, and only then are the offsets committed.

use super::{Replay, Step};
use crate::domain::CustomerCopy;
use crate::hints::ParkedHint;
use crate::store::StoreError;

impl Replay {
    /// Dead-letters what can never be applied, applies the rest, commits.
    pub(super) async fn apply_and_commit(&self, head: &mut [ParkedHint]) -> Step {
        let node = &self.node;
        let horizon = self.clock.horizon();
        let mut copies: Vec<CustomerCopy> = Vec::new();
        for hint in head.iter_mut() {
            if hint.dead_lettered {
                continue;
            }
            match applicable(hint, horizon) {
                Ok(copy) => copies.push(copy.clone()),
                Err(reason) => {
                    if !self.dead_letter(hint, &reason).await {
                        return Step::Retry;
                    }
                }
            }
        }
        if let Err(e) = self.store.apply(&copies).await
            && let Some(step) = self.not_applied(head, copies.len(), e).await
        {
            return step;
        }
        match self.hints.commit(head).await {
            Ok(()) => {
                tracing::info!(%node, hints = head.len(), "replayed hints");
                crate::metrics::hints_replayed(node.as_str(), copies.len());
                Step::Done
            }
            // Applied but not committed: apply again (a no-op) and commit.
            Err(e) => {
                tracing::warn!(%node, error = %e, "offset commit failed after apply; will retry");
                Step::CommitFailed
            }
        }
    }

    /// After MongoDB did not take `copies` copies of `head`: what to do
    /// instead, or `None` when the one refused hint was dead-lettered and
    /// the batch may be committed.
    async fn not_applied(
        &self,
        head: &mut [ParkedHint],
        copies: usize,
        e: StoreError,
    ) -> Option<Step> {
        let node = &self.node;
        if e.is_permanent() && copies > 1 {
            tracing::warn!(%node, error = %e, hints = copies,
                "a hint in this batch was refused; applying one by one");
            return Some(Step::Narrow);
        }
        if e.is_permanent() {
            let Some(hint) = head.iter_mut().find(|h| h.copy.is_ok() && !h.dead_lettered) else {
                return Some(Step::Retry);
            };
            let reason = format!("refused by MongoDB: {e}");
            return (!self.dead_letter(hint, &reason).await).then_some(Step::Retry);
        }
        tracing::warn!(%node, error = %e, hints = copies,
            "replay batch not applied; will retry");
        Some(if e.is_timeout() {
            Step::TooSlow
        } else {
            Step::Retry
        })
    }

    /// Moves one hint to the dead-letter topic; false if Kafka did not take
    /// it (the hint stays pending and is tried again).
    pub(super) async fn dead_letter(&self, hint: &mut ParkedHint, reason: &str) -> bool {
        let node = &self.node;
        match self.log.dead_letter(node, hint, reason).await {
            Ok(()) => {
                tracing::error!(%node, partition = hint.partition, offset = hint.offset,
                    %reason, "hint moved to the dead-letter topic");
                hint.dead_lettered = true;
                crate::metrics::dead_lettered(node.as_str());
                true
            }
            Err(e) => {
                tracing::warn!(%node, error = %e, "cannot dead-letter a hint yet");
                false
            }
        }
    }
}

/// The copy a hint carries, or why it can never be applied: unreadable, or
/// a version more than a minute past `horizon`, the cluster's clock (its
/// highest version floor, not this host's clock: see
/// `VersionClock::horizon`), which no instance of the cluster handed out.
pub(super) fn applicable(hint: &ParkedHint, horizon: i64) -> Result<&CustomerCopy, String> {
    match &hint.copy {
        Err(why) => Err(format!("unreadable hint: {why}")),
        Ok(copy) if copy.version.is_from_the_future(horizon) => Err(format!(
            "version {} is more than a minute ahead of the cluster's clock",
            copy.version.get()
        )),
        Ok(copy) => Ok(copy),
    }
}
