//! The chaos run: proves "an acknowledged write is never lost" against the
//! same real services the tests start.
//!
//! `scripts/chaos [--seed N] [--size small|large]` (this is the test target
//! `chaos`, run without the libtest harness). Concurrent clients create and
//! rewrite records in every region, through two app instances, while a
//! seeded scheduler flips node statuses (API and redis-cli), freezes MongoDB
//! nodes, empties one (restarted without its data), restarts the second
//! instance and SIGKILLs and restarts the first (once during a replay), each
//! restart followed at once by a write through the other instance, flushes
//! Redis (`FLUSHALL`) and restarts it, and restarts the Kafka broker. Then
//! every fault is healed, every queue drains, `regiondb repair` runs, and
//! the stores are checked directly. The last line is
//! `lost=L stale=S duplicates=D divergent=V`; the exit code is non-zero
//! unless all four are 0. `stale` also counts a write that lost to one
//! whose answer came before it was sent (versions must follow acceptance).
//!
//! The node is emptied before any app crash: a crash between a write's
//! home copy and its replica leaves one copy until repair, and emptying
//! that copy's node would be a second fault, not one regiondb can survive.
//!
//! Harness workaround (not in the product): tansu 0.6 wedges when an
//! idempotent producer created before a broker restart produces again, so
//! both instances are restarted right after the broker is. Real Kafka needs
//! no such thing.

#[path = "api/helpers/mod.rs"]
mod helpers;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use helpers::{Instance, Options, RegionSpec, TestApp, customer, wait_until};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::sync::{Mutex, RwLock};

/// How long the end of the run may wait for the queues to drain.
const DRAIN_DEADLINE: Duration = Duration::from_secs(600);
/// Records queued for one node before the app is killed during its replay.
const BACKLOG: usize = 150;

struct Args {
    seed: u64,
    /// Writes the run makes at least.
    writes: usize,
    clients: usize,
    /// Small faults (flips, freezes) the run makes at least, however fast
    /// the writes go.
    small_faults: usize,
    /// Regions (one MongoDB each). The large run spreads its records over
    /// more of them: the stand-in MongoDB's cost per write grows with the
    /// square of its collection's size (see docs/losing-nothing.md).
    regions: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut seed = 1;
    let mut size = "small".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seed" => {
                let v = args.next().ok_or("--seed needs a number")?;
                seed = v
                    .parse()
                    .map_err(|_| format!("--seed: not a number: {v}"))?;
            }
            "--size" => size = args.next().ok_or("--size needs small or large")?,
            // Flags cargo's test runner passes along.
            "--nocapture" | "--quiet" | "-q" => {}
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let (writes, clients, small_faults, regions) = match size.as_str() {
        "small" => (1500, 6, 40, 3),
        "large" => (20_000, 8, 200, 12),
        other => return Err(format!("--size: small or large, got {other:?}")),
    };
    Ok(Args {
        seed,
        writes,
        clients,
        small_faults,
        regions,
    })
}

/// What one request's answer said.
#[derive(Clone, Debug)]
enum Outcome {
    /// 201 (stored) or 202 (queued), with the write's version.
    Acked { version: i64, stored: bool },
    /// 503: not stored, except an unknown-outcome timeout.
    Refused,
    /// No answer (the app was killed, or the client gave up): unknown.
    NoAnswer,
}

#[derive(Clone, Debug)]
struct Attempt {
    id: String,
    zip: u32,
    city: String,
    outcome: Outcome,
    /// When the request was sent and its answer came.
    sent: Instant,
    answered: Instant,
}

impl Attempt {
    fn acked(&self) -> Option<i64> {
        match self.outcome {
            Outcome::Acked { version, .. } => Some(version),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Counts {
    writes: usize,
    created: usize,
    accepted: usize,
    refused: usize,
    no_answer: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("chaos: {e}\nusage: scripts/chaos [--seed N] [--size small|large]");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let options = Options::default()
        .durable_redis()
        .regions(args.regions)
        .env("RUST_LOG", "info")
        .env("MONGO_TIMEOUT_MS", "1000")
        // Small, paced batches, so the kill lands inside a replay.
        .env("REPLAY_BATCH_SIZE", "25")
        .env("REPLAY_THROTTLE_MS", "30");
    let mut app = TestApp::spawn_with(&format!("chaos-seed-{}", args.seed), options).await;
    if !app.controls_processes() {
        return ExitCode::from(2);
    }
    println!(
        "chaos: seed {} · {} writes · {} clients · {} regions · logs in {}",
        args.seed,
        args.writes,
        args.clients,
        args.regions,
        app.dir.display()
    );
    let regions = Arc::new(app.regions.clone());

    let b = app.spawn_instance("regiondb-b").await;
    let addresses = Arc::new(RwLock::new(vec![app.address.clone(), b.address.clone()]));
    let progress = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let known: Arc<Mutex<Vec<(String, u32)>>> = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..args.clients)
        .map(|w| {
            let writer = Writer {
                number: w,
                rng: StdRng::seed_from_u64(args.seed * 1000 + w as u64),
                addresses: addresses.clone(),
                progress: progress.clone(),
                target: args.writes,
                done: done.clone(),
                known: known.clone(),
                regions: regions.clone(),
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(20))
                    .build()
                    .expect("client"),
            };
            tokio::spawn(writer.run())
        })
        .collect();

    let mut faults = Faults::new(args.seed, b);
    faults.run(&mut app, &addresses, &progress, &args).await;
    done.store(true, Ordering::SeqCst);
    let mut attempts = std::mem::take(&mut faults.attempts);
    for w in writers {
        attempts.extend(w.await.expect("writer"));
    }
    let write_phase = started.elapsed();

    // Heal everything, then wait for every queue to drain.
    let heal_start = Instant::now();
    faults.heal(&mut app, &addresses).await;
    for node in app.nodes() {
        wait_until(&format!("{node} to drain"), DRAIN_DEADLINE, || async {
            let (end, committed) = app.offsets(node).await;
            end == 0 || committed == Some(end)
        })
        .await;
    }
    let replay_time = heal_start.elapsed();
    let repaired = run_repair(&app);

    let verdict = check(&app, &attempts).await;
    let mut counts = Counts::default();
    for a in &attempts {
        counts.writes += 1;
        match a.outcome {
            Outcome::Acked { stored: true, .. } => counts.created += 1,
            Outcome::Acked { stored: false, .. } => counts.accepted += 1,
            Outcome::Refused => counts.refused += 1,
            Outcome::NoAnswer => counts.no_answer += 1,
        }
    }
    print_table(
        &counts,
        &faults.done,
        write_phase,
        replay_time,
        &repaired,
        &verdict,
    );
    println!(
        "lost={} stale={} duplicates={} divergent={}",
        verdict.lost, verdict.stale, verdict.duplicates, verdict.divergent
    );
    if verdict.all_zero() && repaired.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One client: creates new records and rewrites known ones (about a third),
/// in every region, until the fault scheduler is done.
struct Writer {
    number: usize,
    rng: StdRng,
    /// Every instance's address; each write goes to one of them at random.
    addresses: Arc<RwLock<Vec<String>>>,
    /// Writes made so far by all clients (the scheduler's clock).
    progress: Arc<AtomicUsize>,
    /// Past this many writes, clients slow down (one write per 100 ms
    /// each) while the scheduler finishes its faults, so the stores stay
    /// small enough for the stand-in MongoDB.
    target: usize,
    done: Arc<AtomicBool>,
    known: Arc<Mutex<Vec<(String, u32)>>>,
    regions: Arc<Vec<RegionSpec>>,
    http: reqwest::Client,
}

impl Writer {
    async fn run(mut self) -> Vec<Attempt> {
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
async fn send(
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

/// The seeded fault scheduler.
struct Faults {
    rng: StdRng,
    /// Writes the scheduler makes itself (to build a backlog, and right
    /// after a restart).
    attempts: Vec<Attempt>,
    done: BTreeMap<&'static str, usize>,
    frozen: HashSet<usize>,
    /// The second instance, and how many times it was started.
    b: Option<Instance>,
    b_runs: usize,
    http: reqwest::Client,
}

impl Faults {
    fn new(seed: u64, b: Instance) -> Self {
        Faults {
            rng: StdRng::seed_from_u64(seed),
            attempts: Vec::new(),
            done: BTreeMap::new(),
            frozen: HashSet::new(),
            b: Some(b),
            b_runs: 1,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
        }
    }

    /// Stops the second instance (SIGTERM, or SIGKILL when `crash`), starts
    /// it again, and publishes its new address.
    async fn restart_b(&mut self, app: &TestApp, addresses: &RwLock<Vec<String>>, crash: bool) {
        if let Some(mut b) = self.b.take() {
            if crash {
                b.crash();
            } else {
                b.stop().await;
            }
        }
        self.b_runs += 1;
        let b = app
            .spawn_instance(&format!("regiondb-b{}", self.b_runs))
            .await;
        addresses.write().await[1] = b.address.clone();
        self.b = Some(b);
    }

    /// One record written through `first`, then at once through `second`:
    /// the second write must win (checked with every other pair).
    async fn write_pair(&mut self, app: &TestApp, first: &str, second: &str, tag: &str) {
        let region = &app.regions[self.rng.random_range(0..app.regions.len())];
        let zip = self.rng.random_range(region.min..=region.max);
        let id = format!("pair-{tag}-{}", self.attempts.len());
        for (n, address) in [first, second].into_iter().enumerate() {
            let city = format!("city-{id}-{n}");
            let attempt = send(&self.http, address, id.clone(), zip, city).await;
            self.attempts.push(attempt);
        }
    }

    fn count(&mut self, kind: &'static str) {
        *self.done.entry(kind).or_default() += 1;
    }

    /// Random small faults all along; the big ones at set points of the
    /// run's progress: an app crash, the broker restart, the Redis restart,
    /// an app crash during a replay.
    async fn run(
        &mut self,
        app: &mut TestApp,
        addresses: &RwLock<Vec<String>>,
        progress: &AtomicUsize,
        args: &Args,
    ) {
        let total = args.writes;
        let mut small = 0;
        // The node is emptied before the first crash (see the module docs).
        let mut big = vec![
            (0.1, "mongo emptied"),
            (0.15, "instance b restart"),
            (0.25, "app SIGKILL"),
            (0.35, "redis FLUSHALL"),
            (0.45, "kafka restart"),
            (0.6, "redis restart"),
            (0.8, "app SIGKILL during replay"),
        ];
        while progress.load(Ordering::SeqCst) < total || small < args.small_faults {
            let at = progress.load(Ordering::SeqCst) as f64 / total as f64;
            if let Some(&(when, kind)) = big.first()
                && at >= when
            {
                big.remove(0);
                self.big_fault(kind, app, addresses).await;
                continue;
            }
            self.small_fault(app).await;
            small += 1;
            let pause = self.rng.random_range(100..700);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        // The writes outran the schedule: the big faults still happen, while
        // the clients go on writing.
        for (_, kind) in big {
            self.big_fault(kind, app, addresses).await;
        }
    }

    async fn small_fault(&mut self, app: &TestApp) {
        let nodes = app.nodes();
        let node = nodes[self.rng.random_range(0..nodes.len())];
        let status = if self.rng.random_bool(0.5) {
            "available"
        } else {
            "unavailable"
        };
        match self.rng.random_range(0..4) {
            0 => {
                // The app is always up here: the scheduler restarts it and
                // waits for it to be ready before going on.
                let (code, body) = app
                    .post("/node-status", &json!({"node_id": node, "status": status}))
                    .await;
                match code.as_u16() {
                    200 => self.count("flip via API"),
                    // Redis just restarted and is not back: an honest 503.
                    503 => self.count("flip via API refused (503)"),
                    other => panic!("POST /node-status answered {other}: {body}"),
                }
            }
            1 => {
                redis_cli(app, &["HSET", "node_statuses", node, status]);
                self.count("flip via redis-cli");
            }
            _ => {
                let i = self.rng.random_range(0..nodes.len());
                if self.frozen.remove(&i) {
                    app.thaw_mongo(nodes[i]);
                } else if self.frozen.is_empty() {
                    app.freeze_mongo(nodes[i]);
                    self.frozen.insert(i);
                    self.count("mongo SIGSTOP");
                }
            }
        }
    }

    async fn big_fault(
        &mut self,
        kind: &'static str,
        app: &mut TestApp,
        addresses: &RwLock<Vec<String>>,
    ) {
        match kind {
            "app SIGKILL" => {
                app.crash_app();
                app.start_app().await;
                addresses.write().await[0] = app.address.clone();
                let b = addresses.read().await[1].clone();
                self.write_pair(app, &app.address.clone(), &b, "a-restart")
                    .await;
            }
            "instance b restart" => {
                self.restart_b(app, addresses, false).await;
                let b = addresses.read().await[1].clone();
                self.write_pair(app, &b, &app.address.clone(), "b-restart")
                    .await;
            }
            "mongo emptied" => {
                let i = self.rng.random_range(0..app.regions.len());
                let node = app.regions[i].id.clone();
                if self.frozen.remove(&i) {
                    app.thaw_mongo(&node);
                }
                app.kill_mongo(&node);
                app.restart_mongo(&node).await;
            }
            "redis FLUSHALL" => redis_cli(app, &["FLUSHALL"]),
            "kafka restart" => {
                app.kill_kafka();
                tokio::time::sleep(Duration::from_millis(self.rng.random_range(200..1500))).await;
                app.restart_kafka().await;
                // tansu 0.6 workaround, see the module docs.
                app.crash_app();
                app.start_app().await;
                addresses.write().await[0] = app.address.clone();
                self.restart_b(app, addresses, true).await;
            }
            "redis restart" => {
                app.restart_redis().await;
            }
            "app SIGKILL during replay" => {
                self.kill_during_replay(app, addresses).await;
                return;
            }
            _ => unreachable!("unknown fault {kind}"),
        }
        self.count(kind);
    }

    /// Builds a backlog on a node (these writes are checked like the
    /// clients'), lets its replay start, and SIGKILLs the app in the middle.
    async fn kill_during_replay(&mut self, app: &mut TestApp, addresses: &RwLock<Vec<String>>) {
        // Build a backlog on a node (these writes are checked like
        // the clients'), let its replay start, kill.
        let region = self.rng.random_range(0..app.regions.len());
        let RegionSpec { id, min, max, .. } = app.regions[region].clone();
        let node = id.as_str();
        if self.frozen.remove(&region) {
            app.thaw_mongo(node);
        }
        redis_cli(app, &["HSET", "node_statuses", node, "unavailable"]);
        wait_until(
            "the app to see the node down",
            Duration::from_secs(10),
            || async { app.get("/node-statuses").await.1[node] == "unavailable" },
        )
        .await;
        let (_, before) = app.offsets(node).await;
        let before = before.unwrap_or(0);
        for n in 0..BACKLOG {
            let id = format!("backlog-{n}");
            let zip = self.rng.random_range(min..=max);
            let city = format!("city-backlog-{n}");
            let attempt = send(&self.http, &app.address, id, zip, city).await;
            self.attempts.push(attempt);
        }
        redis_cli(app, &["HSET", "node_statuses", node, "available"]);
        let waiting = Instant::now();
        let committed = loop {
            let (_, committed) = app.offsets(node).await;
            // Any progress (older hints may be ahead of ours).
            if committed.unwrap_or(0) > before {
                break committed;
            }
            assert!(waiting.elapsed() < DRAIN_DEADLINE, "no replay progress");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        app.crash_app();
        let (end, _) = app.offsets(node).await;
        if committed.unwrap_or(0) >= end {
            eprintln!("chaos: the replay had finished before the kill");
            self.count("app SIGKILL just after a replay");
        } else {
            self.count("app SIGKILL during replay");
        }
        app.start_app().await;
        addresses.write().await[0] = app.address.clone();
        let b = addresses.read().await[1].clone();
        self.write_pair(app, &app.address.clone(), &b, "a-replay-restart")
            .await;
    }

    /// Thaws every node, marks every node available.
    async fn heal(&mut self, app: &mut TestApp, addresses: &RwLock<Vec<String>>) {
        let nodes = app.nodes();
        for i in self.frozen.drain() {
            app.thaw_mongo(nodes[i]);
        }
        for node in nodes {
            redis_cli(app, &["HSET", "node_statuses", node, "available"]);
        }
        addresses.write().await[0] = app.address.clone();
    }
}

fn redis_cli(app: &TestApp, args: &[&str]) {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &app.redis_port().to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    assert!(out.status.success(), "redis-cli {args:?} failed");
}

/// Runs `regiondb repair` with the app's settings; its table, or why not.
fn run_repair(app: &TestApp) -> Result<String, String> {
    let out = app.run_command(&["repair"]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(table)
    } else {
        Err(format!("{table}{}", String::from_utf8_lossy(&out.stderr)))
    }
}

#[derive(Default)]
struct Verdict {
    records: usize,
    lost: usize,
    stale: usize,
    duplicates: usize,
    divergent: usize,
    half_applied_503: usize,
    examples: Vec<String>,
}

impl Verdict {
    fn all_zero(&self) -> bool {
        self.lost + self.stale + self.duplicates + self.divergent == 0
    }

    fn note(&mut self, what: String) {
        if self.examples.len() < 10 {
            self.examples.push(what);
        }
    }
}

/// Reads every copy straight from MongoDB and checks each record.
async fn check(app: &TestApp, attempts: &[Attempt]) -> Verdict {
    // (node, collection) -> id -> (version, city)
    let mut copies: HashMap<(String, String), HashMap<String, (i64, String)>> = HashMap::new();
    for region in &app.regions {
        let home = region.id.as_str();
        for (node, collection) in [
            (home, "customers".to_owned()),
            (region.replica.as_str(), format!("replica_{home}")),
        ] {
            let docs = app.docs(node, &collection).await;
            let map = docs
                .iter()
                .map(|d| {
                    (
                        d.get_str("_id").unwrap_or_default().to_owned(),
                        (
                            d.get_i64("version").unwrap_or(-1),
                            d.get_str("customer_city").unwrap_or_default().to_owned(),
                        ),
                    )
                })
                .collect();
            copies.insert((node.to_owned(), collection), map);
        }
    }
    let mut by_id: HashMap<&str, Vec<&Attempt>> = HashMap::new();
    for a in attempts {
        by_id.entry(a.id.as_str()).or_default().push(a);
    }
    let mut v = Verdict::default();
    let mut seen_anywhere: HashMap<String, usize> = HashMap::new();
    for (_, docs) in copies.iter().filter(|((_, c), _)| c == "customers") {
        for id in docs.keys() {
            *seen_anywhere.entry(id.clone()).or_default() += 1;
        }
    }
    // A record in two regions' home collections, or one nobody wrote.
    for (id, n) in &seen_anywhere {
        if *n > 1 || !by_id.contains_key(id.as_str()) {
            v.duplicates += 1;
            v.note(format!("{id}: stored {n} times or never written"));
        }
    }
    for (id, tries) in &by_id {
        v.records += 1;
        let Some((home, replica)) = home_of(&app.regions, tries[0].zip) else {
            v.note(format!("{id}: zip {} routes nowhere", tries[0].zip));
            continue;
        };
        let home_copy = copies[&(home.to_owned(), "customers".to_owned())].get(*id);
        let replica_copy = copies[&(replica.to_owned(), format!("replica_{home}"))].get(*id);
        let newest_acked = tries
            .iter()
            .filter_map(|a| Some((a.acked()?, a.city.as_str())))
            .max();
        check_order(id, tries, &mut v);
        if let Some((version, city)) = newest_acked {
            for (which, copy) in [("home", home_copy), ("replica", replica_copy)] {
                match copy {
                    None => {
                        v.lost += 1;
                        v.note(format!("{id}: {which} copy missing (acked {version})"));
                    }
                    Some((stored, _)) if *stored < version => {
                        v.stale += 1;
                        v.note(format!("{id}: {which} at {stored} < acked {version}"));
                    }
                    Some((stored, c)) if *stored == version && c != city => {
                        v.stale += 1;
                        v.note(format!("{id}: {which} at {stored} holds {c}, not {city}"));
                    }
                    // Newer than every acknowledged write: must be one whose
                    // outcome was unknown (no answer, or a timed-out 503).
                    Some((stored, c)) if *stored > version => {
                        let unknown = tries.iter().any(|a| a.acked().is_none() && &a.city == c);
                        if !unknown {
                            v.divergent += 1;
                            v.note(format!("{id}: {which} at {stored} ({c}) matches no write"));
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        match (home_copy, replica_copy) {
            (Some(h), Some(r)) if h != r => {
                v.divergent += 1;
                v.note(format!("{id}: home {h:?} != replica {r:?}"));
            }
            (Some(_), None) | (None, Some(_)) if newest_acked.is_none() => {
                v.divergent += 1;
                v.note(format!("{id}: only one copy of an unacknowledged write"));
            }
            _ => {}
        }
        // A 503 either left nothing, or (a timed-out direct write that
        // landed late) was completed by repair on both copies.
        for a in tries
            .iter()
            .filter(|a| matches!(a.outcome, Outcome::Refused))
        {
            let on_home = home_copy.is_some_and(|(_, c)| *c == a.city);
            let on_replica = replica_copy.is_some_and(|(_, c)| *c == a.city);
            if on_home != on_replica {
                v.half_applied_503 += 1;
                v.divergent += 1;
                v.note(format!("{id}: 503 write {} half-applied", a.city));
            }
        }
    }
    v
}

/// A write sent after another's answer came must have the higher version
/// (versions follow acceptance, whichever instance took each).
fn check_order(id: &str, tries: &[&Attempt], v: &mut Verdict) {
    for earlier in tries.iter().filter(|a| a.acked().is_some()) {
        for later in tries.iter().filter(|a| a.sent > earlier.answered) {
            if let (Some(e), Some(l)) = (earlier.acked(), later.acked())
                && l <= e
            {
                v.stale += 1;
                v.note(format!(
                    "{id}: {} (v{l}) lost to the earlier {} (v{e})",
                    later.city, earlier.city
                ));
            }
        }
    }
}

/// A zip's home and replica nodes.
fn home_of(regions: &[RegionSpec], zip: u32) -> Option<(&str, &str)> {
    regions
        .iter()
        .find(|r| (r.min..=r.max).contains(&zip))
        .map(|r| (r.id.as_str(), r.replica.as_str()))
}

fn print_table(
    counts: &Counts,
    faults: &BTreeMap<&'static str, usize>,
    write_phase: Duration,
    replay: Duration,
    repaired: &Result<String, String>,
    verdict: &Verdict,
) {
    println!("\n{:<34} {:>8}", "writes", counts.writes);
    println!("{:<34} {:>8}", "  201 stored", counts.created);
    println!("{:<34} {:>8}", "  202 queued", counts.accepted);
    println!("{:<34} {:>8}", "  503 refused", counts.refused);
    println!("{:<34} {:>8}", "  no answer (app down)", counts.no_answer);
    println!("{:<34} {:>8}", "records checked", verdict.records);
    for (kind, n) in faults {
        println!("{:<34} {:>8}", format!("fault: {kind}"), n);
    }
    println!("{:<34} {:>7.1}s", "write phase", write_phase.as_secs_f64());
    println!(
        "{:<34} {:>7.1}s",
        "replay (heal to drained)",
        replay.as_secs_f64()
    );
    println!(
        "{:<34} {:>8}",
        "503s half-applied", verdict.half_applied_503
    );
    match repaired {
        Ok(table) => println!("\nrepair:\n{table}"),
        Err(e) => println!("\nrepair FAILED:\n{e}"),
    }
    for e in &verdict.examples {
        println!("  ! {e}");
    }
}
