//! The pages keep to their Content-Security-Policy: everything they load
//! and do (script, styles, `fetch`, the event stream, the favicon) is
//! allowed, and an inline script or style would not be.

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

/// Serves `html` to every request on a free loopback port: a page of
/// another origin. Answers its address.
async fn another_site(html: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{html}",
                html.len()
            );
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    address
}

#[tokio::test]
async fn another_site_cannot_frame_the_pages() {
    let app = TestApp::spawn("browser_frame").await;
    let b = Browser::start(&app.dir).await;
    // A page of another origin framing the switches (clickjacking).
    let framing = format!(
        "<!doctype html><iframe src=\"{}/create-records\" width=900 height=600></iframe>",
        app.address
    );
    b.goto(&another_site(framing).await).await;
    b.client.enter_frame(0).await.expect("the frame");
    // The browser refused to show the page: the frame holds its error page,
    // never the switches.
    wait_until("the frame to be refused", DEADLINE, || async {
        let href = b.client.execute("return location.href", vec![]).await;
        href.is_ok_and(|h| h.as_str().is_some_and(|h| h.starts_with("chrome-error:")))
    })
    .await;
    let cards = b
        .client
        .execute("return document.querySelectorAll('.card').length", vec![])
        .await
        .expect("script");
    assert_eq!(cards, json!(0));
    b.client.clone().close().await.ok();
}
