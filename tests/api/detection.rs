//! Failure detection: the prober marks a node that stops answering
//! unavailable, and brings it back when it answers, unless an operator
//! switched it off; several instances agree through Redis.
//!
//! The targets (defaults: 1 s interval, 3 failures, 800 ms ping timeout)
//! are the waits' deadlines: detected within 5 s, a write then answered 202
//! within 0.5 s, back within 5 s of answering again.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

const DETECT: Duration = Duration::from_secs(5);
const QUEUED_WRITE: Duration = Duration::from_millis(500);

/// This instance's status of `node`, as `GET /node-statuses` says.
async fn status_at(http: &reqwest::Client, address: &str, node: &str) -> String {
    let all = get_json_at(http, address, "/node-statuses").await;
    all[node].as_str().unwrap_or_default().to_owned()
}

async fn wait_status(app: &TestApp, node: &str, status: &str, deadline: Duration) -> Duration {
    let started = Instant::now();
    wait_until(&format!("{node} to be {status}"), deadline, || async {
        status_at(&app.http, &app.address, node).await == status
    })
    .await;
    started.elapsed()
}

/// Waits until the prober has pinged `node` successfully `n` more times.
async fn wait_probes_ok(app: &TestApp, node: &str, n: f64) {
    let labels = [format!("node=\"{node}\""), "outcome=\"ok\"".to_owned()];
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    let before = app.metric("regiondb_probes_total", &labels).await;
    wait_until(
        &format!("{n} more answered pings of {node}"),
        DEADLINE,
        || async { app.metric("regiondb_probes_total", &labels).await >= before + n },
    )
    .await;
}

/// Answers a write for the region of `zip` and how long it took.
async fn timed_write(app: &TestApp, id: &str, zip: u32) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let (code, body) = app.create(&customer(id, zip)).await;
    (code, body, started.elapsed())
}

#[tokio::test]
async fn a_frozen_node_is_detected_its_writes_queue_fast_and_it_comes_back_by_itself() {
    let Some(app) = TestApp::spawn_for_faults("detect_frozen", Options::default()).await else {
        return;
    };
    app.freeze_mongo("region_2");
    let detected = wait_status(&app, "region_2", "unavailable", DETECT).await;
    let view = node_at(&app.http, &app.address, "region_2").await;
    assert_eq!(view["source"], "probe", "{view}");
    assert!(view["since"].as_str().is_some(), "{view}");
    let (code, _) = app.page("/").await;
    assert_eq!(code, StatusCode::OK);
    let (_, html) = app.page("/create-records").await;
    assert!(
        html.contains("unavailable — detected "),
        "the page says who"
    );

    // From now on a write for region_2 is queued at once.
    let mut slowest = Duration::ZERO;
    for i in 0..5 {
        let (code, body, took) = timed_write(&app, &format!("frozen-{i}"), 45_000 + i).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{body}");
        slowest = slowest.max(took);
    }
    assert!(slowest < QUEUED_WRITE, "a queued write took {slowest:?}");

    app.thaw_mongo("region_2");
    let back = wait_status(&app, "region_2", "available", DETECT).await;
    let view = node_at(&app.http, &app.address, "region_2").await;
    assert_eq!(view["source"], "probe", "{view}");
    app.wait_drained("region_2").await;
    for i in 0..5 {
        assert!(
            app.doc("region_2", "customers", &format!("frozen-{i}"))
                .await
                .is_some()
        );
    }
    eprintln!(
        "measured: frozen node detected after {detected:?}; slowest queued write {slowest:?}; \
         back {back:?} after it answered again"
    );
}

#[tokio::test]
async fn a_killed_node_is_detected_and_an_empty_restart_is_replayed_and_repaired() {
    let Some(mut app) = TestApp::spawn_for_faults(
        "detect_killed",
        Options::default().env("AUTO_REPAIR_MIN_INTERVAL_MS", "200"),
    )
    .await
    else {
        return;
    };
    // Stored on region_2 with its replica on region_1.
    let stored = app.stored(&customer("before-kill", 45_000)).await;
    let version = stored["version"].as_i64().unwrap();

    app.kill_mongo("region_2");
    let detected = wait_status(&app, "region_2", "unavailable", DETECT).await;
    let (code, body, took) = timed_write(&app, "during-kill", 45_001).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    assert!(took < QUEUED_WRITE, "a queued write took {took:?}");

    // The node comes back empty: the queue refills what was written while
    // it was down, and the repair that follows the drain restores the rest
    // from its replica.
    app.restart_mongo("region_2").await;
    let back = wait_status(&app, "region_2", "available", DETECT).await;
    app.wait_drained("region_2").await;
    app.wait_for_doc(
        "region_2",
        "customers",
        "during-kill",
        body["version"].as_i64().unwrap(),
    )
    .await;
    app.wait_for_doc("region_2", "customers", "before-kill", version)
        .await;
    wait_until("the home page to show the repair", DEADLINE, || async {
        app.page("/").await.1.contains("automatic, after region_2")
    })
    .await;
    // The node came back without its marker: repaired as a node that lost
    // its data (and again after its queue drained, if that came later).
    let repairs = app
        .metric("regiondb_repairs_total", &["trigger=\"data_loss\""])
        .await;
    assert!(repairs >= 1.0);
    eprintln!("measured: killed node detected after {detected:?}; back {back:?} after restart");
}

#[tokio::test]
async fn the_prober_never_overrides_an_operator() {
    let Some(app) = TestApp::spawn_for_faults("detect_operator", Options::default()).await else {
        return;
    };
    // Switched off through the API, and with redis-cli: both stay off while
    // their nodes answer every ping.
    app.set_status("region_3", "unavailable").await;
    app.redis_set_status("region_1", "unavailable").await;
    wait_status(&app, "region_1", "unavailable", DEADLINE).await;
    wait_probes_ok(&app, "region_3", 6.0).await;
    wait_probes_ok(&app, "region_1", 6.0).await;
    for node in ["region_1", "region_3"] {
        let view = node_at(&app.http, &app.address, node).await;
        assert_eq!(view["status"], "unavailable", "{view}");
        assert_eq!(view["source"], "manual", "{view}");
    }
    let (_, html) = app.page("/").await;
    assert!(html.contains("switched off"));

    // Taken down by the prober, then switched off by an operator while it
    // was down: when it answers again, it stays off.
    app.freeze_mongo("region_2");
    wait_status(&app, "region_2", "unavailable", DETECT).await;
    app.set_status("region_2", "unavailable").await;
    app.thaw_mongo("region_2");
    wait_probes_ok(&app, "region_2", 6.0).await;
    let view = node_at(&app.http, &app.address, "region_2").await;
    assert_eq!(view["status"], "unavailable", "{view}");
    assert_eq!(view["source"], "manual", "{view}");

    // An operator's "on" is not a pin: the prober takes a dead node down.
    app.set_status("region_3", "available").await;
    app.freeze_mongo("region_3");
    wait_status(&app, "region_3", "unavailable", DETECT).await;
    app.thaw_mongo("region_3");
    wait_status(&app, "region_3", "available", DETECT).await;
}

#[tokio::test]
async fn two_instances_agree_and_the_survivor_takes_over() {
    let Some(app) = TestApp::spawn_for_faults("detect_two", Options::default()).await else {
        return;
    };
    let mut other = app.spawn_instance("regiondb-b").await;
    let changes = |status: &'static str| {
        let labels = [
            "node=\"region_2\"".to_owned(),
            format!("status=\"{status}\""),
        ];
        let http = app.http.clone();
        let addresses = [app.address.clone(), other.address.clone()];
        async move {
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            let mut total = 0.0;
            for address in &addresses {
                total += metric_at(&http, address, "regiondb_status_changes_total", &labels).await;
            }
            total
        }
    };

    app.freeze_mongo("region_2");
    wait_status(&app, "region_2", "unavailable", DETECT).await;
    wait_until(
        "the other instance to see it",
        Duration::from_secs(1),
        || async { status_at(&app.http, &other.address, "region_2").await == "unavailable" },
    )
    .await;
    // Both keep failing their pings; still one decision, by one instance.
    for address in [&app.address, &other.address] {
        let failed = || async {
            metric_at(
                &app.http,
                address,
                "regiondb_probes_total",
                &["node=\"region_2\"", "outcome=\"failed\""],
            )
            .await
        };
        let before = failed().await;
        wait_until("more failed pings", DEADLINE, || async {
            failed().await >= before + 3.0
        })
        .await;
    }
    assert_eq!(changes("unavailable").await, 1.0);

    app.thaw_mongo("region_2");
    wait_status(&app, "region_2", "available", DETECT).await;
    wait_probes_ok(&app, "region_2", 4.0).await;
    assert_eq!(changes("available").await, 1.0);
    assert_eq!(changes("unavailable").await, 1.0, "no flapping");

    // Whichever instance held the leases, the other one detects once the
    // first is gone (its leases expire within a few intervals).
    other.crash();
    app.freeze_mongo("region_3");
    wait_status(
        &app,
        "region_3",
        "unavailable",
        DETECT + Duration::from_secs(4),
    )
    .await;
    app.thaw_mongo("region_3");
    wait_status(&app, "region_3", "available", DETECT).await;
}

/// The detector took region_3 down; the operator then pins it off with
/// `redis-cli HSET node_statuses region_3 unavailable` (the value already
/// there). That write is the operator's word: the status becomes theirs,
/// and the detector does not switch the node back on when it answers.
/// regiondb's own writes (an API switch, the detector's) hand nothing over.
#[tokio::test]
async fn a_status_pinned_with_redis_cli_outranks_the_detector_even_unchanged() {
    let Some(app) = TestApp::spawn_for_faults("detect_pinned", Options::default()).await else {
        return;
    };
    let source = |node: &'static str| {
        let app = &app;
        async move { node_at(&app.http, &app.address, node).await["source"].clone() }
    };
    app.freeze_mongo("region_3");
    wait_status(&app, "region_3", "unavailable", DETECT).await;
    assert_eq!(source("region_3").await, "probe");
    // Switches made through regiondb are its own: nothing is handed over.
    app.set_status("region_2", "unavailable").await;
    app.set_status("region_2", "available").await;
    wait_probes_ok(&app, "region_2", 2.0).await;
    assert_eq!(source("region_3").await, "probe");
    assert!(!app.app_log().contains("written straight into redis"));

    app.redis_set_status("region_3", "unavailable").await;
    wait_until("the pinned status to be the operator's", DETECT, || async {
        source("region_3").await == "manual"
    })
    .await;
    app.thaw_mongo("region_3");
    wait_probes_ok(&app, "region_3", 6.0).await;
    assert_eq!(
        status_at(&app.http, &app.address, "region_3").await,
        "unavailable"
    );
    assert_eq!(source("region_3").await, "manual");
}

/// A node the detector took down, switched back on by an operator while it
/// still does not answer, is taken down again only after a whole new streak
/// of failed pings: the failures before the switch (and a ping still in
/// flight at it) are older than the operator's word and do not count.
#[tokio::test]
async fn switching_a_detected_node_on_starts_the_detectors_count_again() {
    let Some(app) = TestApp::spawn_for_faults("detect_switched_on", Options::default()).await
    else {
        return;
    };
    app.freeze_mongo("region_2");
    wait_status(&app, "region_2", "unavailable", DETECT).await;
    let failed = ["node=\"region_2\"", "outcome=\"failed\""];
    app.set_status("region_2", "available").await;
    let at_switch = app.metric("regiondb_probes_total", &failed).await;
    wait_status(&app, "region_2", "unavailable", DETECT).await;
    let since = app.metric("regiondb_probes_total", &failed).await - at_switch;
    // 3 failures make a streak; one may have ended between the switch and
    // the count read above.
    assert!(since >= 2.0, "taken down after {since} failed pings");
    app.thaw_mongo("region_2");
}
