//! Purge never brings a record back: a tombstone goes only when every copy
//! of every region has answered and holds nothing older, and never while a
//! node is unavailable, catching up, or holds hints in its queue.

use mongodb::bson::doc;
use reqwest::StatusCode;

use crate::helpers::*;

/// A purge every second, of tombstones older than 6.5 s.
fn purging() -> Options {
    Options::default()
        .env("KAFKA_TIMEOUT_MS", "500")
        .env("PURGE_GRACE_MS", "6500")
        .env("PURGE_INTERVAL_MS", "1000")
}

/// Stores and deletes `id` in region_1; the tombstone's version.
async fn deleted(app: &TestApp, id: &str) -> i64 {
    app.stored(&customer(id, ZIP_1)).await;
    let (code, body) = app.delete(&format!("/customers/{id}")).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    body["version"].as_i64().expect("version")
}

async fn tombstone_left(app: &TestApp, id: &str) -> bool {
    app.doc("region_1", "customers", id).await.is_some()
}

/// An old live copy of a moved record left on the *replica* of another
/// region (a settler that skipped it; that region's home has nothing):
/// the purge reads every copy, so the tombstone stays while a control
/// record's goes, and a repair then turns the old copy into a tombstone
/// instead of spreading it.
#[tokio::test]
async fn an_old_copy_on_another_regions_replica_keeps_the_tombstone() {
    let app = TestApp::spawn_with("purge_other_replica", purging()).await;
    let version = deleted(&app, "c1").await;
    deleted(&app, "control").await;
    let old = doc! {"_id": "c1", "customer_id": "c1", "customer_unique_id": "u1",
    "customer_zip_code_prefix": ZIP_2 as i64, "customer_city": "old",
    "customer_state": "SP", "region": "region_2", "version": version - 1_000_000};
    app.put_doc("region_1", "replica_region_2", old).await;
    wait_until(
        "the control's tombstone to be purged",
        DEADLINE * 2,
        || async { !tombstone_left(&app, "control").await },
    )
    .await;
    assert!(
        tombstone_left(&app, "c1").await,
        "purged over an old live copy"
    );
    let run = app.run_command(&["repair"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stdout)
    );
    assert_eq!(app.get("/customers/c1").await.0, StatusCode::NOT_FOUND);
    // The old copy is a tombstone now (or already purged with the rest).
    let copy = app.doc("region_1", "replica_region_2", "c1").await;
    assert!(
        copy.as_ref()
            .is_none_or(|c| c.get_bool("deleted") == Ok(true)),
        "{copy:?}"
    );
}

/// A write accepted before the delete, waiting in another node's queue
/// (region_2 is off): nothing is purged while any node is unavailable or
/// has hints queued; once the hint is applied, the tombstone outvotes it
/// and stays until repair has removed the old copy.
#[tokio::test]
async fn a_hint_in_another_nodes_queue_keeps_every_tombstone() {
    let app = TestApp::spawn_with("purge_other_queue", purging()).await;
    app.set_status("region_2", "unavailable").await;
    let version = deleted(&app, "c1").await;
    let hint = serde_json::json!({"target": "primary", "region": "region_2",
        "version": version - 1_000_000,
        "customer": {"customer_id": "c1", "customer_unique_id": "u1",
            "customer_zip_code_prefix": ZIP_2, "customer_city": "older",
            "customer_state": "SP"}});
    app.produce_hint("region_2", "c1", &hint).await;
    let after_grace = version + 7_000_000;
    wait_until("a purge refused past the grace", DEADLINE * 2, || async {
        now_micros() > after_grace
            && app.app_log().contains("region_2 is unavailable")
            && app.app_log().contains("no tombstone purged")
    })
    .await;
    assert!(tombstone_left(&app, "c1").await, "purged with a node down");
    app.set_status("region_2", "available").await;
    app.wait_drained("region_2").await;
    assert!(app.doc("region_2", "customers", "c1").await.is_some());
    let (code, body) = app.get("/customers/c1").await;
    assert_eq!(code, StatusCode::NOT_FOUND, "resurrected: {body}");
    assert!(tombstone_left(&app, "c1").await, "purged over a live copy");
}
