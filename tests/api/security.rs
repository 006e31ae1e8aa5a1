//! The web surface's guards against the running binary: cross-site posts,
//! security headers, the sign-in redirect and the `Host` allow-list.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

const TOKEN: &str = "security-admin-token-0123456789";
const EVIL: &str = "http://evil.example";
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A form post as a browser sends it: `extra` are its fetch headers.
async fn browser_form(
    app: &TestApp,
    path: &str,
    fields: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut request = app
        .http
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "text/html,application/xhtml+xml")
        .body(serde_urlencoded::to_string(fields).unwrap());
    for (k, v) in extra {
        request = request.header(*k, *v);
    }
    text_answer(request).await
}

#[tokio::test]
async fn posts_from_another_site_are_refused_and_own_pages_and_curl_pass() {
    // The demo's way: no ADMIN_TOKEN, so nothing else stands in the way.
    let app = TestApp::spawn("security_cross_site").await;
    let switch = [("node_id", "region_1"), ("status", "unavailable")];
    let cross = [("origin", EVIL), ("sec-fetch-site", "cross-site")];

    // The issue's attack: a page of evil.example auto-submits the switch.
    let (code, html) = browser_form(&app, "/create-records/node-status", &switch, &cross).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{html}");
    assert!(html.contains("sent by a page of another site"), "{html}");
    // Either header alone is enough, on every state-changing route, JSON
    // or form, and the answer to an API client is JSON.
    let api = |method: reqwest::Method, path: &str, header: (&'static str, &'static str)| {
        app.http
            .request(method, app.url(path))
            .header(header.0, header.1)
            .json(&customer("cross", ZIP_1))
    };
    for (method, path) in [
        (reqwest::Method::POST, "/node-status"),
        (reqwest::Method::POST, "/admin/repair"),
        (reqwest::Method::POST, "/create-customer"),
        (reqwest::Method::DELETE, "/customers/cross"),
        (reqwest::Method::DELETE, "/admin/sessions"),
    ] {
        for header in [
            ("origin", EVIL),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-site", "same-site"),
            ("origin", "null"),
        ] {
            let (code, body) = json_answer(api(method.clone(), path, header)).await;
            assert_eq!(
                code,
                StatusCode::FORBIDDEN,
                "{method} {path} {header:?}: {body}"
            );
            assert!(
                body["error"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("cross-site request refused"),
                "{body}"
            );
            assert_eq!(body["code"], "cross_site", "{body}");
        }
    }
    let create = [
        ("customer_id", "cross-form"),
        ("customer_unique_id", "u"),
        ("customer_zip_code_prefix", "12000"),
        ("customer_city", "x"),
        ("customer_state", "SP"),
    ];
    let (code, _) = browser_form(&app, "/create-records", &create, &cross).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(app.get("/node-statuses").await.1["region_1"], "available");
    assert_eq!(
        app.get("/customers/cross-form").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get("/customers/cross").await.0, StatusCode::NOT_FOUND);
    // Reads from anywhere still answer (the browser keeps them from the
    // other site's script: no CORS).
    let r = app
        .http
        .get(app.url("/node-statuses"))
        .header("origin", EVIL)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let refused = app
        .metric(
            "regiondb_requests_refused_total",
            &["reason=\"cross_site\""],
        )
        .await;
    assert_eq!(refused, 22.0);

    // The page's own form (as Chromium and as an older browser send it).
    let own = app.address.clone();
    for headers in [
        &[("origin", own.as_str()), ("sec-fetch-site", "same-origin")][..],
        &[("origin", own.as_str())],
    ] {
        let (code, html) =
            browser_form(&app, "/create-records/node-status", &switch, headers).await;
        assert_eq!(code, StatusCode::SEE_OTHER, "{headers:?}: {html}");
    }
    assert_eq!(app.get("/node-statuses").await.1["region_1"], "unavailable");
    // curl: no Origin, no Sec-Fetch-Site.
    app.set_status("region_1", "available").await;
    app.stored(&customer("from-curl", ZIP_1)).await;
}

fn assert_secured(path: &str, headers: &HeaderMap) {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    assert_eq!(get("content-security-policy"), CSP, "{path}");
    assert_eq!(get("x-frame-options"), "DENY", "{path}");
    assert_eq!(get("x-content-type-options"), "nosniff", "{path}");
    assert_eq!(get("referrer-policy"), "same-origin", "{path}");
    assert_eq!(get("cross-origin-opener-policy"), "same-origin", "{path}");
    assert_eq!(get("cross-origin-resource-policy"), "same-origin", "{path}");
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let app = TestApp::spawn_with(
        "security_headers",
        Options::default().env("ADMIN_TOKEN", TOKEN),
    )
    .await;
    app.stored(&customer("headers-1", ZIP_1)).await;
    for path in [
        "/",
        "/create-records",
        "/view-records",
        "/records/headers-1",
        "/sign-in",
        "/static/app.js",
        "/static/app.css",
        "/openapi.json",
        "/filter-records",
        "/customers/headers-1",
        "/healthz",
        "/metrics",
        "/no-such-page",
    ] {
        let r = app.get_response(path).await;
        assert!(
            r.status().is_success() || r.status() == StatusCode::NOT_FOUND,
            "{path}"
        );
        assert_secured(path, r.headers());
        assert!(
            r.headers().get("strict-transport-security").is_none(),
            "{path}"
        );
    }
    // Refusals and errors too.
    let r = app
        .http
        .post(app.url("/node-status"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_secured("401", r.headers());
    let r = app
        .http
        .post(app.url("/node-status"))
        .header("origin", EVIL)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_secured("403", r.headers());
    let r = app
        .http
        .get(app.url("/"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST);
    assert_secured("421", r.headers());
    // Behind a proxy that says it speaks HTTPS: HSTS as well.
    let r = app
        .http
        .get(app.url("/"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
}

/// Where `POST /sign-in` with the right token and `next` sends the browser.
async fn after_sign_in(app: &TestApp, next: &str) -> String {
    let r = app.sign_in_at(&app.address, TOKEN, next).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{next:?}");
    r.headers()["location"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn sign_in_returns_only_to_safe_paths_of_this_site() {
    let app = TestApp::spawn_with(
        "security_next",
        Options::default().env("ADMIN_TOKEN", TOKEN),
    )
    .await;
    // The issue's attack: a tab that browsers drop, making //evil.example.
    assert_eq!(after_sign_in(&app, "/\t/evil.example").await, "/");
    for bad in [
        "//evil.example",
        "/\\evil.example",
        "/\n/evil.example",
        "/ /evil.example",
        "https://evil.example/",
        "evil.example",
        "/\u{0}x",
        "",
    ] {
        assert_eq!(after_sign_in(&app, bad).await, "/", "{bad:?}");
    }
    for good in [
        "/view-records?zip_min=1000&region=region_1",
        "/records/a%2Fb",
        "/create-records",
    ] {
        assert_eq!(after_sign_in(&app, good).await, good);
    }
    // The form carries only a safe `next` too.
    let (_, html) = app.page("/sign-in?next=%2F%09%2Fevil.example").await;
    assert!(html.contains(r#"name="next" value="/""#), "{html}");
    // Every page's sign-in link comes back to that page.
    let (_, html) = app.page("/view-records?region=region_2").await;
    assert!(
        html.contains(r#"href="/sign-in?next=/view-records%3Fregion%3Dregion_2""#),
        "{html}"
    );
}

/// A raw HTTP/1.1 request, for headers a client library will not send.
async fn raw(app: &TestApp, request: &str) -> String {
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test]
async fn only_hosts_this_service_answers_for_are_served() {
    let app = TestApp::spawn("security_hosts").await;
    app.stored(&customer("secret", ZIP_1)).await;
    let port = app.address.rsplit(':').next().unwrap().to_owned();
    let with_host = |host: String| {
        app.http
            .get(app.url("/filter-records"))
            .header("host", host)
            .send()
    };

    // The issue's attack: a rebound name reading every record.
    let r = with_host(format!("evil.example:{port}")).await.unwrap();
    assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("ALLOWED_HOSTS"),
        "{body}"
    );
    for host in ["localhost.evil.example", "10.0.0.9"] {
        assert_eq!(
            with_host(format!("{host}:{port}")).await.unwrap().status(),
            421,
            "{host}"
        );
    }
    // The defaults: the bind address, loopback, localhost.
    for host in ["127.0.0.1", "localhost", "LOCALHOST", "[::1]"] {
        let r = with_host(format!("{host}:{port}")).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{host}");
    }
    // A browser gets a page saying why.
    let r = app
        .http
        .get(app.url("/"))
        .header("host", "evil.example")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST);
    assert!(r.text().await.unwrap().contains("add it to ALLOWED_HOSTS"));
    // No Host at all; a target naming another host (absolute form).
    let answer = raw(&app, "GET /healthz HTTP/1.0\r\n\r\n").await;
    assert!(
        answer.starts_with("HTTP/1.0 400") || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    let request = format!(
        "GET http://evil.example:{port}/filter-records HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n\r\n"
    );
    assert!(raw(&app, &request).await.starts_with("HTTP/1.1 421"));
    assert_eq!(
        app.metric("regiondb_requests_refused_total", &["reason=\"host\""])
            .await,
        6.0
    );

    // ALLOWED_HOSTS and PUBLIC_URL add names; PUBLIC_URL's origin may post
    // even through a proxy that rewrites Host.
    let b = app
        .spawn_instance_with(
            "regiondb-hosts",
            &[
                ("ALLOWED_HOSTS", "app, .corp.example"),
                ("PUBLIC_URL", "https://db.example.com"),
            ],
        )
        .await;
    let at_b = |host: &str| {
        app.http
            .get(format!("{}/healthz", b.address))
            .header("host", host.to_owned())
            .send()
    };
    for host in ["app:8000", "x.corp.example", "db.example.com", "localhost"] {
        assert_eq!(at_b(host).await.unwrap().status(), StatusCode::OK, "{host}");
    }
    assert_eq!(at_b("evil.example").await.unwrap().status(), 421);
    let post = app
        .http
        .post(format!("{}/create-customer", b.address))
        .header("origin", "https://db.example.com")
        .json(&customer("via-proxy", ZIP_1));
    assert_eq!(json_answer(post).await.0, StatusCode::CREATED);
}
