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

mod faults;
mod fixtures;
mod http;
mod kafka;
mod mongo;
mod procs;
mod redis_cli;
pub mod tls;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

// Shared by three test targets (the suite, the chaos run, the benchmark),
// each of which uses some of these.
#[allow(unused_imports)]
pub use {
    faults::{as_settings, faketime_library, skewed_clock},
    fixtures::*,
    http::*,
    mongo::*,
    procs::*,
};

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

/// Whether the suite runs against external services.
pub fn external_mode() -> bool {
    external("REGIONDB_TEST_REDIS_URL").is_some()
        || external("REGIONDB_TEST_KAFKA").is_some()
        || external("REGIONDB_TEST_MONGO_URI_REGION_1").is_some()
}

/// Redis: the external one, or a fresh `redis-server` (with an append-only
/// file if `durable`, so it can be restarted).
async fn start_redis(dir: &std::path::Path, durable: bool) -> (Option<Proc>, u16, String) {
    match external("REGIONDB_TEST_REDIS_URL") {
        Some(url) => (None, 0, url),
        None => {
            let (p, port) = start_server("redis", dir, |port| redis_command(port, durable)).await;
            (Some(p), port, format!("redis://127.0.0.1:{port}"))
        }
    }
}

/// Kafka: the external brokers, or a fresh tansu broker.
async fn start_kafka(dir: &std::path::Path) -> Kafka {
    match external("REGIONDB_TEST_KAFKA") {
        Some(bootstrap) => Kafka {
            bootstrap,
            proc: None,
            port: 0,
        },
        None => {
            let (p, port) = start_server("tansu", dir, tansu_command).await;
            Kafka {
                bootstrap: format!("127.0.0.1:{port}"),
                proc: Some(p),
                port,
            }
        }
    }
}

/// One MongoDB per region node: the external one, or a fresh jongodb.
async fn start_mongo(
    dir: &std::path::Path,
    regions: &[RegionSpec],
) -> (Vec<Option<Proc>>, Vec<String>) {
    let mut mongo = Vec::new();
    let mut uris = Vec::new();
    for node in regions.iter().map(|r| r.id.as_str()) {
        let var = format!("REGIONDB_TEST_MONGO_URI_{}", node.to_uppercase());
        if let Some(uri) = external(&var) {
            mongo.push(None);
            uris.push(uri);
            continue;
        }
        let (p, port) = start_server(&format!("jongodb-{node}"), dir, |port| {
            let mut c = Command::new(tool("jongodb"));
            c.args(["--host=127.0.0.1", &format!("--port={port}")]);
            c
        })
        .await;
        mongo.push(Some(p));
        uris.push(format!("mongodb://127.0.0.1:{port}"));
    }
    (mongo, uris)
}

impl TestApp {
    pub async fn spawn(test: &str) -> TestApp {
        Self::spawn_with(test, Options::default()).await
    }

    pub async fn spawn_with(test: &str, options: Options) -> TestApp {
        let dir = fresh_output_dir(test);
        let serial = if external_mode() {
            Some(SERIAL.lock().await)
        } else {
            None
        };
        let (redis, redis_port, redis_url) = start_redis(&dir, options.durable_redis).await;
        let kafka = start_kafka(&dir).await;
        let regions = region_specs(if options.regions == 0 {
            3
        } else {
            options.regions
        });
        let (mongo, mongo_uris) = start_mongo(&dir, &regions).await;
        // Each test gets its own topics and consumer groups, even on a
        // shared broker.
        let topic_prefix = format!(
            "t{}-{}-",
            std::process::id(),
            test.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
        );
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
            app_env: Vec::new(),
            app_runs: 0,
            _serial: serial,
        };
        app.app_env = app.default_app_env(options.env);
        if external_mode() {
            app.reset_external_state().await;
        }
        app.start_app().await;
        app
    }

    /// Like [`TestApp::spawn_with`], for a test that freezes or kills
    /// servers: `None` (the test skips, saying so) when they are external.
    pub async fn spawn_for_faults(test: &str, options: Options) -> Option<TestApp> {
        if external_mode() {
            eprintln!(
                "skipped: this test freezes or kills servers, which external services do not allow"
            );
            return None;
        }
        Some(Self::spawn_with(test, options).await)
    }

    /// The services' addresses, the test's topic prefix, test-friendly
    /// timeouts and logs, the regions file if any, then `extra`.
    fn default_app_env(&self, extra: Vec<(String, String)>) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = vec![
            ("REDIS_URL".into(), self.redis_url.clone()),
            (
                "KAFKA_BOOTSTRAP_SERVER".into(),
                self.kafka.bootstrap.clone(),
            ),
            ("KAFKA_TOPIC_PREFIX".into(), self.topic_prefix.clone()),
            ("MONGO_TIMEOUT_MS".into(), "1500".into()),
            ("KAFKA_TIMEOUT_MS".into(), "3000".into()),
            ("RUST_LOG".into(), "info,regiondb=debug".into()),
        ];
        for (region, uri) in self.regions.iter().zip(&self.mongo_uris) {
            let name = format!("MONGO_URI_{}", region.id.to_uppercase());
            env.push((name, uri.clone()));
        }
        if self.regions.len() != 3 {
            let path = self.dir.join("regions.toml");
            std::fs::write(&path, regions_file(&self.regions)).expect("regions file");
            env.push(("REGIONS_FILE".into(), path.display().to_string()));
        }
        env.extend(extra);
        env
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
}
