//! Telling every instance that hints were queued for a node: one Redis
//! script adds to the node's shared count (`regiondb:hints_queued`) and
//! announces the new count on the change channel (`<node> queued <count>`),
//! so listeners take it from the message without re-reading anything.
//!
//! Notes are group-committed per node: a write that queued a hint *owes* a
//! note, which starts on its way at once ([`QueuedNotes::owe`]), and before
//! its answer the write waits until a note covering it landed
//! ([`QueuedNotes::landed`]), so the note travels while the write's next
//! copy is produced. At most one note per node is in flight; the writes
//! that queued meanwhile share the next one (which adds all of them to the
//! count).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{CHANGE_CHANNEL, NOTE_QUEUED_TIMEOUT, QUEUED_HASH, RedisLink};
use crate::domain::NodeId;

/// Adds ARGV[2] to the count of node ARGV[1] and announces the new count.
const NOTE: &str = r"
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', KEYS[2], ARGV[1] .. ' queued ' .. n)
return n
";

/// One node's notes.
#[derive(Default)]
struct NodeNotes {
    /// Hints queued by this instance, noted or not.
    owed: AtomicU64,
    /// Of those, how many a landed (or given up) note covers.
    landed: AtomicU64,
    /// Held while a note is in flight; guards how many were sent.
    sending: tokio::sync::Mutex<u64>,
}

/// Every node's notes (see the module's comment).
pub struct QueuedNotes {
    conn: RedisLink,
    nodes: BTreeMap<NodeId, NodeNotes>,
}

impl QueuedNotes {
    pub fn new<'a>(conn: RedisLink, nodes: impl IntoIterator<Item = &'a NodeId>) -> QueuedNotes {
        QueuedNotes {
            conn,
            nodes: nodes
                .into_iter()
                .map(|n| (n.clone(), NodeNotes::default()))
                .collect(),
        }
    }

    /// A hint was queued for `node`: a note is owed, and starts on its way
    /// without the caller waiting for it (a later [`QueuedNotes::landed`]
    /// does).
    pub fn owe(self: &Arc<Self>, node: &NodeId) {
        let Some(notes) = self.nodes.get(node) else {
            return;
        };
        notes.owed.fetch_add(1, Ordering::SeqCst);
        let this = self.clone();
        let node = node.clone();
        tokio::spawn(async move { this.landed(&node).await });
    }

    /// Returns once every note `node` was owed when called has landed (or
    /// was given up on: the notes are best effort, bounded by
    /// `NOTE_QUEUED_TIMEOUT`; the hints are in Kafka either way).
    pub async fn landed(&self, node: &NodeId) {
        let Some(notes) = self.nodes.get(node) else {
            return;
        };
        let target = notes.owed.load(Ordering::SeqCst);
        while notes.landed.load(Ordering::SeqCst) < target {
            let mut sent = notes.sending.lock().await;
            if notes.landed.load(Ordering::SeqCst) >= target {
                return;
            }
            let now = notes.owed.load(Ordering::SeqCst);
            self.send(node, now.saturating_sub(*sent)).await;
            *sent = now;
            notes.landed.fetch_max(now, Ordering::SeqCst);
        }
    }

    /// One note: `count` more hints queued for `node`.
    async fn send(&self, node: &NodeId, count: u64) {
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(NOTE));
        let mut conn = self.conn.clone();
        let mut invocation = SCRIPT.key(QUEUED_HASH);
        invocation.key(CHANGE_CHANNEL).arg(node.as_str()).arg(count);
        let noted = invocation.invoke_async::<i64>(&mut conn);
        let noted = crate::metrics::timed("redis", "note_queued", async {
            match tokio::time::timeout(NOTE_QUEUED_TIMEOUT, noted).await {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {NOTE_QUEUED_TIMEOUT:?}")),
            }
        });
        if let Err(e) = noted.await {
            tracing::debug!(%node, error = %e, "could not share the queued hints");
        }
    }
}

/// A note as announced on the change channel: the node and its new count.
pub fn parse_note(payload: &str) -> Option<(&str, i64)> {
    let (node, count) = payload.split_once(" queued ")?;
    Some((node, count.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_carry_their_node_and_count() {
        assert_eq!(parse_note("region_2 queued 41"), Some(("region_2", 41)));
        assert_eq!(parse_note("region_2 queued"), None);
        assert_eq!(parse_note("set region_2=available"), None);
    }
}
