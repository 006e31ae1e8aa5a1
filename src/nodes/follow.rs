//! Following Redis: the change channel, keyspace notifications where the
//! server allows them, and a periodic re-read as a safety net.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{CHANGE_CHANNEL, NOTE_QUEUED_TIMEOUT, NodeStatuses, QUEUED_HASH, STATUS_HASH};
use crate::domain::NodeId;

/// Without keyspace notifications, changes made with redis-cli are only seen
/// by the periodic re-read; this keeps the "within 1 s" promise.
const RESYNC_WITHOUT_NOTIFICATIONS: Duration = Duration::from_millis(400);

impl NodeStatuses {
    /// Keeps the local view in step with Redis until `shutdown`: follows the
    /// change channel and keyspace notifications, and re-reads the hash every
    /// `every` (more often when notifications cannot be enabled).
    pub async fn follow(self: Arc<Self>, every: Duration, shutdown: CancellationToken) {
        let notifications = self.enable_keyspace_notifications().await;
        let every = if notifications {
            every
        } else {
            tracing::warn!(
                "redis keyspace notifications unavailable; re-reading node statuses every {:?}",
                RESYNC_WITHOUT_NOTIFICATIONS
            );
            every.min(RESYNC_WITHOUT_NOTIFICATIONS)
        };
        let periodic = {
            let this = self.clone();
            let shutdown = shutdown.clone();
            async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while shutdown.run_until_cancelled(tick.tick()).await.is_some() {
                    if let Err(e) = this.resync().await {
                        tracing::warn!(error = %e, "node status resync failed");
                    }
                }
            }
        };
        tokio::join!(periodic, self.listen(shutdown.clone()));
    }

    /// Subscribes to the change channel and the hash's keyspace channel and
    /// re-reads the hash on every message; reconnects with a backoff.
    async fn listen(&self, shutdown: CancellationToken) {
        let db = self.conn.db();
        let keyspace = format!("__keyspace@{db}__:{STATUS_HASH}");
        let mut delay = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            let subscribed = async {
                let mut pubsub = self.conn.pubsub().await?;
                pubsub.subscribe(CHANGE_CHANNEL).await?;
                pubsub.subscribe(&keyspace).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            match subscribed.await {
                Ok(mut pubsub) => {
                    delay = Duration::from_millis(100);
                    // Catch up on whatever changed while we were not listening.
                    let _ = self.resync().await;
                    let mut messages = pubsub.on_message();
                    loop {
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            msg = messages.next() => match msg {
                                Some(_) => {
                                    if let Err(e) = self.resync().await {
                                        tracing::warn!(error = %e, "node status resync failed");
                                    }
                                }
                                None => break,
                            },
                        }
                    }
                    tracing::warn!("redis subscription lost; reconnecting");
                }
                Err(e) => tracing::warn!(error = %e, "cannot subscribe to status changes"),
            }
            if shutdown
                .run_until_cancelled(tokio::time::sleep(delay))
                .await
                .is_none()
            {
                return;
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// Makes sure Redis publishes hash events (`K` + `h`), keeping whatever
    /// else the operator enabled. Managed Redis services may refuse CONFIG.
    async fn enable_keyspace_notifications(&self) -> bool {
        let mut conn = self.conn.clone();
        let current: Result<Vec<String>, _> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("notify-keyspace-events")
            .query_async(&mut conn)
            .await;
        let flags = match current {
            Ok(pair) => pair.get(1).cloned().unwrap_or_default(),
            Err(e) => {
                tracing::debug!(error = %e, "CONFIG GET refused");
                return false;
            }
        };
        let has = |c: char| flags.contains(c);
        if has('K') && (has('h') || has('A')) {
            return true;
        }
        let mut wanted = flags.clone();
        for c in ['K', 'h'] {
            if !wanted.contains(c) {
                wanted.push(c);
            }
        }
        let set: Result<(), _> = redis::cmd("CONFIG")
            .arg("SET")
            .arg("notify-keyspace-events")
            .arg(&wanted)
            .query_async(&mut conn)
            .await;
        set.is_ok()
    }
}

impl NodeStatuses {
    /// Tells every instance that a hint was queued for `node` (so none of
    /// them reads it as caught up before its replay applied the hint).
    /// Bounded and best effort: the hint is in Kafka either way.
    pub async fn note_queued(&self, node: &NodeId) {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.hincr(QUEUED_HASH, node.as_str(), 1)
            .ignore()
            .publish(CHANGE_CHANNEL, format!("{node} queued"))
            .ignore();
        let noted = tokio::time::timeout(NOTE_QUEUED_TIMEOUT, pipe.query_async::<()>(&mut conn));
        match noted.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(%node, error = %e, "could not share the queued hint"),
            Err(_) => tracing::debug!(%node, "sharing the queued hint timed out"),
        }
    }
}
