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
//! Next to each status, the hash `node_status_source` records who set it
//! (`manual` or `probe`), to what, and when. Status and record are always
//! written together, atomically. The failure detector's changes go through
//! one Lua script that also holds its per-node lease, so of several
//! instances only the lease holder decides a node's status (see `prober`).
//!
//! One job a file: `switch` (an operator's switch), `lease` (the failure
//! detector's lease and its status changes), `follow` (the change channel:
//! announcing, listening, re-reading), `notes` (telling every instance
//! that hints were queued), `pause` (an operator's pause of a node's
//! replay), `restore` (after Redis lost its data), `repair_state` (the
//! last repair's report and the automatic-repair lock), `unsettled`
//! (writes whose moves are not settled yet). The version clock's facts are
//! kept by `clock_lease` on this connection.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManagerConfig;
use tokio::sync::watch;

mod follow;
mod lease;
mod link;
mod notes;
mod pause;
mod repair_state;
mod restore;
mod switch;
mod unsettled;

pub use lease::ProbeReport;
pub use link::RedisLink;
pub use notes::QueuedNotes;
pub use pause::PAUSED_HASH;
pub use unsettled::{UNSETTLED, Unsettled};

use crate::backlog::Backlogs;
use crate::config::RedisConfig;
use crate::domain::{NodeId, NodeStatus, StatusRecord, StatusSource};

/// The hash holding every node's status (the seed's name).
pub const STATUS_HASH: &str = "node_statuses";
/// Who set each status, to what and when: JSON [`StatusRecord`]s.
pub const SOURCE_HASH: &str = "node_status_source";
/// Per node: which instance's failure detector may change its status.
pub const PROBE_LEASE_PREFIX: &str = "regiondb:probe_lease:";
/// The last repair's report (JSON), shown on the home page.
pub const LAST_REPAIR: &str = "regiondb:last_repair";
/// Held by the instance running an automatic repair; its expiry is the
/// shortest time between two automatic repairs.
pub const AUTO_REPAIR_LOCK: &str = "regiondb:auto_repair";
/// Held by the instance running an automatic purge of tombstones; its
/// expiry is the shortest time between two purges.
pub const PURGE_LOCK: &str = "regiondb:purge";
/// Nodes that lost their data and await their repair: node -> JSON
/// `{"reason", "at_ms"}` (see `recovery`).
pub const DATA_LOSS_HASH: &str = "regiondb:data_loss";
/// Each node's incarnation, as regiondb last saw its marker (see
/// `recovery`).
pub const IDENTITY_HASH: &str = "regiondb:node_identities";
/// Per node, how many hints any instance has queued for it: a count that
/// grew tells every instance the node has a backlog.
pub const QUEUED_HASH: &str = "regiondb:hints_queued";
/// How long a write waits to tell the other instances it queued a hint.
const NOTE_QUEUED_TIMEOUT: Duration = Duration::from_millis(250);
/// Announces every status write made through regiondb.
pub const CHANGE_CHANNEL: &str = "regiondb:node_statuses";
/// Bound on one Redis call: status writes and reads must not hang.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct StatusError(#[from] redis::RedisError);

impl StatusError {
    /// The setting to blame when Redis refused the connection for a reason
    /// no wait would change: a certificate not trusted (the CA file), or
    /// credentials refused (the URL's user and password).
    pub fn refused_setting(&self, config: &RedisConfig) -> Option<&'static str> {
        let message = self.0.to_string();
        if message.contains("certificate") {
            return Some(match config.ca_file {
                Some(_) => "REDIS_CA_FILE",
                None => "REDIS_CA_FILE (unset: the system's CA roots were used)",
            });
        }
        let refused = matches!(self.0.kind(), redis::ErrorKind::AuthenticationFailed)
            || message.contains("WRONGPASS")
            || message.contains("NOAUTH");
        refused.then_some("REDIS_URL (its user and password)")
    }

    /// For clients: no addresses or driver details (those are logged).
    pub fn short_reason(&self) -> String {
        if self.0.is_timeout() {
            "redis did not answer in time".into()
        } else if self.0.is_io_error()
            || self.0.is_connection_dropped()
            || self.0.is_connection_refusal()
        {
            "redis could not be reached".into()
        } else {
            "redis refused the command".into()
        }
    }
}

pub struct NodeStatuses {
    conn: RedisLink,
    views: BTreeMap<NodeId, watch::Sender<NodeStatus>>,
    /// The `node_status_source` records, as last read or written.
    records: std::sync::RwLock<HashMap<NodeId, StatusRecord>>,
    backlogs: Arc<Backlogs>,
    /// The hashes have been read once: from then on a missing status hash
    /// means Redis lost its data.
    loaded: std::sync::atomic::AtomicBool,
    /// Each node's marker as this instance last saw it (written back to
    /// Redis with the statuses if Redis loses them: see `restore`).
    identities: std::sync::RwLock<HashMap<NodeId, String>>,
    /// Telling the other instances about queued hints (see `notes`).
    notes: Arc<QueuedNotes>,
    /// Paused replays, and each replay's gate (see `pause`).
    pauses: pause::Pauses,
    /// Unsettled writes on their way to Redis (see `unsettled`).
    unsettled: unsettled::UnsettledNotes,
}

type Hash = HashMap<String, String>;

/// What one read of the hashes found.
struct Hashes {
    statuses: Hash,
    sources: Hash,
    lost: Hash,
    queued: HashMap<String, i64>,
    identities: Hash,
    paused: HashMap<String, i64>,
}

impl NodeStatuses {
    /// Connects; the statuses are read by [`NodeStatuses::load`].
    pub async fn connect<'a>(
        config: &RedisConfig,
        nodes: impl IntoIterator<Item = &'a NodeId>,
        backlogs: Arc<Backlogs>,
    ) -> Result<NodeStatuses, StatusError> {
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(2);
        let conn = RedisLink::connect(config, manager).await?;
        let views: BTreeMap<NodeId, _> = nodes
            .into_iter()
            .map(|node| (node.clone(), watch::Sender::new(NodeStatus::Available)))
            .collect();
        let notes = Arc::new(QueuedNotes::new(conn.clone(), views.keys()));
        Ok(NodeStatuses {
            notes,
            pauses: pause::Pauses::new(views.keys()),
            conn,
            views,
            records: std::sync::RwLock::new(HashMap::new()),
            backlogs,
            loaded: std::sync::atomic::AtomicBool::new(false),
            identities: std::sync::RwLock::new(HashMap::new()),
            unsettled: Default::default(),
        })
    }

    /// Sets every node that has no status yet to `available` (never
    /// overwriting an existing one) and loads the current statuses. Called
    /// once this instance holds its version slot (see `clock_lease`): that
    /// takes half a second, within which a running instance restores a
    /// status hash Redis lost, so a start right after a `FLUSHALL` finds
    /// the restored statuses rather than seeding every node `available`.
    pub async fn load(&self) -> Result<(), StatusError> {
        // Each field set is announced as regiondb's own write (see `follow`).
        static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(
                r"
                for i = 1, #ARGV do
                  if redis.call('HSETNX', KEYS[1], ARGV[i], 'available') == 1 then
                    redis.call('PUBLISH', KEYS[2], 'set ' .. ARGV[i] .. '=available')
                    redis.call('SET', KEYS[3], 'lost')
                  end
                end
                return 1
                ",
            )
        });
        let mut invocation = SCRIPT.key(STATUS_HASH);
        invocation.key(CHANGE_CHANNEL).key(unsettled::RESETTLE);
        for node in self.views.keys() {
            invocation.arg(node.as_str());
        }
        let _: i64 = invocation.invoke_async(&mut self.conn.clone()).await?;
        self.resync().await
    }

    /// Where writes that queued hints tell the other instances so.
    pub fn notes(&self) -> &Arc<QueuedNotes> {
        &self.notes
    }

    /// The catch-up state this view keeps up to date.
    pub fn backlogs(&self) -> &Arc<Backlogs> {
        &self.backlogs
    }

    /// The shared Redis connection, for the other users of this Redis
    /// (the version clock's lease).
    pub fn redis(&self) -> RedisLink {
        self.conn.clone()
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

    /// Who set `node`'s current status, and when (Unix ms) if known.
    pub fn source(&self, node: &NodeId) -> (StatusSource, Option<i64>) {
        let records = self.records.read().unwrap_or_else(|e| e.into_inner());
        StatusRecord::explain(records.get(node), self.status(node))
    }

    /// Every node identity Redis remembers, so that any instance can write
    /// them all back if Redis loses them (see `restore`).
    fn remember_identities(&self, seen: &Hash) {
        let mut known = self.identities.write().unwrap_or_else(|e| e.into_inner());
        for node in self.views.keys() {
            if let Some(incarnation) = seen.get(node.as_str()) {
                known.insert(node.clone(), incarnation.clone());
            }
        }
    }

    /// The marker `node` carried when this instance last checked it.
    pub fn remember_identity(&self, node: &NodeId, incarnation: &str) {
        let mut known = self.identities.write().unwrap_or_else(|e| e.into_inner());
        known.insert(node.clone(), incarnation.to_owned());
    }

    fn record_local(&self, node: &NodeId, record: StatusRecord) {
        let mut records = self.records.write().unwrap_or_else(|e| e.into_inner());
        records.insert(node.clone(), record);
    }

    /// Re-reads the hashes into the local view. A status hash that is gone
    /// altogether (after the first read) means Redis lost its data: it is
    /// restored from this view (with the data-loss flags and identities)
    /// rather than read as "every node available, none lost"; a single
    /// field deleted by hand still reads as the start-up default.
    pub async fn resync(&self) -> Result<(), StatusError> {
        let mut read = self.read_hashes().await?;
        if read.statuses.is_empty() && self.loaded.load(std::sync::atomic::Ordering::SeqCst) {
            self.restore().await?;
            read = self.read_hashes().await?;
        }
        self.remember_identities(&read.identities);
        for node in self.views.keys() {
            self.backlogs
                .set_lost(node, read.lost.contains_key(node.as_str()));
            if let Some(count) = read.queued.get(node.as_str()) {
                self.backlogs.shared_queued(node, *count);
            }
        }
        self.apply_sources(&read.sources);
        self.pauses.load(&read.paused);
        for node in self.views.keys() {
            let status = match read.statuses.get(node.as_str()) {
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
        self.loaded.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    async fn read_hashes(&self) -> Result<Hashes, StatusError> {
        let mut conn = self.conn.clone();
        let (statuses, sources, lost, queued, identities, paused) = redis::pipe()
            .hgetall(STATUS_HASH)
            .hgetall(SOURCE_HASH)
            .hgetall(DATA_LOSS_HASH)
            .hgetall(QUEUED_HASH)
            .hgetall(IDENTITY_HASH)
            .hgetall(PAUSED_HASH)
            .query_async(&mut conn)
            .await?;
        Ok(Hashes {
            statuses,
            sources,
            lost,
            queued,
            identities,
            paused,
        })
    }

    fn apply_sources(&self, sources: &Hash) {
        let mut records = self.records.write().unwrap_or_else(|e| e.into_inner());
        records.clear();
        for node in self.views.keys() {
            let Some(raw) = sources.get(node.as_str()) else {
                continue;
            };
            match serde_json::from_str::<StatusRecord>(raw) {
                Ok(record) => {
                    records.insert(node.clone(), record);
                }
                Err(e) => tracing::debug!(%node, error = %e, "unreadable status source record"),
            }
        }
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
        self.pauses.refresh(node, status.is_available());
    }
}
