//! Restarts and lost data: a restarted instance's versions, version slots,
//! a node that comes back empty, Redis losing everything.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// The slot a version was handed out in.
fn slot(version: i64) -> i64 {
    version.rem_euclid(64)
}

async fn version_of(app: &TestApp, address: &str, id: &str, zip: u32, city: &str) -> i64 {
    let mut body = customer(id, zip);
    body["customer_city"] = json!(city);
    let response = app
        .http
        .post(format!("{address}/create-customer"))
        .json(&body)
        .send()
        .await
        .expect("write");
    let code = response.status();
    let answer: serde_json::Value = response.json().await.expect("json");
    assert_eq!(code, StatusCode::CREATED, "{answer}");
    answer["version"].as_i64().expect("version")
}

#[tokio::test]
async fn a_restarted_instance_never_outvotes_a_later_write_through_another() {
    let app = TestApp::spawn("restart_versions").await;
    let mut b = app.spawn_instance("regiondb-b").await;
    b.crash();
    let b = app.spawn_instance("regiondb-b2").await;
    // Through the restarted instance first, then through the other one.
    let vb = version_of(&app, &b.address, "c1", ZIP_2, "from b").await;
    let va = version_of(&app, &app.address, "c1", ZIP_2, "from a").await;
    assert!(va > vb, "the later write must win: a={va} b={vb}");
    let micros_ahead = vb - now_micros();
    assert!(
        micros_ahead < 100_000,
        "b hands out versions {micros_ahead} µs ahead of real time"
    );
    for (node, collection) in [("region_2", "customers"), ("region_1", "replica_region_2")] {
        let doc = app.doc(node, collection, "c1").await.expect("stored");
        assert_eq!(doc.get_i64("version"), Ok(va), "{node}");
        assert_eq!(doc.get_str("customer_city"), Ok("from a"), "{node}");
    }
}

/// Starts the binary with the app's settings on a free port and waits for
/// it to exit; answers its exit status and log, or panics if it is still
/// running after the deadline.
async fn start_expecting_refusal(app: &TestApp, name: &str) -> (std::process::ExitStatus, String) {
    let log_path = app.dir.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path).expect("log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_regiondb"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    for (k, v) in app.app_settings() {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start regiondb");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            return (status, text);
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("{name} started although every version slot is held");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn version_slots_are_leased_never_shared_and_a_start_without_one_is_refused() {
    let app = TestApp::spawn("version_slots").await;
    let va = version_of(&app, &app.address, "s1", ZIP_1, "a").await;
    // The old scheme handed out `INCR regiondb:instances` modulo 64: set the
    // counter so that the next start would land on a's slot.
    let counter = slot(va) + 64 - 1;
    app.redis_set("regiondb:instances", &counter.to_string())
        .await;
    let b = app.spawn_instance("regiondb-b").await;
    let vb = version_of(&app, &b.address, "s2", ZIP_1, "b").await;
    assert_ne!(slot(va), slot(vb), "two running instances share a slot");
    let held: Vec<String> = app.redis(&["KEYS", "regiondb:version_slot:*"]).await;
    assert_eq!(held.len(), 2, "{held:?}");

    // Every other slot held by someone: a third instance refuses to start.
    for s in 0..64 {
        let key = format!("regiondb:version_slot:{s}");
        let _: Option<String> = app
            .redis(&["SET", &key, "someone-else", "NX", "PX", "60000"])
            .await;
    }
    let (status, log) = start_expecting_refusal(&app, "regiondb-c").await;
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("all 64 version slots are held by running instances"),
        "{log}"
    );
}

#[tokio::test]
async fn a_graceful_stop_gives_its_slot_and_its_probe_leases_back() {
    let mut app = TestApp::spawn("leases_released").await;
    let b = app.spawn_instance("regiondb-b").await;
    // a starts first: it holds the failure detector's lease of each node.
    wait_until("a to hold region_1's probe lease", DEADLINE, || async {
        get_key(&app, "regiondb:probe_lease:region_1")
            .await
            .is_some()
    })
    .await;
    let a_lease = get_key(&app, "regiondb:probe_lease:region_1").await;
    let slots_before: Vec<String> = app.redis(&["KEYS", "regiondb:version_slot:*"]).await;
    assert_eq!(slots_before.len(), 2);
    app.stop_app().await;
    let slots_after: Vec<String> = app.redis(&["KEYS", "regiondb:version_slot:*"]).await;
    assert_eq!(
        slots_after.len(),
        1,
        "a's slot is released: {slots_after:?}"
    );
    for node in NODES {
        let now = get_key(&app, &format!("regiondb:probe_lease:{node}")).await;
        assert!(
            now.is_none() || now != a_lease,
            "{node}'s probe lease still held by the stopped instance"
        );
    }
    drop(b);
}

async fn get_key(app: &TestApp, key: &str) -> Option<String> {
    app.redis(&["GET", key]).await
}

/// `n` records written to the region of `zip` (201 each).
async fn stored(app: &TestApp, prefix: &str, zip: u32, n: u64) {
    for i in 0..n {
        let (code, body) = app
            .create(&customer(&format!("{prefix}{i}"), zip + i as u32))
            .await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
    }
}

/// Reads `region` until its home node serves it; every read on the way
/// must have all `n` records.
async fn whole_until_served_by(app: &TestApp, region: &str, n: u64) {
    let started = Instant::now();
    loop {
        let (got, served) = region_read(app, &app.address, region).await;
        assert_eq!(got, n, "a read of {region} served by {served} has holes");
        if served == region {
            return;
        }
        assert!(started.elapsed() < DEADLINE, "{region} never repaired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `/filter-records` of one region through `address`: how many records
/// match and which node served them.
async fn region_read(app: &TestApp, address: &str, region: &str) -> (u64, String) {
    let read = get_json_at(
        &app.http,
        address,
        &format!("/filter-records?region={region}&limit=500"),
    )
    .await;
    let served = read["sources"][0]["served_by"]
        .as_str()
        .unwrap_or("none")
        .to_owned();
    (read["total"].as_u64().unwrap_or(0), served)
}

#[tokio::test]
async fn a_node_restarted_empty_is_read_from_its_replica_until_repaired() {
    let Some(mut app) = TestApp::spawn_for_faults("emptied_node", Options::default()).await else {
        return;
    };
    const N: u64 = 30;
    stored(&app, "e", ZIP_2, N).await;
    // region_2 also hosts region_3's replica.
    stored(&app, "t", ZIP_3, 5).await;
    wait_until(
        "region_2 to carry its identity marker",
        DEADLINE,
        || async { !app.docs("region_2", "regiondb_identity").await.is_empty() },
    )
    .await;
    // Holds back the repair of region_3's replica: an operator's node is
    // not written behind their back.
    app.set_status("region_3", "unavailable").await;

    // Gone and back empty, faster than the failure detector notices.
    app.kill_mongo("region_2");
    app.restart_mongo("region_2").await;
    let restarted = Instant::now();
    wait_until(
        "the app to see region_2 lost its data",
        DEADLINE,
        || async { node_at(&app.http, &app.address, "region_2").await["lost_data"] == true },
    )
    .await;
    let detected = restarted.elapsed();
    assert_eq!(
        region_read(&app, &app.address, "region_2").await,
        (N, "region_1".to_owned()),
        "served from the replica while region_2 is not repaired"
    );

    // Once the repair can finish, reads come back to region_2, and no read
    // on the way has holes.
    app.set_status("region_3", "available").await;
    let repaired = Instant::now();
    whole_until_served_by(&app, "region_2", N).await;
    eprintln!(
        "region_2 detected empty after {detected:?}, read from it again {:?} after its repair could run",
        repaired.elapsed()
    );
    assert_repaired(&app, N, 5).await;
}

/// region_2 holds its `home` records and region_3's `replica` ones again,
/// and says how it got there.
async fn assert_repaired(app: &TestApp, home: u64, replica: usize) {
    assert_eq!(app.docs("region_2", "customers").await.len() as u64, home);
    assert_eq!(
        app.docs("region_2", "replica_region_3").await.len(),
        replica
    );
    let view = node_at(&app.http, &app.address, "region_2").await;
    assert_eq!(view["lost_data"], false, "{view}");
    let page = app.page("/").await.1;
    assert!(
        page.contains("after region_2 came back without its data"),
        "{page}"
    );
    let detections = app
        .metric("regiondb_data_loss_detected_total", &["node=\"region_2\""])
        .await;
    assert_eq!(detections, 1.0);
}

#[tokio::test]
async fn statuses_an_operator_set_survive_redis_losing_everything() {
    let app = TestApp::spawn("redis_flushed").await;
    let b = app.spawn_instance("regiondb-b").await;
    app.set_status("region_2", "unavailable").await;
    wait_until("b to see region_2 off", DEADLINE, || async {
        get_json_at(&app.http, &b.address, "/node-statuses").await["region_2"] == "unavailable"
    })
    .await;
    let before = version_of(&app, &b.address, "f1", ZIP_1, "before").await;

    let _: String = app.redis(&["FLUSHALL"]).await;
    // An instance starting right after the flush seeds no defaults over
    // the statuses the running ones restore.
    let c = app.spawn_instance("regiondb-c").await;
    wait_until("the statuses to be restored in redis", DEADLINE, || async {
        app.redis::<Option<String>>(&["HGET", "node_statuses", "region_2"])
            .await
            .as_deref()
            == Some("unavailable")
    })
    .await;
    for address in [&app.address, &b.address, &c.address] {
        let statuses = get_json_at(&app.http, address, "/node-statuses").await;
        assert_eq!(statuses["region_2"], "unavailable", "{address}: {statuses}");
        assert_eq!(statuses["region_1"], "available", "{address}: {statuses}");
        let view = node_at(&app.http, address, "region_2").await;
        assert_eq!(view["source"], "manual", "{view}");
    }
    let all: std::collections::HashMap<String, String> =
        app.redis(&["HGETALL", "node_statuses"]).await;
    assert_eq!(all.len(), 3, "{all:?}");
    let mut restores = 0.0;
    for address in [&app.address, &b.address, &c.address] {
        restores += metric_at(&app.http, address, "regiondb_redis_restores_total", &[]).await;
    }
    assert_eq!(
        restores, 1.0,
        "one instance restores, the other finds it done"
    );

    // Writes go on, versions keep increasing, the slots are held again.
    app.queued(&customer("f2", ZIP_2)).await;
    let after = version_of(&app, &b.address, "f1", ZIP_1, "after").await;
    assert!(after > before, "{after} <= {before}");
    let a_after = version_of(&app, &app.address, "f1", ZIP_1, "after a").await;
    assert!(a_after > after);
    wait_until("the three slots to be leased", DEADLINE, || async {
        app.redis::<Vec<String>>(&["KEYS", "regiondb:version_slot:*"])
            .await
            .len()
            == 3
    })
    .await;
    assert!(
        app.redis::<Option<String>>(&["GET", "regiondb:version_floor"])
            .await
            .is_some()
    );
}

#[tokio::test]
async fn a_status_field_deleted_by_hand_still_reads_as_the_default() {
    let app = TestApp::spawn("status_field_deleted").await;
    app.set_status("region_2", "unavailable").await;
    let _: i64 = app.redis(&["HDEL", "node_statuses", "region_2"]).await;
    wait_until("a deleted field to read as available", DEADLINE, || async {
        get_json_at(&app.http, &app.address, "/node-statuses").await["region_2"] == "available"
    })
    .await;
    let restores = app.metric("regiondb_redis_restores_total", &[]).await;
    assert_eq!(
        restores, 0.0,
        "one field gone is not Redis losing everything"
    );
}

#[tokio::test]
async fn a_node_restarted_empty_is_trusted_again_only_once_its_replica_is_complete() {
    // region_1 keeps region_2's replica; its replay applies one hint every
    // 300 ms, so its copy is incomplete for a few seconds after it is back.
    let options = Options::default()
        .env("REPLAY_BATCH_SIZE", "1")
        .env("REPLAY_THROTTLE_MS", "300");
    let Some(mut app) = TestApp::spawn_for_faults("emptied_replica_behind", options).await else {
        return;
    };
    const N: u64 = 10;
    stored(&app, "m", ZIP_2, 1).await;
    wait_until(
        "region_2 to carry its identity marker",
        DEADLINE,
        || async { !app.docs("region_2", "regiondb_identity").await.is_empty() },
    )
    .await;
    // The replicas of these wait in region_1's queue.
    app.set_status("region_1", "unavailable").await;
    for i in 1..N {
        let (code, body) = app
            .create(&customer(&format!("m{i}"), ZIP_2 + i as u32))
            .await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
    }
    app.kill_mongo("region_2");
    app.restart_mongo("region_2").await;
    wait_until(
        "the app to see region_2 lost its data",
        DEADLINE,
        || async { node_at(&app.http, &app.address, "region_2").await["lost_data"] == true },
    )
    .await;
    app.set_status("region_1", "available").await;

    // No read that says it is not catching up may have holes.
    let started = Instant::now();
    loop {
        let read = get_json_at(&app.http, &app.address, "/filter-records?region=region_2").await;
        let source = &read["sources"][0];
        if source["catching_up"] == false {
            assert_eq!(
                read["total"], N,
                "a trusted read of region_2 has holes: {read}"
            );
            if source["served_by"] == "region_2" {
                break;
            }
        }
        assert!(started.elapsed() < DEADLINE, "region_2 never repaired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.docs("region_2", "customers").await.len() as u64, N);
}
