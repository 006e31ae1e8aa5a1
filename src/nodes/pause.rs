//! Pausing a node's replay (a maintenance window): the hash
//! `regiondb:replay_paused` (node -> Unix ms when paused) is the truth, so
//! every instance's replay of that node waits, and the pause outlives any
//! one instance. Each replay follows a gate that is open while its node is
//! available and not paused.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use tokio::sync::watch;

use super::{CHANGE_CHANNEL, NodeStatuses, StatusError};
use crate::domain::{NodeId, now_millis};

/// Node -> Unix ms when its replay was paused.
pub const PAUSED_HASH: &str = "regiondb:replay_paused";

/// Pauses or resumes, and tells every instance to re-read.
const PAUSE_SCRIPT: &str = r"
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
redis.call('PUBLISH', KEYS[2], 'replay ' .. ARGV[1])
return 1
";

/// Every node's pause, as last read or written, and its replay's gate.
pub(super) struct Pauses {
    since: RwLock<HashMap<NodeId, i64>>,
    gates: BTreeMap<NodeId, watch::Sender<bool>>,
}

impl Pauses {
    pub(super) fn new<'a>(nodes: impl IntoIterator<Item = &'a NodeId>) -> Pauses {
        Pauses {
            since: RwLock::new(HashMap::new()),
            gates: (nodes.into_iter())
                .map(|n| (n.clone(), watch::Sender::new(false)))
                .collect(),
        }
    }

    /// Takes the hash as read from Redis.
    pub(super) fn load(&self, read: &HashMap<String, i64>) {
        let mut since = self.since.write().unwrap_or_else(|e| e.into_inner());
        since.clear();
        for node in self.gates.keys() {
            if let Some(at) = read.get(node.as_str()) {
                since.insert(node.clone(), *at);
            }
        }
    }

    fn set(&self, node: &NodeId, at: Option<i64>) {
        let mut since = self.since.write().unwrap_or_else(|e| e.into_inner());
        match at {
            Some(at) => since.insert(node.clone(), at),
            None => since.remove(node),
        };
    }

    fn since(&self, node: &NodeId) -> Option<i64> {
        let since = self.since.read().unwrap_or_else(|e| e.into_inner());
        since.get(node).copied()
    }

    /// Opens or closes `node`'s gate: open while available and not paused.
    pub(super) fn refresh(&self, node: &NodeId, available: bool) {
        let open = available && self.since(node).is_none();
        if let Some(gate) = self.gates.get(node) {
            gate.send_if_modified(|current| std::mem::replace(current, open) != open);
        }
    }
}

impl NodeStatuses {
    /// Pauses (`true`) or resumes `node`'s replay on every instance. A
    /// batch being applied is finished first.
    pub async fn set_paused(&self, node: &NodeId, paused: bool) -> Result<(), StatusError> {
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(PAUSE_SCRIPT));
        let at = paused.then(now_millis);
        let mut invocation = SCRIPT.key(PAUSED_HASH);
        invocation
            .key(CHANGE_CHANNEL)
            .arg(node.as_str())
            .arg(at.map(|a| a.to_string()).unwrap_or_default());
        let mut conn = self.conn.clone();
        let write = invocation.invoke_async::<i64>(&mut conn);
        crate::metrics::timed("redis", "pause_replay", write).await?;
        self.pauses.set(node, at);
        self.pauses.refresh(node, self.status(node).is_available());
        tracing::info!(%node, paused, "replay {}", if paused { "paused" } else { "resumed" });
        Ok(())
    }

    /// Since when `node`'s replay is paused (Unix ms), if it is.
    pub fn paused_since(&self, node: &NodeId) -> Option<i64> {
        self.pauses.since(node)
    }

    /// True while `node`'s replay may run: available and not paused.
    pub fn replay_gate(&self, node: &NodeId) -> Option<watch::Receiver<bool>> {
        self.pauses.gates.get(node).map(watch::Sender::subscribe)
    }
}
