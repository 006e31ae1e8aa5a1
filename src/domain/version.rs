use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The version of one accepted write: microseconds since the Unix epoch at
/// acceptance, nudged upwards so that one process never hands out the same
/// version twice. Higher is newer; every copy of a record is written with
/// "set if my version is newer" (last writer wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
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
}

/// Hands out strictly increasing versions, even when the wall clock stalls or
/// steps backwards.
#[derive(Debug, Default)]
pub struct VersionClock {
    last: AtomicI64,
}

impl VersionClock {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn next(&self) -> Version {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        self.next_at(now)
    }

    /// The next version given the current time in microseconds.
    pub fn next_at(&self, now_micros: i64) -> Version {
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let candidate = now_micros.max(last.saturating_add(1));
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_strictly_increase_even_if_the_clock_goes_back() {
        let clock = VersionClock::new();
        let a = clock.next_at(1_000);
        let b = clock.next_at(1_000);
        let c = clock.next_at(500);
        let d = clock.next_at(5_000);
        assert!(a < b && b < c && c < d);
        assert_eq!(d.get(), 5_000);
    }

    #[test]
    fn real_clock_versions_increase_across_threads() {
        let clock = std::sync::Arc::new(VersionClock::new());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let clock = clock.clone();
                std::thread::spawn(move || (0..1000).map(|_| clock.next()).collect::<Vec<_>>())
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
}
