//! The import and replay benchmark (`scripts/bench-import`): a load tool
//! with a written report, not a test. Against fresh real services (the test
//! harness's), it measures
//!
//! 1. `regiondb import` of a generated file, every node available, against
//!    the backend's own bulk write rate for the same rows: the same home and
//!    replica documents written with plain unordered `insert` commands of
//!    the same batch size, straight to MongoDB, on fresh servers;
//! 2. the replay rate: the same import with one node switched off (its
//!    copies queued), then the time for the queue to drain once it is back;
//! 3. the API's write latency while that replay runs, against right after
//!    it, and the write throughput of one instance.
//!
//!   scripts/bench-import [--rows N]      (default 3000)
//!   scripts/bench-import --tls           the write load, plaintext against
//!                                        TLS to Kafka and MongoDB (bench/tls.rs)
//!
//! Prints a Markdown report. Numbers are this machine's; jongodb, the
//! MongoDB stand-in here, slows down with collection size (about
//! 2.3e-5 ms x N^2 per write for N documents), which both sides of the
//! ratio pay alike.

#[path = "api/helpers/mod.rs"]
mod helpers;
#[path = "bench/tls.rs"]
mod tls;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use helpers::{Options, TestApp, customer};
use mongodb::bson::{Document, doc};

const BATCH: usize = 500;

struct Row {
    id: String,
    unique: String,
    zip: u32,
    city: String,
    state: String,
}

fn parse_rows(csv: &str) -> Vec<Row> {
    csv.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split("\",\"").map(|s| s.trim_matches('"')).collect();
            Row {
                id: f[0].into(),
                unique: f[1].into(),
                zip: f[2].parse().expect("zip"),
                city: f[3].into(),
                state: f[4].into(),
            }
        })
        .collect()
}

fn home_and_replica(zip: u32) -> (usize, usize) {
    match zip {
        1000..=39999 => (0, 2),
        40000..=69999 => (1, 0),
        _ => (2, 1),
    }
}

/// The rows/s figure of an import's summary (`took 1.2s (2500 rows/s)`).
fn import_rate(stdout: &str) -> f64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("took "))
        .and_then(|l| l.split('(').nth(1))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no rate in: {stdout}"))
}

/// Writes the import's documents with plain bulk inserts; rows/s.
async fn bulk_insert_rate(app: &TestApp, rows: &[Row]) -> f64 {
    let nodes = app.nodes();
    let mut clients = Vec::new();
    for i in 0..nodes.len() {
        clients.push(app.mongo_client(i).await);
    }
    let now = mongodb::bson::DateTime::now();
    let started = Instant::now();
    for chunk in rows.chunks(BATCH) {
        // Per (node, collection): the chunk's documents, as the import
        // sends one bulk write per node per batch.
        let mut groups: std::collections::BTreeMap<(usize, String), Vec<Document>> =
            Default::default();
        for (n, row) in chunk.iter().enumerate() {
            let (home, replica) = home_and_replica(row.zip);
            let region = nodes[home];
            let document = doc! {
                "_id": &row.id, "customer_id": &row.id, "customer_unique_id": &row.unique,
                "customer_zip_code_prefix": row.zip as i64, "customer_city": &row.city,
                "customer_state": &row.state, "region": region, "version": n as i64,
                "updated_at": now,
            };
            groups
                .entry((home, "customers".into()))
                .or_default()
                .push(document.clone());
            groups
                .entry((replica, format!("replica_{region}")))
                .or_default()
                .push(document);
        }
        let writes = groups.into_iter().map(|((node, collection), docs)| {
            let db = clients[node].database(nodes[node]);
            async move {
                db.collection::<Document>(&collection)
                    .insert_many(docs)
                    .ordered(false)
                    .await
                    .expect("insert_many");
            }
        });
        futures::future::join_all(writes).await;
    }
    rows.len() as f64 / started.elapsed().as_secs_f64()
}

/// Median and 99th percentile of latencies in ms.
fn percentiles(mut took: Vec<f64>) -> (f64, f64, usize) {
    assert!(!took.is_empty(), "no samples");
    took.sort_by(f64::total_cmp);
    let n = took.len();
    (took[n / 2], took[(n * 99 / 100).min(n - 1)], n)
}

/// One client writing sequentially (round-robin over the regions) until
/// `stop`: each write's start and latency (ms).
async fn sequential_writer(
    app: Arc<TestApp>,
    tag: &'static str,
    stop: Arc<AtomicBool>,
) -> Vec<(Instant, f64)> {
    let zips = [20_000, 50_000, 80_000];
    let mut samples = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        let (code, body) = app
            .create(&customer(&format!("{tag}-{i}"), zips[i % 3]))
            .await;
        assert!(code.is_success(), "{body}");
        samples.push((started, started.elapsed().as_secs_f64() * 1000.0));
        i += 1;
    }
    samples
}

/// Writes per second of `clients` concurrent clients over `period`.
async fn write_throughput(app: &Arc<TestApp>, clients: usize, period: Duration) -> f64 {
    write_load(app, clients, period).await.0
}

/// Writes per second and the p99 latency (ms) of `clients` concurrent
/// clients over `period`.
async fn write_load(app: &Arc<TestApp>, clients: usize, period: Duration) -> (f64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    const TAGS: [&str; 32] = [
        "t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9", "t10", "t11", "t12", "t13",
        "t14", "t15", "t16", "t17", "t18", "t19", "t20", "t21", "t22", "t23", "t24", "t25", "t26",
        "t27", "t28", "t29", "t30", "t31",
    ];
    let writers: Vec<_> = (0..clients)
        .map(|c| {
            tokio::spawn(sequential_writer(
                app.clone(),
                TAGS[c % TAGS.len()],
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(period).await;
    stop.store(true, Ordering::SeqCst);
    let mut took = Vec::new();
    for w in writers {
        took.extend(w.await.expect("writer").into_iter().map(|(_, ms)| ms));
    }
    let n = took.len();
    let (_, p99, _) = percentiles(took);
    (n as f64 / period.as_secs_f64(), p99)
}

/// `--writes`: only the all-up write load, at 8 and 32 connections, three
/// rounds of 5 s each on fresh servers (the median round reported), for the
/// binary `REGIONDB_BIN` names (default: this tree's).
async fn writes_only() -> ExitCode {
    let binary = helpers::app_binary();
    println!("## API writes ({})\n", binary.display());
    println!(
        "| connections | writes/s (median of 3) | p99 ms (of that round) | rounds |\n|---|---|---|---|"
    );
    for clients in [8, 32] {
        let mut rounds = Vec::new();
        for round in 0..3 {
            let app = Arc::new(TestApp::spawn(&format!("bench-load-{clients}-{round}")).await);
            rounds.push(write_load(&app, clients, Duration::from_secs(5)).await);
        }
        rounds.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (rate, p99) = rounds[1];
        let all: Vec<String> = rounds.iter().map(|(r, _)| format!("{r:.0}")).collect();
        println!("| {clients} | {rate:.0} | {p99:.1} | {} |", all.join(", "));
    }
    ExitCode::SUCCESS
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--writes") {
        return writes_only().await;
    }
    if args.iter().any(|a| a == "--tls") {
        tls::report().await;
        return ExitCode::SUCCESS;
    }
    let rows: usize = args
        .windows(2)
        .find(|w| w[0] == "--rows")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(3000);
    let csv = {
        let app = TestApp::spawn("bench-gen").await;
        let generated = app.run_command(&["gen", "--count", &rows.to_string(), "--seed", "42"]);
        assert!(generated.status.success());
        String::from_utf8(generated.stdout).expect("utf-8")
    };
    let rounds = import_rounds(&csv).await;
    // Write throughput of one instance on fresh servers, 8 concurrent
    // clients.
    let fresh = Arc::new(TestApp::spawn("bench-writes").await);
    let throughput = write_throughput(&fresh, 8, Duration::from_secs(5)).await;
    drop(fresh);
    let replay = replay_round(&csv).await;
    print_report(rows, &rounds, &replay, throughput);
    ExitCode::SUCCESS
}

/// Round 1: import, every node available, against plain bulk inserts of the same
/// documents; each on fresh servers, five times (this machine is noisy),
/// sorted by their ratio (the median is reported).
async fn import_rounds(csv: &str) -> Vec<(f64, f64)> {
    let mut rounds = Vec::new();
    for round in 0..5 {
        let app = TestApp::spawn(&format!("bench-import-{round}")).await;
        let file = app.dir.join("customers.csv");
        std::fs::write(&file, csv).expect("write csv");
        let run = app.run_command(&["import", &file.display().to_string()]);
        let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
        assert!(
            run.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let import = import_rate(&stdout);
        drop(app);
        let bare = TestApp::spawn(&format!("bench-bulk-{round}")).await;
        let bulk = bulk_insert_rate(&bare, &parse_rows(csv)).await;
        rounds.push((import, bulk));
    }
    rounds.sort_by(|a, b| (a.0 / a.1).total_cmp(&(b.0 / b.1)));
    rounds
}

/// What the replay round measured.
struct ReplayRound {
    backlog: i64,
    drain: Duration,
    /// (median ms, p99 ms, writes) during the drain and right after it.
    during: (f64, f64, usize),
    after: (f64, f64, usize),
}

/// Round 2, the replay: the same rows with region_1 (the largest) switched off, on
/// fresh servers; then the drain, while one client writes on. Latency
/// during the drain is compared with the same client's right after it
/// (same data sizes: the stand-in slows down as collections grow).
async fn replay_round(csv: &str) -> ReplayRound {
    let app = Arc::new(TestApp::spawn_with("bench-replay", Options::default()).await);
    std::fs::write(app.dir.join("customers.csv"), csv).expect("write csv");
    let file = app.dir.join("customers.csv").display().to_string();
    app.set_status("region_1", "unavailable").await;
    let queued_run = app.run_command(&["import", &file]);
    assert!(queued_run.status.success());
    let (end, committed) = app.offsets("region_1").await;
    let backlog = end - committed.unwrap_or(0);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(sequential_writer(app.clone(), "lat", stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.set_status("region_1", "available").await;
    let started = Instant::now();
    app.wait_drained("region_1").await;
    let drained = Instant::now();
    let drain = drained - started;
    tokio::time::sleep(drain.max(Duration::from_secs(3))).await;
    stop.store(true, Ordering::SeqCst);
    let samples = writer.await.expect("writer");
    let between = |from: Instant, to: Option<Instant>| {
        let within = |at: &Instant| *at >= from && to.is_none_or(|to| *at < to);
        percentiles(
            samples
                .iter()
                .filter(|(at, _)| within(at))
                .map(|(_, ms)| *ms)
                .collect(),
        )
    };
    ReplayRound {
        backlog,
        drain,
        during: between(started, Some(drained)),
        after: between(drained, None),
    }
}

fn print_report(rows: usize, rounds: &[(f64, f64)], replay: &ReplayRound, throughput: f64) {
    let (import, bulk) = rounds[rounds.len() / 2];
    let ReplayRound {
        backlog,
        drain,
        during,
        after,
    } = replay;
    println!("## Import and replay (scripts/bench-import --rows {rows})\n");
    println!("| measure | value |\n|---|---|");
    println!("| rows | {rows} ({} documents: home + replica) |", rows * 2);
    println!("| `regiondb import`, every node available | {import:.0} rows/s |");
    println!(
        "| plain bulk `insert` of the same documents, batches of {BATCH} | {bulk:.0} rows/s |"
    );
    println!(
        "| ratio import / bulk (median of 5 rounds: {}) | {:.2} |",
        rounds
            .iter()
            .map(|(i, b)| format!("{:.2}", i / b))
            .collect::<Vec<_>>()
            .join(", "),
        import / bulk
    );
    println!(
        "| replay of {backlog} queued copies for region_1 | {:.2} s, {:.0} copies/s |",
        drain.as_secs_f64(),
        *backlog as f64 / drain.as_secs_f64()
    );
    println!(
        "| API write latency during that replay: median / p99 ({} writes) | {:.1} ms / {:.1} ms |",
        during.2, during.0, during.1
    );
    println!(
        "| API write latency right after it: median / p99 ({} writes) | {:.1} ms / {:.1} ms |",
        after.2, after.0, after.1
    );
    println!(
        "| median during / after | {:.2} |",
        during.0 / after.0.max(1e-9)
    );
    println!(
        "| API writes, 8 concurrent clients, one instance, empty collections (5 s) | {throughput:.0} writes/s |"
    );
}
