//! A replay must not stall silently: when its node is available, its queue
//! is not empty and no instance commits anything, it notices, re-joins its
//! group, and if that does not help applies the stuck hints outside it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// The situation: a member the broker still counts holds half of a node's
/// partitions and never commits. Here the first instance forms the handoff
/// groups with a two-minute session (tansu 0.6 keeps the session of the
/// member that formed a group for all its members), then freezes; the other
/// instance, whose stall period is 8 s, must not leave the node without its
/// writes for two minutes.
#[tokio::test]
async fn a_queue_held_by_a_silent_member_still_reaches_its_node() {
    let options = Options::default()
        .env("KAFKA_SESSION_TIMEOUT_MS", "120000")
        .env("REPLAY_STALL_MS", "130000");
    let Some(app) = TestApp::spawn_for_faults("stall_silent_member", options).await else {
        return;
    };
    let b = app
        .spawn_instance_with(
            "regiondb-b",
            &[
                ("KAFKA_SESSION_TIMEOUT_MS", "6000"),
                ("REPLAY_STALL_MS", "8000"),
                // The 60 stuck hints take three batches outside the group.
                ("REPLAY_BATCH_SIZE", "25"),
            ],
        )
        .await;
    let post = |path: &'static str, body: Value| {
        let (http, url) = (app.http.clone(), format!("{}{path}", b.address));
        async move {
            let r = http.post(url).json(&body).send().await.expect("post");
            (r.status(), r.json::<Value>().await.expect("json"))
        }
    };
    let off = json!({"node_id": "region_2", "status": "unavailable"});
    assert_eq!(post("/node-status", off).await.0, StatusCode::OK);
    const N: usize = 60;
    for i in 0..N {
        let (code, body) = post("/create-customer", customer(&format!("d{i}"), ZIP_2)).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    }
    app.freeze_app();
    let on = json!({"node_id": "region_2", "status": "available"});
    assert_eq!(post("/node-status", on).await.0, StatusCode::OK);
    wait_until(
        "every queued write to reach region_2",
        Duration::from_secs(60),
        || async { app.docs("region_2", "customers").await.len() == N },
    )
    .await;
    let stalls = metric_at(
        &app.http,
        &b.address,
        "regiondb_replay_stalls_total",
        &["node=\"region_2\""],
    )
    .await;
    assert!(stalls >= 2.0, "re-joined, then applied outside: {stalls}");
    let log = std::fs::read_to_string(app.dir.join("regiondb-b.log")).unwrap_or_default();
    assert!(log.contains("replay stalled"), "the stall is logged");
    app.thaw_app();
    // Once the silent member answers again, the group commits it all.
    app.wait_drained("region_2").await;
}

/// After a crash and a restart of the only instance, the broker still
/// counts the killed member until its session expires, and that member
/// holds every partition. Here the killed instance formed the groups with a
/// two-minute session (as in the test above); the instance started in its
/// place, given no partition, applies the queue outside the group at its
/// first stall, before it re-joins (which used to come first, and the apply
/// only a stall period later).
#[tokio::test]
async fn a_restarted_instance_given_no_partition_applies_the_queue_at_its_first_stall() {
    let options = Options::default()
        .env("KAFKA_SESSION_TIMEOUT_MS", "120000")
        .env("REPLAY_STALL_MS", "130000");
    let Some(mut app) = TestApp::spawn_for_faults("stall_restarted", options).await else {
        return;
    };
    app.set_status("region_2", "unavailable").await;
    let queued = app.queued(&customer("c1", ZIP_2)).await;
    let version = queued["version"].as_i64().expect("version");
    app.crash_app();
    let b = app
        .spawn_instance_with(
            "regiondb-b",
            &[
                ("KAFKA_SESSION_TIMEOUT_MS", "6000"),
                ("REPLAY_STALL_MS", "8000"),
            ],
        )
        .await;
    let on = json!({"node_id": "region_2", "status": "available"});
    let switch = app
        .http
        .post(format!("{}/node-status", b.address))
        .json(&on);
    assert_eq!(json_answer(switch).await.0, StatusCode::OK);
    let switched_on = std::time::Instant::now();
    app.wait_for_doc("region_2", "customers", "c1", version)
        .await;
    eprintln!(
        "queued write replayed {:?} after its node was switched on",
        switched_on.elapsed()
    );
    let log = std::fs::read_to_string(app.dir.join("regiondb-b.log")).unwrap_or_default();
    let applied = log.find("applied the stuck hints outside the group");
    let rejoined = log.find("re-joining the consumer group");
    assert!(
        applied.is_some_and(|a| rejoined.is_none_or(|r| a < r)),
        "the new instance re-joined before applying: {log}"
    );
}
