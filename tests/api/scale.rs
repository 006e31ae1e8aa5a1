//! Several instances on the same services: statuses, writes and the replay
//! (Kafka spreads each node topic's partitions over the instances' handoff
//! group members).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

async fn post_at(app: &TestApp, address: &str, path: &str, body: &Value) -> (StatusCode, Value) {
    let r = app
        .http
        .post(format!("{address}{path}"))
        .json(body)
        .send()
        .await
        .expect("request");
    let code = r.status();
    (code, r.json().await.unwrap_or(Value::Null))
}

async fn replayed(app: &TestApp, address: &str) -> f64 {
    metric_at(
        &app.http,
        address,
        "regiondb_hints_replayed_total",
        &["node=\"region_2\""],
    )
    .await
}

#[tokio::test]
async fn two_instances_share_the_replay_and_the_survivor_finishes_it() {
    // Small, throttled batches: the replay takes long enough to kill an
    // instance in the middle of it, and outlasts the rebalance churn tansu's
    // coordinator sometimes adds when the replay resumes (one member handed
    // nothing, then the partitions moved back and forth for a few seconds),
    // so each instance still finds hints to replay once it has its share.
    let options = Options::default()
        .env("REPLAY_BATCH_SIZE", "10")
        .env("REPLAY_THROTTLE_MS", "200");
    let Some(app) = TestApp::spawn_for_faults("scale_two", options).await else {
        return;
    };
    let mut b = app.spawn_instance("regiondb-b").await;
    let instances = [app.address.clone(), b.address.clone()];

    // A status switched through one instance is seen by the other within 1 s.
    let (code, body) = post_at(
        &app,
        &b.address,
        "/node-status",
        &json!({"node_id": "region_2", "status": "unavailable"}),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    wait_until(
        "the first instance to see it",
        Duration::from_secs(1),
        || async {
            get_json_at(&app.http, &app.address, "/node-statuses").await["region_2"]
                == "unavailable"
        },
    )
    .await;

    // Writes through both: each record twice, once through each instance,
    // so its newest version is the one to find everywhere in the end.
    let mut newest: Vec<(String, i64)> = Vec::new();
    for i in 0..120u32 {
        let id = format!("shared-{i}");
        let mut version = 0;
        for (round, address) in [&instances[0], &instances[1]].into_iter().enumerate() {
            let mut record = customer(&id, 45_000 + i);
            record["customer_city"] = json!(format!("city {round}"));
            let (code, body) = post_at(&app, address, "/create-customer", &record).await;
            assert_eq!(code, StatusCode::ACCEPTED, "{body}");
            version = body["version"].as_i64().expect("version");
        }
        newest.push((id, version));
    }
    // The queue count is exact from either instance.
    for address in &instances {
        let region_2 = counted_at(&app.http, address, "region_2").await;
        assert_eq!(region_2["queued"], 240, "{address}: {region_2}");
    }

    // Back on: both instances replay their share of the partitions; one is
    // killed in the middle of it.
    app.set_status("region_2", "available").await;
    wait_until("both instances to replay", DEADLINE, || async {
        replayed(&app, &instances[0]).await > 0.0 && replayed(&app, &instances[1]).await > 0.0
    })
    .await;
    let (end, committed) = app.offsets("region_2").await;
    assert!(
        committed.unwrap_or(0) < end,
        "killed before the replay ended"
    );
    b.crash();
    let killed = Instant::now();

    // The survivor takes the dead instance's partitions (once its session
    // expires) and finishes the replay.
    app.wait_drained("region_2").await;
    eprintln!(
        "measured: replay finished {:?} after an instance was killed mid-replay",
        killed.elapsed()
    );
    for (id, version) in &newest {
        app.wait_for_doc("region_2", "customers", id, *version)
            .await;
        app.wait_for_doc("region_1", "replica_region_2", id, *version)
            .await;
        let home = app.doc("region_2", "customers", id).await.unwrap();
        assert_eq!(home.get_str("customer_city"), Ok("city 1"), "{id}");
    }
    let region_2 = counted_at(&app.http, &app.address, "region_2").await;
    assert_eq!(region_2["queued"], 0, "{region_2}");
}
