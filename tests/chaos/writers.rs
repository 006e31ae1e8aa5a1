//! The clients: each writes and rewrites records through a random
//! instance, and remembers every attempt with its outcome and times.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::json;
use tokio::sync::{Mutex, RwLock};

use crate::helpers::{RegionSpec, customer};

/// What one request's answer said.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// 201 (stored) or 202 (queued), with the write's version.
    Acked { version: i64, stored: bool },
    /// 503: not stored, except an unknown-outcome timeout.
    Refused,
    /// No answer (the app was killed, or the client gave up): unknown.
    NoAnswer,
}

#[derive(Clone, Debug)]
pub struct Attempt {
    pub id: String,
    pub zip: u32,
    pub city: String,
    pub outcome: Outcome,
    /// When the request was sent and its answer came.
    pub sent: Instant,
    pub answered: Instant,
}

impl Attempt {
    pub fn acked(&self) -> Option<i64> {
        match self.outcome {
            Outcome::Acked { version, .. } => Some(version),
            _ => None,
        }
    }
}

/// One client: creates new records and rewrites known ones (about a third),
/// in every region, until the fault scheduler is done.
pub struct Writer {
    pub number: usize,
    pub rng: StdRng,
    /// Every instance's address; each write goes to one of them at random.
    pub addresses: Arc<RwLock<Vec<String>>>,
    /// Writes made so far by all clients (the scheduler's clock).
    pub progress: Arc<AtomicUsize>,
    /// Past this many writes, clients slow down (one write per 100 ms
    /// each) while the scheduler finishes its faults, so the stores stay
    /// small enough for the stand-in MongoDB.
    pub target: usize,
    pub done: Arc<AtomicBool>,
    pub known: Arc<Mutex<Vec<(String, u32)>>>,
    pub regions: Arc<Vec<RegionSpec>>,
    pub http: reqwest::Client,
}

impl Writer {
    pub async fn run(mut self) -> Vec<Attempt> {
        let mut attempts = Vec::new();
        let mut n = 0;
        while !self.done.load(Ordering::SeqCst) {
            if self.progress.fetch_add(1, Ordering::SeqCst) >= self.target {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            n += 1;
            let rewrite = {
                let known = self.known.lock().await;
                if !known.is_empty() && self.rng.random_bool(1.0 / 3.0) {
                    Some(known[self.rng.random_range(0..known.len())].clone())
                } else {
                    None
                }
            };
            let (id, zip) = rewrite.unwrap_or_else(|| {
                let region = &self.regions[self.rng.random_range(0..self.regions.len())];
                (
                    format!("w{}-{n}", self.number),
                    self.rng.random_range(region.min..=region.max),
                )
            });
            let city = format!("city-w{}-{n}", self.number);
            let address = {
                let all = self.addresses.read().await;
                all[self.rng.random_range(0..all.len())].clone()
            };
            let attempt = send(&self.http, &address, id, zip, city).await;
            if matches!(attempt.outcome, Outcome::NoAnswer) {
                // An instance is down or restarting: back off a little.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if !matches!(attempt.outcome, Outcome::Refused) {
                self.known
                    .lock()
                    .await
                    .push((attempt.id.clone(), attempt.zip));
            }
            attempts.push(attempt);
        }
        attempts
    }
}

/// One write through `address`, timed.
pub async fn send(
    http: &reqwest::Client,
    address: &str,
    id: String,
    zip: u32,
    city: String,
) -> Attempt {
    let mut body = customer(&id, zip);
    body["customer_city"] = json!(city);
    let sent = Instant::now();
    let url = format!("{address}/create-customer");
    let outcome = match http.post(url).json(&body).send().await {
        Err(_) => Outcome::NoAnswer,
        Ok(r) => {
            let code = r.status().as_u16();
            let answer: serde_json::Value = r.json().await.unwrap_or_default();
            match (code, answer["version"].as_i64()) {
                (201 | 202, Some(version)) => Outcome::Acked {
                    version,
                    stored: code == 201,
                },
                (503, _) => Outcome::Refused,
                _ => panic!("unexpected answer {code}: {answer}"),
            }
        }
    };
    Attempt {
        id,
        zip,
        city,
        outcome,
        sent,
        answered: Instant::now(),
    }
}
