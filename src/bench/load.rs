//! The load loop: a number of workers (one connection each), each sending
//! its next request as soon as the last one was answered, for a warm-up and
//! then a measured period; and what they saw.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What one request came to.
pub enum Outcome {
    /// Answered with this status (an HTTP status; a baseline's success is
    /// 200).
    Status(u16),
    /// Not answered (the connection broke, a driver error): its reason.
    Failed(String),
}

/// One worker: sends request number `seq` of its own and waits for it.
pub trait Op: Send + 'static {
    fn call(&mut self, seq: u64) -> impl Future<Output = Outcome> + Send;
}

/// What the workers saw in the measured period.
#[derive(Debug, Default, Clone)]
pub struct Load {
    pub connections: usize,
    pub elapsed: Duration,
    /// Answers by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer, with the first reason seen.
    pub failed: u64,
    pub first_failure: Option<String>,
    /// Every answered request's latency, in microseconds, sorted.
    latencies: Vec<u32>,
}

impl Load {
    pub fn answered(&self) -> u64 {
        self.statuses.values().sum()
    }

    /// Answers with a 2xx status.
    pub fn succeeded(&self) -> u64 {
        self.statuses.range(200..300).map(|(_, n)| n).sum()
    }

    /// Everything but 2xx answers.
    pub fn errors(&self) -> u64 {
        self.answered() - self.succeeded() + self.failed
    }

    /// Answered requests per second (whatever their status).
    pub fn rate(&self) -> f64 {
        self.answered() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency at quantile `q` (0-1), in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let rank = (q * (self.latencies.len() - 1) as f64).round() as usize;
        f64::from(self.latencies[rank.min(self.latencies.len() - 1)]) / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.latencies
            .last()
            .map_or(0.0, |l| f64::from(*l) / 1000.0)
    }
}

/// One worker's tally.
#[derive(Default)]
struct Tally {
    statuses: BTreeMap<u16, u64>,
    failed: u64,
    first_failure: Option<String>,
    latencies: Vec<u32>,
}

/// Runs `workers` for `warmup` (not counted) and then `period`.
pub async fn drive<O: Op>(workers: Vec<O>, warmup: Duration, period: Duration) -> Load {
    let connections = workers.len();
    let start = Instant::now() + warmup;
    let end = start + period;
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|op| tokio::spawn(work(op, start, end)))
        .collect();
    let mut load = Load {
        connections,
        elapsed: period,
        ..Load::default()
    };
    for task in tasks {
        let Ok(tally) = task.await else {
            load.failed += 1;
            continue;
        };
        for (status, n) in tally.statuses {
            *load.statuses.entry(status).or_default() += n;
        }
        load.failed += tally.failed;
        load.first_failure = load.first_failure.or(tally.first_failure);
        load.latencies.extend(tally.latencies);
    }
    load.latencies.sort_unstable();
    load
}

async fn work<O: Op>(mut op: O, start: Instant, end: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut seq = 0;
    loop {
        let sent = Instant::now();
        if sent >= end {
            return tally;
        }
        let outcome = op.call(seq).await;
        seq += 1;
        if sent < start {
            continue;
        }
        match outcome {
            Outcome::Status(status) => {
                *tally.statuses.entry(status).or_default() += 1;
                let took = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
                tally.latencies.push(took);
            }
            Outcome::Failed(reason) => {
                tally.failed += 1;
                tally.first_failure.get_or_insert(reason);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;

    impl Op for Echo {
        async fn call(&mut self, seq: u64) -> Outcome {
            tokio::task::yield_now().await;
            match seq % 4 {
                3 => Outcome::Status(503),
                _ => Outcome::Status(201),
            }
        }
    }

    #[tokio::test]
    async fn a_load_counts_answers_by_status() {
        let load = drive(vec![Echo, Echo], Duration::ZERO, Duration::from_millis(50)).await;
        assert_eq!(load.connections, 2);
        assert!(load.answered() > 0);
        assert!(load.errors() > 0 && load.errors() < load.answered());
        assert!(load.quantile_ms(0.5) <= load.max_ms());
    }
}
