//! How fast a node's queue drains and when it will be empty, worked out
//! from samples of its Kafka offsets (taken by `monitor`; no I/O here).
//!
//! The rate is what the node's handoff group committed (the sum of its
//! committed offsets, which every member's commit moves) per second over
//! the last [`RATE_WINDOW_MS`], counted only since the replay could last
//! run and its first commit after that: a node switched on, or a replay
//! resumed, starts a fresh window, so neither the seconds it spent off nor
//! the wait for its group and first fetch dilute the rate it drains at now.

use std::collections::VecDeque;

use serde::Serialize;

/// The window the replay rate is smoothed over.
pub const RATE_WINDOW_MS: i64 = 10_000;
/// How much of a queue's past the charts show.
pub const HISTORY_MS: i64 = 300_000;
/// The shortest span a rate is computed over.
const MIN_SPAN_MS: i64 = 1_000;
/// Samples closer together than this add nothing (a page's read right
/// after the background task's).
const MIN_GAP_MS: i64 = 200;
/// Chart points are this far apart at least.
const POINT_EVERY_MS: i64 = 900;

/// One point of a queue's chart.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct QueuePoint {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// Hints waiting then.
    pub queued: u64,
    /// Hints applied per second then (smoothed).
    pub rate: f64,
}

/// What one look at a node's queue found.
#[derive(Debug, Clone, Copy)]
pub struct QueueSample {
    pub at_ms: i64,
    /// Hints waiting (`None`: Kafka could not be asked).
    pub queued: Option<u64>,
    /// The group's committed offsets, summed.
    pub committed: Option<i64>,
    pub available: bool,
    pub paused: bool,
}

/// The rate and the estimate, or why there is no estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct Drain {
    /// Hints applied per second over the window; `None` until the window
    /// spans a second.
    pub rate: Option<f64>,
    /// Seconds until the queue is empty at that rate (0 when it is).
    pub eta_seconds: Option<f64>,
    /// Why there is no estimate.
    pub note: Option<String>,
}

/// One node's samples: the rate window and the chart's history.
#[derive(Debug, Default)]
pub struct DrainTracker {
    /// (Unix ms, committed) since the replay could last run (from the look
    /// before its first commit), within the window.
    window: VecDeque<(i64, i64)>,
    /// Whether the replay could run at the last sample.
    could_run: bool,
    /// Whether the group committed anything since the replay could run.
    moving: bool,
    history: VecDeque<QueuePoint>,
}

impl DrainTracker {
    /// Takes a sample in and answers the rate and the estimate.
    pub fn observe(&mut self, s: QueueSample) -> Drain {
        let could_run = s.available && !s.paused;
        if could_run != self.could_run {
            self.window.clear();
            self.could_run = could_run;
            self.moving = false;
        }
        if let Some(committed) = s.committed {
            self.add(s.at_ms, committed);
        }
        let rate = self.rate();
        if let Some(queued) = s.queued {
            self.chart(s.at_ms, queued, rate.unwrap_or(0.0));
        }
        let (eta_seconds, note) = estimate(&s, rate);
        Drain {
            rate,
            eta_seconds,
            note,
        }
    }

    /// The chart's points, oldest first.
    pub fn history(&self) -> Vec<QueuePoint> {
        self.history.iter().copied().collect()
    }

    fn add(&mut self, at_ms: i64, committed: i64) {
        if let Some(&(last_at, last)) = self.window.back() {
            if committed < last {
                // The group's offsets went back (reset by hand): start again.
                self.window.clear();
                self.moving = false;
            } else if committed > last && !self.moving {
                // The first commit since the replay could run: the rate
                // counts from the look before it, not from the wait for
                // the group and the first fetch.
                self.window.drain(..self.window.len() - 1);
                self.moving = true;
            } else if at_ms - last_at < MIN_GAP_MS {
                return;
            }
        }
        self.window.push_back((at_ms, committed));
        while self
            .window
            .front()
            .is_some_and(|&(at, _)| at < at_ms - RATE_WINDOW_MS)
        {
            self.window.pop_front();
        }
    }

    fn rate(&self) -> Option<f64> {
        let (&(from_at, from), &(to_at, to)) = (self.window.front()?, self.window.back()?);
        let span = to_at - from_at;
        (span >= MIN_SPAN_MS).then(|| (to - from) as f64 * 1000.0 / span as f64)
    }

    fn chart(&mut self, at_ms: i64, queued: u64, rate: f64) {
        if self
            .history
            .back()
            .is_some_and(|p| at_ms - p.at_ms < POINT_EVERY_MS)
        {
            return;
        }
        self.history.push_back(QueuePoint {
            at_ms,
            queued,
            rate,
        });
        while self
            .history
            .front()
            .is_some_and(|p| p.at_ms < at_ms - HISTORY_MS)
        {
            self.history.pop_front();
        }
    }
}

/// The estimate, or why there is none.
fn estimate(s: &QueueSample, rate: Option<f64>) -> (Option<f64>, Option<String>) {
    let why = |text: &str| (None, Some(text.to_owned()));
    match (s.queued, rate) {
        (None, _) => why("the queue size is unknown (Kafka did not answer)"),
        (Some(0), _) => (Some(0.0), None),
        _ if !s.available => why("the node is unavailable: its replay waits for it"),
        _ if s.paused => why("the replay is paused"),
        (_, None) => why("measuring the replay rate"),
        (_, Some(r)) if r <= 0.0 => why("nothing was applied in the last 10 s"),
        (Some(q), Some(r)) => (Some(q as f64 / r), None),
    }
}

/// Seconds since the oldest waiting hint was accepted: 0 for an empty
/// queue, `None` when that is unknown.
pub fn lag_seconds(now_ms: i64, queued: Option<u64>, oldest_ms: Option<i64>) -> Option<f64> {
    match (queued?, oldest_ms) {
        (0, _) => Some(0.0),
        (_, Some(at)) => Some((now_ms - at).max(0) as f64 / 1000.0),
        (_, None) => None,
    }
}

/// A duration for people: "2 s", "3 min 5 s", "5 min", "1 h 2 min".
pub fn human_seconds(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 if s.is_multiple_of(60) => format!("{} min", s / 60),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: i64, queued: u64, committed: i64) -> QueueSample {
        QueueSample {
            at_ms,
            queued: Some(queued),
            committed: Some(committed),
            available: true,
            paused: false,
        }
    }

    #[test]
    fn the_rate_is_what_the_group_committed_per_second() {
        let mut t = DrainTracker::default();
        let d = t.observe(sample(0, 1000, 0));
        assert_eq!(d.rate, None);
        assert_eq!(d.note.as_deref(), Some("measuring the replay rate"));
        t.observe(sample(1000, 800, 200));
        let d = t.observe(sample(2000, 600, 400));
        assert_eq!(d.rate, Some(200.0));
        assert_eq!(d.eta_seconds, Some(3.0));
        // Older samples leave the window.
        for i in 3..=20 {
            t.observe(sample(i * 1000, 100, 400 + (i - 2) * 10));
        }
        assert_eq!(t.observe(sample(21_000, 100, 590)).rate, Some(10.0));
    }

    #[test]
    fn a_node_switched_on_starts_a_fresh_window() {
        let mut t = DrainTracker::default();
        let mut off = sample(0, 500, 0);
        off.available = false;
        let d = t.observe(off);
        assert_eq!(
            d.note.as_deref(),
            Some("the node is unavailable: its replay waits for it")
        );
        off.at_ms = 9000;
        t.observe(off);
        t.observe(sample(10_000, 500, 0));
        let d = t.observe(sample(11_000, 300, 200));
        assert_eq!(d.rate, Some(200.0), "the seconds off do not count");
        let mut paused = sample(12_000, 300, 200);
        paused.paused = true;
        assert_eq!(
            t.observe(paused).note.as_deref(),
            Some("the replay is paused")
        );
    }

    #[test]
    fn the_wait_before_the_first_commit_does_not_count() {
        let mut t = DrainTracker::default();
        for at in [0, 1000, 2000, 3000] {
            t.observe(sample(at, 1000, 0));
        }
        t.observe(sample(4000, 800, 200));
        let d = t.observe(sample(5000, 600, 400));
        assert_eq!(d.rate, Some(200.0), "not 400 over 5 s");
        assert_eq!(d.eta_seconds, Some(3.0));
    }

    #[test]
    fn an_empty_queue_is_done_and_a_still_one_says_so() {
        let mut t = DrainTracker::default();
        assert_eq!(t.observe(sample(0, 0, 7)).eta_seconds, Some(0.0));
        t.observe(sample(1000, 5, 7));
        let d = t.observe(sample(2000, 5, 7));
        assert_eq!(d.eta_seconds, None);
        assert_eq!(
            d.note.as_deref(),
            Some("nothing was applied in the last 10 s")
        );
        let mut unknown = sample(3000, 0, 7);
        unknown.queued = None;
        assert!(t.observe(unknown).note.unwrap().contains("unknown"));
    }

    #[test]
    fn the_chart_keeps_five_minutes_a_point_a_second() {
        let mut t = DrainTracker::default();
        for i in 0..700 {
            t.observe(sample(i * 500, 10, 0));
        }
        let h = t.history();
        assert!(h.len() <= 301 && h.len() >= 299, "{}", h.len());
        assert!(h.windows(2).all(|w| w[1].at_ms - w[0].at_ms >= 900));
    }

    #[test]
    fn lag_and_words() {
        assert_eq!(lag_seconds(5000, Some(3), Some(2000)), Some(3.0));
        assert_eq!(lag_seconds(5000, Some(0), None), Some(0.0));
        assert_eq!(lag_seconds(5000, Some(3), None), None);
        assert_eq!(lag_seconds(5000, None, Some(1)), None);
        assert_eq!(human_seconds(2.4), "2 s");
        assert_eq!(human_seconds(185.0), "3 min 5 s");
        assert_eq!(human_seconds(300.0), "5 min");
        assert_eq!(human_seconds(3720.0), "1 h 2 min");
    }
}
