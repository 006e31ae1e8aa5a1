//! Prometheus metrics, served at `GET /metrics`. Every metric name and label
//! set is defined here; the rest of the code calls these functions.
//!
//! - `regiondb_writes_total{outcome="stored|queued|unavailable", copy="home|replica"}`
//! - `regiondb_node_available{node}` (1/0), `regiondb_hints_queued{node}`,
//!   `regiondb_dead_letters_held{node}`: set from the node overview at each scrape
//! - `regiondb_hint_lag_seconds{node}`, `regiondb_replay_rate{node}`,
//!   `regiondb_drain_eta_seconds{node}` (NaN: no estimate),
//!   `regiondb_replay_paused{node}`, `regiondb_node_lost_data{node}` (1/0):
//!   also set from the overview at each scrape (see `domain::drain`)
//! - `regiondb_hints_replayed_total{node}`, `regiondb_dead_letters_total{node}`
//! - `regiondb_http_requests_total{method, route, status}` and
//!   `regiondb_http_request_duration_seconds{method, route, status}`
//! - `regiondb_backend_call_duration_seconds{backend="mongodb|kafka|redis", call, outcome}`
//! - `regiondb_probes_total{node, outcome="ok|failed"}`: the failure detector's pings
//! - `regiondb_status_changes_total{node, status, source="probe"}`: statuses it changed
//! - `regiondb_repairs_total{trigger="auto|api|data_loss", outcome="complete|incomplete"}`,
//!   `regiondb_repair_differences_total{trigger}`
//! - `regiondb_redis_restores_total`: times this instance found Redis emptied
//!   and wrote the node statuses back from its own view
//! - `regiondb_version_slot_moves_total`: times this instance found its
//!   version slot held by another and moved to a free one
//! - `regiondb_clock_offset_seconds`: how far this instance's version clock
//!   runs ahead of its host's wall clock, following the cluster's fastest
//!   (see `clock_lease`); `regiondb_clock_follow_capped_total`: renewals
//!   that found a clock ahead beyond the cap and did not follow it all
//! - `regiondb_data_loss_detected_total{node, reason}`: nodes found to have
//!   lost their data (marker missing or replaced), still being refilled
//!   after Redis forgot it, or whose marker no one remembers (unconfirmed)
//! - `regiondb_replay_stalls_total{node}`: times a replay found its node's
//!   queue not moving and recovered (re-joined its consumer group, or
//!   applied the stuck hints outside it)
//! - `regiondb_requests_refused_total{reason="host|cross_site|too_many_failures"}`:
//!   requests turned away by the web surface's guards (`http::security`)
//! - `regiondb_admin_token_failures_total{via="sign_in|bearer"}`: wrong admin
//!   tokens (the count per address that slows them down is in Redis)
//! - `regiondb_redis_primary_changes_total`: times this instance moved to the
//!   primary Redis Sentinel named (after a failover)
//! - `regiondb_tombstones_purged_total`
//! - `regiondb_group_commit_batch_size{node}`: copies per direct write
//!   command of the group commit (`writes::commit`);
//!   `regiondb_group_commit_waiting`: copies waiting for their command
//! - `regiondb_build_info{version}` (always 1), and the `process_*` metrics
//!   (resident memory, CPU seconds, open file descriptors, ...) of the
//!   `metrics-process` crate, collected at each scrape
//!
//! Every family carries a `# HELP` line (see [`describe`]), so
//! `promtool check metrics` accepts the page.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::domain::NodeView;

mod families;
use families::{FAMILIES, Kind};

/// Histogram buckets (seconds): from a fast local call to a MongoDB timeout.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Histogram buckets (copies) of the group commit's batch sizes, up to its
/// cap (`writes::commit::MAX_BATCH`).
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// How often the recorder's internal upkeep runs.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once) and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("regiondb_group_commit_batch_size".into()),
                        &BATCH_BUCKETS,
                    )
                })
                .map(PrometheusBuilder::build_recorder);
            match recorder {
                Ok(recorder) => {
                    let handle = recorder.handle();
                    if metrics::set_global_recorder(recorder).is_err() {
                        tracing::warn!("a metrics recorder was already installed");
                    }
                    describe();
                    gauge!("regiondb_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
                    handle
                }
                // Only reachable with empty buckets, which the constant is not.
                Err(e) => {
                    tracing::error!(error = %e, "metrics recorder not built");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            }
        })
        .clone()
}

/// [`install`], with the counters an alert or the dashboard reads set to
/// 0 for every node (and repair trigger), so that a series exists before
/// its first event and `increase()` sees the first one.
pub fn install_for<'a>(
    nodes: impl IntoIterator<Item = &'a crate::domain::NodeId>,
) -> PrometheusHandle {
    let handle = install();
    for node in nodes {
        let node = node.as_str().to_owned();
        counter!("regiondb_replay_stalls_total", "node" => node.clone()).increment(0);
        counter!("regiondb_dead_letters_total", "node" => node.clone()).increment(0);
        counter!("regiondb_hints_replayed_total", "node" => node).increment(0);
    }
    for trigger in ["auto", "api", "data_loss"] {
        counter!("regiondb_repair_differences_total", "trigger" => trigger).increment(0);
    }
    handle
}

/// The process's own figures (memory, CPU, file descriptors), read now:
/// called before each scrape is rendered.
pub fn collect_process() {
    process_collector().collect();
}

fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// The `# HELP` text of every family (and the process collector's).
fn describe() {
    process_collector().describe();
    for (kind, name, help) in FAMILIES {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, help),
        }
    }
}

pub fn redis_primary_changed() {
    counter!("regiondb_redis_primary_changes_total").increment(1);
}

pub fn redis_restored() {
    counter!("regiondb_redis_restores_total").increment(1);
}

/// How far the version clock runs ahead of the host's, in microseconds.
pub fn clock_offset(micros: i64) {
    gauge!("regiondb_clock_offset_seconds").set(micros as f64 / 1e6);
}

pub fn clock_follow_capped() {
    counter!("regiondb_clock_follow_capped_total").increment(1);
}

pub fn version_slot_moved() {
    counter!("regiondb_version_slot_moves_total").increment(1);
}

pub fn data_loss_detected(node: &str, reason: &'static str) {
    counter!("regiondb_data_loss_detected_total", "node" => node.to_owned(), "reason" => reason)
        .increment(1);
}

pub fn replay_stalled(node: &str) {
    counter!("regiondb_replay_stalls_total", "node" => node.to_owned()).increment(1);
}

/// Where one copy of an accepted (or refused) write went.
pub fn request_refused(reason: &'static str) {
    counter!("regiondb_requests_refused_total", "reason" => reason).increment(1);
}

pub fn admin_token_failed(via: &'static str) {
    counter!("regiondb_admin_token_failures_total", "via" => via).increment(1);
}

pub fn write(copy: &'static str, outcome: &'static str) {
    counter!("regiondb_writes_total", "copy" => copy, "outcome" => outcome).increment(1);
}

/// The copies per command of `node`'s committers (a handle, kept by each).
pub fn group_commit_batches(node: &str) -> metrics::Histogram {
    histogram!("regiondb_group_commit_batch_size", "node" => node.to_owned())
}

/// Copies waiting for their group-commit command (a handle, kept).
pub fn group_commit_waiting() -> metrics::Gauge {
    gauge!("regiondb_group_commit_waiting")
}

pub fn hints_replayed(node: &str, n: usize) {
    counter!("regiondb_hints_replayed_total", "node" => node.to_owned()).increment(n as u64);
}

pub fn dead_lettered(node: &str) {
    counter!("regiondb_dead_letters_total", "node" => node.to_owned()).increment(1);
}

/// One ping of the failure detector.
pub fn probe(node: &str, ok: bool) {
    let outcome = if ok { "ok" } else { "failed" };
    counter!("regiondb_probes_total", "node" => node.to_owned(), "outcome" => outcome).increment(1);
}

/// A status the failure detector changed.
pub fn probe_changed(node: &str, status: &'static str) {
    counter!("regiondb_status_changes_total", "node" => node.to_owned(),
        "status" => status, "source" => "probe")
    .increment(1);
}

/// Tombstones removed by a purge.
pub fn tombstones_purged(n: u64) {
    counter!("regiondb_tombstones_purged_total").increment(n);
}

/// A repair run, whether every region could be compared, and how many
/// records it found differing (or moved away) between copies.
pub fn repair(trigger: &'static str, complete: bool, differing: u64) {
    let outcome = if complete { "complete" } else { "incomplete" };
    counter!("regiondb_repairs_total", "trigger" => trigger, "outcome" => outcome).increment(1);
    counter!("regiondb_repair_differences_total", "trigger" => trigger).increment(differing);
}

/// Node gauges, from the overview read for a scrape.
pub fn nodes(views: &[NodeView]) {
    for v in views {
        let node = v.node_id.as_str().to_owned();
        let available = if v.status.is_available() { 1.0 } else { 0.0 };
        gauge!("regiondb_node_available", "node" => node.clone()).set(available);
        // Unknown counts (Kafka unreachable) keep the last value read.
        if let Some(q) = v.queued {
            gauge!("regiondb_hints_queued", "node" => node.clone()).set(q as f64);
        }
        if let Some(d) = v.dead_letters {
            gauge!("regiondb_dead_letters_held", "node" => node.clone()).set(d as f64);
        }
        let flag = |on: bool| if on { 1.0 } else { 0.0 };
        gauge!("regiondb_replay_paused", "node" => node.clone()).set(flag(v.replay_paused));
        gauge!("regiondb_node_lost_data", "node" => node.clone()).set(flag(v.lost_data));
        if let Some(lag) = v.lag_seconds {
            gauge!("regiondb_hint_lag_seconds", "node" => node.clone()).set(lag);
        }
        if let Some(rate) = v.replay_rate {
            gauge!("regiondb_replay_rate", "node" => node.clone()).set(rate);
        }
        // No estimate (node down, paused, nothing moving) is NaN, which no
        // comparison in an alert rule matches.
        let eta = v.drain_eta_seconds.unwrap_or(f64::NAN);
        gauge!("regiondb_drain_eta_seconds", "node" => node).set(eta);
    }
}

pub fn http_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let labels = [
        ("method", method.to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    counter!("regiondb_http_requests_total", &labels).increment(1);
    histogram!("regiondb_http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
}

/// Times one call to a backing service: `backend` is mongodb, kafka or
/// redis; `call` names the operation.
pub async fn timed<T, E>(
    backend: &'static str,
    call: &'static str,
    f: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let started = Instant::now();
    let result = f.await;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    histogram!("regiondb_backend_call_duration_seconds",
        "backend" => backend, "call" => call, "outcome" => outcome)
    .record(started.elapsed().as_secs_f64());
    result
}
