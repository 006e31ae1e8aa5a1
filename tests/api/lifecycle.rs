//! A record's life across regions: looked up with every copy, moved to
//! another region (its old copies become tombstones, whichever node is
//! down), never read twice, and its leftovers removed by repair.

use mongodb::bson::doc;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

/// The state of `node`'s `role` copy in a lookup answer.
fn state(answer: &Value, node: &str, role: &str) -> String {
    answer["copies"]
        .as_array()
        .expect("copies")
        .iter()
        .find(|c| c["node"] == node && c["role"] == role)
        .map(|c| c["state"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_else(|| "absent".to_owned())
}

/// Whether the copy of `id` on `node` is a tombstone with no personal field.
async fn tombstone_on(app: &TestApp, node: &str, collection: &str, id: &str) -> bool {
    let Some(d) = app.doc(node, collection, id).await else {
        return false;
    };
    let personal = [
        "customer_unique_id",
        "customer_zip_code_prefix",
        "customer_city",
        "customer_state",
    ];
    d.get_bool("deleted") == Ok(true) && personal.iter().all(|f| !d.contains_key(*f))
}

/// How many rows of `GET /filter-records` (every region) are `id`.
async fn rows_of(app: &TestApp, id: &str) -> Vec<Value> {
    let (code, body) = app.get("/filter-records?limit=500").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    body["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["customer_id"] == id)
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_lookup_shows_every_copy_state() {
    let app = TestApp::spawn("lookup_states").await;
    let written = app.stored(&customer("c1", ZIP_1)).await;
    let (code, found) = app.get("/customers/c1").await;
    assert_eq!(code, StatusCode::OK, "{found}");
    assert_eq!(found["customer_city"], "sao paulo");
    assert_eq!(found["served_by"], "region_1");
    assert_eq!(found["version"], written["version"]);
    assert_eq!(state(&found, "region_1", "home"), "current");
    assert_eq!(state(&found, "region_3", "replica"), "current");
    assert_eq!(found["divergent"], false);

    // An older version on the replica: stale. No replica copy: missing.
    let mut old = app
        .doc("region_3", "replica_region_1", "c1")
        .await
        .expect("replica");
    old.insert("version", written["version"].as_i64().unwrap() - 1);
    app.put_doc("region_3", "replica_region_1", old).await;
    let (_, found) = app.get("/customers/c1").await;
    assert_eq!(state(&found, "region_3", "replica"), "stale");
    assert_eq!(found["divergent"], true);
    app.mongo_client(node_index("region_3"))
        .await
        .database("region_3")
        .collection::<mongodb::bson::Document>("replica_region_1")
        .delete_one(doc! {"_id": "c1"})
        .await
        .expect("delete");
    let (_, found) = app.get("/customers/c1").await;
    assert_eq!(state(&found, "region_3", "replica"), "missing");

    // A node switched off: unreachable. Nothing anywhere: 404.
    app.set_status("region_3", "unavailable").await;
    let (_, found) = app.get("/customers/c1").await;
    assert_eq!(state(&found, "region_3", "replica"), "unreachable");
    app.set_status("region_3", "available").await;
    let (code, body) = app.get("/customers/nobody").await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    assert!(body["error"].as_str().unwrap().contains("nobody"), "{body}");

    // Deleted: 404, but the tombstones can be inspected.
    let (code, _) = app.delete("/customers/c1").await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = app.get("/customers/c1").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, found) = app.get("/customers/c1?include_deleted=true").await;
    assert_eq!(code, StatusCode::OK, "{found}");
    assert_eq!(found["deleted"], true);
    assert!(found.get("customer_city").is_none(), "{found}");
    assert_eq!(state(&found, "region_1", "home"), "deleted");
    assert_eq!(state(&found, "region_3", "replica"), "deleted");
    let (code, body) = app.get("/customers/c1?include_deleted=maybe").await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

#[tokio::test]
async fn a_move_with_the_old_home_down_queues_its_removal_and_replays_it() {
    let app = TestApp::spawn("move_old_home_down").await;
    app.stored(&customer("c1", ZIP_1)).await;
    app.set_status("region_1", "unavailable").await;
    let moved = app.stored(&customer("c1", ZIP_3)).await;
    assert_eq!(moved["region"], "region_3");
    // The old replica (on region_3) took its tombstone at once; the old
    // home's is queued.
    wait_until("the old replica's tombstone", DEADLINE, || async {
        tombstone_on(&app, "region_3", "replica_region_1", "c1").await
    })
    .await;
    let rows = rows_of(&app, "c1").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["region"], "region_3");
    app.set_status("region_1", "available").await;
    app.wait_drained("region_1").await;
    assert!(tombstone_on(&app, "region_1", "customers", "c1").await);
    let (_, found) = app.get("/customers/c1").await;
    assert_eq!(found["region"], "region_3", "{found}");
    assert_eq!(found["divergent"], false, "{found}");
}

#[tokio::test]
async fn a_move_with_the_new_home_down_is_queued_and_read_once() {
    let app = TestApp::spawn("move_new_home_down").await;
    app.stored(&customer("c1", ZIP_1)).await;
    app.set_status("region_3", "unavailable").await;
    // region_3's replica lives on region_2: stored there at once.
    let moved = app.queued(&customer("c1", ZIP_3)).await;
    assert_eq!(moved["replica"], "stored");
    wait_until("the old home's tombstone", DEADLINE, || async {
        tombstone_on(&app, "region_1", "customers", "c1").await
    })
    .await;
    let rows = rows_of(&app, "c1").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["served_by"], "region_2");
    app.set_status("region_3", "available").await;
    app.wait_drained("region_3").await;
    // The old replica (on region_3) got its tombstone from the queue.
    assert!(tombstone_on(&app, "region_3", "replica_region_1", "c1").await);
    let rows = rows_of(&app, "c1").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
}

#[tokio::test]
async fn a_leftover_old_copy_is_never_read_and_repair_removes_it() {
    let app = TestApp::spawn("move_leftover").await;
    let moved = app.stored(&customer("c1", ZIP_3)).await;
    // What a crash between a move's new copies and its old ones' removal
    // leaves: a live copy in region_2, older than the record.
    let older = moved["version"].as_i64().unwrap() - 10;
    let ghost = doc! {
        "_id": "c1", "customer_id": "c1", "customer_unique_id": "old",
        "customer_zip_code_prefix": 45000_i64, "customer_city": "salvador",
        "customer_state": "BA", "region": "region_2", "version": older,
    };
    app.put_doc("region_2", "customers", ghost.clone()).await;
    app.put_doc("region_1", "replica_region_2", ghost).await;
    let rows = rows_of(&app, "c1").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["customer_city"], "sao paulo");
    let (_, found) = app.get("/customers/c1").await;
    assert_eq!(found["divergent"], true, "{found}");

    let (code, report) = app
        .post("/admin/repair?customer_id=c1", &serde_json::json!({}))
        .await;
    assert_eq!(code, StatusCode::OK, "{report}");
    assert!(tombstone_on(&app, "region_2", "customers", "c1").await);
    assert!(tombstone_on(&app, "region_1", "replica_region_2", "c1").await);
    let (_, found) = app.get("/customers/c1").await;
    assert_eq!(found["divergent"], false, "{found}");
    let run = app.run_command(&["repair"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

#[tokio::test]
async fn the_record_page_shows_the_copies_and_its_buttons_repair_and_delete() {
    let app = TestApp::spawn("record_page").await;
    app.stored(&customer("c 1", ZIP_2)).await;
    let (code, view) = app.page("/view-records").await;
    assert_eq!(code, StatusCode::OK);
    assert!(view.contains("href=\"/records/c%201\""), "{view}");
    let (code, page) = app.page("/records/c%201").await;
    assert_eq!(code, StatusCode::OK, "{page}");
    assert!(
        page.contains("salvador") || page.contains("sao paulo"),
        "{page}"
    );
    assert!(page.contains("current"), "{page}");
    assert!(page.contains("Repair this record") && page.contains("Delete this record"));
    let (code, page) = app.post_form("/records/c%201/repair", &[]).await;
    assert_eq!(code, StatusCode::OK, "{page}");
    assert!(page.contains("Repaired: 0 copies written."), "{page}");
    let (code, page) = app.post_form("/records/c%201/delete", &[]).await;
    assert_eq!(code, StatusCode::OK, "{page}");
    assert!(page.contains("Deleted at version"), "{page}");
    assert_eq!(app.get("/customers/c%201").await.0, StatusCode::NOT_FOUND);
    let (code, _) = app.page("/records/nobody").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn with_a_token_a_delete_needs_it_on_the_api_and_the_page() {
    let token = "0123456789abcdef-lifecycle";
    let app = TestApp::spawn_with(
        "delete_guarded",
        Options::default().env("ADMIN_TOKEN", token),
    )
    .await;
    app.stored(&customer("c1", ZIP_1)).await;
    let (code, _) = app.delete("/customers/c1").await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, page) = app.post_form("/records/c1/delete", &[]).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "{page}");
    assert!(page.contains("Sign in with the admin token to repair or delete records."));
    assert_eq!(app.get("/customers/c1").await.0, StatusCode::OK);
    let r = app
        .http
        .delete(app.url("/customers/c1"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.get("/customers/c1").await.0, StatusCode::NOT_FOUND);
}
