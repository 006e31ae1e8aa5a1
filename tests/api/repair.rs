//! Repair: home and replica copies made to agree, from the command line and
//! the admin endpoint.

use mongodb::bson::{Document, doc};
use reqwest::StatusCode;

use crate::helpers::*;

async fn delete(app: &TestApp, node: &str, collection: &str, id: &str) {
    let client = app.mongo_client(node_index(node)).await;
    let deleted = client
        .database(node)
        .collection::<Document>(collection)
        .delete_one(doc! {"_id": id})
        .await
        .expect("delete");
    assert_eq!(deleted.deleted_count, 1);
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `differing` and `fixed` columns of a region's line.
fn columns(table: &str, region: &str) -> (u64, u64) {
    let line = table
        .lines()
        .find(|l| l.starts_with(region))
        .unwrap_or_else(|| panic!("no line for {region} in\n{table}"));
    let cells: Vec<&str> = line.split_whitespace().collect();
    (cells[2].parse().unwrap(), cells[3].parse().unwrap())
}

#[tokio::test]
async fn repair_restores_a_deleted_replica_and_a_deleted_home_copy() {
    let app = TestApp::spawn("repair_restores").await;
    let (_, one) = app.create(&customer("a1", ZIP_1)).await;
    let (_, two) = app.create(&customer("b1", ZIP_2)).await;
    app.create(&customer("b2", ZIP_2)).await;
    delete(&app, "region_3", "replica_region_1", "a1").await;
    delete(&app, "region_2", "customers", "b1").await;

    let dry = app.run_command(&["repair", "--dry-run"]);
    assert!(dry.status.success(), "{dry:?}");
    assert_eq!(columns(&stdout(&dry), "region_1"), (1, 0));
    assert_eq!(columns(&stdout(&dry), "region_2"), (1, 0));
    assert!(app.doc("region_2", "customers", "b1").await.is_none());

    let run = app.run_command(&["repair"]);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(columns(&stdout(&run), "region_1"), (1, 1));
    assert_eq!(columns(&stdout(&run), "region_2"), (1, 1));
    assert_eq!(columns(&stdout(&run), "region_3"), (0, 0));
    let v1 = one["version"].as_i64().unwrap();
    let v2 = two["version"].as_i64().unwrap();
    app.wait_for_doc("region_3", "replica_region_1", "a1", v1)
        .await;
    app.wait_for_doc("region_2", "customers", "b1", v2).await;

    // Twice changes nothing; the endpoint agrees.
    let (code, body) = app.post("/admin/repair", &serde_json::json!({})).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    for region in body["regions"].as_array().unwrap() {
        assert_eq!(region["differing"], 0, "{region}");
        assert!(region["unreachable"].is_null());
    }
    assert_eq!(body["regions"][1]["compared"], 2);
}

#[tokio::test]
async fn repair_says_which_region_it_could_not_reach_and_fails() {
    let Some(app) = TestApp::spawn_for_faults("repair_unreachable", Options::default()).await
    else {
        return;
    };
    app.create(&customer("c1", ZIP_3)).await;
    app.freeze_mongo("region_3");
    let out = app.run_command(&["repair", "--region", "region_3"]);
    app.thaw_mongo("region_3");
    assert!(!out.status.success());
    let table = stdout(&out);
    let line = table.lines().find(|l| l.starts_with("region_3")).unwrap();
    assert!(
        line.contains("node region_3 could not be reached") || line.contains("did not answer"),
        "{table}"
    );
    assert!(!line.contains("Topology"), "no driver details: {table}");
    assert!(!table.contains("region_1"), "only the region asked for");

    let bad = app.run_command(&["repair", "--region", "nowhere"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--region"));
}

/// A live copy superseded only by a tombstone in another region may be a
/// move into this very region whose copies are still queued (the move left
/// that tombstone at its own version in the region it came from): a repair
/// must leave it while the region's queues hold hints, or its tombstone at
/// the move's version would tie with the queued copy and win, losing an
/// acknowledged write.
#[tokio::test]
async fn repair_leaves_a_copy_whose_move_into_its_region_is_still_queued() {
    let app = TestApp::spawn("repair_queued_move").await;
    app.stored(&customer("m1", ZIP_1)).await;
    // region_1's home and replica (region_3) off: the newer write queues.
    app.set_status("region_1", "unavailable").await;
    app.set_status("region_3", "unavailable").await;
    let mut later = customer("m1", ZIP_1);
    later["customer_city"] = "later".into();
    let receipt = app.queued(&later).await;
    let version = receipt["version"].as_i64().expect("version");
    // The tombstone a move into region_1 at that version leaves behind.
    let tombstone = doc! {"_id": "m1", "version": version, "deleted": true};
    app.put_doc("region_2", "customers", tombstone.clone())
        .await;
    app.put_doc("region_1", "replica_region_2", tombstone).await;

    let (code, body) = app.post("/admin/repair", &serde_json::json!({})).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["regions"][0]["moved_away"], 0, "{body}");

    app.set_status("region_1", "available").await;
    app.set_status("region_3", "available").await;
    app.wait_drained("region_1").await;
    app.wait_drained("region_3").await;
    let (code, body) = app.get("/customers/m1").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["customer_city"], "later", "{body}");
    // With the queues empty the copy is no longer older: nothing moves.
    let (_, body) = app.post("/admin/repair", &serde_json::json!({})).await;
    assert_eq!(body["regions"][0]["moved_away"], 0, "{body}");
    assert_eq!(app.get("/customers/m1").await.0, StatusCode::OK);
}
