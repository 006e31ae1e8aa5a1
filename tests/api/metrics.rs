//! `GET /metrics` (Prometheus text) and request ids.

use reqwest::StatusCode;

use crate::helpers::*;

async fn scrape(app: &TestApp) -> String {
    let r = app.get_response("/metrics").await;
    assert_eq!(r.status(), StatusCode::OK);
    let kind = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    r.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_writes_nodes_replays_requests_and_backend_calls() {
    let app = TestApp::spawn("metrics").await;
    let (code, _) = app.create(&customer("m1", ZIP_1)).await;
    assert_eq!(code, StatusCode::CREATED);
    app.set_status("region_2", "unavailable").await;
    let (code, _) = app.create(&customer("m2", ZIP_2)).await;
    assert_eq!(code, StatusCode::ACCEPTED);

    let text = scrape(&app).await;
    let writes = |copy: &str, outcome: &str| {
        sample(
            &text,
            "regiondb_writes_total",
            &[
                &format!("copy=\"{copy}\""),
                &format!("outcome=\"{outcome}\""),
            ],
        )
    };
    assert_eq!(writes("home", "stored"), Some(1.0), "{text}");
    assert_eq!(writes("home", "queued"), Some(1.0));
    assert_eq!(writes("replica", "stored"), Some(2.0));
    let node = |name: &str, node: &str| sample(&text, name, &[&format!("node=\"{node}\"")]);
    assert_eq!(node("regiondb_node_available", "region_2"), Some(0.0));
    assert_eq!(node("regiondb_node_available", "region_1"), Some(1.0));
    // Queue sizes come from the shared overview, refreshed every second.
    wait_until("the queue gauge", DEADLINE, || async {
        let text = scrape(&app).await;
        sample(&text, "regiondb_hints_queued", &["node=\"region_2\""]) == Some(1.0)
            && sample(&text, "regiondb_hints_queued", &["node=\"region_1\""]) == Some(0.0)
    })
    .await;
    let created = [
        "method=\"POST\"",
        "route=\"/create-customer\"",
        "status=\"201\"",
    ];
    assert_eq!(
        sample(&text, "regiondb_http_requests_total", &created),
        Some(1.0)
    );
    let bucket = [created.as_slice(), &["le=\"+Inf\""]].concat();
    assert_eq!(
        sample(
            &text,
            "regiondb_http_request_duration_seconds_bucket",
            &bucket
        ),
        Some(1.0)
    );
    for (backend, call) in [
        ("mongodb", "update"),
        ("kafka", "produce"),
        ("redis", "set_status"),
    ] {
        let labels = [
            format!("backend=\"{backend}\""),
            format!("call=\"{call}\""),
            "outcome=\"ok\"".to_owned(),
        ];
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        let n = sample(
            &text,
            "regiondb_backend_call_duration_seconds_count",
            &labels,
        );
        assert!(n.is_some_and(|n| n >= 1.0), "{backend} {call}: {n:?}");
    }

    app.set_status("region_2", "available").await;
    app.wait_drained("region_2").await;
    let text = scrape(&app).await;
    let replayed = sample(
        &text,
        "regiondb_hints_replayed_total",
        &["node=\"region_2\""],
    );
    assert_eq!(replayed, Some(1.0));
    wait_until("the queue gauge to drop", DEADLINE, || async {
        let text = scrape(&app).await;
        sample(&text, "regiondb_hints_queued", &["node=\"region_2\""]) == Some(0.0)
    })
    .await;
}

#[tokio::test]
async fn every_request_gets_an_id_that_its_log_lines_carry() {
    let app = TestApp::spawn("request_id").await;
    let r = app.get_response("/node-statuses").await;
    let made = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(made.len(), 36, "a UUID: {made}");

    // A client's own id is kept, and the write's log lines (including the
    // ones from its own task) carry it.
    app.freeze_mongo("region_1");
    let r = app
        .http
        .post(app.url("/create-customer"))
        .header("x-request-id", "req-frozen-node-1")
        .json(&customer("rid1", ZIP_1))
        .send()
        .await
        .unwrap();
    app.thaw_mongo("region_1");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(r.headers()["x-request-id"], "req-frozen-node-1");
    let log = app.app_log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("req-frozen-node-1"))
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("direct write failed")),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l.contains("status=202")), "{lines:#?}");
}

/// `promtool check metrics` (Debian's prometheus package) on a live scrape
/// after writes, queued hints and a replay: every family has HELP and TYPE,
/// no counter and gauge share a family, the process metrics are there.
#[tokio::test]
async fn promtool_accepts_a_live_scrape() {
    let app = TestApp::spawn("metrics_promtool").await;
    app.stored(&customer("p1", ZIP_1)).await;
    app.set_status("region_2", "unavailable").await;
    app.queued(&customer("p2", ZIP_2)).await;
    let families = [
        "regiondb_build_info{version=",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "regiondb_dead_letters_held{",
    ];
    // A Kafka count that timed out leaves its gauge unset until the next
    // overview round reads it; wait for one scrape that has them all.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let text = loop {
        let text = scrape(&app).await;
        let missing: Vec<_> = families.iter().filter(|f| !text.contains(*f)).collect();
        if missing.is_empty() {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "{missing:?} missing");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let mut check = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/install-tools)");
    use std::io::Write;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}"
    );
}

/// Metrics, health and readiness stay out of the reads class: with one
/// request per class allowed, many at once all answer.
#[tokio::test]
async fn operations_endpoints_are_never_shed() {
    let app = TestApp::spawn_with(
        "metrics_not_shed",
        Options::default().env("HTTP_MAX_REQUESTS_PER_CLASS", "1"),
    )
    .await;
    let requests = (0..48).map(|i| {
        let path = ["/metrics", "/healthz", "/readyz"][i % 3];
        app.http.get(app.url(path)).send()
    });
    for answer in futures::future::join_all(requests).await {
        let answer = answer.expect("answer");
        assert_eq!(answer.status(), StatusCode::OK, "{}", answer.url());
    }
}
