//! Dead letters an operator can list and re-apply once the cause is fixed
//! (`regiondb dead-letters list|replay`), never bringing back a record
//! whose delete may have been purged.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

fn letters(out: &std::process::Output) -> Vec<Value> {
    let parsed: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    parsed.as_array().expect("an array").clone()
}

async fn dead_letters_held(app: &TestApp) -> Value {
    node_at(&app.http, &app.address, "region_2").await["dead_letters"].clone()
}

/// r1 and r2 queued for region_2 with one unique value: one is applied,
/// the other dead-lettered. Answers (the loser, its version).
async fn one_refused(app: &TestApp) -> (String, i64) {
    unique_index(app, "region_2").await;
    app.set_status("region_2", "unavailable").await;
    let mut versions = HashMap::new();
    for id in ["r1", "r2"] {
        let mut body = customer(id, ZIP_2);
        body["customer_unique_id"] = json!("same");
        versions.insert(id, app.queued(&body).await["version"].as_i64().unwrap());
    }
    app.set_status("region_2", "available").await;
    app.wait_drained("region_2").await;
    let dead = app.dead_letters("region_2").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let loser = if dead[0].0.contains("\"r2\"") {
        "r2"
    } else {
        "r1"
    };
    (loser.to_owned(), versions[loser])
}

#[tokio::test]
async fn a_dead_letter_is_listed_with_its_reason_and_applied_once_the_cause_is_fixed() {
    let app = TestApp::spawn("dead_letters_replay").await;
    let (loser, version) = one_refused(&app).await;
    let listed =
        letters(&app.run_command(&["dead-letters", "list", "--node", "region_2", "--json"]));
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["customer_id"], loser.as_str());
    assert_eq!(listed[0]["version"], version);
    let reason = listed[0]["reason"].as_str().unwrap();
    assert!(reason.contains("refused by MongoDB"), "{reason}");
    assert!(listed[0]["at"].is_string());
    assert_eq!(dead_letters_held(&app).await, 1);
    let words = app.run_command(&["dead-letters", "list"]);
    let words = String::from_utf8_lossy(&words.stdout).into_owned();
    assert!(words.contains(&format!("customer {loser}")), "{words}");

    // The cause is still there: refused again, still listed, exit 1.
    let again = app.run_command(&["dead-letters", "replay", "--node", "region_2", "--json"]);
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    assert_eq!(letters(&again)[0]["outcome"], "refused");
    assert_eq!(dead_letters_held(&app).await, 1);

    // Fixed (the other record's duplicate value corrected): applied, and
    // gone from the list.
    let winner = if loser == "r1" { "r2" } else { "r1" };
    let mut corrected = customer(winner, ZIP_2);
    corrected["customer_unique_id"] = json!("corrected");
    app.stored(&corrected).await;
    let fixed = app.run_command(&["dead-letters", "replay", "--id", &loser, "--json"]);
    assert!(fixed.status.success(), "{fixed:?}");
    assert_eq!(letters(&fixed)[0]["outcome"], "applied");
    app.wait_for_doc("region_2", "customers", &loser, version)
        .await;
    let left = app.run_command(&["dead-letters", "list", "--json"]);
    assert!(letters(&left).is_empty());
    assert_eq!(dead_letters_held(&app).await, 0);
}

/// A hint for `id` at `version`, as the replay set it aside.
fn letter(id: &str, version: i64) -> Value {
    json!({
        "target": "primary", "region": "region_2", "version": version,
        "customer": {"customer_id": id, "customer_unique_id": format!("u-{id}"),
            "customer_zip_code_prefix": ZIP_2, "customer_city": "late", "customer_state": "XX"}
    })
}

#[tokio::test]
async fn replaying_dead_letters_never_brings_a_deleted_record_back() {
    let app = TestApp::spawn("dead_letters_no_resurrection").await;
    let topic = format!("{}.dead-letter", app.topic("region_2"));
    // Deleted, tombstone still there: the letter is applied and loses.
    let created = app.stored(&customer("kept-deleted", ZIP_2)).await;
    let (code, _) = app.delete("/customers/kept-deleted").await;
    assert_eq!(code, StatusCode::OK);
    let old_copy = letter("kept-deleted", created["version"].as_i64().unwrap());
    app.produce_to(
        &topic,
        None,
        "kept-deleted",
        old_copy.to_string().as_bytes(),
    )
    .await;
    // Deleted an hour ago and the tombstone purged since (nothing of it
    // left anywhere): a letter older than the purge horizon is dropped.
    let hour_ago = now_micros() - 3_600_000_000;
    let purged = letter("purged", hour_ago);
    app.produce_to(&topic, None, "purged", purged.to_string().as_bytes())
        .await;

    let out = app.run_command(&["dead-letters", "replay", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let by_id: HashMap<String, Value> = letters(&out)
        .into_iter()
        .map(|l| (l["customer_id"].as_str().unwrap().to_owned(), l))
        .collect();
    assert_eq!(by_id["kept-deleted"]["outcome"], "applied");
    assert_eq!(by_id["purged"]["outcome"], "dropped");
    let why = by_id["purged"]["why"].as_str().unwrap();
    assert!(why.contains("purge horizon"), "{why}");
    for id in ["kept-deleted", "purged"] {
        let (code, body) = app.get(&format!("/customers/{id}")).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{id}: {body}");
    }
    assert!(app.doc("region_2", "customers", "purged").await.is_none());
    assert!(letters(&app.run_command(&["dead-letters", "list", "--json"])).is_empty());
}
