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
//! Redis also keeps the last repair's report; the version clock's facts are
//! kept by `clock_lease` on this connection.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::watch;

mod follow;
mod restore;

use crate::backlog::Backlogs;
use crate::domain::{NodeId, NodeStatus, StatusRecord, StatusSource, now_millis};

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
/// Nodes that lost their data and await their repair: node -> JSON
/// `{"reason", "at_ms"}` (see `recovery`).
pub const DATA_LOSS_HASH: &str = "regiondb:data_loss";
/// Per node, how many hints any instance has queued for it: a count that
/// grew tells every instance the node has a backlog.
pub const QUEUED_HASH: &str = "regiondb:hints_queued";
/// How long a write waits to tell the other instances it queued a hint.
const NOTE_QUEUED_TIMEOUT: Duration = Duration::from_millis(250);
/// Announces every status write made through regiondb.
pub const CHANGE_CHANNEL: &str = "regiondb:node_statuses";
/// An operator's switch: the status and its record, together; 0 (writing
/// nothing) when the status hash is gone, so that a switch made right after
/// Redis lost its data does not leave every other node looking deleted.
const SET_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
";

/// Bound on one Redis call: status writes and reads must not hang.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// The failure detector's status change, done only by the lease holder:
/// renews the lease, then takes the node down (if it is up) or brings it
/// back (only if the detector is who took it down), writing the status and
/// its record together. Returns -1 when another instance holds the lease,
/// 1 when the status changed, 0 otherwise, and -2 (changing nothing) when
/// the status hash is gone: Redis lost its data and must be restored first.
const PROBE_SCRIPT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return -2 end
local holder = redis.call('GET', KEYS[3])
if holder and holder ~= ARGV[2] then return -1 end
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
local verdict = ARGV[4]
if verdict == '' then return 0 end
local current = redis.call('HGET', KEYS[1], ARGV[1])
if verdict == 'unavailable' then
  if current == 'unavailable' then return 0 end
else
  if current ~= 'unavailable' then return 0 end
  local raw = redis.call('HGET', KEYS[2], ARGV[1])
  if not raw then return 0 end
  local ok, record = pcall(cjson.decode, raw)
  if not ok or type(record) ~= 'table' or record.source ~= 'probe'
     or record.status ~= 'unavailable' then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], verdict)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[5])
return 1
"#;

#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct StatusError(#[from] redis::RedisError);

impl StatusError {
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

/// What the failure detector's report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeReport {
    /// Another instance holds this node's lease: its detector decides.
    NotHolder,
    /// This instance holds the lease; the status stays as it is.
    Unchanged,
    /// This instance changed the status.
    Changed,
}

pub struct NodeStatuses {
    client: redis::Client,
    conn: ConnectionManager,
    views: BTreeMap<NodeId, watch::Sender<NodeStatus>>,
    /// The `node_status_source` records, as last read or written.
    records: std::sync::RwLock<HashMap<NodeId, StatusRecord>>,
    backlogs: Arc<Backlogs>,
    /// The hashes have been read once: from then on a missing status hash
    /// means Redis lost its data.
    loaded: std::sync::atomic::AtomicBool,
}

type Hash = HashMap<String, String>;

impl NodeStatuses {
    /// Connects; the statuses are read by [`NodeStatuses::load`].
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
        let conn = client.get_connection_manager_with_config(config).await?;
        let views = nodes
            .into_iter()
            .map(|node| (node.clone(), watch::Sender::new(NodeStatus::Available)))
            .collect();
        Ok(NodeStatuses {
            client,
            conn,
            views,
            records: std::sync::RwLock::new(HashMap::new()),
            backlogs,
            loaded: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Sets every node that has no status yet to `available` (never
    /// overwriting an existing one) and loads the current statuses. Called
    /// once this instance holds its version slot (see `clock_lease`): that
    /// takes half a second, within which a running instance restores a
    /// status hash Redis lost, so a start right after a `FLUSHALL` finds
    /// the restored statuses rather than seeding every node `available`.
    pub async fn load(&self) -> Result<(), StatusError> {
        let mut conn = self.conn.clone();
        for node in self.views.keys() {
            let _: bool = conn
                .hset_nx(STATUS_HASH, node.as_str(), NodeStatus::Available.as_str())
                .await?;
        }
        self.resync().await
    }

    /// The catch-up state this view keeps up to date.
    pub fn backlogs(&self) -> &Arc<Backlogs> {
        &self.backlogs
    }

    /// The shared Redis connection, for the other users of this Redis
    /// (the version clock's lease).
    pub fn redis(&self) -> ConnectionManager {
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

    /// An operator's switch: writes the status and its `manual` record to
    /// Redis, announces it, and applies it locally.
    pub async fn set(&self, node: &NodeId, status: NodeStatus) -> Result<(), StatusError> {
        crate::metrics::timed("redis", "set_status", self.write_status(node, status)).await
    }

    async fn write_status(&self, node: &NodeId, status: NodeStatus) -> Result<(), StatusError> {
        let record = StatusRecord {
            source: StatusSource::Manual,
            status,
            at_ms: now_millis(),
        };
        let raw = serde_json::to_string(&record).unwrap_or_default();
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(SET_SCRIPT));
        let mut invocation = SCRIPT.key(STATUS_HASH);
        invocation
            .key(SOURCE_HASH)
            .arg(node.as_str())
            .arg(status.as_str())
            .arg(&raw);
        let mut conn = self.conn.clone();
        let mut written: Result<i64, _> = invocation.invoke_async(&mut conn).await;
        if let Err(e) = &written
            && (e.is_io_error() || e.is_connection_dropped())
        {
            // A connection broken by a Redis restart is only noticed on use;
            // the manager reconnects, and the write is idempotent: try once more.
            tracing::debug!(error = %e, "redis connection lost; retrying the status write");
            written = invocation.invoke_async(&mut conn).await;
        }
        if written? == 0 {
            self.restore().await?;
            let again: i64 = invocation.invoke_async(&mut conn).await?;
            if again == 0 {
                tracing::warn!(%node, "status hash gone again; the switch is not saved");
            }
        }
        self.record_local(node, record);
        self.apply_local(node, status);
        self.announce(node, status).await;
        Ok(())
    }

    /// Tells every instance to re-read the hash now.
    async fn announce(&self, node: &NodeId, status: NodeStatus) {
        self.announce_change(&format!("{node}={status}")).await;
    }

    fn record_local(&self, node: &NodeId, record: StatusRecord) {
        let mut records = self.records.write().unwrap_or_else(|e| e.into_inner());
        records.insert(node.clone(), record);
    }

    /// The failure detector's report for `node` from instance `me`: renews
    /// its lease on the node (for `lease`), and, if it holds it, sets the
    /// status to `verdict` where the rules allow (see [`PROBE_SCRIPT`]).
    pub async fn probe_report(
        &self,
        node: &NodeId,
        me: &str,
        lease: Duration,
        verdict: Option<NodeStatus>,
    ) -> Result<ProbeReport, StatusError> {
        let record = verdict.map(|status| StatusRecord {
            source: StatusSource::Probe,
            status,
            at_ms: now_millis(),
        });
        let raw = record
            .map(|r| serde_json::to_string(&r).unwrap_or_default())
            .unwrap_or_default();
        let mut conn = self.conn.clone();
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1);
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(PROBE_SCRIPT));
        let report = async {
            let outcome: i64 = SCRIPT
                .key(STATUS_HASH)
                .key(SOURCE_HASH)
                .key(format!("{PROBE_LEASE_PREFIX}{node}"))
                .arg(node.as_str())
                .arg(me)
                .arg(lease_ms)
                .arg(verdict.map_or("", NodeStatus::as_str))
                .arg(&raw)
                .invoke_async(&mut conn)
                .await?;
            Ok::<_, StatusError>(outcome)
        };
        let outcome = crate::metrics::timed("redis", "probe_report", report).await?;
        if outcome == -2 {
            self.restore().await?;
            return Ok(ProbeReport::Unchanged);
        }
        Ok(match (outcome, verdict, record) {
            (-1, _, _) => ProbeReport::NotHolder,
            (1, Some(status), Some(record)) => {
                self.record_local(node, record);
                self.apply_local(node, status);
                self.announce(node, status).await;
                ProbeReport::Changed
            }
            _ => ProbeReport::Unchanged,
        })
    }

    /// Gives up `node`'s failure-detector lease if `me` holds it, so
    /// another instance's detector takes over at its next ping instead of
    /// after the lease expires.
    pub async fn release_probe_lease(&self, node: &NodeId, me: &str) {
        let key = format!("{PROBE_LEASE_PREFIX}{node}");
        if let Err(e) = self.release_if_held(&key, me).await {
            tracing::debug!(%node, error = %e, "probe lease not released; it expires by itself");
        }
    }

    /// Deletes the lease `key` if `me` still holds it (never another's).
    pub async fn release_if_held(&self, key: &str, me: &str) -> Result<(), StatusError> {
        static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
            )
        });
        let _: i64 = SCRIPT
            .key(key)
            .arg(me)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Re-reads both hashes into the local view. A status hash that is gone
    /// altogether (after the first read) means Redis lost its data: it is
    /// restored from this view rather than read as "every node available";
    /// a single field deleted by hand still reads as the start-up default.
    pub async fn resync(&self) -> Result<(), StatusError> {
        let (mut stored, mut sources) = self.read_hashes().await?;
        if stored.is_empty() && self.loaded.load(std::sync::atomic::Ordering::SeqCst) {
            self.restore().await?;
            (stored, sources) = self.read_hashes().await?;
        }
        self.apply_sources(&sources);
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
        self.loaded.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    async fn read_hashes(&self) -> Result<(Hash, Hash), StatusError> {
        let mut conn = self.conn.clone();
        let (statuses, sources, lost, queued): (Hash, Hash, Hash, HashMap<String, i64>) =
            redis::pipe()
                .hgetall(STATUS_HASH)
                .hgetall(SOURCE_HASH)
                .hgetall(DATA_LOSS_HASH)
                .hgetall(QUEUED_HASH)
                .query_async(&mut conn)
                .await?;
        for node in self.views.keys() {
            self.backlogs
                .set_lost(node, lost.contains_key(node.as_str()));
            if let Some(count) = queued.get(node.as_str()) {
                self.backlogs.shared_queued(node, *count);
            }
        }
        Ok((statuses, sources))
    }

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

    /// Tells every instance to re-read Redis now (`what` changed).
    pub async fn announce_change(&self, what: &str) {
        let mut conn = self.conn.clone();
        let announced: Result<i64, _> = conn.publish(CHANGE_CHANNEL, what).await;
        if let Err(e) = announced {
            // The change is in Redis; other instances pick it up on resync.
            tracing::warn!(change = what, error = %e, "could not announce a change");
        }
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

    /// The last repair's report, as saved by [`NodeStatuses::save_last_repair`].
    pub async fn last_repair(&self) -> Result<Option<String>, StatusError> {
        let mut conn = self.conn.clone();
        Ok(conn.get(LAST_REPAIR).await?)
    }

    pub async fn save_last_repair(&self, report: &str) -> Result<(), StatusError> {
        let mut conn = self.conn.clone();
        let () = conn.set(LAST_REPAIR, report).await?;
        Ok(())
    }

    /// Takes the automatic-repair lock for `hold` if no instance holds it;
    /// otherwise answers how long until it is free.
    pub async fn claim_auto_repair(
        &self,
        me: &str,
        hold: Duration,
    ) -> Result<Option<Duration>, StatusError> {
        let mut conn = self.conn.clone();
        let hold_ms = u64::try_from(hold.as_millis()).unwrap_or(u64::MAX).max(1);
        let taken: Option<String> = redis::cmd("SET")
            .arg(AUTO_REPAIR_LOCK)
            .arg(me)
            .arg("NX")
            .arg("PX")
            .arg(hold_ms)
            .query_async(&mut conn)
            .await?;
        if taken.is_some() {
            return Ok(None);
        }
        let left: i64 = conn.pttl(AUTO_REPAIR_LOCK).await?;
        Ok(Some(Duration::from_millis(
            u64::try_from(left).unwrap_or(0).max(10),
        )))
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
}
