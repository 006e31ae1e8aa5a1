//! Following Redis: the change channel, keyspace notifications where the
//! server allows them, and a periodic re-read as a safety net.
//!
//! **A write straight into Redis is the operator's word.** Every write
//! regiondb makes to the status hash is published on the change channel in
//! the same script, right after it (`switch::own_write`), so on this one
//! subscription the hash's keyspace event of a regiondb write is always
//! followed at once by that announcement. A keyspace event followed by
//! anything else (or by nothing within [`PAIRING`]) is a write someone made
//! with `redis-cli`, even one that wrote the value already there, which no
//! re-read can see. Keyspace events do not say which field was written, so
//! every status the failure detector set is then handed to the operator
//! (its record becomes `manual`): the detector never switches those nodes
//! back on by itself. Without keyspace notifications (a managed Redis that
//! refuses `CONFIG`), only writes that change a value are recognised.

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use super::notes::parse_note;
use super::switch::OWN_WRITE;
use super::{CHANGE_CHANNEL, NodeStatuses, SOURCE_HASH, STATUS_HASH};
use crate::domain::NodeId;

/// Without keyspace notifications, changes made with redis-cli are only seen
/// by the periodic re-read; this keeps the "within 1 s" promise.
const RESYNC_WITHOUT_NOTIFICATIONS: Duration = Duration::from_millis(400);
/// How long a keyspace event of the status hash may wait for regiondb's own
/// announcement before it counts as a write made straight into Redis (the
/// two are published by one script, back to back).
const PAIRING: Duration = Duration::from_millis(250);

/// Hands every status the failure detector set to the operator. ARGV[1]:
/// the time (Unix ms). Returns how many.
const OPERATOR_WROTE: &str = r#"
local n = 0
local records = redis.call('HGETALL', KEYS[2])
for i = 1, #records, 2 do
  local node, raw = records[i], records[i + 1]
  local ok, r = pcall(cjson.decode, raw)
  if ok and type(r) == 'table' and r.source == 'probe'
     and redis.call('HGET', KEYS[1], node) == r.status then
    redis.call('HSET', KEYS[2], node,
      '{"source":"manual","status":"' .. r.status .. '","at_ms":' .. ARGV[1] .. '}')
    n = n + 1
  end
end
return n
"#;

/// What one message on the subscription is.
enum Message {
    /// The status hash's keyspace event of a write.
    HashWritten,
    /// regiondb's own announcement of a status write.
    OwnWrite,
    /// Hints were queued for a node: its new shared count.
    Queued(NodeId, i64),
    Other,
}

/// The most messages taken off the subscription before acting on them.
const DRAIN: usize = 1024;

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
                    if self
                        .follow_messages(&mut pubsub, &keyspace, &shutdown)
                        .await
                    {
                        return;
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

    /// Follows the messages, and tells writes made straight into Redis from
    /// regiondb's own (see the module's comment). Whatever arrived at once
    /// is taken together: a queued hint's note only updates that node's
    /// count; anything else re-reads the hashes, once for the lot. True on
    /// shutdown, false when the subscription is lost.
    async fn follow_messages(
        &self,
        pubsub: &mut redis::aio::PubSub,
        keyspace: &str,
        shutdown: &CancellationToken,
    ) -> bool {
        let mut messages = pubsub.on_message();
        // A keyspace event not yet followed by regiondb's announcement.
        let mut unpaired: Option<tokio::time::Instant> = None;
        loop {
            let deadline = unpaired.map(|at| at + PAIRING);
            let msg = tokio::select! {
                _ = shutdown.cancelled() => return true,
                () = sleep_until(deadline) => {
                    unpaired = None;
                    self.operator_wrote().await;
                    continue;
                }
                msg = messages.next() => msg,
            };
            let Some(first) = msg else { return false };
            let mut arrived = vec![first];
            while arrived.len() < DRAIN
                && let Some(Some(msg)) = messages.next().now_or_never()
            {
                arrived.push(msg);
            }
            let mut reread = false;
            for msg in &arrived {
                let kind = classify(msg, keyspace);
                if unpaired.is_some() && !matches!(kind, Message::OwnWrite) {
                    self.operator_wrote().await;
                }
                unpaired = match kind {
                    Message::HashWritten => Some(tokio::time::Instant::now()),
                    _ => None,
                };
                match kind {
                    Message::Queued(node, count) => self.backlogs.shared_queued(&node, count),
                    _ => reread = true,
                }
            }
            if reread && let Err(e) = self.resync().await {
                tracing::warn!(error = %e, "node status resync failed");
            }
        }
    }

    /// Someone wrote the status hash straight into Redis: every status the
    /// failure detector set becomes the operator's.
    async fn operator_wrote(&self) {
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(OPERATOR_WROTE));
        let handed: Result<i64, _> = SCRIPT
            .key(STATUS_HASH)
            .key(SOURCE_HASH)
            .arg(crate::domain::now_millis())
            .invoke_async(&mut self.conn.clone())
            .await;
        match handed {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(
                    statuses = n,
                    "a node status was written straight into redis: the statuses the failure \
                     detector had set are now the operator's, and it will not change them"
                );
                if let Err(e) = self.resync().await {
                    tracing::warn!(error = %e, "node status resync failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot hand the detector's statuses over"),
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

/// What a message on the subscription is (see [`Message`]).
fn classify(msg: &redis::Msg, keyspace: &str) -> Message {
    let payload: String = msg.get_payload().unwrap_or_default();
    match msg.get_channel_name() {
        name if name == keyspace && payload == "hset" => Message::HashWritten,
        CHANGE_CHANNEL if payload.starts_with(OWN_WRITE) => Message::OwnWrite,
        CHANGE_CHANNEL => match parse_note(&payload) {
            Some((node, count)) => match NodeId::parse(node) {
                Ok(node) => Message::Queued(node, count),
                Err(_) => Message::Other,
            },
            None => Message::Other,
        },
        _ => Message::Other,
    }
}

/// Resolves at `deadline`; never without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
