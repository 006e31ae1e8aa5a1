//! Node API, health and lifecycle.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn node_endpoints_report_status_queue_and_replica_placement() {
    let app = TestApp::spawn("node_endpoints").await;
    let (code, body) = app.get("/node-statuses").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        body,
        json!({"region_1": "available", "region_2": "available", "region_3": "available"})
    );

    let (code, body) = app
        .post(
            "/node-status",
            &json!({"node_id": "region_3", "status": "unavailable"}),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let since = body["since"].as_str().unwrap_or_default().to_owned();
    assert!(since.starts_with("20") && since.ends_with('Z'), "{body}");
    assert_eq!(
        body,
        json!({"node_id": "region_3", "status": "unavailable", "queued": 0,
               "source": "manual", "since": since})
    );
    app.create(&customer("c1", ZIP_3)).await;

    // The head hint's time is read from Kafka (within half a second; a
    // look that takes longer answers null and the next one reads again).
    wait_until("region_3's oldest hint to be read", DEADLINE, || async {
        app.get("/nodes").await.1[2]["oldest_queued_at"].is_string()
    })
    .await;
    let (_, mut nodes) = app.get("/nodes").await;
    // region_3 has a hint waiting: reads do not trust it; the others'
    // replays confirm their empty queues in their own time.
    assert_eq!(nodes[2]["caught_up"], false, "{nodes}");
    // The queue's age and estimate (tests/api/backlog.rs has their story).
    let off = &nodes[2];
    assert!(off["oldest_queued_at"].is_string(), "{off}");
    assert!(
        off["lag_seconds"].as_f64().is_some_and(|l| l >= 0.0),
        "{off}"
    );
    assert!(off["drain_eta_seconds"].is_null(), "{off}");
    let why = off["drain_eta_note"].as_str().unwrap_or_default();
    assert!(why.contains("unavailable"), "{off}");
    assert_eq!(nodes[0]["drain_eta_seconds"], 0.0, "nothing queued: done");
    for node in nodes.as_array_mut().expect("nodes") {
        let view = node.as_object_mut().expect("view");
        assert!(view.remove("caught_up").is_some_and(|v| v.is_boolean()));
        assert_eq!(view.remove("lost_data"), Some(json!(false)));
        assert_eq!(view.remove("replay_paused"), Some(json!(false)));
        for field in [
            "oldest_queued_at",
            "lag_seconds",
            "replay_rate",
            "drain_eta_seconds",
            "drain_eta_note",
        ] {
            assert!(view.remove(field).is_some(), "{field}");
        }
    }
    assert_eq!(
        nodes,
        json!([
            {"node_id": "region_1", "status": "available", "source": "manual", "since": null, "queued": 0, "dead_letters": 0, "hosts_replicas_of": ["region_2"]},
            {"node_id": "region_2", "status": "available", "source": "manual", "since": null, "queued": 0, "dead_letters": 0, "hosts_replicas_of": ["region_3"]},
            {"node_id": "region_3", "status": "unavailable", "source": "manual", "since": since, "queued": 1, "dead_letters": 0, "hosts_replicas_of": ["region_1"]},
        ])
    );

    // The status is in Redis, where operators and other instances see it.
    let client = redis::Client::open(app.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let stored: String = redis::cmd("HGET")
        .arg(&["node_statuses", "region_3"][..])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(stored, "unavailable");
    // With who set it, and when.
    let record: String = redis::cmd("HGET")
        .arg(&["node_status_source", "region_3"][..])
        .query_async(&mut conn)
        .await
        .unwrap();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(record["source"], "manual");
    assert_eq!(record["status"], "unavailable");
    assert!(record["at_ms"].as_i64().is_some(), "{record}");
}

#[tokio::test]
async fn health_readiness_and_graceful_shutdown() {
    let mut app = TestApp::spawn("health").await;
    let (code, body) = app.get("/healthz").await;
    assert_eq!((code, body), (StatusCode::OK, json!({"status": "ok"})));
    let (code, body) = app.get("/readyz").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["redis"], "ok");
    assert_eq!(body["kafka"], "ok");
    assert_eq!(body["nodes"]["region_2"]["mongo"], "ok");

    let status = app.stop_app().await;
    assert!(status.success(), "exit status {status}");
    let log = app.app_log();
    assert!(log.contains("stopped"), "{log}");
}

#[tokio::test]
async fn statuses_in_redis_survive_an_app_restart() {
    let mut app = TestApp::spawn("status_survives").await;
    app.set_status("region_2", "unavailable").await;
    app.stop_app().await;
    app.start_app().await;
    assert_eq!(app.get("/node-statuses").await.1["region_2"], "unavailable");
}
