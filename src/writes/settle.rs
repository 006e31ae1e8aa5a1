//! The settler: the single writes' placed records, settled in batches
//! (`moves`), and the sweep that settles what a crashed instance left
//! unsettled in Redis (`nodes::unsettled`).

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::WritePath;
use super::moves::PlacedRecord;
use crate::domain::{NodeId, Region, Text, Version};
use crate::nodes::Unsettled;

/// Records settled per batch at most.
const SETTLE_BATCH: usize = 500;
/// How soon records that met an unreadable region are looked at again.
const RETRY_UNREAD: std::time::Duration = std::time::Duration::from_secs(2);
/// Records kept for another look at most (beyond, the sweep finds them in
/// Redis).
const MAX_UNSETTLED: usize = 10_000;
/// How often one instance settles the writes left unsettled in Redis.
pub const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(10);
/// How far back, after Redis lost its data, the writes are read from the
/// nodes and settled again.
pub const RECENT_AFTER_LOSS: std::time::Duration = std::time::Duration::from_secs(600);
/// How long a write stays unsettled before the sweep takes it over (its
/// own settler normally settles it within milliseconds).
pub const SWEEP_AGE: std::time::Duration = std::time::Duration::from_secs(15);

impl WritePath {
    /// Settles the moves of the records single writes queue, a batch at a
    /// time: whatever has queued up while the last batch was settled goes in
    /// the next, so under load one lookup per region serves many writes.
    /// On `shutdown`, settles what is left and returns.
    pub async fn settle(
        self: Arc<Self>,
        mut queue: mpsc::UnboundedReceiver<PlacedRecord>,
        shutdown: CancellationToken,
    ) {
        // Records a region of which could not be read: looked at again.
        let mut again: Vec<PlacedRecord> = Vec::new();
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let wait = tokio::time::sleep(RETRY_UNREAD);
            let first = tokio::select! {
                first = queue.recv() => first,
                () = wait, if !again.is_empty() => None,
                _ = sweep.tick() => {
                    self.sweep().await;
                    continue;
                }
                () = shutdown.cancelled() => break,
            };
            let mut batch: Vec<PlacedRecord> = first.into_iter().collect();
            if batch.is_empty() {
                batch = std::mem::take(&mut again);
                // Recorded again at each look: Redis may have lost them
                // (a FLUSHALL), and this instance may not outlive them.
                self.note_unsettled(&batch).await;
            }
            while batch.len() < SETTLE_BATCH {
                match queue.try_recv() {
                    Ok(more) => batch.push(more),
                    Err(_) => break,
                }
            }
            again.extend(self.settle_recorded(&batch).await);
            again.truncate(MAX_UNSETTLED);
        }
        queue.close();
        let mut rest = again;
        while let Ok(more) = queue.try_recv() {
            rest.push(more);
        }
        let _ = self.settle_recorded(&rest).await;
    }

    /// Records `placed` as unsettled in Redis, before the writes are
    /// answered: a crash after the answer leaves them to the sweep.
    pub async fn note_unsettled(&self, placed: &[PlacedRecord]) {
        if self.regions.regions().len() < 2 {
            return;
        }
        let writes: Vec<Unsettled> = placed.iter().map(unsettled).collect();
        if let Err(e) = self.statuses.note_unsettled(&writes).await {
            tracing::warn!(error = %e, "cannot record unsettled writes; this instance settles them");
        }
    }

    /// [`WritePath::settle_moves`], then forgets in Redis the records it
    /// settled; answers the others.
    pub async fn settle_recorded(&self, placed: &[PlacedRecord]) -> Vec<PlacedRecord> {
        let left = self.settle_moves(placed).await;
        let done: Vec<Unsettled> = (placed.iter())
            .filter(|p| !left.iter().any(|l| l.id == p.id && l.version == p.version))
            .map(unsettled)
            .collect();
        if let Err(e) = self.statuses.settled(&done).await {
            tracing::debug!(error = %e, "settled writes not forgotten yet; the sweep will");
        }
        left
    }

    /// Settles every record written in the last [`RECENT_AFTER_LOSS`]: the
    /// unsettled ones among them are no longer recorded in Redis (settling
    /// the others changes nothing). Each region is read from a copy that
    /// holds all of its writes: available, caught up and not flagged as
    /// having lost data (a copy still replaying its queue, or emptied,
    /// lacks the writes its hints or its repair bring, and their moves
    /// would never be settled). Until every region has such a copy, nothing
    /// is read and the next sweep tries again (false).
    async fn settle_recent(&self) -> bool {
        let locate = self.locate();
        let mut sources = Vec::new();
        for region in self.regions.regions() {
            let Some((node, collection, _)) = locate.sure_copies(region).into_iter().next() else {
                tracing::debug!(region = %region.id, "recent writes not settled again yet: \
                    no copy of the region is available and caught up");
                return false;
            };
            sources.push((region, node, collection));
        }
        let mut settled = 0;
        for (region, node, collection) in sources {
            match self.settle_recent_of(region, node, &collection).await {
                Some(n) => settled += n,
                None => return false,
            }
        }
        if settled > 0 {
            tracing::warn!(
                settled,
                "redis lost its record of unsettled writes: settled the recent ones again"
            );
        }
        true
    }

    /// [`WritePath::settle_recent`] of one region, read from `collection`
    /// on `node`: how many records, or `None` if they could not be read.
    async fn settle_recent_of(
        &self,
        region: &Region,
        node: &NodeId,
        collection: &str,
    ) -> Option<usize> {
        let store = self.stores.get(node)?;
        let window = i64::try_from(RECENT_AFTER_LOSS.as_micros()).unwrap_or(i64::MAX);
        let since = self.clock.now().saturating_sub(window);
        let mut after: Option<String> = None;
        let mut settled = 0;
        loop {
            let page = match (store.recent_page(collection, after.as_deref(), since, SETTLE_BATCH))
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(region = %region.id, error = %e, "recent writes unread; the next sweep tries again");
                    return None;
                }
            };
            after = page.last().map(|(id, _)| id.clone());
            let placed: Vec<PlacedRecord> = (page.iter())
                .filter_map(|(id, v)| {
                    Some(PlacedRecord {
                        id: Text::parse("customer_id", id).ok()?,
                        region: region.id.clone(),
                        version: Version::new(*v),
                    })
                })
                .collect();
            settled += placed.len();
            // What cannot be settled yet is recorded for the sweep.
            let left = self.settle_recorded(&placed).await;
            self.note_unsettled(&left).await;
            if page.len() < SETTLE_BATCH {
                return Some(settled);
            }
        }
    }

    /// Settles the writes left unsettled in Redis for longer than
    /// [`SWEEP_AGE`] (their instance crashed before settling them), if this
    /// instance holds the sweep's lock. After Redis lost its data (and with
    /// it that record: `regiondb:resettle` says so), first every record
    /// written in the last [`RECENT_AFTER_LOSS`], read from the nodes
    /// themselves.
    async fn sweep(&self) {
        let me = format!("{}-{:p}", std::process::id(), self);
        match self.statuses.claim_move_sweep(&me, SWEEP_EVERY).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => return tracing::debug!(error = %e, "cannot take the move-sweep lock"),
        }
        if let Ok(true) = self.statuses.resettle_wanted().await
            && self.settle_recent().await
            && let Err(e) = self.statuses.resettled().await
        {
            tracing::debug!(error = %e, "recent writes settled; the marker stays until the next sweep");
        }
        let old = match self
            .statuses
            .unsettled_older_than(SWEEP_AGE, SETTLE_BATCH)
            .await
        {
            Ok(old) => old,
            Err(e) => return tracing::debug!(error = %e, "cannot read unsettled writes"),
        };
        let placed: Vec<PlacedRecord> = old.iter().filter_map(placed_record).collect();
        if placed.is_empty() {
            return;
        }
        let left = self.settle_recorded(&placed).await;
        tracing::info!(
            swept = placed.len(),
            unsettled = left.len(),
            "settled the moves of writes another instance left unsettled"
        );
    }
}

/// What Redis keeps of a placed record until its moves are settled.
fn unsettled(p: &PlacedRecord) -> Unsettled {
    Unsettled {
        id: p.id.as_str().to_owned(),
        region: p.region.as_str().to_owned(),
        version: p.version.get(),
    }
}

/// The placed record an unsettled write in Redis stands for (`None` for
/// one that does not parse: nothing to settle).
fn placed_record(u: &Unsettled) -> Option<PlacedRecord> {
    Some(PlacedRecord {
        id: Text::parse("customer_id", &u.id).ok()?,
        region: NodeId::parse(&u.region).ok()?,
        version: Version::new(u.version),
    })
}
