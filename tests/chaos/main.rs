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
//! `lost=L stale=S duplicates=D divergent=V resurrected=R ghosts=G`; the
//! exit code is non-zero unless all are 0. `stale` also counts a write that
//! lost to one whose answer came before it was sent (versions must follow
//! acceptance): exactly for a careful client's own writes (it sends its last
//! receipt's version), and beyond the skew window (`verdict::SKEW_WINDOW`)
//! for any two. The second instance runs on a clock 1.5 s ahead of the
//! first's (libfaketime, see [`B_CLOCK`]).
//!
//! The node is emptied before any app crash: a crash between a write's
//! home copy and its replica leaves one copy until repair, and emptying
//! that copy's node would be a second fault, not one regiondb can survive.
//!
//! Harness workaround (not in the product): tansu 0.6 wedges when an
//! idempotent producer created before a broker restart produces again, so
//! both instances are restarted right after the broker is. Real Kafka needs
//! no such thing.

mod diagnose;
mod faults;
#[path = "../api/helpers/mod.rs"]
mod helpers;
mod verdict;
mod writers;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use faults::Faults;
use helpers::{Options, TestApp, skewed_clock};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{Mutex, RwLock};
use verdict::{check, print_table, run_repair};
use writers::{Attempt, Op, Outcome, Writer};

/// The second instance's host clock runs this far ahead of the first's
/// (Debian's libfaketime): writes through either must still be ordered by
/// when they were acknowledged. Ahead rather than behind: with a backwards
/// offset, librdkafka's timed waits (deadlines from the faked
/// `gettimeofday`, waited on the real clock) spin, which only burdens the
/// harness; one instance 1.5 s ahead of the other is the same skew seen
/// from the other side.
pub const B_CLOCK: &str = "+1.5";

/// How long the end of the run may wait for the queues to drain.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(600);
/// Records queued for one node before the app is killed during its replay.
pub const BACKLOG: usize = 150;

pub struct Args {
    pub seed: u64,
    /// Writes the run makes at least.
    pub writes: usize,
    pub clients: usize,
    /// Small faults (flips, freezes) the run makes at least, however fast
    /// the writes go.
    pub small_faults: usize,
    /// Regions (one MongoDB each). The large run spreads its records over
    /// more of them: the stand-in MongoDB's cost per write grows with the
    /// square of its collection's size (see docs/losing-nothing.md).
    pub regions: usize,
}

pub fn parse_args() -> Result<Args, String> {
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

#[derive(Default)]
pub struct Counts {
    pub writes: usize,
    pub created: usize,
    pub accepted: usize,
    pub refused: usize,
    pub no_answer: usize,
    /// Writes of a known id with a zip in another region.
    pub moves: usize,
    pub deletes: usize,
    pub not_found: usize,
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
        // Only the final `regiondb repair`: what is checked before it is
        // the product's own work (the settler and its sweep).
        .env("AUTO_REPAIR_MIN_INTERVAL_MS", "0")
        // Small, paced batches, so the kill lands inside a replay.
        .env("REPLAY_BATCH_SIZE", "25")
        .env("REPLAY_THROTTLE_MS", "30");
    let test = format!("chaos-seed-{}", args.seed);
    let Some(mut app) = TestApp::spawn_for_faults(&test, options).await else {
        return ExitCode::from(2);
    };
    println!(
        "chaos: seed {} · {} writes · {} clients · {} regions · logs in {}",
        args.seed,
        args.writes,
        args.clients,
        args.regions,
        app.dir.display()
    );
    let b_clock = skewed_clock(B_CLOCK);
    let b = app
        .spawn_instance_with("regiondb-b", &helpers::as_settings(&b_clock))
        .await;
    let addresses = Arc::new(RwLock::new(vec![app.address.clone(), b.address.clone()]));
    let progress = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let writers = start_writers(&args, &app, &addresses, &progress, &done);

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
    wait_drained(&app, &addresses.read().await).await;
    let replay_time = heal_start.elapsed();
    let before = before_repair(&app, &attempts).await;
    let repaired = run_repair(&app);

    let verdict = check(&app, &attempts).await;
    let times = (write_phase, replay_time);
    print_table(
        &Counts::of(&attempts, &app.regions),
        &faults.done,
        times,
        &repaired,
        &verdict,
    );
    verdict.print_last_line();
    if verdict.all_zero() && before.lost_records() + before.ghosts == 0 && repaired.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The verdict before any repair, once no acknowledged write is missing
/// from every copy and no old copy outlives its move, or a minute after
/// the queues drained (how long an old copy may live without a repair);
/// printed. A second copy missing because an instance was killed between a
/// write's two copies is the final repair's to heal (DESIGN-NOTES 7), and
/// only counted here.
async fn before_repair(app: &TestApp, attempts: &[Attempt]) -> verdict::Verdict {
    let started = Instant::now();
    loop {
        let v = check(app, attempts).await;
        let settled = v.lost_records() + v.ghosts == 0;
        if settled || started.elapsed() > GHOST_BOUND {
            println!(
                "before repair ({:.1}s after the queues drained): lost={} ghosts={} \
                 (second copies missing after a crash, for the repair: {})",
                started.elapsed().as_secs_f64(),
                v.lost_records(),
                v.ghosts,
                v.copies_missing
            );
            for e in v.examples.iter().filter(|_| !settled) {
                println!("  ! before repair: {e}");
            }
            for s in v.stories.iter().filter(|_| !settled) {
                println!("  !! before repair: {s}");
            }
            return v;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The longest an old copy of a moved record may outlive its move without
/// any repair.
const GHOST_BOUND: Duration = Duration::from_secs(60);

/// The clients, each on its own seed, writing until `done`.
pub fn start_writers(
    args: &Args,
    app: &TestApp,
    addresses: &Arc<RwLock<Vec<String>>>,
    progress: &Arc<AtomicUsize>,
    done: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<Attempt>>> {
    let regions = Arc::new(app.regions.clone());
    let known: Arc<Mutex<Vec<(String, u32)>>> = Arc::new(Mutex::new(Vec::new()));
    (0..args.clients)
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
        .collect()
}

/// Waits until every node's group has committed all of its topic; if one
/// does not within [`DRAIN_DEADLINE`], prints what is known of it (see
/// `diagnose`) and fails.
pub async fn wait_drained(app: &TestApp, addresses: &[String]) {
    for node in app.nodes() {
        let started = Instant::now();
        loop {
            let (end, committed) = app.offsets(node).await;
            if end == 0 || committed == Some(end) {
                break;
            }
            if started.elapsed() > DRAIN_DEADLINE {
                diagnose::stuck_queue(app, node, addresses).await;
                panic!("timed out after {DRAIN_DEADLINE:?} waiting for {node} to drain");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Counts {
    pub fn of(attempts: &[Attempt], regions: &[helpers::RegionSpec]) -> Counts {
        let mut counts = Counts::default();
        let region_of = |zip: u32| regions.iter().position(|r| (r.min..=r.max).contains(&zip));
        let mut last: std::collections::HashMap<&str, Option<usize>> = Default::default();
        let mut in_order: Vec<&Attempt> = attempts.iter().collect();
        in_order.sort_by_key(|a| a.sent);
        for a in in_order {
            if a.op == Op::Delete {
                match a.outcome {
                    Outcome::Acked { .. } => counts.deletes += 1,
                    Outcome::NotFound => counts.not_found += 1,
                    _ => {}
                }
                continue;
            }
            counts.writes += 1;
            let previous = last.insert(a.id.as_str(), region_of(a.zip));
            counts.moves += usize::from(previous.is_some_and(|p| p != region_of(a.zip)));
            match a.outcome {
                Outcome::Acked { stored: true, .. } => counts.created += 1,
                Outcome::Acked { stored: false, .. } => counts.accepted += 1,
                Outcome::Refused => counts.refused += 1,
                Outcome::NoAnswer | Outcome::NotFound => counts.no_answer += 1,
            }
        }
        counts
    }
}
