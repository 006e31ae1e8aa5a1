//! When Redis loses its data: the status hash itself gone (not one field
//! deleted by hand) is written back from this instance's last view, with
//! the nodes that lost their data and are not repaired yet, and the node
//! identities this instance saw (see `recovery`).

use super::unsettled::RESETTLE;
use super::{
    CHANGE_CHANNEL, DATA_LOSS_HASH, IDENTITY_HASH, NodeStatuses, SOURCE_HASH, STATUS_HASH,
    StatusError,
};
use crate::domain::now_millis;

/// Writes this instance's view back, if the status hash is still gone
/// (another instance may have restored it first). ARGV: node, status,
/// record, data-loss flag, identity (each '' if none), repeated. Returns 1
/// if it restored.
const RESTORE_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 1, #ARGV, 5 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('PUBLISH', KEYS[5], 'set ' .. ARGV[i] .. '=' .. ARGV[i + 1])
  if ARGV[i + 2] ~= '' then redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2]) end
  if ARGV[i + 3] ~= '' then redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 3]) end
  if ARGV[i + 4] ~= '' then redis.call('HSETNX', KEYS[4], ARGV[i], ARGV[i + 4]) end
end
redis.call('SET', KEYS[6], 'lost')
return 1
";

impl NodeStatuses {
    /// Redis lost the status hash (`FLUSHALL`, a restart without its
    /// append-only file): writes this instance's last view of every status
    /// and its source back, unless another instance already did.
    pub(super) async fn restore(&self) -> Result<(), StatusError> {
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(RESTORE_SCRIPT));
        let mut invocation = SCRIPT.key(STATUS_HASH);
        invocation
            .key(SOURCE_HASH)
            .key(DATA_LOSS_HASH)
            .key(IDENTITY_HASH)
            .key(CHANGE_CHANNEL)
            .key(RESETTLE);
        let lost = format!(r#"{{"reason":"restored","at_ms":{}}}"#, now_millis());
        {
            let records = self.records.read().unwrap_or_else(|e| e.into_inner());
            let identities = self.identities.read().unwrap_or_else(|e| e.into_inner());
            for (node, status) in self.all() {
                let record = records
                    .get(&node)
                    .and_then(|r| serde_json::to_string(r).ok())
                    .unwrap_or_default();
                let flag = if self.backlogs.lost(&node) { &lost } else { "" };
                invocation
                    .arg(node.as_str())
                    .arg(status.as_str())
                    .arg(record)
                    .arg(flag)
                    .arg(identities.get(&node).map_or("", String::as_str));
            }
        }
        let restored: i64 = invocation.invoke_async(&mut self.conn.clone()).await?;
        if restored == 1 {
            tracing::warn!(statuses = ?self.all(),
                "redis lost the node statuses; restored them from this instance's last view");
            crate::metrics::redis_restored();
            self.announce_change("restored").await;
        }
        Ok(())
    }
}
