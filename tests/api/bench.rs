//! `regiondb bench` runs against a deployment: a tiny workload of each kind
//! with its baselines, the report in JSON. (The numbers are the benchmark's
//! business, never a test's: docs/BENCHMARKS.md.)

use serde_json::Value;

use crate::helpers::*;

const TOKEN: &str = "bench-test-admin-token";

#[tokio::test]
async fn the_load_tool_runs_every_workload_with_its_baselines() {
    let app = TestApp::spawn_with("bench_tool", Options::default().env("ADMIN_TOKEN", TOKEN)).await;
    let url = app.address.clone();
    let out = app.run_command(&[
        "bench",
        "--url",
        &url,
        "--workload",
        "create-all-up,create-queued,filter,lookup,mixed",
        "--connections",
        "2",
        "--duration",
        "0.5",
        "--warmup",
        "0",
        "--records",
        "3",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let rows = report["rows"].as_array().expect("rows");
    let row = |workload: &str, client: &str| {
        rows.iter()
            .find(|r| r["workload"] == workload && r["client"] == client)
            .unwrap_or_else(|| panic!("no {workload} row for {client}: {report}"))
    };
    for workload in [
        "create-all-up",
        "create-queued",
        "filter",
        "lookup",
        "mixed",
    ] {
        let ours = row(workload, "regiondb");
        assert!(ours["requests_per_second"].as_f64() > Some(0.0), "{ours}");
        assert_eq!(ours["errors"], 0, "{ours}");
        assert!(ours["resident_mib"].as_f64() > Some(0.0), "{ours}");
    }
    let statuses = &row("create-queued", "regiondb")["statuses"];
    assert!(
        statuses["202"].as_u64() > Some(0),
        "queued writes: {statuses}"
    );
    assert!(row("create-all-up", "naive")["regiondb_ratio"].as_f64() > Some(0.0));
    assert!(row("create-queued", "broker")["regiondb_ratio"].as_f64() > Some(0.0));
    let replay = &report["replays"][0];
    assert!(replay["hints"].as_u64() > Some(0), "{report}");
    assert_eq!(report["seeded"][0], 3);
    // The nodes the queued run switched off are back on, their queues
    // drained; the naive client's records are gone.
    for node in NODES {
        let view = counted_at(&app.http, &app.address, node).await;
        assert_eq!(view["status"], "available", "{view}");
        assert_eq!(view["queued"], 0, "{view}");
        assert!(app.docs(node, "regiondb_bench_naive").await.is_empty());
    }
}

#[tokio::test]
async fn the_load_tool_refuses_what_it_cannot_run() {
    let app = TestApp::spawn("bench_refusals").await;
    let url = app.address.clone();
    // No admin token: the queued workload cannot switch nodes.
    let out = app.run_command(&["bench", "--url", &url, "--workload", "create-queued"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs the admin token"), "{stderr}");
    let out = app.run_command(&["bench", "--url", "localhost:1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--url"));
    let out = app.run_command(&["bench", "--connections", "0"]);
    assert_eq!(out.status.code(), Some(2));
    // The original app has no such read endpoints: refused before any load
    // (a short one, so that a tool that ran it anyway fails this quickly).
    let out = app.run_command(&[
        "bench",
        "--url",
        &url,
        "--target",
        "original",
        "--workload",
        "create-all-up,filter",
        "--connections",
        "1",
        "--duration",
        "0.2",
        "--warmup",
        "0",
        "--records",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--workload filter: the original app"),
        "{stderr}"
    );
}
