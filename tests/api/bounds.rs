//! What a request may hold, and what one instance tells the others: slow
//! bodies hold no permit, readiness checks are shared, writes whose clients
//! hung up still count, a hint queued by one instance makes every instance
//! distrust the node until it is applied.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// A connection that sent a create request's headers and one byte of its
/// 200-byte body.
async fn trickling(address: &str) -> TcpStream {
    let host = address.trim_start_matches("http://");
    let mut s = TcpStream::connect(host).await.expect("connect");
    let head = format!(
        "POST /create-customer HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
         content-length: 200\r\n\r\n{{"
    );
    s.write_all(head.as_bytes()).await.expect("send");
    s
}

#[tokio::test]
async fn bodies_that_trickle_in_hold_no_write_permit_and_time_out() {
    let options = Options::default().env("HTTP_MAX_REQUESTS_PER_CLASS", "4");
    let app = TestApp::spawn_with("slow_bodies", options).await;
    let mut slow = Vec::new();
    for _ in 0..12 {
        slow.push(trickling(&app.address).await);
    }
    app.stored(&customer("fast", ZIP_1)).await;

    // The body never comes: a clear 408 after the read bound.
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(DEADLINE, async {
        while !String::from_utf8_lossy(&answer).contains('}') {
            match slow[0].read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    });
    read.await.expect("an answer");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("did not arrive within 5 s"), "{text}");
    eprintln!("408 after {:?}", started.elapsed());
}

#[tokio::test]
async fn readiness_checks_are_shared_by_callers_within_a_second() {
    let app = TestApp::spawn("ready_cache").await;
    let pings = || async {
        app.metric(
            "regiondb_backend_call_duration_seconds_count",
            &["backend=\"redis\"", "call=\"ping\""],
        )
        .await
    };
    let before = pings().await;
    let calls = (0..20).map(|_| app.get("/readyz"));
    for (code, body) in futures::future::join_all(calls).await {
        assert_eq!(code, StatusCode::OK, "{body}");
    }
    let made = pings().await - before;
    // One check, or two or three if the burst straddles the cache's
    // second on a busy machine; never one per call.
    assert!(made <= 3.0, "20 readiness calls made {made} Redis pings");
}

#[tokio::test]
async fn writes_whose_clients_hung_up_still_count_against_the_write_limit() {
    let options = Options::default()
        .env("HTTP_MAX_REQUESTS_PER_CLASS", "2")
        .env("PROBE_INTERVAL_MS", "0");
    let Some(app) = TestApp::spawn_for_faults("hung_up_writes", options).await else {
        return;
    };
    app.freeze_mongo("region_2");
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .expect("client");
    for i in 0..2 {
        let sent = impatient
            .post(app.url("/create-customer"))
            .json(&customer(&format!("gone{i}"), ZIP_2))
            .send()
            .await;
        assert!(sent.is_err(), "the client gives up before the frozen node");
    }
    // Both writes still run (each waits out the frozen node, then queues).
    let (code, body) = app.create(&customer("third", ZIP_1)).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(
        body["error"],
        "server busy: too many writes in flight; retry shortly"
    );
    assert_eq!(body["code"], "busy");
    app.thaw_mongo("region_2");
    wait_until("the write limit to free up", DEADLINE, || async {
        app.create(&customer("third", ZIP_1)).await.0 == StatusCode::CREATED
    })
    .await;
    // The writes whose clients left finished: queued, then replayed.
    for i in 0..2 {
        wait_until("a hung-up write to land", DEADLINE, || async {
            app.doc("region_2", "customers", &format!("gone{i}"))
                .await
                .is_some()
        })
        .await;
    }
}

/// Whether this instance's log says it was last assigned partition 0 of
/// `topic` (one partition per topic in this test).
fn owns_partition_0(log: &str, topic: &str) -> bool {
    log.lines()
        .rev()
        .find(|l| l.contains(topic) && l.contains("partitions assigned"))
        .is_some_and(|l| l.contains("owned={0}"))
}

#[tokio::test]
async fn a_hint_queued_by_one_instance_makes_every_instance_distrust_the_node() {
    let options = Options::default()
        .env("KAFKA_PARTITIONS", "1")
        .env("PROBE_INTERVAL_MS", "0");
    let Some(app) = TestApp::spawn_for_faults("shared_backlog", options).await else {
        return;
    };
    let b = app.spawn_instance("regiondb-b").await;
    wait_until("b to know region_2 caught up", DEADLINE, || async {
        node_at(&app.http, &b.address, "region_2").await["caught_up"] == true
    })
    .await;
    // a formed the group first and keeps the only partition (sticky): b
    // never takes the hint from Kafka itself.
    let topic = app.topic("region_2");
    assert!(
        owns_partition_0(&app.app_log(), &topic),
        "a owns region_2's partition"
    );
    let b_log = std::fs::read_to_string(app.dir.join("regiondb-b.log")).unwrap_or_default();
    assert!(!owns_partition_0(&b_log, &topic), "b owns no partition");

    // A direct write that times out is queued; no status changes.
    app.freeze_mongo("region_2");
    app.queued(&customer("q1", ZIP_2)).await;
    wait_until("b to distrust region_2", DEADLINE, || async {
        node_at(&app.http, &b.address, "region_2").await["caught_up"] == false
    })
    .await;
    assert_eq!(
        get_json_at(&app.http, &b.address, "/node-statuses").await["region_2"],
        "available"
    );
    // Once a's replay has applied it, b trusts the node again.
    app.thaw_mongo("region_2");
    app.wait_drained("region_2").await;
    wait_until("b to trust region_2 again", DEADLINE, || async {
        node_at(&app.http, &b.address, "region_2").await["caught_up"] == true
    })
    .await;
}
