//! An operator's switch: the status and its `manual` record written
//! together in one script, then announced and applied locally.

use redis::AsyncCommands;

use super::{CHANGE_CHANNEL, NodeStatuses, SOURCE_HASH, STATUS_HASH, StatusError};
use crate::domain::{NodeId, NodeStatus, StatusRecord, StatusSource, now_millis};

/// An operator's switch: the status and its record, together; 0 (writing
/// nothing) when the status hash is gone, so that a switch made right after
/// Redis lost its data does not leave every other node looking deleted.
/// The status write is announced in the same script, right after it (see
/// `follow`: how a write straight into Redis is told from regiondb's own).
const SET_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', KEYS[3], ARGV[4])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
";

impl NodeStatuses {
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
            .key(CHANGE_CHANNEL)
            .arg(node.as_str())
            .arg(status.as_str())
            .arg(&raw)
            .arg(own_write(node, status));
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
    pub(super) async fn announce(&self, node: &NodeId, status: NodeStatus) {
        self.announce_change(&format!("{node}={status}")).await;
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
}

/// What regiondb publishes, in the same script, right after each write of
/// its own to the status hash (see `follow`).
pub(super) fn own_write(node: &NodeId, status: NodeStatus) -> String {
    format!("{OWN_WRITE}{node}={status}")
}

/// The prefix of [`own_write`] announcements.
pub(super) const OWN_WRITE: &str = "set ";
