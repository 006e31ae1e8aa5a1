//! A node that is catching up is not the truth (DESIGN-NOTES 13): with a
//! region's home and replica both switched off, records queue; when the
//! home comes back and replays, the lookup, the delete and the page do not
//! take its missing copies for the answer.

use reqwest::StatusCode;

use crate::helpers::*;

/// Replays slowly (batches of 10, 300 ms apart), so the catch-up is long
/// enough to act in.
fn slow_replay() -> Options {
    Options::default()
        .env("REPLAY_BATCH_SIZE", "10")
        .env("REPLAY_THROTTLE_MS", "300")
}

/// region_1 and the node keeping its replica (region_3) switched off,
/// `backlog` records and then `c1` queued, region_1 switched on again.
async fn catching_up(app: &TestApp, backlog: usize) {
    app.set_status("region_1", "unavailable").await;
    app.set_status("region_3", "unavailable").await;
    for n in 0..backlog {
        app.queued(&customer(&format!("b{n}"), ZIP_1)).await;
    }
    app.queued(&customer("c1", ZIP_1)).await;
    app.set_status("region_1", "available").await;
}

#[tokio::test]
async fn a_record_queued_behind_a_backlog_is_not_known_yet_never_not_found() {
    let app = TestApp::spawn_with("behind_lookup", slow_replay()).await;
    catching_up(&app, 200).await;
    let (code, body) = app.get("/customers/c1").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "unavailable", "{body}");
    let error = body["error"].as_str().unwrap_or("");
    assert!(
        error.contains("region_1") && error.contains("replaying"),
        "{error}"
    );
    let (code, page) = app.page("/records/c1").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.contains("is not known yet"), "{page}");
    // Once the queue is applied the record is there, from region_1, and
    // once region_1's replay has confirmed it caught up, region_1 is
    // confirmed by its home (its replica's node is still off).
    app.wait_drained("region_1").await;
    wait_until(
        "c1 to be read from a caught-up region_1",
        DEADLINE,
        || async {
            let (code, body) = app.get("/customers/c1").await;
            code == StatusCode::OK && body["unconfirmed"].as_array().is_some_and(Vec::is_empty)
        },
    )
    .await;
    let (_, body) = app.get("/customers/c1").await;
    assert_eq!(body["region"], "region_1", "{body}");
    assert_eq!(body["copies"][1]["state"], "unreachable", "{body}");
}

#[tokio::test]
async fn a_delete_while_the_home_catches_up_is_queued_and_wins() {
    let app = TestApp::spawn_with("behind_delete", slow_replay()).await;
    catching_up(&app, 200).await;
    let (code, body) = app.delete("/customers/c1").await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["region"], "region_1", "{body}");
    let deleted_at = body["version"].as_i64().expect("version");
    app.wait_drained("region_1").await;
    let doc = app
        .doc("region_1", "customers", "c1")
        .await
        .expect("tombstone");
    assert_eq!(doc.get_i64("version"), Ok(deleted_at), "{doc}");
    assert_eq!(doc.get_bool("deleted"), Ok(true), "{doc}");
    let (code, body) = app.get("/customers/c1").await;
    assert!(
        code == StatusCode::NOT_FOUND || code == StatusCode::SERVICE_UNAVAILABLE,
        "the deleted record came back: {code} {body}"
    );
    app.set_status("region_3", "available").await;
    app.wait_drained("region_3").await;
    let (code, body) = app.get("/customers/c1").await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
}
