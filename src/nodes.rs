//! Node statuses: the Redis hash `node_statuses` is the truth; this process
//! keeps a local view of it so the write path never pays a Redis round trip.
//!
//! The view follows Redis three ways: our own writes update it at once; every
//! status write is announced on the `regiondb:node_statuses` channel and, where
//! the server allows it, Redis keyspace notifications announce writes made by
//! anyone else (`redis-cli HSET ...`); and the whole hash is re-read
//! periodically as a safety net. Each node's status is a `watch` channel so
//! the replay tasks wake the moment their node changes. A node seen
//! unavailable is marked as behind on its backlog at once (see `backlog`).
//!
//! Redis also keeps the version clock's two facts: the instance slot counter
//! and the version floor (see `domain::VersionClock`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::backlog::Backlogs;
use crate::domain::{NodeId, NodeStatus};

/// The hash holding every node's status (the seed's name).
pub const STATUS_HASH: &str = "node_statuses";
/// Announces every status write made through regiondb.
pub const CHANGE_CHANNEL: &str = "regiondb:node_statuses";
/// Counts instance starts; an instance's version slot is its number.
pub const INSTANCE_COUNTER: &str = "regiondb:instances";
/// Above every version any instance may have handed out.
pub const VERSION_FLOOR: &str = "regiondb:version_floor";
/// Bound on one Redis call: status writes and reads must not hang.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// Without keyspace notifications, changes made with redis-cli are only seen
/// by the periodic re-read; this keeps the "within 1 s" promise.
const RESYNC_WITHOUT_NOTIFICATIONS: Duration = Duration::from_millis(400);

#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct StatusError(#[from] redis::RedisError);

pub struct NodeStatuses {
    client: redis::Client,
    conn: ConnectionManager,
    views: BTreeMap<NodeId, watch::Sender<NodeStatus>>,
    backlogs: Arc<Backlogs>,
}

impl NodeStatuses {
    /// Connects, sets every node that has no status yet to `available`
    /// (never overwriting an existing one) and loads the current statuses.
    pub async fn connect<'a>(
        url: &str,
        nodes: impl IntoIterator<Item = &'a NodeId>,
        backlogs: Arc<Backlogs>,
    ) -> Result<NodeStatuses, StatusError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(2);
        let mut conn = client.get_connection_manager_with_config(config).await?;
        let mut views = BTreeMap::new();
        for node in nodes {
            let _: bool = conn
                .hset_nx(STATUS_HASH, node.as_str(), NodeStatus::Available.as_str())
                .await?;
            views.insert(node.clone(), watch::Sender::new(NodeStatus::Available));
        }
        let statuses = NodeStatuses {
            client,
            conn,
            views,
            backlogs,
        };
        statuses.resync().await?;
        Ok(statuses)
    }

    /// This process's view of a node's status (no I/O). Unknown nodes are
    /// unavailable: nothing is ever written to a node we do not know.
    pub fn status(&self, node: &NodeId) -> NodeStatus {
        self.views
            .get(node)
            .map_or(NodeStatus::Unavailable, |v| *v.borrow())
    }

    /// Every node with its status, in node-id order.
    pub fn all(&self) -> Vec<(NodeId, NodeStatus)> {
        self.views
            .iter()
            .map(|(id, v)| (id.clone(), *v.borrow()))
            .collect()
    }

    /// A receiver that sees every change of `node`'s status.
    pub fn watch(&self, node: &NodeId) -> Option<watch::Receiver<NodeStatus>> {
        self.views.get(node).map(watch::Sender::subscribe)
    }

    /// A receiver that is marked changed whenever *any* node's status changes.
    pub fn watch_all(&self) -> Vec<watch::Receiver<NodeStatus>> {
        self.views.values().map(watch::Sender::subscribe).collect()
    }

    /// Writes a status to Redis, announces it, and applies it locally.
    pub async fn set(&self, node: &NodeId, status: NodeStatus) -> Result<(), StatusError> {
        crate::metrics::timed("redis", "set_status", self.write_status(node, status)).await
    }

    async fn write_status(&self, node: &NodeId, status: NodeStatus) -> Result<(), StatusError> {
        let mut conn = self.conn.clone();
        let written: Result<i64, _> = conn.hset(STATUS_HASH, node.as_str(), status.as_str()).await;
        if let Err(e) = written {
            // A connection broken by a Redis restart is only noticed on use;
            // the manager reconnects, and HSET is idempotent: try once more.
            if !(e.is_io_error() || e.is_connection_dropped()) {
                return Err(e.into());
            }
            tracing::debug!(error = %e, "redis connection lost; retrying the status write");
            let _: i64 = conn
                .hset(STATUS_HASH, node.as_str(), status.as_str())
                .await?;
        }
        self.apply_local(node, status);
        let announced: Result<i64, _> = conn
            .publish(CHANGE_CHANNEL, format!("{node}={status}"))
            .await;
        if let Err(e) = announced {
            // The write is in Redis; other instances pick it up on resync.
            tracing::warn!(%node, error = %e, "could not announce status change");
        }
        Ok(())
    }

    /// Re-reads the whole hash into the local view.
    pub async fn resync(&self) -> Result<(), StatusError> {
        let mut conn = self.conn.clone();
        let stored: HashMap<String, String> = conn.hgetall(STATUS_HASH).await?;
        for node in self.views.keys() {
            let status = match stored.get(node.as_str()) {
                // Deleted by hand: the start-up default.
                None => NodeStatus::Available,
                Some(raw) => raw.parse().unwrap_or_else(|_| {
                    tracing::warn!(%node, value = %raw,
                        "unrecognised status in redis; treating the node as unavailable");
                    NodeStatus::Unavailable
                }),
            };
            self.apply_local(node, status);
        }
        Ok(())
    }

    /// A number for this instance, different from every other running
    /// instance's as long as fewer than 2^64 have started.
    pub async fn claim_instance_number(&self) -> Result<u64, StatusError> {
        let mut conn = self.conn.clone();
        Ok(conn.incr(INSTANCE_COUNTER, 1).await?)
    }

    /// The highest version floor any instance has reserved (0 if none).
    pub async fn version_floor(&self) -> Result<i64, StatusError> {
        let mut conn = self.conn.clone();
        let floor: Option<i64> = conn.get(VERSION_FLOOR).await?;
        Ok(floor.unwrap_or(0))
    }

    /// Raises the version floor to `to` unless it is higher already.
    pub async fn raise_version_floor(&self, to: i64) -> Result<(), StatusError> {
        // Lua numbers are doubles: exact for versions (below 2^53).
        let script = redis::Script::new(
            "local cur = tonumber(redis.call('GET', KEYS[1]) or '0') \
             if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end \
             return 0",
        );
        let mut conn = self.conn.clone();
        let _: i64 = script
            .key(VERSION_FLOOR)
            .arg(to)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StatusError> {
        let mut conn = self.conn.clone();
        let ping = async {
            let _: String = redis::cmd("PING").query_async(&mut conn).await?;
            Ok(())
        };
        crate::metrics::timed("redis", "ping", ping).await
    }

    fn apply_local(&self, node: &NodeId, status: NodeStatus) {
        if !status.is_available() {
            // Before anyone can see it available again: whatever is queued
            // meanwhile must be replayed before reads trust the node.
            self.backlogs.mark_behind(node);
        }
        if let Some(view) = self.views.get(node) {
            let changed = view.send_if_modified(|current| {
                let changed = *current != status;
                *current = status;
                changed
            });
            if changed {
                tracing::info!(%node, %status, "node status changed");
            }
        }
    }

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
        let db = self.client.get_connection_info().redis_settings().db();
        let keyspace = format!("__keyspace@{db}__:{STATUS_HASH}");
        let mut delay = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            let subscribed = async {
                let mut pubsub = self.client.get_async_pubsub().await?;
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
