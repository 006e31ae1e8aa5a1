//! Finishing a move does not depend on the process that started it: an
//! instance that accepted a move and crashed before it could remove the old
//! copy leaves it recorded in Redis; another instance's sweep removes it
//! within a minute without any repair, and reads meanwhile neither show nor
//! count it. Nor does it depend on Redis keeping that record: after a flush
//! the recent writes are read back from the nodes, once they hold them.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// Five records, c1 among them once: `total` exact, every page full.
async fn counted_once(app: &TestApp) {
    let (code, all) = app.get("/filter-records?limit=100").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(all["total"], 5, "{all}");
    let ids: Vec<&str> = (all["records"].as_array().expect("records").iter())
        .filter_map(|r| r["customer_id"].as_str())
        .collect();
    assert_eq!(ids.iter().filter(|id| **id == "c1").count(), 1, "{all}");
    let (_, page) = app.get("/filter-records?limit=2&offset=4").await;
    assert_eq!(page["records"].as_array().map(Vec::len), Some(1), "{page}");
    let (_, page) = app.get("/filter-records?limit=4&offset=0").await;
    assert_eq!(page["records"].as_array().map(Vec::len), Some(4), "{page}");
}

/// Waits (up to a minute: the sweep's bound) for c1's old copy in region_1
/// to become a tombstone.
async fn old_copy_removed(app: &TestApp) {
    wait_until(
        "the old copy to become a tombstone",
        Duration::from_secs(60),
        || async {
            app.doc("region_1", "customers", "c1")
                .await
                .is_some_and(|d| d.get_bool("deleted") == Ok(true))
        },
    )
    .await;
}

#[tokio::test]
async fn a_move_whose_instance_crashed_is_settled_by_another_and_counted_once() {
    // No automatic repair: only the sweep may remove the old copy.
    let options = Options::default().env("AUTO_REPAIR_MIN_INTERVAL_MS", "0");
    let app = TestApp::spawn_with("moves_crash", options).await;
    app.stored(&customer("c1", ZIP_1)).await;
    for n in 0..4 {
        app.stored(&customer(&format!("o{n}"), ZIP_2)).await;
    }
    let mut b = app.spawn_instance("regiondb-b").await;
    // A fresh Redis is read as one that lost its data: the recent writes
    // are settled again once every queue was looked at. Done before the
    // move, so that only the sweep of unsettled writes can settle it.
    wait_until("the start's re-read of recent writes", DEADLINE, || async {
        app.redis::<Option<String>>(&["GET", "regiondb:resettle"])
            .await
            .is_none()
    })
    .await;
    // region_1 cannot be read (its home and the node keeping its replica
    // are off): the move's old copy cannot be removed yet.
    app.set_status("region_1", "unavailable").await;
    app.set_status("region_3", "unavailable").await;
    let mut moved = customer("c1", ZIP_2);
    moved["customer_city"] = json!("moved");
    let (code, body) = json_answer(
        app.http
            .post(format!("{}/create-customer", b.address))
            .json(&moved),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    b.crash();
    app.set_status("region_1", "available").await;
    app.set_status("region_3", "available").await;
    let moved_at = Instant::now();

    // The old copy is still live in region_1, but no read shows or counts
    // it: c1 once, and every page full.
    let old = app
        .doc("region_1", "customers", "c1")
        .await
        .expect("old copy");
    assert_ne!(old.get_bool("deleted"), Ok(true), "already settled: {old}");
    counted_once(&app).await;

    // Without any repair, the surviving instance removes it.
    old_copy_removed(&app).await;
    eprintln!("old copy removed {:?} after the crash", moved_at.elapsed());
    // Said once the sweep's batch is done, just after its tombstones land.
    wait_until("the sweep to say it settled the move", DEADLINE, || async {
        app.app_log().contains("another instance left unsettled")
    })
    .await;
    wait_until("nothing left unsettled", DEADLINE, || async {
        app.redis::<u64>(&["ZCARD", "regiondb:unsettled"]).await == 0
    })
    .await;
}

/// Redis loses its record of an unsettled move while the move's copies are
/// still queued for its new region: the recent writes are read again only
/// once every region has a caught-up copy to read them from, so the old
/// copy still goes (read too early, the queued move was not there, and its
/// old copy would have stayed live for good).
#[tokio::test]
async fn a_move_still_queued_when_redis_lost_its_record_is_settled_once_it_lands() {
    let options = Options::default().env("AUTO_REPAIR_MIN_INTERVAL_MS", "0");
    let app = TestApp::spawn_with("moves_flushed", options).await;
    app.stored(&customer("c1", ZIP_1)).await;
    // Every node off: the move into region_2 queues both its copies, and
    // region_1 cannot be read, so its old copy stays for now.
    for node in ["region_1", "region_2", "region_3"] {
        app.set_status(node, "unavailable").await;
    }
    let mut moved = customer("c1", ZIP_2);
    moved["customer_city"] = json!("moved");
    app.queued(&moved).await;
    let () = app.redis(&["FLUSHALL"]).await;
    let marked = || async {
        app.redis::<Option<String>>(&["GET", "regiondb:resettle"])
            .await
            .is_some()
    };
    wait_until(
        "the statuses restored, and the re-read wanted",
        DEADLINE,
        marked,
    )
    .await;
    // The next sweep (every 10 s) finds no region it could read for sure.
    let sweeps = |log: String| log.matches("recent writes not settled again yet").count();
    let before = sweeps(app.app_log());
    wait_until(
        "a sweep after the flush",
        Duration::from_secs(30),
        || async {
            let log = app.app_log();
            sweeps(log.clone()) > before || log.contains("settled the recent ones again")
        },
    )
    .await;
    assert!(marked().await, "the re-read is still wanted");

    for node in ["region_1", "region_2", "region_3"] {
        app.set_status(node, "available").await;
    }
    app.wait_drained("region_2").await;
    app.wait_drained("region_1").await;
    old_copy_removed(&app).await;
    let (_, body) = app.get("/customers/c1").await;
    assert_eq!(body["customer_city"], "moved", "{body}");
}

/// Concurrent writes share their records of unsettled moves (one `ZADD`
/// for every write that arrives while one is in flight), and none is
/// answered before its own record is in Redis: with region_1 unreadable
/// (its home and the node keeping its replica off), none of them can be
/// settled, and every answered write is recorded at the last answer.
#[tokio::test]
async fn concurrent_writes_are_each_recorded_unsettled_before_their_answer() {
    let app = TestApp::spawn("moves_recorded").await;
    app.set_status("region_1", "unavailable").await;
    app.set_status("region_3", "unavailable").await;
    let bodies: Vec<_> = (0..40).map(|n| customer(&format!("u{n}"), ZIP_2)).collect();
    let answers = futures::future::join_all(bodies.iter().map(|b| app.create(b))).await;
    for (code, body) in &answers {
        assert_eq!(*code, StatusCode::CREATED, "{body}");
    }
    let recorded: u64 = app.redis(&["ZCARD", "regiondb:unsettled"]).await;
    assert_eq!(recorded, 40);
}
