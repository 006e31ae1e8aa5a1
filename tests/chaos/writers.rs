//! The clients: each creates records, rewrites them, moves them to another
//! region (about 10% of operations) and deletes them (about 5%; a later
//! rewrite of a deleted id re-creates it), through a random instance, and
//! remembers every attempt with its outcome and times.

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
    /// A delete of an id no region held: nothing written.
    NotFound,
}

/// What an attempt asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Write,
    Delete,
}

#[derive(Clone, Debug)]
pub struct Attempt {
    pub op: Op,
    pub id: String,
    pub zip: u32,
    pub city: String,
    pub outcome: Outcome,
    /// When the request was sent and its answer came.
    pub sent: Instant,
    pub answered: Instant,
    /// The careful client that sent it (its last receipt's version in
    /// `RegionDB-After-Version`), if one did.
    pub careful: Option<usize>,
}

impl Attempt {
    pub fn acked(&self) -> Option<i64> {
        match self.outcome {
            Outcome::Acked { version, .. } => Some(version),
            _ => None,
        }
    }
}

/// One client: creates new records, rewrites known ones (about a quarter),
/// moves them (a tenth) and deletes them (a twentieth), in every region,
/// until the fault scheduler is done. Every other client is careful: it
/// sends the version of the last receipt it saw with each request, so its
/// own writes are ordered exactly, whatever the instances' clocks.
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
        let careful = self.number.is_multiple_of(2);
        let mut last_receipt: Option<i64> = None;
        while !self.done.load(Ordering::SeqCst) {
            if self.progress.fetch_add(1, Ordering::SeqCst) >= self.target {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            n += 1;
            let (op, id, zip) = self.pick(n).await;
            let city = format!("city-w{}-{n}", self.number);
            let address = {
                let all = self.addresses.read().await;
                all[self.rng.random_range(0..all.len())].clone()
            };
            let after = last_receipt.filter(|_| careful);
            let mut attempt = match op {
                Op::Write => send(&self.http, &address, id, zip, city, after).await,
                Op::Delete => send_delete(&self.http, &address, id, after).await,
            };
            if careful {
                attempt.careful = Some(self.number);
                last_receipt = attempt.acked().max(last_receipt);
            }
            if matches!(attempt.outcome, Outcome::NoAnswer) {
                // An instance is down or restarting: back off a little.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if op == Op::Write && !matches!(attempt.outcome, Outcome::Refused) {
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

impl Writer {
    /// The next operation: a new record, or (for a known id) a delete, a
    /// move to another region, or a rewrite in place.
    async fn pick(&mut self, n: usize) -> (Op, String, u32) {
        let roll: f64 = self.rng.random();
        let known = {
            let known = self.known.lock().await;
            (!known.is_empty() && roll < 0.4)
                .then(|| known[self.rng.random_range(0..known.len())].clone())
        };
        let random_zip = |rng: &mut StdRng, other_than: Option<u32>| loop {
            let region = &self.regions[rng.random_range(0..self.regions.len())];
            let zip = rng.random_range(region.min..=region.max);
            let same = other_than.is_some_and(|z| (region.min..=region.max).contains(&z));
            if !same || self.regions.len() < 2 {
                return zip;
            }
        };
        match known {
            Some((id, _)) if roll < 0.05 => (Op::Delete, id, 0),
            Some((id, zip)) if roll < 0.15 => {
                let moved = random_zip(&mut self.rng, Some(zip));
                (Op::Write, id, moved)
            }
            Some((id, zip)) => (Op::Write, id, zip),
            None => {
                let zip = random_zip(&mut self.rng, None);
                (Op::Write, format!("w{}-{n}", self.number), zip)
            }
        }
    }
}

/// `request`, after the version `after` if there is one.
fn after_version(request: reqwest::RequestBuilder, after: Option<i64>) -> reqwest::RequestBuilder {
    match after {
        Some(v) => request.header("RegionDB-After-Version", v.to_string()),
        None => request,
    }
}

/// One delete through `address`, timed.
pub async fn send_delete(
    http: &reqwest::Client,
    address: &str,
    id: String,
    after: Option<i64>,
) -> Attempt {
    let sent = Instant::now();
    let url = format!("{address}/customers/{id}");
    let outcome = match after_version(http.delete(url), after).send().await {
        Err(_) => Outcome::NoAnswer,
        Ok(r) => {
            let code = r.status().as_u16();
            let answer: serde_json::Value = r.json().await.unwrap_or_default();
            match (code, answer["version"].as_i64()) {
                (200 | 202, Some(version)) => Outcome::Acked {
                    version,
                    stored: code == 200,
                },
                (404, _) => Outcome::NotFound,
                (503, _) => Outcome::Refused,
                _ => panic!("unexpected answer to a delete {code}: {answer}"),
            }
        }
    };
    Attempt {
        op: Op::Delete,
        id,
        zip: 0,
        city: String::new(),
        outcome,
        sent,
        answered: Instant::now(),
        careful: None,
    }
}

/// One write through `address`, timed.
pub async fn send(
    http: &reqwest::Client,
    address: &str,
    id: String,
    zip: u32,
    city: String,
    after: Option<i64>,
) -> Attempt {
    let mut body = customer(&id, zip);
    body["customer_city"] = json!(city);
    let sent = Instant::now();
    let url = format!("{address}/create-customer");
    let outcome = match after_version(http.post(url).json(&body), after)
        .send()
        .await
    {
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
        op: Op::Write,
        id,
        zip,
        city,
        outcome,
        sent,
        answered: Instant::now(),
        careful: None,
    }
}
