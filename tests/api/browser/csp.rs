//! The pages keep to their Content-Security-Policy: everything they load
//! and do (script, styles, `fetch`, the event stream, the favicon) is
//! allowed, and an inline script or style would not be.

use serde_json::json;

use super::{Browser, card};
use crate::helpers::*;

#[tokio::test]
async fn every_page_works_under_its_content_security_policy_and_nothing_inline_runs() {
    let app = TestApp::spawn("browser_csp").await;
    app.stored(&customer("csp-1", ZIP_1)).await;
    let b = Browser::start(&app.dir).await;
    b.record_csp_violations().await;
    for path in [
        "/",
        "/view-records",
        "/records/csp-1",
        "/sign-in",
        "/create-records",
    ] {
        b.goto(&format!("{}{path}", app.address)).await;
        // The stylesheet applied, and the script ran (it shows the event
        // stream's state once connected, on the pages with node cards).
        let styled = b
            .client
            .execute(
                "return document.styleSheets.length === 1 && document.styleSheets[0].cssRules.length > 10",
                vec![],
            )
            .await
            .expect("script");
        assert_eq!(styled, json!(true), "{path}: styles");
        assert_eq!(b.csp_violations().await, Vec::<String>::new(), "{path}");
    }
    b.wait_text("live updates", DEADLINE, "[data-live-text]", "Live")
        .await;
    // The page's script at work: a switch (fetch) and a create (fetch,
    // then the server's section swapped in).
    b.click(&card("region_2", "switch")).await;
    b.wait_card_status("region_2", "unavailable").await;
    for (id, value) in [
        ("customer_id", "csp-2"),
        ("customer_unique_id", "u-csp-2"),
        ("customer_zip_code_prefix", "12000"),
        ("customer_city", "Campinas"),
        ("customer_state", "SP"),
    ] {
        b.fill(id, value).await;
    }
    b.click("#create-form button[type=submit]").await;
    wait_until("the result panel", DEADLINE, || async {
        b.text("#result")
            .await
            .is_some_and(|t| t.contains("Stored"))
    })
    .await;
    assert_eq!(b.csp_violations().await, Vec::<String>::new());

    // What the policy is for: injected inline code does not run, and the
    // browser says so.
    let ran = b
        .client
        .execute(
            "var s = document.createElement('script'); s.textContent = 'window.injected = 1'; \
             document.body.appendChild(s); \
             document.body.setAttribute('style', 'display: none'); \
             return window.injected === 1 || getComputedStyle(document.body).display === 'none'",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(ran, json!(false), "inline code ran");
    wait_until("the violations to be reported", DEADLINE, || async {
        let seen = b.csp_violations().await;
        seen.iter().any(|v| v.starts_with("script-src-elem inline"))
            && seen.iter().any(|v| v.starts_with("style-src-attr inline"))
    })
    .await;
    b.client.clone().close().await.ok();
}
