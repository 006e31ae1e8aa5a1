//! The node overview: every node's status, queue size and hosted replicas,
//! for `GET /nodes`, the pages, the live event stream and the metrics.
//!
//! One shared overview serves every page, stream and scrape: a background
//! task re-reads the queue sizes from Kafka every second (they change with
//! writes and replays, which announce nothing) and at once on any status
//! change, so the number of open pages and streams never multiplies the
//! queries to Kafka. Statuses are overlaid fresh from memory on each read.
//! `GET /nodes` alone reads Kafka for its answer (exact counts for
//! scripts; bounded like every read by the reads class limit).

use std::sync::Arc;
use std::time::Duration;

use futures::future::{join_all, select_all};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::domain::{
    DrainTracker, NodeId, NodeView, QueuePoint, QueueSample, RegionMap, lag_seconds, now_millis,
    rfc3339,
};
use crate::hints::{HintLog, QueueDetail};
use crate::nodes::NodeStatuses;

/// How often the queue sizes are re-read (and at once on any status change),
/// whether or not a page or stream is open: the drain rates and the metrics
/// are computed from these samples.
const QUEUE_POLL: Duration = Duration::from_secs(1);
/// A queue size not read within this is reported as unknown (null): status
/// calls and pages must not hang on a broker outage.
const QUEUE_SIZE_WAIT: Duration = Duration::from_secs(1);

/// A figure read from Kafka, or `None` if it could not be read within
/// [`QUEUE_SIZE_WAIT`].
async fn count_or_unknown<T>(
    node: &NodeId,
    what: &str,
    count: impl Future<Output = Result<T, crate::hints::HintError>>,
) -> Option<T> {
    match tokio::time::timeout(QUEUE_SIZE_WAIT, count).await {
        Ok(Ok(n)) => Some(n),
        Ok(Err(e)) => {
            tracing::debug!(%node, error = %e, "cannot read the {what}");
            None
        }
        Err(_) => None,
    }
}

pub struct Monitor {
    regions: RegionMap,
    statuses: Arc<NodeStatuses>,
    hints: Arc<HintLog>,
    live: watch::Sender<Vec<NodeView>>,
    /// Each node's rate window and chart (see `domain::drain`).
    drains: std::sync::Mutex<std::collections::HashMap<NodeId, DrainTracker>>,
}

impl Monitor {
    pub fn new(regions: RegionMap, statuses: Arc<NodeStatuses>, hints: Arc<HintLog>) -> Monitor {
        Monitor {
            regions,
            statuses,
            hints,
            live: watch::Sender::new(Vec::new()),
            drains: Default::default(),
        }
    }

    /// The shared overview (queue sizes at most about a second old),
    /// with the current statuses. Reads Kafka only before the background
    /// task's first round.
    pub async fn current(&self) -> Vec<NodeView> {
        let cached = self.live.borrow().clone();
        if cached.is_empty() {
            return self.snapshot().await;
        }
        cached
            .into_iter()
            .map(|mut view| {
                self.overlay_status(&mut view);
                view
            })
            .collect()
    }

    /// A fresh overview of every node, in region order.
    pub async fn snapshot(&self) -> Vec<NodeView> {
        join_all(self.regions.nodes().map(|node| self.view(node))).await
    }

    /// Sets the view's status, source and time from the registry's view,
    /// and its catch-up state.
    fn overlay_status(&self, view: &mut NodeView) {
        let backlogs = self.statuses.backlogs();
        view.caught_up = backlogs.caught_up(&view.node_id);
        view.lost_data = backlogs.lost(&view.node_id);
        view.replay_paused = self.statuses.paused_since(&view.node_id).is_some();
        let (source, since) = self.statuses.source(&view.node_id);
        view.status = self.statuses.status(&view.node_id);
        view.source = source;
        view.since = since.and_then(rfc3339);
    }

    pub async fn view(&self, node: &NodeId) -> NodeView {
        let (detail, dead_letters) = tokio::join!(
            count_or_unknown(node, "queue", self.hints.queue_detail(node)),
            self.dead_letters(node)
        );
        let hosts = (self.regions.replicas_hosted_by(node))
            .map(|r| r.id.clone())
            .collect();
        let mut view = NodeView {
            queued: detail.map(|d| d.queued),
            dead_letters,
            ..NodeView::new(node.clone(), hosts)
        };
        self.overlay_status(&mut view);
        self.drain(&mut view, detail);
        view
    }

    /// Sets the view's age, rate and estimate from one look at its queue.
    fn drain(&self, view: &mut NodeView, detail: Option<QueueDetail>) {
        let now = now_millis();
        let sample = QueueSample {
            at_ms: now,
            queued: detail.map(|d| d.queued),
            committed: detail.map(|d| d.committed),
            available: view.status.is_available(),
            paused: view.replay_paused,
        };
        let drain = {
            let mut drains = self.drains.lock().unwrap_or_else(|e| e.into_inner());
            drains
                .entry(view.node_id.clone())
                .or_default()
                .observe(sample)
        };
        let oldest = detail.and_then(|d| d.oldest_ms);
        view.oldest_queued_at = oldest.and_then(rfc3339);
        view.lag_seconds = lag_seconds(now, view.queued, oldest);
        view.replay_rate = drain.rate;
        view.drain_eta_seconds = drain.eta_seconds;
        view.drain_eta_note = drain.note;
    }

    /// `node`'s queue over the last minutes (for the charts), oldest first.
    pub fn history(&self, node: &NodeId) -> Vec<QueuePoint> {
        let drains = self.drains.lock().unwrap_or_else(|e| e.into_inner());
        drains
            .get(node)
            .map(DrainTracker::history)
            .unwrap_or_default()
    }

    pub async fn queued(&self, node: &NodeId) -> Option<u64> {
        count_or_unknown(node, "queue size", self.hints.queued(node)).await
    }

    pub async fn dead_letters(&self, node: &NodeId) -> Option<u64> {
        count_or_unknown(node, "dead letters", self.hints.dead_letters(node)).await
    }

    /// Receives the overview each time it changes from now on.
    pub fn subscribe(&self) -> watch::Receiver<Vec<NodeView>> {
        self.live.subscribe()
    }

    /// Keeps the shared overview fresh.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut statuses = self.statuses.watch_all();
        loop {
            let any_change = async {
                if statuses.is_empty() {
                    std::future::pending::<()>().await;
                }
                let _ = select_all(statuses.iter_mut().map(|rx| Box::pin(rx.changed()))).await;
            };
            let fresh = self.snapshot().await;
            self.live.send_if_modified(|current| {
                let changed = *current != fresh;
                *current = fresh;
                changed
            });
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = any_change => {}
                _ = tokio::time::sleep(QUEUE_POLL) => {}
            }
        }
    }
}
