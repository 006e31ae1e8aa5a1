//! Admin protection (`ADMIN_TOKEN`) and error bodies that keep driver
//! details to the log.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

const TOKEN: &str = "test-admin-token-0123456789";

fn protected() -> Options {
    Options::default().env("ADMIN_TOKEN", TOKEN)
}

async fn post_with(
    app: &TestApp,
    path: &str,
    body: &Value,
    auth: Option<&str>,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut request = app.http.post(app.url(path)).json(body);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let response = request.send().await.expect("request");
    let code = response.status();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (code, body, headers)
}

#[tokio::test]
async fn with_a_token_the_api_switches_and_repairs_only_for_its_bearer() {
    let app = TestApp::spawn_with("admin_api", protected()).await;
    let switch = json!({"node_id": "region_2", "status": "unavailable"});
    for auth in [
        None,
        Some("Bearer wrong-token-0123456789"),
        Some(TOKEN),
        Some("Basic abc"),
    ] {
        let (code, body, headers) = post_with(&app, "/node-status", &switch, auth).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{auth:?}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
        assert!(!body.to_string().contains(TOKEN));
        assert_eq!(headers["www-authenticate"], "Bearer realm=\"regiondb\"");
        let (code, _, _) = post_with(&app, "/admin/repair", &json!({}), auth).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
    }
    let (_, statuses) = app.get("/node-statuses").await;
    assert_eq!(statuses["region_2"], "available", "nothing was switched");

    let bearer = format!("Bearer {TOKEN}");
    let (code, body, _) = post_with(&app, "/node-status", &switch, Some(&bearer)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["source"], "manual");
    let (code, body, _) = post_with(&app, "/admin/repair", &json!({}), Some(&bearer)).await;
    assert_eq!(code, StatusCode::OK, "{body}");

    // Writes and reads stay open.
    app.queued(&customer("open-write", 45_000)).await;
    for path in ["/node-statuses", "/nodes", "/filter-records", "/readyz"] {
        assert_eq!(app.get(path).await.0, StatusCode::OK, "{path}");
    }
}

/// The `value` of the hidden input named `name` in a page.
fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    Some(html[start..].split('"').next()?.to_owned())
}

#[tokio::test]
async fn with_a_token_the_pages_switch_only_after_sign_in_and_with_the_csrf_token() {
    let app = TestApp::spawn_with("admin_pages", protected()).await;
    let switch = [("node_id", "region_1"), ("status", "unavailable")];

    // Not signed in: the switches are disabled and a post is refused.
    let (code, html) = app.page("/create-records").await;
    assert_eq!(code, StatusCode::OK);
    assert!(html.contains("href=\"/sign-in?next=/create-records\""));
    assert!(html.contains("data-field=\"switch\" disabled"));
    let (code, html) = app.post_form("/create-records/node-status", &switch).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert!(html.contains("Sign in with the admin token"));

    // A wrong token.
    let (code, html) = app
        .post_form(
            "/sign-in",
            &[("token", "not-the-token"), ("next", "/create-records")],
        )
        .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert!(html.contains("That is not the admin token."));

    let cookie = app.session_at(&app.address, TOKEN).await;
    let page = |path: &str| app.http.get(app.url(path)).header("cookie", &cookie).send();
    let html = page("/create-records").await.unwrap().text().await.unwrap();
    assert!(!html.contains("data-field=\"switch\" disabled"));
    assert!(html.contains("Sign out"));
    let csrf = hidden(&html, "csrf").expect("the form carries a CSRF token");

    let post_switch = |fields: Vec<(&'static str, String)>| {
        app.http
            .post(app.url("/create-records/node-status"))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(&fields).unwrap())
            .send()
    };
    let base = vec![
        ("node_id", "region_1".to_owned()),
        ("status", "unavailable".to_owned()),
    ];
    // Signed in but without (or with a forged) CSRF token: refused.
    for forged in [None, Some("forged")] {
        let mut fields = base.clone();
        if let Some(f) = forged {
            fields.push(("csrf", f.to_owned()));
        }
        let r = post_switch(fields).await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(app.get("/node-statuses").await.1["region_1"], "available");
    let mut fields = base.clone();
    fields.push(("csrf", csrf.clone()));
    let r = post_switch(fields).await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.get("/node-statuses").await.1["region_1"], "unavailable");

    // The pages' script calls the API with the cookie and the CSRF header.
    let api = |csrf: Option<&str>| {
        let mut r = app
            .http
            .post(app.url("/node-status"))
            .header("cookie", &cookie)
            .json(&json!({"node_id": "region_1", "status": "available"}));
        if let Some(c) = csrf {
            r = r.header("x-csrf-token", c);
        }
        r.send()
    };
    assert_eq!(api(None).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(api(Some(&csrf)).await.unwrap().status(), StatusCode::OK);

    app.sign_out_at(&app.address, &cookie).await;
}

#[tokio::test]
async fn without_a_token_everything_is_open_and_the_log_says_so() {
    let app = TestApp::spawn("admin_open").await;
    app.set_status("region_2", "unavailable").await;
    let (_, html) = app.page("/create-records").await;
    assert!(!html.contains("disabled"));
    assert!(!html.contains("Sign in"));
    assert!(app.app_log().contains("ADMIN_TOKEN is not set"));
}

#[tokio::test]
async fn error_bodies_give_a_short_reason_not_driver_details() {
    let Some(mut app) = TestApp::spawn_for_faults("admin_errors", Options::default()).await else {
        return;
    };
    let hosts = |body: &Value| {
        let text = body.to_string();
        text.contains("127.0.0.1")
            || text.contains("localhost")
            || text.contains("Connection refused")
    };

    // Kafka gone and the home node off: the write can be neither stored nor
    // queued.
    app.set_status("region_2", "unavailable").await;
    app.kill_kafka();
    let (code, body) = app.create(&customer("no-kafka", 45_000)).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(!hosts(&body), "{body}");
    let (code, body) = app.get("/readyz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!hosts(&body), "{body}");

    app.kill_redis();
    let (code, body) = app
        .post(
            "/node-status",
            &json!({"node_id": "region_1", "status": "unavailable"}),
        )
        .await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(
        body["error"],
        "could not save the status: redis could not be reached"
    );
    // Readiness answers are reused for a second.
    wait_until("readiness to see redis gone", DEADLINE, || async {
        app.get("/readyz").await.1["redis"] == "error: redis could not be reached"
    })
    .await;
    let (_, body) = app.get("/readyz").await;
    assert!(!hosts(&body), "{body}");
    // The details are in the log.
    assert!(app.app_log().contains("status not saved"));
}
