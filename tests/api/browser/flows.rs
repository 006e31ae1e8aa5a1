//! The pages' stories in a browser: switching, live updates, a failed
//! switch, escaping, and a signed-in page.

use std::time::Duration;

use serde_json::json;

use super::{Browser, LIVE, card};
use crate::helpers::*;

#[tokio::test]
async fn switching_a_node_off_and_on_in_the_page_queues_and_replays() {
    let app = TestApp::spawn("browser_switch").await;
    let b = Browser::start(&app.dir).await;
    b.goto(&format!("{}/", app.address)).await;
    b.screenshot(&app.dir, "home").await;

    b.goto(&format!("{}/create-records", app.address)).await;
    b.click(&card("region_2", "switch")).await;
    b.wait_card_status("region_2", "unavailable").await;
    assert_eq!(app.get("/node-statuses").await.1["region_2"], "unavailable");

    // Create a record for the switched-off region through the form.
    for (id, value) in [
        ("customer_id", "web-1"),
        ("customer_unique_id", "u-web-1"),
        ("customer_zip_code_prefix", "45000"),
        ("customer_city", "Belo Horizonte"),
        ("customer_state", "MG"),
    ] {
        b.fill(id, value).await;
    }
    b.click("#create-form button[type=submit]").await;
    wait_until("the result panel", DEADLINE, || async {
        b.text("#result")
            .await
            .is_some_and(|t| t.contains("Queued for region_2 because it is down"))
    })
    .await;
    b.wait_text(
        "region_2's queue to show 1",
        LIVE + Duration::from_secs(1),
        &card("region_2", "queued"),
        "1",
    )
    .await;
    // The node cards (switches, who set each status, queues) at the top.
    b.client
        .execute("window.scrollTo(0, 0)", vec![])
        .await
        .expect("scroll");
    b.screenshot(&app.dir, "create-records").await;

    // Back on: the queue drains to 0 and the record is readable at home.
    b.click(&card("region_2", "switch")).await;
    b.wait_card_status("region_2", "available").await;
    b.wait_text(
        "region_2's queue to drain",
        DEADLINE,
        &card("region_2", "queued"),
        "0",
    )
    .await;
    b.goto(&format!("{}/view-records?region=region_2", app.address))
        .await;
    let table = b.text("table.records").await.unwrap_or_default();
    assert!(
        table.contains("web-1") && table.contains("Belo Horizonte"),
        "{table}"
    );
    b.screenshot(&app.dir, "view-records").await;

    // Phone width: nothing overflows the screen sideways (wide tables
    // scroll inside their own box).
    b.client.set_window_size(390, 844).await.expect("resize");
    for (path, name) in [
        ("/create-records", "create-records-phone"),
        ("/view-records", "view-records-phone"),
    ] {
        b.goto(&format!("{}{path}", app.address)).await;
        let fits = b
            .client
            .execute(
                "return document.documentElement.scrollWidth <= window.innerWidth",
                vec![],
            )
            .await
            .expect("script");
        assert_eq!(fits, json!(true), "{path} overflows a phone screen");
        b.screenshot(&app.dir, name).await;
    }
    b.client.clone().close().await.ok();
}

#[tokio::test]
async fn a_status_changed_with_redis_cli_shows_in_an_open_page() {
    let app = TestApp::spawn("browser_live").await;
    let b = Browser::start(&app.dir).await;
    b.goto(&format!("{}/create-records", app.address)).await;
    // The page is connected to the event stream once the indicator says so.
    b.wait_text("live updates", DEADLINE, "[data-live-text]", "Live")
        .await;

    app.redis_set_status("region_3", "unavailable").await;
    // Within LIVE of the change, without a reload.
    b.wait_card_status("region_3", "unavailable").await;

    // A write made elsewhere (curl) updates the queue count too.
    let (code, _) = app.create(&customer("elsewhere", ZIP_3)).await;
    assert_eq!(code.as_u16(), 202);
    b.wait_text(
        "region_3's queue to show 1",
        LIVE,
        &card("region_3", "queued"),
        "1",
    )
    .await;
    b.client.clone().close().await.ok();
}

#[tokio::test]
async fn a_failed_switch_is_put_back_and_says_why() {
    let Some(mut app) = TestApp::spawn_for_faults("browser_switch_fails", Options::default()).await
    else {
        return;
    };
    let b = Browser::start(&app.dir).await;
    b.goto(&format!("{}/create-records", app.address)).await;
    app.kill_redis();
    b.click(&card("region_1", "switch")).await;
    wait_until("the error message", DEADLINE, || async {
        b.text(&card("region_1", "message"))
            .await
            .is_some_and(|t| t.contains("Could not switch region_1"))
    })
    .await;
    assert_eq!(
        b.attr(&card("region_1", "switch"), "aria-checked")
            .await
            .as_deref(),
        Some("true")
    );
    assert_eq!(
        b.text(&card("region_1", "status")).await.as_deref(),
        Some("available")
    );
    b.client.clone().close().await.ok();
}

#[tokio::test]
async fn a_city_named_like_a_script_is_shown_as_text() {
    let app = TestApp::spawn("browser_xss").await;
    let evil = "<script>alert(1)</script>";
    let mut body = customer("xss", ZIP_1);
    body["customer_city"] = json!(evil);
    app.create(&body).await;

    let b = Browser::start(&app.dir).await;
    b.goto(&format!("{}/view-records", app.address)).await;
    let table = b.text("table.records").await.unwrap_or_default();
    assert!(table.contains(evil), "{table}");
    assert!(b.client.get_alert_text().await.is_err(), "an alert opened");
    let scripts = b
        .client
        .execute(
            "return document.querySelectorAll('table script').length",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(scripts, json!(0));
    b.client.clone().close().await.ok();
}

#[tokio::test]
async fn a_detected_node_shows_who_took_it_down_and_a_signed_in_page_switches() {
    let token = "browser-admin-token-0123456789";
    let Some(app) = TestApp::spawn_for_faults(
        "browser_admin",
        Options::default().env("ADMIN_TOKEN", token),
    )
    .await
    else {
        return;
    };
    let b = Browser::start(&app.dir).await;
    b.goto(&format!("{}/create-records", app.address)).await;
    b.wait_text("live updates", DEADLINE, "[data-live-text]", "Live")
        .await;
    assert_eq!(
        b.attr(&card("region_1", "switch"), "disabled")
            .await
            .as_deref(),
        Some("true")
    );

    // The failure detector takes a frozen node down; the open page says so.
    app.freeze_mongo("region_2");
    wait_until(
        "the page to say region_2 was detected",
        DEADLINE,
        || async {
            b.text(&card("region_2", "status-note"))
                .await
                .is_some_and(|t| t.starts_with("unavailable — detected ") && t.ends_with(" UTC"))
        },
    )
    .await;
    b.wait_card_status("region_2", "unavailable").await;
    app.thaw_mongo("region_2");

    // Sign in, come back, and switch with the page's script (the API call
    // carries the session cookie and the CSRF token).
    b.click(".session a").await;
    b.fill("token", token).await;
    b.click(".sign-in button[type=submit]").await;
    // The switch there and enabled (a missing element, while the page
    // loads, has no `disabled` either).
    wait_until("the create page after sign-in", DEADLINE, || async {
        let switch = card("region_1", "switch");
        b.text(&switch).await.is_some() && b.attr(&switch, "disabled").await.is_none()
    })
    .await;
    b.click(&card("region_1", "switch")).await;
    b.wait_card_status("region_1", "unavailable").await;
    wait_until("the note to say switched off", LIVE, || async {
        b.text(&card("region_1", "status-note"))
            .await
            .is_some_and(|t| t.starts_with("switched off at "))
    })
    .await;
    assert_eq!(app.get("/node-statuses").await.1["region_1"], "unavailable");
    b.client.clone().close().await.ok();
}
