//! The queue charts on the home page: a node switched off with writes
//! queued for it, the chart rises; switched on, it falls while the caption
//! says how fast and how long.

use serde_json::json;

use super::Browser;
use crate::helpers::*;

/// Hints queued; the replay is slowed so the drain is seen.
const QUEUED: usize = 600;

fn row(field: &str) -> String {
    format!(r#"tr[data-node="region_2"] [data-field="{field}"]"#)
}

/// The y of the newest point of the chart's queued line (58 is the
/// bottom, 2 the top), if any.
async fn newest_y(b: &Browser, line: &str) -> Option<f64> {
    let points = b.attr(&row(line), "points").await?;
    let last = points.split_whitespace().last()?;
    last.split_once(',')?.1.parse().ok()
}

#[tokio::test]
async fn a_queue_chart_rises_while_its_node_is_off_and_falls_as_it_drains() {
    let options = Options::default()
        .env("REPLAY_BATCH_SIZE", "10")
        .env("REPLAY_THROTTLE_MS", "100");
    let app = TestApp::spawn_with("browser_chart", options).await;
    let b = Browser::start(&app.dir).await;
    b.record_csp_violations().await;
    b.goto(&format!("{}/", app.address)).await;
    app.set_status("region_2", "unavailable").await;
    app.queue_many("g", QUEUED, ZIP_2).await;
    wait_until("the chart to rise to the peak", DEADLINE, || async {
        b.text(&row("peak")).await.as_deref() == Some(&QUEUED.to_string())
            && newest_y(&b, "queued-line").await == Some(2.0)
    })
    .await;
    let summary = b.text(&row("queue-summary")).await.unwrap_or_default();
    assert!(
        summary.starts_with(&format!("{QUEUED} queued")),
        "{summary}"
    );
    assert!(summary.contains("unavailable"), "{summary}");

    let (code, body) = app
        .post(
            "/node-status",
            &json!({"node_id": "region_2", "status": "available"}),
        )
        .await;
    assert_eq!(code, reqwest::StatusCode::OK, "{body}");
    wait_until(
        "the caption to say how fast and how long",
        DEADLINE,
        || async {
            b.text(&row("queue-summary"))
                .await
                .is_some_and(|t| t.contains("draining at") && t.contains("left"))
        },
    )
    .await;
    b.screenshot(&app.dir, "home-queue-draining").await;
    wait_until("the chart to fall to the bottom", DEADLINE, || async {
        newest_y(&b, "queued-line").await == Some(58.0)
    })
    .await;
    assert_eq!(
        b.text(&row("queue-summary")).await.as_deref(),
        Some("nothing queued")
    );
    let rate = b
        .attr(&row("rate-line"), "points")
        .await
        .unwrap_or_default();
    assert!(
        rate.split_whitespace().any(|p| !p.ends_with(",58.0")),
        "the applied-per-second line never rose: {rate}"
    );
    assert!(b.csp_violations().await.is_empty());
}
