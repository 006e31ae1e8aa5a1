//! The version clock's facts in Redis: which instance holds which version
//! slot, and the version floor.
//!
//! **Slots are leased, never shared.** A starting instance takes the lowest
//! free one of the [`INSTANCE_SLOTS`] keys `regiondb:version_slot:<n>`
//! (`SET NX PX`), renews it every [`RENEW_EVERY`] while it runs, and deletes
//! it when it stops. A crashed instance's slot frees itself when its lease
//! expires ([`SLOT_LEASE`]). With every slot held, an instance refuses to
//! start. A renewal that finds the slot held by someone else (Redis lost its
//! data and another instance took it) moves this instance to a free slot at
//! once. The clock hands out versions only while the lease is known held:
//! an instance that cannot renew for [`LEASE_TRUSTED`] answers writes 503
//! until it can, since its slot may have been taken meanwhile.
//!
//! **The floor follows real time.** Every renewal raises the floor to just
//! ahead ([`RESERVE_AHEAD`]) of the newest version this instance handed out
//! or its clock. A starting instance waits, before it hands out anything,
//! until its clock has passed the floor: so a restart never goes back in
//! time, and never runs ahead of the instances that kept running (it used
//! to start at a floor five seconds in the future, and a write through it
//! beat later writes through the others).
//!
//! **The clock follows the fastest clock of the cluster.** The floor less
//! [`RESERVE_AHEAD`] is what the fastest instance's clock read at its last
//! renewal. Every renewal reads it back, and this instance's clock then
//! runs that far ahead of its own host's (`VersionClock::follow`), so a
//! write acknowledged through any instance is outvoted by a later one
//! through any other, however far apart their hosts' clocks are, except
//! within one renewal period plus a Redis round trip (the age of the floor
//! read). What is followed is capped at [`MAX_FOLLOW_MICROS`] ahead of
//! Redis's own clock (read in the same script), the reference that tells a
//! host far behind (it follows the others, however far) from one far ahead
//! (followed only up to the cap: a warning, and
//! `regiondb_clock_follow_capped_total`). `regiondb_clock_offset_seconds`
//! says how far this instance runs ahead of its host.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::nodes::RedisLink;
use tokio_util::sync::CancellationToken;

use crate::domain::{INSTANCE_SLOTS, MAX_FOLLOW_MICROS, VersionClock, now_micros};
use crate::nodes::{NodeStatuses, STATUS_HASH, StatusError};

/// Prefix of the slot keys; the value is the holder's instance name.
pub const SLOT_PREFIX: &str = "regiondb:version_slot:";
/// Above every version any running instance has handed out.
pub const VERSION_FLOOR: &str = "regiondb:version_floor";
/// How often a running instance renews its slot, raises the floor and
/// reads it back: the window within which clock skew can still order two
/// writes wrongly.
pub const RENEW_EVERY: Duration = Duration::from_millis(50);
/// How far above the newest version handed out the floor is kept: more
/// than one renewal period, so a crash between two renewals never leaves a
/// version above the floor.
pub const RESERVE_AHEAD: Duration = Duration::from_secs(1);
/// A slot's lease in Redis.
pub const SLOT_LEASE: Duration = Duration::from_secs(30);
/// How long after a renewal was sent the lease is trusted without another:
/// less than [`SLOT_LEASE`], so this instance stops using a slot before
/// Redis can give it to another.
pub const LEASE_TRUSTED: Duration = Duration::from_secs(25);
/// The longest a starting instance waits for its clock to pass the floor;
/// past that the floor is ahead of real time (another instance's clock is
/// ahead of ours): it starts at the floor, and says so.
const MAX_START_WAIT: Duration = Duration::from_secs(5);
/// Claims tried at start before giving up (each can lose its slot to a
/// concurrent claim after a Redis flush).
const CLAIM_ROUNDS: usize = 5;

/// Takes the lowest free slot; -1 if all are held.
const CLAIM_SCRIPT: &str = r"
for s = 0, tonumber(ARGV[3]) - 1 do
  if redis.call('SET', KEYS[1] .. s, ARGV[1], 'NX', 'PX', ARGV[2]) then return s end
end
return -1
";

/// Renews the slot if it is ours (or free again: Redis lost it), raises the
/// floor, and says whether the node status hash still exists, what the floor
/// is now and what Redis's clock reads (the reference for the cap).
const RENEW_SCRIPT: &str = r"
local holder = redis.call('GET', KEYS[1])
local mine = 0
if (not holder) or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  mine = 1
end
local floor = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[3]) > floor then
  redis.call('SET', KEYS[2], ARGV[3])
  floor = tonumber(ARGV[3])
end
local time = redis.call('TIME')
return {mine, redis.call('EXISTS', KEYS[3]), floor, tonumber(time[1]) * 1000000 + tonumber(time[2])}
";

#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    #[error(transparent)]
    Redis(#[from] StatusError),
    #[error(
        "all {INSTANCE_SLOTS} version slots are held by running instances \
         (keys {SLOT_PREFIX}0..{}): stop one, or wait for a crashed one's lease to expire",
        INSTANCE_SLOTS - 1
    )]
    NoFreeSlot,
}

impl From<redis::RedisError> for ClockError {
    fn from(e: redis::RedisError) -> Self {
        ClockError::Redis(StatusError::from(e))
    }
}

/// This instance's slot lease, and the clock it governs.
pub struct ClockLease {
    statuses: Arc<NodeStatuses>,
    conn: RedisLink,
    instance: String,
    pub clock: Arc<VersionClock>,
    /// Whether the last renewal found a clock ahead beyond the cap.
    capped: AtomicBool,
}

/// What one renewal found.
struct Renewed {
    mine: bool,
    statuses_exist: bool,
    /// The version floor after this renewal, capped at
    /// [`MAX_FOLLOW_MICROS`] ahead of Redis's clock.
    floor: i64,
}

impl ClockLease {
    /// Takes a slot and waits until this instance's clock is past the
    /// floor; the clock is then ready to hand out versions.
    pub async fn start(
        statuses: Arc<NodeStatuses>,
        instance: &str,
    ) -> Result<ClockLease, ClockError> {
        let conn = statuses.redis();
        let clock = Arc::new(VersionClock::new(0, 0));
        let lease = ClockLease {
            statuses,
            conn,
            instance: instance.to_owned(),
            clock,
            capped: AtomicBool::new(false),
        };
        lease.claim_confirmed().await?;
        let floor = lease.renew(false).await?.floor;
        let ahead = floor.saturating_sub(lease.clock.now());
        if ahead > 0 {
            let wait = Duration::from_micros(u64::try_from(ahead).unwrap_or(0));
            if wait > MAX_START_WAIT {
                tracing::warn!(
                    ahead_ms = ahead / 1000,
                    "the version floor is far ahead of this instance's clock, even \
                     following the cluster's: starting at the floor"
                );
            }
            tokio::time::sleep(wait.min(MAX_START_WAIT) + Duration::from_micros(1)).await;
        }
        lease.clock.raise_to(floor);
        lease.renew(true).await?;
        tracing::info!(slot = lease.clock.slot(), floor, "version clock ready");
        Ok(lease)
    }

    /// Claims a slot, waits two renewal periods (a running instance whose
    /// slot Redis forgot re-takes it within one), and confirms it is still
    /// ours; otherwise claims again.
    async fn claim_confirmed(&self) -> Result<(), ClockError> {
        for _ in 0..CLAIM_ROUNDS {
            let slot = self.claim().await?;
            self.clock.set_slot(slot);
            tokio::time::sleep(RENEW_EVERY * 2).await;
            // Not raising the floor yet: it is read next, and what this
            // instance would reserve is no reason for it to wait.
            if self.renew(false).await?.mine {
                return Ok(());
            }
            tracing::warn!(
                slot,
                "version slot taken by another instance at start; claiming again"
            );
        }
        Err(ClockError::NoFreeSlot)
    }

    async fn claim(&self) -> Result<u64, ClockError> {
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(CLAIM_SCRIPT));
        let slot: i64 = SCRIPT
            .key(SLOT_PREFIX)
            .arg(&self.instance)
            .arg(millis(SLOT_LEASE))
            .arg(INSTANCE_SLOTS)
            .invoke_async(&mut self.conn.clone())
            .await?;
        u64::try_from(slot).map_err(|_| ClockError::NoFreeSlot)
    }

    /// Renews the slot and (with `raise_floor`) raises the floor; trusts
    /// the lease for [`LEASE_TRUSTED`] from when the renewal was sent.
    async fn renew(&self, raise_floor: bool) -> Result<Renewed, ClockError> {
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(RENEW_SCRIPT));
        let sent = Instant::now();
        let reserve = if raise_floor {
            self.clock
                .last()
                .max(self.clock.now())
                .saturating_add(micros(RESERVE_AHEAD))
        } else {
            0
        };
        let (mine, exist, floor, redis_now): (i64, i64, i64, i64) = SCRIPT
            .key(format!("{SLOT_PREFIX}{}", self.clock.slot()))
            .key(VERSION_FLOOR)
            .key(STATUS_HASH)
            .arg(&self.instance)
            .arg(millis(SLOT_LEASE))
            .arg(reserve)
            .invoke_async(&mut self.conn.clone())
            .await?;
        let mine = mine == 1;
        if mine {
            self.clock.lease_until(sent + LEASE_TRUSTED);
        }
        self.follow(floor, redis_now);
        Ok(Renewed {
            mine,
            statuses_exist: exist == 1,
            floor: floor.min(redis_now.saturating_add(MAX_FOLLOW_MICROS)),
        })
    }

    /// Follows the fastest clock of the cluster, which read `floor` less
    /// [`RESERVE_AHEAD`] at its last renewal, up to [`MAX_FOLLOW_MICROS`]
    /// ahead of Redis's clock (`redis_now`): the reference that tells a
    /// host far behind (it follows) from one far ahead (not followed).
    fn follow(&self, floor: i64, redis_now: i64) {
        self.clock.saw_floor(floor);
        let fastest = floor.saturating_sub(micros(RESERVE_AHEAD));
        let cap = redis_now.saturating_add(MAX_FOLLOW_MICROS);
        self.clock.follow(fastest.min(cap), now_micros());
        let capped = fastest > cap;
        let was_capped = self.capped.swap(capped, Ordering::Relaxed);
        if capped {
            crate::metrics::clock_follow_capped();
            if !was_capped {
                tracing::warn!(
                    ahead_of_redis_ms = (fastest - redis_now) / 1000,
                    cap_ms = MAX_FOLLOW_MICROS / 1000,
                    "an instance's clock is further ahead of Redis's than the cap: \
                     following it only up to the cap (check the hosts' time sync)"
                );
            }
        }
        crate::metrics::clock_offset(self.clock.offset());
    }

    /// Renews until `shutdown`, then releases the slot.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(RENEW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        while shutdown.run_until_cancelled(tick.tick()).await.is_some() {
            match self.renew(true).await {
                Ok(renewed) => {
                    failing = false;
                    self.after_renewal(renewed).await;
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, slot = self.clock.slot(),
                            "cannot renew the version slot; writes stop if this lasts {LEASE_TRUSTED:?}");
                    }
                    failing = true;
                }
            }
        }
        self.release().await;
    }

    async fn after_renewal(&self, renewed: Renewed) {
        if !renewed.statuses_exist {
            // Redis lost its data: restore the statuses now rather than at
            // the next periodic re-read (see `NodeStatuses::resync`).
            if let Err(e) = self.statuses.resync().await {
                tracing::warn!(error = %e, "cannot restore node statuses yet");
            }
        }
        if renewed.mine {
            return;
        }
        let lost = self.clock.slot();
        match self.claim().await {
            Ok(slot) => {
                self.clock.set_slot(slot);
                tracing::warn!(
                    lost,
                    slot,
                    "version slot held by another instance (redis lost its data?); moved to a free one"
                );
                crate::metrics::version_slot_moved();
                if let Err(e) = self.renew(true).await {
                    tracing::warn!(error = %e, "cannot confirm the new version slot yet");
                }
            }
            Err(e) => tracing::error!(lost, error = %e, "version slot lost and none free"),
        }
    }

    /// Gives the slot back (another instance may take it at once).
    async fn release(&self) {
        let key = format!("{SLOT_PREFIX}{}", self.clock.slot());
        match self.statuses.release_if_held(&key, &self.instance).await {
            Ok(()) => tracing::info!(slot = self.clock.slot(), "version slot released"),
            Err(e) => tracing::warn!(error = %e, "version slot not released; it expires by itself"),
        }
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
