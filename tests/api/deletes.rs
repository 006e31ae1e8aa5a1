//! Deletes: a tombstone (the id and a version, nothing personal) on both
//! copies, stored or queued; nothing older can bring the record back, not a
//! late hint nor a repair from a stale copy; and the tombstones go only
//! once no copy or hint can need them.

use mongodb::bson::doc;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

const PERSONAL: [&str; 4] = [
    "customer_unique_id",
    "customer_zip_code_prefix",
    "customer_city",
    "customer_state",
];

/// `id`'s document on `node` is a tombstone with no personal field.
async fn tombstone_on(app: &TestApp, node: &str, collection: &str, id: &str) -> bool {
    app.doc(node, collection, id).await.is_some_and(|d| {
        d.get_bool("deleted") == Ok(true) && PERSONAL.iter().all(|f| !d.contains_key(*f))
    })
}

#[tokio::test]
async fn a_delete_with_the_replica_down_is_queued_for_it_and_reaches_it() {
    let app = TestApp::spawn("delete_replica_down").await;
    app.stored(&customer("c1", ZIP_1)).await;
    app.set_status("region_3", "unavailable").await;
    let (code, receipt) = app.delete("/customers/c1").await;
    assert_eq!(code, StatusCode::OK, "{receipt}");
    assert_eq!(receipt["status"], "stored");
    assert_eq!(receipt["replica"], "queued");
    assert!(tombstone_on(&app, "region_1", "customers", "c1").await);
    assert_eq!(app.get("/customers/c1").await.0, StatusCode::NOT_FOUND);
    let (code, body) = app.get("/filter-records").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["total"], 0, "{body}");
    app.set_status("region_3", "available").await;
    app.wait_drained("region_3").await;
    assert!(tombstone_on(&app, "region_3", "replica_region_1", "c1").await);
    // Gone already: 404, nothing written.
    let (code, _) = app.delete("/customers/c1").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = app.delete("/customers/never-was").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    // A later write re-creates it.
    app.stored(&customer("c1", ZIP_1)).await;
    assert_eq!(app.get("/customers/c1").await.0, StatusCode::OK);
}

#[tokio::test]
async fn an_older_hint_replayed_after_a_delete_does_not_bring_it_back() {
    let app = TestApp::spawn("delete_then_old_hint").await;
    let written = app.stored(&customer("c1", ZIP_2)).await;
    let (code, _) = app.delete("/customers/c1").await;
    assert_eq!(code, StatusCode::OK);
    // A hint of the write before the delete, arriving late.
    let hint = json!({
        "target": "primary", "region": "region_2", "version": written["version"],
        "customer": customer("c1", ZIP_2),
    });
    app.produce_hint("region_2", "c1", &hint).await;
    app.wait_drained("region_2").await;
    assert!(tombstone_on(&app, "region_2", "customers", "c1").await);
    assert_eq!(app.get("/customers/c1").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn repair_never_brings_a_deleted_record_back_from_a_stale_copy() {
    let app = TestApp::spawn("delete_then_repair").await;
    let written = app.stored(&customer("c1", ZIP_1)).await;
    let (code, _) = app.delete("/customers/c1").await;
    assert_eq!(code, StatusCode::OK);
    // The replica as a node restored from an old backup would hold it.
    let stale = doc! {
        "_id": "c1", "customer_id": "c1", "customer_unique_id": "unique-c1",
        "customer_zip_code_prefix": i64::from(ZIP_1), "customer_city": "sao paulo",
        "customer_state": "SP", "region": "region_1",
        "version": written["version"].as_i64().unwrap(),
    };
    app.put_doc("region_3", "replica_region_1", stale).await;
    let run = app.run_command(&["repair"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(tombstone_on(&app, "region_1", "customers", "c1").await);
    assert!(tombstone_on(&app, "region_3", "replica_region_1", "c1").await);
    // And the other way round: the stale live copy on the home node.
    app.put_doc(
        "region_1",
        "customers",
        doc! {"_id": "c1", "customer_id": "c1", "customer_city": "x", "region": "region_1",
        "version": written["version"].as_i64().unwrap()},
    )
    .await;
    let (code, _) = app.post("/admin/repair", &json!({})).await;
    assert_eq!(code, StatusCode::OK);
    assert!(tombstone_on(&app, "region_1", "customers", "c1").await);
    assert_eq!(app.get("/customers/c1").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tombstones_are_purged_only_once_the_queue_has_passed_them() {
    let options = Options::default()
        .env("PURGE_GRACE_MS", "12000")
        .env("PURGE_INTERVAL_MS", "0");
    let app = TestApp::spawn_with("purge_after_queue", options).await;
    app.stored(&customer("c1", ZIP_1)).await;
    app.set_status("region_3", "unavailable").await;
    let (code, deleted) = app.delete("/customers/c1").await;
    assert_eq!(code, StatusCode::OK, "{deleted}");
    // Past the grace, but the replica's queue still holds its tombstone.
    let after_grace = deleted["version"].as_i64().unwrap() + 12_500_000;
    wait_until("the tombstone to pass the grace", DEADLINE * 2, || async {
        now_micros() > after_grace
    })
    .await;
    let run = app.run_command(&["repair", "--region", "region_1"]);
    let table = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(table.contains("region_1"), "{table}");
    assert!(
        tombstone_on(&app, "region_1", "customers", "c1").await,
        "{table}"
    );

    app.set_status("region_3", "available").await;
    app.wait_drained("region_3").await;
    let run = app.run_command(&["repair", "--region", "region_1"]);
    let table = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(run.status.success(), "{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with("region_1"))
        .expect("row");
    assert!(
        row.split_whitespace().nth(6) == Some("1"),
        "purged 1: {table}"
    );
    // No copy of the record, personal or not, on any node.
    for (node, collection) in [("region_1", "customers"), ("region_3", "replica_region_1")] {
        assert!(app.doc(node, collection, "c1").await.is_none(), "{node}");
    }
}
