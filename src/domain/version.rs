//! Versions: the order of last-writer-wins.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// How many instances can hand out versions without ever producing the same
/// one: each instance only uses the microseconds congruent to its slot.
pub const INSTANCE_SLOTS: i64 = 64;

/// How far ahead of the cluster's clock (see [`VersionClock::horizon`]) a
/// version read back from a hint may be before it is refused as coming from
/// the future.
pub const MAX_FUTURE_MICROS: i64 = 60 * 1_000_000;

/// The furthest ahead of a reference clock (Redis's, see `clock_lease`) an
/// instance follows the cluster's clock, or takes a client's version: clocks
/// a few seconds apart are followed exactly, one wildly wrong host cannot
/// drag every version into the future.
pub const MAX_FOLLOW_MICROS: i64 = 10 * 1_000_000;

/// The version of one accepted write: microseconds since the Unix epoch at
/// acceptance, nudged upwards so that no two writes ever share a version
/// (see [`VersionClock`]). Higher is newer; every copy of a record is written
/// with "set if my version is newer" (last writer wins). Versions stay below
/// 2^53 until the year 2255, so JSON clients read them exactly.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
#[schema(value_type = i64, example = 1764340000000001_i64)]
pub struct Version(i64);

impl Version {
    pub fn new(micros: i64) -> Self {
        Version(micros)
    }

    pub fn get(self) -> i64 {
        self.0
    }

    /// When the write was accepted, in milliseconds since the epoch (stored as
    /// the document's `updated_at`).
    pub fn accepted_at_millis(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// Whether this version lies more than [`MAX_FUTURE_MICROS`] after
    /// `horizon` (the cluster's clock, [`VersionClock::horizon`]): no
    /// instance of this cluster handed it out.
    pub fn is_from_the_future(self, horizon: i64) -> bool {
        self.0 > horizon.saturating_add(MAX_FUTURE_MICROS)
    }
}

/// The wall clock in microseconds since the epoch.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The wall clock in Unix seconds (0 before 1970).
pub fn now_secs() -> u64 {
    u64::try_from(now_micros() / 1_000_000).unwrap_or(0)
}

/// The wall clock in Unix milliseconds (0 before 1970).
pub fn now_millis() -> i64 {
    now_micros() / 1000
}

/// Hands out versions that are
/// - strictly increasing, even when the wall clock stalls or steps back;
/// - not below what other instances hand out, whatever this host's clock
///   says: the clock runs at this host's wall clock plus an offset that
///   follows the fastest clock of the cluster (read from the shared floor at
///   every renewal, see `clock_lease`, which caps it); a
///   client's last receipt ([`VersionClock::observe`]) raises it too, like
///   a hybrid logical clock;
/// - above `floor`, the highest version any earlier run may have handed out
///   (read back at start, and kept only just ahead of real time: see
///   `clock_lease`), so a restart never goes back in time;
/// - unique across instances: an instance only uses values congruent to its
///   `slot` modulo [`INSTANCE_SLOTS`], so two instances never tie, and which
///   of two writes in the same microsecond wins is decided by the slot. A
///   slot is leased in Redis; the clock hands out nothing once its lease is
///   no longer known to be held ([`VersionClock::next`] answers `None`).
#[derive(Debug)]
pub struct VersionClock {
    slot: AtomicI64,
    last: AtomicI64,
    /// The slot lease is known valid until this many milliseconds after
    /// `started` (a monotonic clock: wall-clock steps do not move it).
    leased_until_ms: AtomicU64,
    started: Instant,
    /// Microseconds this clock runs ahead of the host's wall clock, to
    /// follow the cluster's fastest clock (never negative).
    offset: AtomicI64,
    /// The highest version floor read from the cluster (uncapped): every
    /// version the cluster acknowledged lies below it, give or take one
    /// renewal.
    floor_seen: AtomicI64,
}

impl VersionClock {
    /// `slot` is taken modulo [`INSTANCE_SLOTS`]. The lease starts lapsed:
    /// see [`VersionClock::lease_until`].
    pub fn new(slot: u64, floor: i64) -> Self {
        let clock = VersionClock {
            slot: AtomicI64::new(0),
            last: AtomicI64::new(floor),
            leased_until_ms: AtomicU64::new(0),
            started: Instant::now(),
            offset: AtomicI64::new(0),
            floor_seen: AtomicI64::new(floor),
        };
        clock.set_slot(slot);
        clock
    }

    /// The slot this clock hands out versions in.
    pub fn slot(&self) -> u64 {
        u64::try_from(self.slot.load(Ordering::SeqCst)).unwrap_or(0)
    }

    /// Moves to another slot (the old one's lease was lost). Versions go on
    /// increasing.
    pub fn set_slot(&self, slot: u64) {
        let slot = i64::try_from(slot % INSTANCE_SLOTS as u64).unwrap_or(0);
        self.slot.store(slot, Ordering::SeqCst);
    }

    /// The slot's lease is known held until `until`.
    pub fn lease_until(&self, until: Instant) {
        let ms = until.saturating_duration_since(self.started).as_millis();
        self.leased_until_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    /// Whether the slot's lease is known held at `now`.
    pub fn leased_at(&self, now: Instant) -> bool {
        let ms = now.saturating_duration_since(self.started).as_millis();
        u64::try_from(ms).unwrap_or(u64::MAX) < self.leased_until_ms.load(Ordering::SeqCst)
    }

    /// The next version, or `None` while the slot's lease is not known to
    /// be held (another instance may have it).
    pub fn next(&self) -> Option<Version> {
        self.leased_at(Instant::now())
            .then(|| self.next_at(self.now()))
    }

    /// The cluster's time as this clock knows it: the host's wall clock
    /// plus the offset followed, in microseconds.
    pub fn now(&self) -> i64 {
        now_micros().saturating_add(self.offset.load(Ordering::Relaxed))
    }

    /// How far this clock runs ahead of the host's, in microseconds.
    pub fn offset(&self) -> i64 {
        self.offset.load(Ordering::Relaxed)
    }

    /// Follows a cluster clock that read `cluster_now` when the host's read
    /// `host_now`: from now on the clock runs that far ahead of the host's
    /// (never behind it). The caller caps `cluster_now` (see `clock_lease`).
    pub fn follow(&self, cluster_now: i64, host_now: i64) {
        let offset = cluster_now.saturating_sub(host_now).max(0);
        self.offset.store(offset, Ordering::Relaxed);
    }

    /// A version seen elsewhere (a client's last receipt): what this clock
    /// hands out from now on is above it. Refused (`Err` with the limit)
    /// when it lies more than [`MAX_FOLLOW_MICROS`] ahead of this clock.
    pub fn observe(&self, seen: Version) -> Result<(), Version> {
        let limit = self.now().saturating_add(MAX_FOLLOW_MICROS);
        if seen.get() > limit {
            return Err(Version(limit));
        }
        self.raise_to(seen.get());
        Ok(())
    }

    /// Remembers the cluster's version floor (uncapped) for
    /// [`VersionClock::horizon`].
    pub fn saw_floor(&self, floor: i64) {
        self.floor_seen.fetch_max(floor, Ordering::Relaxed);
    }

    /// The newest time any instance of the cluster may have handed out a
    /// version at: the later of this clock and the highest floor read.
    pub fn horizon(&self) -> i64 {
        self.now()
            .max(self.floor_seen.load(Ordering::Relaxed))
            .max(self.last())
    }

    /// Hands out nothing at or below `floor` from now on.
    pub fn raise_to(&self, floor: i64) {
        self.last.fetch_max(floor, Ordering::Relaxed);
    }

    /// The highest version handed out so far (or the floor).
    pub fn last(&self) -> i64 {
        self.last.load(Ordering::Relaxed)
    }

    /// The next version given the current time in microseconds (whatever
    /// the lease).
    pub fn next_at(&self, now_micros: i64) -> Version {
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let candidate = self.in_slot(now_micros.max(last.saturating_add(1)));
            match self.last.compare_exchange_weak(
                last,
                candidate,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Version(candidate),
                Err(seen) => last = seen,
            }
        }
    }

    /// The smallest value ≥ `at_least` that belongs to this clock's slot.
    fn in_slot(&self, at_least: i64) -> i64 {
        let slot = self.slot.load(Ordering::SeqCst);
        let offset = (slot - at_least.rem_euclid(INSTANCE_SLOTS)).rem_euclid(INSTANCE_SLOTS);
        at_least.saturating_add(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn versions_strictly_increase_even_if_the_clock_goes_back() {
        let clock = VersionClock::new(0, 0);
        let a = clock.next_at(1_000);
        let b = clock.next_at(1_000);
        let c = clock.next_at(500);
        let d = clock.next_at(5_000);
        assert!(a < b && b < c && c < d);
        assert!(d.get() >= 5_000 && d.get() < 5_000 + INSTANCE_SLOTS);
    }

    #[test]
    fn a_restarted_clock_starts_above_its_floor() {
        let floor = 10_000_000;
        let clock = VersionClock::new(3, floor);
        let v = clock.next_at(1_000);
        assert!(v.get() > floor, "{v:?}");
    }

    #[test]
    fn two_instances_never_hand_out_the_same_version() {
        let a = VersionClock::new(1, 0);
        let b = VersionClock::new(2, 0);
        for now in [100, 100, 101, 5_000, 5_000] {
            let (va, vb) = (a.next_at(now), b.next_at(now));
            assert_ne!(va, vb);
            assert_eq!(va.get().rem_euclid(INSTANCE_SLOTS), 1);
            assert_eq!(vb.get().rem_euclid(INSTANCE_SLOTS), 2);
        }
        // Ties in the same microsecond are decided by the slot, every time.
        let (a, b) = (VersionClock::new(1, 0), VersionClock::new(2, 0));
        assert!(a.next_at(640) < b.next_at(640));
    }

    #[test]
    fn future_versions_are_recognised() {
        let now = 1_000_000_000;
        assert!(!Version::new(now + MAX_FUTURE_MICROS).is_from_the_future(now));
        assert!(Version::new(now + MAX_FUTURE_MICROS + 1).is_from_the_future(now));
    }

    #[test]
    fn real_clock_versions_increase_across_threads() {
        let clock = std::sync::Arc::new(VersionClock::new(5, 0));
        clock.lease_until(Instant::now() + Duration::from_secs(3600));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let clock = clock.clone();
                std::thread::spawn(move || {
                    (0..1000)
                        .map(|_| clock.next().expect("leased"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<Version> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "no version handed out twice");
    }

    #[test]
    fn no_version_without_a_held_lease() {
        let clock = VersionClock::new(7, 0);
        assert_eq!(
            clock.next(),
            None,
            "a new clock's lease has not been confirmed"
        );
        let now = Instant::now();
        clock.lease_until(now + Duration::from_secs(10));
        assert!(clock.leased_at(now));
        assert!(!clock.leased_at(now + Duration::from_secs(11)));
        assert_eq!(
            clock.next().map(|v| v.get().rem_euclid(INSTANCE_SLOTS)),
            Some(7)
        );
    }

    #[test]
    fn the_clock_follows_a_faster_cluster_clock_never_a_slower_one() {
        let clock = VersionClock::new(0, 0);
        let host = now_micros();
        clock.follow(host + 2_000_000, host);
        assert_eq!(clock.offset(), 2_000_000);
        assert!(clock.now() >= host + 2_000_000);
        // A clock behind this host's is never followed backwards.
        clock.follow(host - 5_000_000, host);
        assert_eq!(clock.offset(), 0);
    }

    #[test]
    fn an_observed_version_is_exceeded_unless_it_is_beyond_the_cap() {
        let clock = VersionClock::new(9, 0);
        let seen = Version::new(clock.now() + 3_000_000);
        assert_eq!(clock.observe(seen), Ok(()));
        assert!(clock.next_at(now_micros()) > seen);
        let wild = Version::new(clock.now() + 2 * MAX_FOLLOW_MICROS);
        assert!(clock.observe(wild).is_err());
        assert!(clock.next_at(now_micros()) < wild);
    }

    #[test]
    fn the_horizon_covers_the_highest_floor_seen() {
        let clock = VersionClock::new(0, 0);
        let far = now_micros() + 3_600_000_000;
        clock.saw_floor(far);
        assert!(!Version::new(far).is_from_the_future(clock.horizon()));
        assert!(Version::new(far + MAX_FUTURE_MICROS + 1).is_from_the_future(clock.horizon()));
    }

    #[test]
    fn a_new_slot_keeps_versions_increasing() {
        let clock = VersionClock::new(40, 0);
        let a = clock.next_at(1_000);
        clock.set_slot(3);
        let b = clock.next_at(1_000);
        assert!(b > a, "{a:?} {b:?}");
        assert_eq!(b.get().rem_euclid(INSTANCE_SLOTS), 3);
    }
}
