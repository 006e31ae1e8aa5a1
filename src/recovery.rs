//! A node that lost its data: detected, served from its replicas, repaired,
//! and only then read from again.
//!
//! Every node database carries an identity marker (see `store::identity`),
//! written the first time regiondb uses it; Redis remembers each node's
//! marker in `regiondb:node_identities`. The failure detector's lease holder
//! for a node checks, after each ping that answered, that the marker is
//! still the one Redis remembers:
//!
//! - no marker, none remembered: a new node; it gets its marker;
//! - no marker but one remembered: the node came back **empty** (a disk
//!   replaced, a container recreated without its volume);
//! - another marker than the remembered one: the node was **replaced** by
//!   another database (an old backup, another deployment's volume);
//! - a marker, none remembered (Redis lost its data and no running instance
//!   remembered it, or an older regiondb made the node): the node's identity
//!   cannot be confirmed (**unconfirmed**): it may be an old backup;
//! - the marker says the node is still being **refilling** (a loss found
//!   earlier whose repair has not completed: the flag in Redis was lost).
//!
//! In these four cases the node goes into `regiondb:data_loss`: every
//! instance then reads its regions from the other copy, as for a node
//! catching up on its backlog (see `backlog`), and the lease holder repairs
//! every region the node is home or replica for. When all of them are
//! complete, the node leaves `regiondb:data_loss` (and its marker stops
//! saying `refilling`) and reads come back to it.
//!
//! What a node lost survives Redis losing its data three ways: the running
//! instances write the flags and the remembered identities back with the
//! statuses (`nodes::restore`); the node's own marker says it is being
//! refilled; and a marker no one remembers is not trusted until a repair
//! has confirmed the node's contents.
//! A region whose other node is unavailable, or still replaying hints queued
//! for it (its copy would be missing them), waits (and with it the flag);
//! the repair is tried again after the next ping. Repairs are idempotent
//! (last writer wins), so trying again costs only the comparison.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::domain::{NodeId, RegionMap, now_millis};
use crate::hints::HintLog;
use crate::nodes::{DATA_LOSS_HASH, IDENTITY_HASH, NodeStatuses, STATUS_HASH, StatusError};
use crate::repair::{RepairRecord, RepairTrigger, repair};
use crate::store::{NodeStore, StoreError, Stores};

/// Compares the node's marker (ARGV[2], '' if none) with the remembered one,
/// remembers the new state and flags a loss. ARGV: node, seen, a fresh
/// incarnation (for a node without a marker), the time (Unix ms), '1' if
/// the marker says the node is being refilled. Returns the verdict, whether
/// the node is flagged as having lost its data, and the reason it was
/// flagged now ('' if it was not). With the status hash gone (Redis just
/// lost its data, and the running instances are writing it back with the
/// identities they remember) it checks nothing: verdict 'wait'.
const CHECK_SCRIPT: &str = r#"
if redis.call('EXISTS', KEYS[3]) == 0 then return {'wait', 0, ''} end
local known = redis.call('HGET', KEYS[1], ARGV[1])
local verdict
if ARGV[2] == '' then
  if known then verdict = 'empty' else verdict = 'new' end
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
elseif not known then
  verdict = 'adopted'
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
elseif known == ARGV[2] then
  verdict = 'same'
else
  verdict = 'replaced'
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
local reason = ''
if verdict == 'empty' or verdict == 'replaced' then
  reason = verdict
elseif redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
  if ARGV[5] == '1' then reason = 'refilling'
  elseif verdict == 'adopted' then reason = 'unconfirmed' end
end
if reason ~= '' then
  redis.call('HSET', KEYS[2], ARGV[1],
    '{"reason":"' .. reason .. '","at_ms":' .. ARGV[4] .. '}')
end
return {verdict, redis.call('HEXISTS', KEYS[2], ARGV[1]), reason}
"#;

#[derive(Debug, thiserror::Error)]
enum CheckError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Redis(#[from] StatusError),
}

impl From<redis::RedisError> for CheckError {
    fn from(e: redis::RedisError) -> Self {
        CheckError::Redis(StatusError::from(e))
    }
}

pub struct Recovery {
    pub regions: RegionMap,
    pub stores: Arc<Stores>,
    pub statuses: Arc<NodeStatuses>,
    /// Whether a region's queues are empty (see `repair`).
    pub hints: Arc<HintLog>,
    /// Nodes whose repair runs now, in this instance.
    repairing: Mutex<HashSet<NodeId>>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Recovery {
    /// Repairs run as tasks of `tasks`, stopped by `shutdown`.
    pub fn new(
        regions: RegionMap,
        stores: Arc<Stores>,
        statuses: Arc<NodeStatuses>,
        hints: Arc<HintLog>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Recovery {
        Recovery {
            regions,
            stores,
            statuses,
            hints,
            repairing: Mutex::new(HashSet::new()),
            tasks,
            shutdown,
        }
    }

    /// The lease holder's check of a node that answered its ping; starts
    /// its repair if it lost its data (now or before, unrepaired).
    pub async fn check(self: &Arc<Self>, store: &NodeStore) {
        let node = store.node().clone();
        match self.compare(store).await {
            Ok(true) => self.start_repair(node),
            Ok(false) => {}
            Err(e) => tracing::debug!(%node, error = %e, "identity check skipped"),
        }
    }

    /// True when the node is flagged as having lost its data.
    async fn compare(&self, store: &NodeStore) -> Result<bool, CheckError> {
        let node = store.node();
        let seen = store.identity().await?;
        let fresh = format!("{:016x}", rand::random::<u64>());
        let refilling = seen.as_ref().is_some_and(|m| m.refilling);
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(CHECK_SCRIPT));
        let (verdict, flagged, reason): (String, i64, String) = SCRIPT
            .key(IDENTITY_HASH)
            .key(DATA_LOSS_HASH)
            .key(STATUS_HASH)
            .arg(node.as_str())
            .arg(seen.as_ref().map_or("", |m| m.incarnation.as_str()))
            .arg(&fresh)
            .arg(now_millis())
            .arg(if refilling { "1" } else { "" })
            .invoke_async(&mut self.statuses.redis())
            .await?;
        let marker = match verdict.as_str() {
            "wait" => return Ok(false),
            "new" => store.mark_identity(&fresh, false).await?,
            "empty" => store.mark_identity(&fresh, true).await?,
            _ => seen.map_or(fresh, |m| m.incarnation),
        };
        self.statuses.remember_identity(node, &marker);
        if !reason.is_empty() {
            self.flagged(store, &reason).await?;
        }
        Ok(flagged == 1)
    }

    /// `store`'s node was just flagged as having lost its data (`reason`).
    async fn flagged(&self, store: &NodeStore, reason: &str) -> Result<(), CheckError> {
        let node = store.node();
        tracing::warn!(%node, reason,
            "node lost its data (or cannot be confirmed): its regions are read from the other \
             copies until repaired");
        let reason = match reason {
            "empty" => "empty",
            "replaced" => "replaced",
            "refilling" => "refilling",
            _ => "unconfirmed",
        };
        crate::metrics::data_loss_detected(node.as_str(), reason);
        self.statuses.backlogs().set_lost(node, true);
        self.statuses.announce_change("data loss").await;
        if reason != "empty" {
            store.set_refilling(true).await?;
        }
        Ok(())
    }

    fn start_repair(self: &Arc<Self>, node: NodeId) {
        {
            let mut repairing = self.repairing.lock().unwrap_or_else(|e| e.into_inner());
            if !repairing.insert(node.clone()) {
                return;
            }
        }
        let this = self.clone();
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            if shutdown
                .run_until_cancelled(this.repair(&node))
                .await
                .is_none()
            {
                tracing::info!(%node, "repair after data loss interrupted by shutdown");
            }
            let mut repairing = this.repairing.lock().unwrap_or_else(|e| e.into_inner());
            repairing.remove(&node);
        });
    }

    /// Repairs every region `node` is home or replica for whose two nodes
    /// are available (a node an operator switched off is not written behind
    /// their back) and whose other copy is caught up on its own backlog (a
    /// copy still missing queued hints would repair `node` with holes);
    /// clears the flag once all of them are complete.
    async fn repair(&self, node: &NodeId) {
        let regions: Vec<&crate::domain::Region> = self
            .regions
            .regions()
            .iter()
            .filter(|r| &r.id == node || &r.replica == node)
            .collect();
        let mut reports = Vec::new();
        let mut waiting = Vec::new();
        for region in regions {
            let up = |n: &NodeId| self.statuses.status(n).is_available();
            let other = if &region.id == node {
                &region.replica
            } else {
                &region.id
            };
            let source_ready = up(other) && self.statuses.backlogs().caught_up(other);
            if !(up(node) && source_ready) {
                waiting.push(region.id.to_string());
                continue;
            }
            reports.extend(
                repair(
                    &self.regions,
                    &self.stores,
                    Some(&self.hints),
                    Some(&region.id),
                    false,
                )
                .await,
            );
        }
        if reports.is_empty() {
            tracing::info!(%node, waiting = ?waiting, "repair after data loss waits for its nodes");
            return;
        }
        let record = RepairRecord::new(RepairTrigger::DataLoss, vec![node.to_string()], reports);
        let complete = record.complete() && waiting.is_empty();
        record.save(&self.statuses).await;
        if !complete {
            tracing::warn!(%node, waiting = ?waiting,
                "repair after data loss not complete; trying again after the next ping");
            return;
        }
        match self.clear(node).await {
            Ok(()) => {
                tracing::info!(%node, "node repaired after losing its data; reads use it again")
            }
            Err(e) => {
                tracing::warn!(%node, error = %e, "repaired, but the flag could not be cleared yet")
            }
        }
    }

    async fn clear(&self, node: &NodeId) -> Result<(), CheckError> {
        if let Some(store) = self.stores.get(node) {
            store.set_refilling(false).await?;
        }
        let mut conn = self.statuses.redis();
        let _: i64 = redis::cmd("HDEL")
            .arg(DATA_LOSS_HASH)
            .arg(node.as_str())
            .query_async(&mut conn)
            .await
            .map_err(StatusError::from)?;
        self.statuses.backlogs().set_lost(node, false);
        self.statuses.announce_change("repaired").await;
        Ok(())
    }
}
