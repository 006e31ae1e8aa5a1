//! The replay: commit after apply, idempotent, crash-safe, pausable.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;

/// Creates `n` customers in region_2 while it is unavailable; returns each
/// id with the version its 202 carried.
async fn queue_customers(app: &TestApp, n: usize) -> HashMap<String, i64> {
    let mut versions = HashMap::new();
    for i in 0..n {
        let id = format!("c{i:03}");
        let body = app.queued(&customer(&id, ZIP_2 + i as u32)).await;
        versions.insert(id, body["version"].as_i64().unwrap());
    }
    versions
}

async fn assert_exactly(app: &TestApp, node: &str, versions: &HashMap<String, i64>) {
    let docs = app.docs(node, "customers").await;
    assert_eq!(docs.len(), versions.len(), "one document per customer");
    for d in docs {
        let id = d.get_str("_id").unwrap();
        assert_eq!(d.get_i64("version").ok(), versions.get(id).copied(), "{id}");
    }
}

#[tokio::test]
async fn replaying_a_topic_twice_changes_nothing_and_stale_hints_are_ignored() {
    let mut app = TestApp::spawn("replay_twice").await;
    app.set_status("region_2", "unavailable").await;
    let mut versions = queue_customers(&app, 5).await;
    // A second, newer write of c000 queued behind the first.
    let mut newer = customer("c000", ZIP_2);
    newer["customer_city"] = json!("newer");
    let (_, body) = app.create(&newer).await;
    versions.insert("c000".into(), body["version"].as_i64().unwrap());

    app.set_status("region_2", "available").await;
    app.wait_drained("region_2").await;
    assert_exactly(&app, "region_2", &versions).await;

    // Stop, rewind the group to the start, and add a hint older than what
    // the node holds, as a slow writer would.
    assert!(app.stop_app().await.success());
    app.reset_group("region_2").await;
    assert_eq!(app.offsets("region_2").await.1, Some(0));
    let stale = json!({
        "target": "primary", "region": "region_2", "version": 1,
        "customer": {"customer_id": "c001", "customer_unique_id": "old",
            "customer_zip_code_prefix": ZIP_2, "customer_city": "stale", "customer_state": "XX"}
    });
    app.produce_hint("region_2", "c001", &stale).await;

    app.start_app().await;
    app.wait_drained("region_2").await;
    assert_eq!(app.offsets("region_2").await, (7, Some(7)));
    assert_exactly(&app, "region_2", &versions).await;
    let c000 = app.doc("region_2", "customers", "c000").await.unwrap();
    assert_eq!(c000.get_str("customer_city"), Ok("newer"));
    let c001 = app.doc("region_2", "customers", "c001").await.unwrap();
    assert_ne!(c001.get_str("customer_city"), Ok("stale"));
}

#[tokio::test]
async fn an_app_killed_mid_replay_applies_every_record_exactly_once_after_restart() {
    let options = Options::default()
        .env("REPLAY_BATCH_SIZE", "5")
        .env("REPLAY_THROTTLE_MS", "150");
    let mut app = TestApp::spawn_with("crash_mid_replay", options).await;
    app.set_status("region_2", "unavailable").await;
    let versions = queue_customers(&app, 60).await;

    app.set_status("region_2", "available").await;
    wait_until("the replay to start", DEADLINE, || async {
        !app.docs("region_2", "customers").await.is_empty()
    })
    .await;
    app.crash_app();
    let applied = app.docs("region_2", "customers").await.len();
    let (end, committed) = app.offsets("region_2").await;
    assert_eq!(end, 60);
    assert!(
        applied < 60,
        "the crash came mid-replay ({applied} applied)"
    );
    assert!(
        committed.unwrap_or(0) < 60,
        "not all committed before the crash"
    );

    app.start_app().await;
    // The status survived the restart (never overwritten at start).
    assert_eq!(app.get("/node-statuses").await.1["region_2"], "available");
    app.wait_drained("region_2").await;
    assert_exactly(&app, "region_2", &versions).await;
}

#[tokio::test]
async fn marking_a_node_unavailable_pauses_its_replay() {
    let options = Options::default()
        .env("REPLAY_BATCH_SIZE", "2")
        .env("REPLAY_THROTTLE_MS", "100");
    let app = TestApp::spawn_with("replay_pauses", options).await;
    app.set_status("region_2", "unavailable").await;
    let versions = queue_customers(&app, 30).await;

    app.set_status("region_2", "available").await;
    wait_until("the replay to start", DEADLINE, || async {
        app.offsets("region_2").await.1.unwrap_or(0) >= 2
    })
    .await;
    app.set_status("region_2", "unavailable").await;
    // At most the batch in flight finishes; then nothing moves. At this
    // throttle an unpaused replay would commit ~10 batches per second.
    let (_, settled) = app.offsets("region_2").await;
    let observed_until = Instant::now() + Duration::from_secs(1);
    let mut last = settled;
    let mut moves = 0;
    while Instant::now() < observed_until {
        let (_, now) = app.offsets("region_2").await;
        if now != last {
            moves += 1;
            last = now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(moves <= 1, "replay kept going while unavailable");
    assert!(last.unwrap_or(0) < 30);

    app.set_status("region_2", "available").await;
    app.wait_drained("region_2").await;
    assert_exactly(&app, "region_2", &versions).await;
}

#[tokio::test]
async fn a_replay_batch_inserts_new_records_and_updates_only_older_ones() {
    let app = TestApp::spawn("replay_mixed_batch").await;
    app.set_status("region_2", "unavailable").await;
    let versions = queue_customers(&app, 4).await;
    // What the node already holds, written behind regiondb's back: c000
    // nothing (new), c001 an older copy, c002 a newer one, c003 a copy
    // without a version (another tool's).
    let coll = app
        .mongo_client(node_index("region_2"))
        .await
        .database("region_2")
        .collection::<mongodb::bson::Document>("customers");
    let held = |id: &str, version: Option<i64>| {
        let mut d = mongodb::bson::doc! {"_id": id, "customer_id": id, "customer_city": "held"};
        if let Some(v) = version {
            d.insert("version", v);
        }
        d
    };
    coll.insert_many([
        held("c001", Some(versions["c001"] - 1)),
        held("c002", Some(versions["c002"] + 1)),
        held("c003", None),
    ])
    .await
    .expect("seed the node");

    app.set_status("region_2", "available").await;
    app.wait_drained("region_2").await;
    let docs = app.docs("region_2", "customers").await;
    assert_eq!(docs.len(), 4, "one document per customer: {docs:?}");
    for d in docs {
        let id = d.get_str("_id").unwrap();
        let (version, city) = (d.get_i64("version").unwrap(), d.get_str("customer_city"));
        if id == "c002" {
            assert_eq!(
                (version, city),
                (versions["c002"] + 1, Ok("held")),
                "newer copy kept"
            );
        } else {
            assert_eq!(version, versions[id], "{id} is the queued copy");
            assert_ne!(city, Ok("held"), "{id}");
        }
    }
}
