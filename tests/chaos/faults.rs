//! The seeded fault scheduler: status flips, frozen and emptied MongoDB
//! nodes, app restarts and crashes, Redis and Kafka restarts, `FLUSHALL`;
//! and healing them all.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::RwLock;

use serde_json::json;

use crate::helpers::{Instance, RegionSpec, TestApp, wait_until};
use crate::writers::{Attempt, send};
use crate::{Args, BACKLOG, DRAIN_DEADLINE};

/// The seeded fault scheduler.
pub struct Faults {
    pub rng: StdRng,
    /// Writes the scheduler makes itself (to build a backlog, and right
    /// after a restart).
    pub attempts: Vec<Attempt>,
    pub done: BTreeMap<&'static str, usize>,
    pub frozen: HashSet<usize>,
    /// The second instance, and how many times it was started.
    pub b: Option<Instance>,
    pub b_runs: usize,
    pub http: reqwest::Client,
}

impl Faults {
    pub fn new(seed: u64, b: Instance) -> Self {
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
    pub async fn restart_b(&mut self, app: &TestApp, addresses: &RwLock<Vec<String>>, crash: bool) {
        if let Some(mut b) = self.b.take() {
            if crash {
                b.crash();
            } else {
                b.stop().await;
            }
        }
        self.b_runs += 1;
        let clock = crate::helpers::skewed_clock(crate::B_CLOCK);
        let b = app
            .spawn_instance_with(
                &format!("regiondb-b{}", self.b_runs),
                &crate::helpers::as_settings(&clock),
            )
            .await;
        addresses.write().await[1] = b.address.clone();
        self.b = Some(b);
    }

    /// One record written through `first`, then through `second` as soon
    /// as the skew window has passed: the second write must win (checked
    /// with every other pair).
    pub async fn write_pair(&mut self, app: &TestApp, first: &str, second: &str, tag: &str) {
        let region = &app.regions[self.rng.random_range(0..app.regions.len())];
        let zip = self.rng.random_range(region.min..=region.max);
        let id = format!("pair-{tag}-{}", self.attempts.len());
        for (n, address) in [first, second].into_iter().enumerate() {
            let city = format!("city-{id}-{n}");
            if n == 1 {
                // Past the window in which skew may still order writes
                // wrongly (docs/losing-nothing.md): beyond it, the second
                // write must win without help from the client.
                tokio::time::sleep(crate::verdict::SKEW_WINDOW).await;
            }
            let attempt = send(&self.http, address, id.clone(), zip, city, None).await;
            self.attempts.push(attempt);
        }
    }

    pub fn count(&mut self, kind: &'static str) {
        *self.done.entry(kind).or_default() += 1;
    }

    /// Random small faults all along; the big ones at set points of the
    /// run's progress: an app crash, the broker restart, the Redis restart,
    /// an app crash during a replay.
    pub async fn run(
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

    pub async fn small_fault(&mut self, app: &TestApp) {
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

    pub async fn big_fault(
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
    pub async fn kill_during_replay(&mut self, app: &mut TestApp, addresses: &RwLock<Vec<String>>) {
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
            let attempt = send(&self.http, &app.address, id, zip, city, None).await;
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
    pub async fn heal(&mut self, app: &mut TestApp, addresses: &RwLock<Vec<String>>) {
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

pub fn redis_cli(app: &TestApp, args: &[&str]) {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &app.redis_port().to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    assert!(out.status.success(), "redis-cli {args:?} failed");
}
