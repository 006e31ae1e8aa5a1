//! Versions: the order of last-writer-wins.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// How many instances can hand out versions without ever producing the same
/// one: each instance only uses the microseconds congruent to its slot.
pub const INSTANCE_SLOTS: i64 = 64;

/// How far ahead of this process's clock a version read back from a hint may
/// be before it is refused as coming from the future.
pub const MAX_FUTURE_MICROS: i64 = 60 * 1_000_000;

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
    /// `now_micros`: no instance with a sane clock can have made it.
    pub fn is_from_the_future(self, now_micros: i64) -> bool {
        self.0 > now_micros.saturating_add(MAX_FUTURE_MICROS)
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
            .then(|| self.next_at(now_micros()))
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
    fn a_new_slot_keeps_versions_increasing() {
        let clock = VersionClock::new(40, 0);
        let a = clock.next_at(1_000);
        clock.set_slot(3);
        let b = clock.next_at(1_000);
        assert!(b > a, "{a:?} {b:?}");
        assert_eq!(b.get().rem_euclid(INSTANCE_SLOTS), 3);
    }
}
