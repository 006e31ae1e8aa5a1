//! The test harness: real servers, started fresh for every test on free
//! loopback ports, and the real `regiondb` binary pointed at them.
//!
//! Per test: one `redis-server`, one `tansu` broker on SQLite in the test's
//! directory, one `jongodb` process per node (three by default, so one node can be
//! frozen with SIGSTOP while the others run) and the app. Logs and data go to
//! `target/test-output/<test>/`.
//!
//! To run the same suite against real services instead, set
//! `REGIONDB_TEST_REDIS_URL`, `REGIONDB_TEST_KAFKA` (bootstrap servers) and
//! `REGIONDB_TEST_MONGO_URI_REGION_1..3` (see docs/testing.md). Tests then run one
//! at a time, each starting from an emptied Redis database, dropped node
//! databases and its own topic prefix; tests that need to freeze or kill a
//! server process say so and skip.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mongodb::bson::{Document, doc};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub const NODES: [&str; 3] = ["region_1", "region_2", "region_3"];

/// One region of the map a test runs with: its zips and its replica node.
#[derive(Clone, Debug)]
pub struct RegionSpec {
    pub id: String,
    pub min: u32,
    pub max: u32,
    pub replica: String,
}

/// The product's default map for 3 regions; otherwise `n` regions
/// splitting the zips evenly, each replicated on the one before it (the
/// default ring's rule).
pub fn region_specs(n: usize) -> Vec<RegionSpec> {
    if n == 3 {
        let spec = |id: &str, min, max, replica: &str| RegionSpec {
            id: id.into(),
            min,
            max,
            replica: replica.into(),
        };
        return vec![
            spec("region_1", 1000, 39999, "region_3"),
            spec("region_2", 40000, 69999, "region_1"),
            spec("region_3", 70000, 99999, "region_2"),
        ];
    }
    let (first, last) = (1000u32, 99999u32);
    let width = (last - first + 1) / n as u32;
    (0..n)
        .map(|i| RegionSpec {
            id: format!("region_{}", i + 1),
            min: first + i as u32 * width,
            max: if i + 1 == n {
                last
            } else {
                first + (i as u32 + 1) * width - 1
            },
            replica: format!("region_{}", (i + n - 1) % n + 1),
        })
        .collect()
}

/// A regions file (see docs/configuration.md) for `specs`.
fn regions_file(specs: &[RegionSpec]) -> String {
    specs
        .iter()
        .map(|r| {
            format!(
                "[[region]]\nid = \"{}\"\nzip_min = {}\nzip_max = {}\nreplica = \"{}\"\n",
                r.id, r.min, r.max, r.replica
            )
        })
        .collect()
}
/// Generous bound for conditions that normally hold within milliseconds.
pub const DEADLINE: Duration = Duration::from_secs(30);

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A child process killed when dropped.
pub struct Proc {
    child: Child,
    name: String,
}

impl Proc {
    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).unwrap_or_else(|e| panic!("{signal} {}: {e}", self.name));
        if signal == Signal::SIGSTOP {
            // kill() only queues the stop; every thread stops when it next
            // passes through the kernel. Wait until the process is stopped
            // (state T), so a busy machine cannot answer one more request.
            let stat = format!("/proc/{}/stat", self.child.id());
            let start = Instant::now();
            while start.elapsed() < DEADLINE {
                let state = std::fs::read_to_string(&stat).unwrap_or_default();
                let stopped = state
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().next())
                    .is_some_and(|s| s == "T" || s == "t");
                if stopped {
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            panic!("{} did not stop", self.name);
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal(Signal::SIGTERM);
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(start.elapsed() < DEADLINE, "{} did not stop", self.name);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A stopped process must be continued to die promptly on some kernels.
        let _ = kill(self.pid(), Signal::SIGCONT);
        self.kill();
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A tool from `.tools/bin` (where scripts/test installs it), else from PATH.
fn tool(name: &str) -> PathBuf {
    let local = repo_root().join(".tools/bin").join(name);
    if local.exists() {
        local
    } else {
        PathBuf::from(name)
    }
}

/// A port nothing listens on, never handed out before in this process:
/// the kernel may give the same free port to two tests starting servers at
/// once, and a test whose server lost that race would then talk to
/// another test's server (and freeze or kill the wrong one).
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

async fn port_open(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

/// Starts a server on a free port and waits until it accepts connections,
/// retrying on another port if it dies (e.g. the port was taken meanwhile).
pub async fn start_server(name: &str, dir: &Path, args: impl Fn(u16) -> Command) -> (Proc, u16) {
    for _ in 0..3 {
        let port = free_port();
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log file");
        let mut cmd = args(port);
        cmd.current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {name} ({:?}): {e}; run scripts/test to install it",
                cmd.get_program()
            )
        });
        let mut proc = Proc {
            child,
            name: name.into(),
        };
        let start = Instant::now();
        while start.elapsed() < DEADLINE {
            if port_open(port).await {
                return (proc, port);
            }
            if proc.exited() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        proc.kill();
    }
    panic!("{name} did not start; see its log in {}", dir.display());
}

pub async fn wait_until<F, Fut>(what: &str, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Another instance of the app (see [`TestApp::spawn_instance`]).
pub struct Instance {
    pub address: String,
    proc: Option<Proc>,
}

impl Instance {
    /// SIGTERM and wait: the graceful path.
    pub async fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.terminate().await;
        }
    }

    /// SIGKILL.
    pub fn crash(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal(Signal::SIGKILL);
            p.kill();
        }
    }
}

/// The value of the sample of `name` whose labels include every one of
/// `labels` (`key="value"`), if there is one.
pub fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (labels_part, value) = match rest.strip_prefix('{') {
            Some(r) => r.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        let have: Vec<&str> = labels_part.split(',').collect();
        labels
            .iter()
            .all(|l| have.contains(l))
            .then(|| value.trim().parse().ok())?
    })
}

/// The body of `GET address+path`, as text.
pub async fn get_text_at(http: &reqwest::Client, address: &str, path: &str) -> String {
    http.get(format!("{address}{path}"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// The JSON body of `GET address+path`.
pub async fn get_json_at(http: &reqwest::Client, address: &str, path: &str) -> Value {
    let text = get_text_at(http, address, path).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"))
}

/// The `GET /nodes` entry of `node` at the instance at `address`.
pub async fn node_at(http: &reqwest::Client, address: &str, node: &str) -> Value {
    get_json_at(http, address, "/nodes")
        .await
        .as_array()
        .expect("array")
        .iter()
        .find(|n| n["node_id"] == node)
        .cloned()
        .expect("node in /nodes")
}

/// A sample of the `/metrics` of the instance at `address` (0 if absent).
pub async fn metric_at(http: &reqwest::Client, address: &str, name: &str, labels: &[&str]) -> f64 {
    let text = get_text_at(http, address, "/metrics").await;
    sample(&text, name, labels).unwrap_or(0.0)
}

/// How the app is configured beyond the service addresses.
#[derive(Clone, Default)]
pub struct Options {
    pub env: Vec<(String, String)>,
    /// Redis keeps an append-only file, so it can be restarted.
    pub durable_redis: bool,
    /// Regions (and so MongoDB nodes); 0 means the default 3.
    pub regions: usize,
}

impl Options {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn durable_redis(mut self) -> Self {
        self.durable_redis = true;
        self
    }

    pub fn regions(mut self, n: usize) -> Self {
        self.regions = n;
        self
    }
}

pub struct Kafka {
    pub bootstrap: String,
    proc: Option<Proc>,
    port: u16,
}

pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    pub dir: PathBuf,
    pub redis_url: String,
    pub kafka: Kafka,
    pub mongo_uris: Vec<String>,
    pub topic_prefix: String,
    /// The region map the app runs with.
    pub regions: Vec<RegionSpec>,
    redis: Option<Proc>,
    redis_port: u16,
    mongo: Vec<Option<Proc>>,
    app: Option<Proc>,
    app_env: Vec<(String, String)>,
    app_runs: usize,
    _serial: Option<tokio::sync::MutexGuard<'static, ()>>,
}

fn external(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl TestApp {
    pub async fn spawn(test: &str) -> TestApp {
        Self::spawn_with(test, Options::default()).await
    }

    pub async fn spawn_with(test: &str, options: Options) -> TestApp {
        let dir = repo_root().join("target/test-output").join(test);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test dir");
        let external_mode = external("REGIONDB_TEST_REDIS_URL").is_some()
            || external("REGIONDB_TEST_KAFKA").is_some()
            || external("REGIONDB_TEST_MONGO_URI_REGION_1").is_some();
        let serial = if external_mode {
            Some(SERIAL.lock().await)
        } else {
            None
        };

        let durable = options.durable_redis;
        let (redis, redis_port, redis_url) = match external("REGIONDB_TEST_REDIS_URL") {
            Some(url) => (None, 0, url),
            None => {
                let (p, port) =
                    start_server("redis", &dir, |port| redis_command(port, durable)).await;
                (Some(p), port, format!("redis://127.0.0.1:{port}"))
            }
        };
        let kafka = match external("REGIONDB_TEST_KAFKA") {
            Some(bootstrap) => Kafka {
                bootstrap,
                proc: None,
                port: 0,
            },
            None => {
                let (p, port) = start_server("tansu", &dir, tansu_command).await;
                Kafka {
                    bootstrap: format!("127.0.0.1:{port}"),
                    proc: Some(p),
                    port,
                }
            }
        };
        let regions = region_specs(if options.regions == 0 {
            3
        } else {
            options.regions
        });
        let mut mongo = Vec::new();
        let mut mongo_uris = Vec::new();
        for node in regions.iter().map(|r| r.id.as_str()) {
            let var = format!("REGIONDB_TEST_MONGO_URI_{}", node.to_uppercase());
            match external(&var) {
                Some(uri) => {
                    mongo.push(None);
                    mongo_uris.push(uri);
                }
                None => {
                    let (p, port) = start_server(&format!("jongodb-{node}"), &dir, |port| {
                        let mut c = Command::new(tool("jongodb"));
                        c.args(["--host=127.0.0.1", &format!("--port={port}")]);
                        c
                    })
                    .await;
                    mongo.push(Some(p));
                    mongo_uris.push(format!("mongodb://127.0.0.1:{port}"));
                }
            }
        }

        // Each test gets its own topics and consumer groups, even on a
        // shared broker.
        let topic_prefix = format!(
            "t{}-{}-",
            std::process::id(),
            test.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
        );
        let mut app_env: Vec<(String, String)> = vec![
            ("REDIS_URL".into(), redis_url.clone()),
            ("KAFKA_BOOTSTRAP_SERVER".into(), kafka.bootstrap.clone()),
            ("KAFKA_TOPIC_PREFIX".into(), topic_prefix.clone()),
            ("MONGO_TIMEOUT_MS".into(), "1500".into()),
            ("KAFKA_TIMEOUT_MS".into(), "3000".into()),
            ("RUST_LOG".into(), "info,regiondb=debug".into()),
        ];
        for (region, uri) in regions.iter().zip(&mongo_uris) {
            app_env.push((
                format!("MONGO_URI_{}", region.id.to_uppercase()),
                uri.clone(),
            ));
        }
        if regions.len() != 3 {
            let path = dir.join("regions.toml");
            std::fs::write(&path, regions_file(&regions)).expect("regions file");
            app_env.push(("REGIONS_FILE".into(), path.display().to_string()));
        }
        app_env.extend(options.env);

        let mut app = TestApp {
            address: String::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("http client"),
            dir,
            redis_url,
            kafka,
            mongo_uris,
            topic_prefix,
            regions,
            redis,
            redis_port,
            mongo,
            app: None,
            app_env,
            app_runs: 0,
            _serial: serial,
        };
        if external_mode {
            app.reset_external_state().await;
        }
        app.start_app().await;
        app
    }

    /// External services are shared between runs: start from empty.
    async fn reset_external_state(&self) {
        let client = redis::Client::open(self.redis_url.as_str()).expect("redis url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        let _: () = redis::cmd("FLUSHDB")
            .query_async(&mut conn)
            .await
            .expect("flushdb");
        for (i, node) in self.nodes().into_iter().enumerate() {
            if self.mongo[i].is_none() {
                self.mongo_client(i)
                    .await
                    .database(node)
                    .drop()
                    .await
                    .expect("drop database");
            }
        }
    }

    /// The settings every instance of the app runs with.
    pub fn app_settings(&self) -> &[(String, String)] {
        &self.app_env
    }

    /// The node ids, in region order.
    pub fn nodes(&self) -> Vec<&str> {
        self.regions.iter().map(|r| r.id.as_str()).collect()
    }

    /// Starts a regiondb process (log `<name>.log`) with the app's settings
    /// and waits until it is ready; answers it and its address.
    async fn start_instance(&self, name: &str, extra: &[(&str, &str)]) -> (Proc, String) {
        let (proc, port) = start_server(name, &self.dir, |port| {
            let mut c = Command::new(env!("CARGO_BIN_EXE_regiondb"));
            c.env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("PORT", port.to_string());
            for (k, v) in &self.app_env {
                c.env(k, v);
            }
            for (k, v) in extra {
                c.env(k, v);
            }
            c
        })
        .await;
        let address = format!("http://127.0.0.1:{port}");
        let http = self.http.clone();
        let url = format!("{address}/readyz");
        wait_until(&format!("{name} to be ready"), DEADLINE, || {
            let http = http.clone();
            let url = url.clone();
            async move {
                matches!(http.get(&url).send().await, Ok(r) if r.status() == StatusCode::OK)
            }
        })
        .await;
        (proc, address)
    }

    /// Starts (or restarts) the regiondb binary and waits until it is ready.
    pub async fn start_app(&mut self) {
        self.app_runs += 1;
        let log_path = self.dir.join(format!("regiondb-{}.log", self.app_runs));
        let (proc, address) = self.start_instance("regiondb", &[]).await;
        let _ = std::fs::rename(self.dir.join("regiondb.log"), &log_path);
        self.address = address;
        self.app = Some(proc);
    }

    /// A line of the app process's `/proc/<pid>/status` (e.g. `VmRSS`,
    /// `Threads`), as its first number.
    pub fn app_proc_status(&self, key: &str) -> u64 {
        let pid = self.app.as_ref().expect("app running").pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
    }

    /// SIGKILL: no graceful shutdown, no final commit.
    pub fn crash_app(&mut self) {
        if let Some(mut app) = self.app.take() {
            app.signal(Signal::SIGKILL);
            app.kill();
        }
    }

    /// SIGSTOP (and SIGCONT): the app alive to the kernel, silent to all.
    pub fn freeze_app(&self) {
        self.app
            .as_ref()
            .expect("app running")
            .signal(Signal::SIGSTOP);
    }

    pub fn thaw_app(&self) {
        self.app
            .as_ref()
            .expect("app running")
            .signal(Signal::SIGCONT);
    }

    /// SIGTERM and wait: the graceful path.
    pub async fn stop_app(&mut self) -> std::process::ExitStatus {
        let mut app = self.app.take().expect("app running");
        app.terminate().await
    }

    pub fn app_log(&self) -> String {
        (1..=self.app_runs)
            .map(|i| {
                std::fs::read_to_string(self.dir.join(format!("regiondb-{i}.log")))
                    .unwrap_or_default()
            })
            .collect()
    }

    // ---- process control (local services only) ----

    /// Whether the servers are ours to freeze and kill.
    pub fn controls_processes(&self) -> bool {
        let ours = self.redis.is_some()
            && self.kafka.proc.is_some()
            && self.mongo.iter().all(Option::is_some);
        if !ours {
            eprintln!(
                "skipped: this test freezes or kills servers, which external services do not allow"
            );
        }
        ours
    }

    pub fn freeze_mongo(&self, node: &str) {
        self.mongo_proc(node).signal(Signal::SIGSTOP);
    }

    pub fn thaw_mongo(&self, node: &str) {
        self.mongo_proc(node).signal(Signal::SIGCONT);
    }

    fn mongo_proc(&self, node: &str) -> &Proc {
        self.mongo[node_index(node)]
            .as_ref()
            .expect("local mongo process")
    }

    /// SIGKILL: the node's in-memory data is gone with it.
    pub fn kill_mongo(&mut self, node: &str) {
        self.mongo[node_index(node)]
            .as_mut()
            .expect("local mongo process")
            .kill();
    }

    /// Starts a node's MongoDB again on its port: empty (jongodb keeps
    /// nothing on disk), like a node rebuilt after losing its disk.
    pub async fn restart_mongo(&mut self, node: &str) {
        let i = node_index(node);
        let port: u16 = self.mongo_uris[i]
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in the mongo uri");
        let log =
            std::fs::File::create(self.dir.join(format!("jongodb-{node}-2.log"))).expect("log");
        let child = Command::new(tool("jongodb"))
            .args(["--host=127.0.0.1", &format!("--port={port}")])
            .current_dir(&self.dir)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("restart jongodb");
        self.mongo[i] = Some(Proc {
            child,
            name: format!("jongodb-{node}"),
        });
        wait_until("mongo to restart", DEADLINE, || port_open(port)).await;
    }

    /// Starts another instance of the app on the same services and waits
    /// until it is ready.
    pub async fn spawn_instance(&self, name: &str) -> Instance {
        self.spawn_instance_with(name, &[]).await
    }

    /// [`TestApp::spawn_instance`] with some settings of its own.
    pub async fn spawn_instance_with(&self, name: &str, extra: &[(&str, &str)]) -> Instance {
        let (proc, address) = self.start_instance(name, extra).await;
        Instance {
            address,
            proc: Some(proc),
        }
    }

    /// A Prometheus sample of this instance's `/metrics` (0 if absent).
    pub async fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        metric_at(&self.http, &self.address, name, labels).await
    }

    /// Kills Redis: status changes can no longer be saved.
    pub fn kill_redis(&mut self) {
        self.redis.as_mut().expect("local redis").kill();
    }

    /// Restarts Redis on the same port (with `durable_redis`, on the same
    /// append-only file).
    pub async fn restart_redis(&mut self) {
        self.kill_redis();
        let port = self.redis_port;
        let log = std::fs::File::create(self.dir.join("redis-2.log")).expect("log");
        let child = redis_command(port, true)
            .current_dir(&self.dir)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("restart redis");
        self.redis = Some(Proc {
            child,
            name: "redis".into(),
        });
        wait_until("redis to restart", DEADLINE, || port_open(port)).await;
    }

    pub fn redis_port(&self) -> u16 {
        self.redis_port
    }

    /// Runs another command of the binary (`regiondb repair ...`) with the
    /// app's settings.
    pub fn run_command(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_regiondb"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .args(args);
        for (k, v) in &self.app_env {
            cmd.env(k, v);
        }
        cmd.output().expect("run regiondb")
    }

    /// Kills the broker: connections are refused from now on.
    pub fn kill_kafka(&mut self) {
        self.kafka.proc.as_mut().expect("local kafka").kill();
    }

    /// Restarts the broker on the same port and storage.
    ///
    /// Harness workaround for a tansu 0.6 bug (real Kafka does not have
    /// it): tansu cannot read back the consumer-group state it stored before
    /// a restart ("invalid type: string" in its log), and every group that
    /// existed then stays wedged: new members get no partitions, ever. So
    /// while the broker is down the stored group *membership* is deleted
    /// (table `consumer_group_detail`); committed offsets (`consumer_offset`)
    /// are kept, and the groups form again from them, as after a real
    /// broker's coordinator failover.
    pub async fn restart_kafka(&mut self) {
        if let Some(mut old) = self.kafka.proc.take() {
            old.kill();
        }
        let forgot = Command::new("python3")
            .current_dir(&self.dir)
            .args([
                "-c",
                "import sqlite3; c = sqlite3.connect('kafka.db'); \
                 c.execute('delete from consumer_group_detail'); c.commit()",
            ])
            .status()
            .expect("python3 for the tansu workaround");
        assert!(forgot.success(), "could not reset tansu's group state");
        let port = self.kafka.port;
        let log = std::fs::File::create(self.dir.join("tansu-2.log")).expect("log");
        let child = tansu_command(port)
            .current_dir(&self.dir)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("restart tansu");
        self.kafka.proc = Some(Proc {
            child,
            name: "tansu".into(),
        });
        wait_until("kafka to restart", DEADLINE, || port_open(port)).await;
    }

    // ---- HTTP ----

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A `GET` whose whole response (status, headers, body) the test reads.
    pub async fn get_response(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("request")
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        json_answer(self.http.post(self.url(path)).json(body)).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        json_answer(self.http.get(self.url(path))).await
    }

    /// A page: status and HTML. Redirects are not followed.
    pub async fn page(&self, path: &str) -> (StatusCode, String) {
        text_answer(self.http.get(self.url(path))).await
    }

    /// Posts a form as a browser without JavaScript would.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
        let request = self
            .http
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(fields).expect("form"));
        text_answer(request).await
    }

    /// Sets a status directly in Redis, as `redis-cli HSET` would.
    pub async fn redis_set_status(&self, node: &str, status: &str) {
        let client = redis::Client::open(self.redis_url.as_str()).expect("redis url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        let _: i64 = redis::cmd("HSET")
            .arg(&["node_statuses", node, status][..])
            .query_async(&mut conn)
            .await
            .expect("hset");
    }

    /// Runs one Redis command, as `redis-cli` would.
    pub async fn redis<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let client = redis::Client::open(self.redis_url.as_str()).expect("redis url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        redis::cmd(args[0])
            .arg(&args[1..])
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("redis {args:?}: {e}"))
    }

    /// Sets a plain Redis key.
    pub async fn redis_set(&self, key: &str, value: &str) {
        let client = redis::Client::open(self.redis_url.as_str()).expect("redis url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        let _: () = redis::cmd("SET")
            .arg(&[key, value][..])
            .query_async(&mut conn)
            .await
            .expect("set");
    }

    pub async fn create(&self, body: &Value) -> (StatusCode, Value) {
        self.post("/create-customer", body).await
    }

    pub async fn set_status(&self, node: &str, status: &str) {
        let (code, body) = self
            .post("/node-status", &json!({"node_id": node, "status": status}))
            .await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert_eq!(body["status"], status);
    }

    // ---- MongoDB, read directly ----

    pub async fn mongo_client(&self, index: usize) -> mongodb::Client {
        let mut options = mongodb::options::ClientOptions::parse(&self.mongo_uris[index])
            .await
            .expect("mongo uri");
        options.server_selection_timeout = Some(Duration::from_secs(5));
        mongodb::Client::with_options(options).expect("mongo client")
    }

    /// All documents of `node`'s `collection`, keyed by `_id`.
    pub async fn docs(&self, node: &str, collection: &str) -> Vec<Document> {
        let client = self.mongo_client(node_index(node)).await;
        let cursor = client
            .database(node)
            .collection::<Document>(collection)
            .find(doc! {})
            .sort(doc! {"_id": 1})
            .await
            .expect("find");
        futures::TryStreamExt::try_collect(cursor)
            .await
            .expect("cursor")
    }

    pub async fn doc(&self, node: &str, collection: &str, id: &str) -> Option<Document> {
        let client = self.mongo_client(node_index(node)).await;
        client
            .database(node)
            .collection::<Document>(collection)
            .find_one(doc! {"_id": id})
            .await
            .expect("find_one")
    }

    /// Waits until `node.collection` holds `id` at `version`.
    pub async fn wait_for_doc(&self, node: &str, collection: &str, id: &str, version: i64) {
        wait_until(
            &format!("{node}.{collection} to hold {id} at version {version}"),
            DEADLINE,
            || async {
                self.doc(node, collection, id)
                    .await
                    .is_some_and(|d| d.get_i64("version") == Ok(version))
            },
        )
        .await;
    }

    // ---- Kafka, read directly ----

    pub fn topic(&self, node: &str) -> String {
        format!("{}{node}", self.topic_prefix)
    }

    pub fn group(&self, node: &str) -> String {
        format!("{}regiondb-handoff-{node}", self.topic_prefix)
    }

    fn kafka_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.kafka.bootstrap)
            .set("log_level", "3");
        c
    }

    /// (end offsets, committed offsets of the node's handoff group), each
    /// summed over the topic's partitions as Kafka reports them (a
    /// partition without a commit counts from its start; `None` if the
    /// group committed nothing at all).
    pub async fn offsets(&self, node: &str) -> (i64, Option<i64>) {
        let topic = self.topic(node);
        let consumer: BaseConsumer = self
            .kafka_config()
            .set("group.id", self.group(node))
            .create()
            .expect("consumer");
        tokio::task::spawn_blocking(move || {
            let ids = partition_ids(&consumer, &topic);
            let mut tpl = TopicPartitionList::new();
            for p in &ids {
                tpl.add_partition(&topic, *p);
            }
            let committed = consumer
                .committed_offsets(tpl, Duration::from_secs(10))
                .expect("committed");
            let (mut end, mut done, mut any) = (0, 0, false);
            for p in ids {
                let (low, high) = consumer
                    .fetch_watermarks(&topic, p, Duration::from_secs(10))
                    .expect("watermarks");
                end += high;
                match committed.find_partition(&topic, p).map(|e| e.offset()) {
                    Some(Offset::Offset(n)) => {
                        any = true;
                        done += n;
                    }
                    _ => done += low,
                }
            }
            (end, any.then_some(done))
        })
        .await
        .expect("offsets")
    }

    /// Every message in the node's topic, parsed.
    pub async fn hints(&self, node: &str) -> Vec<Value> {
        self.read_topic(self.topic(node))
            .await
            .into_iter()
            .map(|(payload, _)| serde_json::from_slice(&payload).expect("json hint"))
            .collect()
    }

    /// Every message of the node's dead-letter topic: (payload, reason).
    pub async fn dead_letters(&self, node: &str) -> Vec<(String, String)> {
        let topic = format!("{}.dead-letter", self.topic(node));
        self.read_topic(topic)
            .await
            .into_iter()
            .map(|(payload, reason)| {
                let payload = String::from_utf8_lossy(&payload).into_owned();
                (payload, reason.unwrap_or_default())
            })
            .collect()
    }

    /// Every message of partition 0 of `topic`: payload and
    /// `regiondb-reason` header.
    async fn read_topic(&self, topic: String) -> Vec<(Vec<u8>, Option<String>)> {
        let consumer: BaseConsumer = self
            .kafka_config()
            .set("group.id", format!("{}reader", self.topic_prefix))
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        tokio::task::spawn_blocking(move || {
            let mut tpl = TopicPartitionList::new();
            let mut total = 0;
            for p in partition_ids(&consumer, &topic) {
                let (low, high) = consumer
                    .fetch_watermarks(&topic, p, Duration::from_secs(10))
                    .expect("watermarks");
                total += high - low;
                tpl.add_partition_offset(&topic, p, Offset::Offset(low))
                    .expect("tpl");
            }
            consumer.assign(&tpl).expect("assign");
            let mut out = Vec::new();
            let start = Instant::now();
            while (out.len() as i64) < total {
                assert!(start.elapsed() < DEADLINE, "could not read {topic}");
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                    let reason = m
                        .headers()
                        .and_then(|h| h.iter().find(|h| h.key == "regiondb-reason"))
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned());
                    out.push((m.payload().unwrap_or_default().to_vec(), reason));
                }
            }
            out
        })
        .await
        .expect("read topic")
    }

    /// Waits until the node's group has committed everything in its topic.
    pub async fn wait_drained(&self, node: &str) {
        wait_until(
            &format!("{node}'s topic to be drained"),
            DEADLINE,
            || async {
                let (end, committed) = self.offsets(node).await;
                end == 0 || committed == Some(end)
            },
        )
        .await;
    }

    /// Moves the node's handoff group back to the start of its topic (the
    /// app must not be running: a group with members refuses this).
    pub async fn reset_group(&self, node: &str) {
        let topic = self.topic(node);
        let consumer: BaseConsumer = self
            .kafka_config()
            .set("group.id", self.group(node))
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        tokio::task::spawn_blocking(move || {
            let mut tpl = TopicPartitionList::new();
            for p in partition_ids(&consumer, &topic) {
                tpl.add_partition_offset(&topic, p, Offset::Offset(0))
                    .expect("tpl");
            }
            consumer.assign(&tpl).expect("assign");
            consumer.commit(&tpl, CommitMode::Sync).expect("commit");
        })
        .await
        .expect("reset");
    }

    /// Appends any bytes to the node's topic, as a stray writer would.
    pub async fn produce_raw(&self, node: &str, key: &str, payload: &[u8]) {
        self.produce(node, None, key, payload).await;
    }

    /// Appends a hint to one partition of the node's topic.
    pub async fn produce_hint_to(&self, node: &str, partition: i32, key: &str, hint: &Value) {
        self.produce(node, Some(partition), key, hint.to_string().as_bytes())
            .await;
    }

    async fn produce(&self, node: &str, partition: Option<i32>, key: &str, payload: &[u8]) {
        let producer: FutureProducer = self
            .kafka_config()
            .set("acks", "all")
            .create()
            .expect("producer");
        let topic = self.topic(node);
        let mut record = FutureRecord::to(&topic).key(key).payload(payload);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .expect("produce");
    }

    /// Grows the node's topic to `total` partitions; false if the broker
    /// cannot (tansu 0.6 does not implement CreatePartitions).
    pub async fn add_partitions(&self, node: &str, total: usize) -> bool {
        let admin: AdminClient<DefaultClientContext> = self.kafka_config().create().expect("admin");
        let topic = self.topic(node);
        let results = admin
            .create_partitions(
                &[NewPartitions::new(&topic, total)],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await;
        match results {
            Err(rdkafka::error::KafkaError::AdminOp(
                rdkafka::types::RDKafkaErrorCode::UnsupportedFeature,
            )) => false,
            Err(e) => panic!("create partitions: {e}"),
            Ok(results) => {
                for r in results {
                    r.expect("partitions added");
                }
                true
            }
        }
    }

    /// Appends a raw hint to the node's topic, as another writer would.
    pub async fn produce_hint(&self, node: &str, key: &str, hint: &Value) {
        self.produce(node, None, key, hint.to_string().as_bytes())
            .await;
    }
}

/// The partition ids of `topic`.
fn partition_ids(consumer: &BaseConsumer, topic: &str) -> Vec<i32> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let ids: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    assert!(!ids.is_empty(), "topic {topic} has no partitions");
    ids
}

async fn json_answer(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let r = request.send().await.expect("request");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn text_answer(request: reqwest::RequestBuilder) -> (StatusCode, String) {
    let r = request.send().await.expect("request");
    let status = r.status();
    (status, r.text().await.unwrap_or_default())
}

/// `region_K`'s position in the region map (K - 1).
pub fn node_index(node: &str) -> usize {
    node.strip_prefix("region_")
        .and_then(|k| k.parse::<usize>().ok())
        .and_then(|k| k.checked_sub(1))
        .expect("a node id of the form region_K")
}

fn redis_command(port: u16, durable: bool) -> Command {
    let mut c = Command::new(tool("redis-server"));
    c.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
    ]);
    if durable {
        c.args(["--appendonly", "yes", "--appendfsync", "always"]);
    } else {
        c.args(["--appendonly", "no"]);
    }
    c
}

fn tansu_command(port: u16) -> Command {
    let url = format!("tcp://127.0.0.1:{port}");
    let mut c = Command::new(tool("tansu"));
    c.args([
        "broker",
        "--listener-url",
        &url,
        "--advertised-listener-url",
        &url,
    ])
    .args(["--storage-engine", "sqlite://kafka.db"]);
    c
}

/// The wall clock in microseconds (the unit of versions).
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// A valid customer body for zip `zip`.
pub fn customer(id: &str, zip: u32) -> Value {
    json!({
        "customer_id": id,
        "customer_unique_id": format!("unique-{id}"),
        "customer_zip_code_prefix": zip,
        "customer_city": "sao paulo",
        "customer_state": "SP",
    })
}

/// Zip codes inside each default region.
pub const ZIP_1: u32 = 1310;
pub const ZIP_2: u32 = 45000;
pub const ZIP_3: u32 = 80000;
