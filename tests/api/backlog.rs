//! How far behind a node is and when it will have caught up: the oldest
//! hint's age, the replay rate and the time to drain in `GET /nodes`,
//! `/metrics` and `regiondb status`, checked against a measured drain; and
//! pausing a node's replay.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// Hints queued for region_2; the replay is slowed so that their drain
/// takes several seconds.
const BACKLOG: usize = 2000;

async fn pause(app: &TestApp, node: &str, paused: bool) -> (StatusCode, Value) {
    app.post("/node-replay", &json!({"node_id": node, "paused": paused}))
        .await
}

#[tokio::test]
async fn the_backlog_shows_its_age_and_rate_and_drains_within_twice_its_estimate() {
    let options = Options::default()
        .env("REPLAY_BATCH_SIZE", "20")
        .env("REPLAY_THROTTLE_MS", "100");
    let app = TestApp::spawn_with("backlog_eta", options).await;
    app.set_status("region_2", "unavailable").await;
    let queued_from = now_micros() / 1000;
    app.queue_many("b", BACKLOG, ZIP_2).await;
    down_with_an_age(&app, queued_from).await;
    paused_and_said(&app).await;

    // Resumed: the estimate a few seconds in, against the measured drain.
    let (code, _) = pause(&app, "region_2", false).await;
    assert_eq!(code, StatusCode::OK);
    let (estimated_at, eta) = estimate_after(&app, Duration::from_secs(4)).await;
    let rate = node_at(&app.http, &app.address, "region_2").await["replay_rate"].as_f64();
    assert!(rate.is_some_and(|r| r > 0.0), "{rate:?}");
    let exported = app.metric("regiondb_replay_rate", &[REGION_2]).await;
    assert!(exported > 0.0);
    let table = app.run_command(&["status", "--window", "1"]);
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(
        table.contains("RATE/S") && table.contains("draining at"),
        "{table}"
    );
    wait_until("region_2 to drain", DEADLINE, || async {
        node_at(&app.http, &app.address, "region_2").await["queued"] == 0
    })
    .await;
    let took = estimated_at.elapsed().as_secs_f64();
    eprintln!("estimate {eta:.1} s; drained in {took:.1} s");
    assert!(
        eta <= took * 2.0 && eta >= took / 2.0,
        "estimate {eta:.1} s, drained in {took:.1} s"
    );
    let done = node_at(&app.http, &app.address, "region_2").await;
    assert_eq!(done["lag_seconds"], 0.0);
    assert_eq!(done["drain_eta_seconds"], 0.0);
    assert!(done["oldest_queued_at"].is_null());
}

const REGION_2: &str = r#"node="region_2""#;

/// Down: a count, an age from the hints themselves, no estimate.
async fn down_with_an_age(app: &TestApp, queued_from: i64) {
    // A look whose head-hint read takes over half a second answers null;
    // the next one reads again.
    let down = node_when(&app.http, &app.address, "region_2", |v| {
        v["oldest_queued_at"].is_string() && v["queued"].is_u64()
    })
    .await;
    assert_eq!(down["queued"], BACKLOG, "{down}");
    let oldest = down["oldest_queued_at"].as_str().expect("oldest_queued_at");
    let oldest_ms = parse_rfc3339_ms(oldest);
    assert!(
        oldest_ms >= queued_from - 1000 && oldest_ms <= now_micros() / 1000,
        "{oldest}"
    );
    assert!(down["lag_seconds"].as_f64().unwrap() > 0.0, "{down}");
    assert!(down["drain_eta_seconds"].is_null(), "{down}");
    let why = down["drain_eta_note"].as_str().unwrap();
    assert!(why.contains("unavailable"), "{why}");
    // Another instance, which queued none of it, says the same: the
    // figures come from Kafka, not from an instance's memory.
    let mut other = app.spawn_instance("backlog_eta_b").await;
    wait_until(
        "the other instance to read the same age",
        DEADLINE,
        || async {
            let seen = get_json_at(&app.http, &other.address, "/nodes").await;
            seen[1]["queued"] == BACKLOG && seen[1]["oldest_queued_at"] == down["oldest_queued_at"]
        },
    )
    .await;
    // Gracefully: it leaves the handoff group, so the drain below is the
    // first instance's alone.
    other.stop().await;
}

/// Paused, then switched on: nothing moves, and every view says so.
async fn paused_and_said(app: &TestApp) {
    let (code, body) = pause(app, "region_2", true).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["replay_paused"], true);
    app.set_status("region_2", "available").await;
    let paused = counted_at(&app.http, &app.address, "region_2").await;
    assert_eq!(paused["drain_eta_note"], "the replay is paused", "{paused}");
    assert_eq!(paused["queued"], BACKLOG);
    assert!(app.docs("region_2", "customers").await.is_empty());
    assert_eq!(app.metric("regiondb_replay_paused", &[REGION_2]).await, 1.0);
    assert!(app.metric("regiondb_hint_lag_seconds", &[REGION_2]).await > 0.0);
    let status = app.run_command(&["status", "--json", "--window", "1"]);
    assert!(status.status.success(), "{status:?}");
    let shown: Value = serde_json::from_slice(&status.stdout).expect("status --json");
    let region_2 = &shown.as_array().unwrap()[1];
    assert_eq!(region_2["replay_paused"], true, "{region_2}");
    assert_eq!(region_2["queued"], BACKLOG);
    assert!(region_2["lag_seconds"].as_f64().unwrap() > 0.0);
}

/// The first estimate `into` the drain or later, and when it was read.
async fn estimate_after(app: &TestApp, into: Duration) -> (Instant, f64) {
    let resumed = Instant::now();
    loop {
        let n = node_at(&app.http, &app.address, "region_2").await;
        let left = n["queued"].as_u64().unwrap();
        assert!(left > 0, "drained before an estimate: slow the replay down");
        if let Some(eta) = n["drain_eta_seconds"].as_f64()
            && resumed.elapsed() >= into
        {
            return (Instant::now(), eta);
        }
        assert!(resumed.elapsed() < DEADLINE, "no estimate");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_pause_needs_a_known_node_and_a_yes_or_no() {
    let app = TestApp::spawn("pause_fields").await;
    let (code, body) = pause(&app, "region_9", true).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    let (code, body) = app
        .post(
            "/node-replay",
            &json!({"node_id": "region_2", "paused": "yes"}),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["field"], "paused");
    let (code, body) = app
        .post("/node-replay", &json!({"node_id": "region_2"}))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["field"], "paused");
    // The terminal's way, seen by the running instance through Redis.
    let out = app.run_command(&["replay", "pause", "--node", "region_3"]);
    assert!(out.status.success(), "{out:?}");
    wait_until("the pause to reach the instance", DEADLINE, || async {
        node_at(&app.http, &app.address, "region_3").await["replay_paused"] == true
    })
    .await;
    assert!(
        app.run_command(&["replay", "resume", "--node", "region_3"])
            .status
            .success()
    );
    wait_until("the resume to reach the instance", DEADLINE, || async {
        node_at(&app.http, &app.address, "region_3").await["replay_paused"] == false
    })
    .await;
    let out = app.run_command(&["replay", "pause", "--node", "nowhere"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

fn parse_rfc3339_ms(s: &str) -> i64 {
    mongodb::bson::DateTime::parse_rfc3339_str(s)
        .expect("RFC 3339")
        .timestamp_millis()
}

#[tokio::test]
async fn a_paused_replay_is_not_a_stall() {
    let options = Options::default()
        .env("KAFKA_SESSION_TIMEOUT_MS", "6000")
        .env("REPLAY_STALL_MS", "7000");
    let app = TestApp::spawn_with("pause_no_stall", options).await;
    app.set_status("region_3", "unavailable").await;
    app.queue_many("p", 3, ZIP_3).await;
    let (code, _) = pause(&app, "region_3", true).await;
    assert_eq!(code, StatusCode::OK);
    app.set_status("region_3", "available").await;
    // Longer than a stall period with hints queued for an available node:
    // the queue's own age says when that much time has passed.
    wait_until("the paused queue to be 9 s old", DEADLINE, || async {
        node_at(&app.http, &app.address, "region_3").await["lag_seconds"]
            .as_f64()
            .is_some_and(|l| l >= 9.0)
    })
    .await;
    let stalls = app
        .metric("regiondb_replay_stalls_total", &[r#"node="region_3""#])
        .await;
    assert_eq!(stalls, 0.0, "a paused replay was taken for a stall");
    assert_eq!(
        node_at(&app.http, &app.address, "region_3").await["queued"],
        3
    );
    assert!(app.docs("region_3", "customers").await.is_empty());
    let (code, _) = pause(&app, "region_3", false).await;
    assert_eq!(code, StatusCode::OK);
    app.wait_drained("region_3").await;
    wait_until("the hints to be applied", DEADLINE, || async {
        app.docs("region_3", "customers").await.len() == 3
    })
    .await;
}
