//! The failure detector's per-node lease: only its holder changes a node's
//! status (one Lua script renews the lease and applies the verdict), and
//! the compare-and-delete that gives a lease up.

use std::time::Duration;

use super::switch::own_write;
use super::{
    CHANGE_CHANNEL, NodeStatuses, PROBE_LEASE_PREFIX, SOURCE_HASH, STATUS_HASH, StatusError,
};
use crate::domain::{NodeId, NodeStatus, StatusRecord, StatusSource, now_millis};

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
redis.call('PUBLISH', KEYS[4], ARGV[6])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[5])
return 1
"#;

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

impl NodeStatuses {
    /// The failure detector's report for `node` from instance `me`: renews
    /// its lease on the node (for `lease`), and, if it holds it, sets the
    /// status to `verdict` where the rules allow (see `PROBE_SCRIPT`).
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
                .key(CHANGE_CHANNEL)
                .arg(node.as_str())
                .arg(me)
                .arg(lease_ms)
                .arg(verdict.map_or("", NodeStatus::as_str))
                .arg(&raw)
                .arg(verdict.map_or_else(String::new, |v| own_write(node, v)))
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
}
