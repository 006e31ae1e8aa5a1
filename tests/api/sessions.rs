//! Page sessions and wrong admin tokens, shared by every instance through
//! Redis: signing out ends a session everywhere, an operator can end them
//! all, and repeated wrong tokens from one address are slowed, then
//! refused.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

const TOKEN: &str = "sessions-admin-token-0123456789";

/// The CSRF token of the create page seen with `cookie` at `address`, if
/// that page is signed in.
async fn signed_in_at(app: &TestApp, address: &str, cookie: &str) -> Option<String> {
    let html = get_with_cookie(app, address, cookie).await;
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker)? + marker.len();
    Some(html[start..].split('"').next()?.to_owned())
}

async fn get_with_cookie(app: &TestApp, address: &str, cookie: &str) -> String {
    let r = app
        .http
        .get(format!("{address}/create-records"))
        .header("cookie", cookie);
    r.send().await.unwrap().text().await.unwrap()
}

/// Switches region_1 with a page session's cookie and CSRF header.
async fn switch_with(app: &TestApp, address: &str, cookie: &str, csrf: &str) -> StatusCode {
    let r = app
        .http
        .post(format!("{address}/node-status"))
        .header("cookie", cookie)
        .header("x-csrf-token", csrf)
        .json(&json!({"node_id": "region_1", "status": "unavailable"}));
    r.send().await.unwrap().status()
}

#[tokio::test]
async fn signing_out_ends_the_session_on_every_instance_and_an_operator_can_end_them_all() {
    let app = TestApp::spawn_with(
        "sessions_revoke",
        Options::default().env("ADMIN_TOKEN", TOKEN),
    )
    .await;
    let b = app.spawn_instance("regiondb-b").await;
    let cookie = app.session_at(&app.address, TOKEN).await;
    let csrf = signed_in_at(&app, &b.address, &cookie)
        .await
        .expect("signed in on b too");

    // The attack: a copy of the cookie, used after signing out.
    app.sign_out_at(&app.address, &cookie).await;
    for address in [&app.address, &b.address] {
        let html = get_with_cookie(&app, address, &cookie).await;
        assert!(
            !html.contains("Sign out") && html.contains("Sign in"),
            "{address}"
        );
        assert_eq!(
            switch_with(&app, address, &cookie, &csrf).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(app.get("/node-statuses").await.1["region_1"], "available");

    // Ending every session: two browsers signed in, one API call.
    let first = app.session_at(&app.address, TOKEN).await;
    let second = app.session_at(&b.address, TOKEN).await;
    let csrf = signed_in_at(&app, &app.address, &first)
        .await
        .expect("signed in");
    assert!(signed_in_at(&app, &b.address, &second).await.is_some());
    let end = |auth: Option<&str>| {
        let r = app.http.delete(app.url("/admin/sessions"));
        json_answer(match auth {
            Some(a) => r.header("authorization", a),
            None => r,
        })
    };
    assert_eq!(end(None).await.0, StatusCode::UNAUTHORIZED);
    let (code, body) = end(Some(&format!("Bearer {TOKEN}"))).await;
    assert_eq!((code, body), (StatusCode::OK, json!({"ended": 2})));
    for (address, cookie) in [(&app.address, &first), (&b.address, &second)] {
        assert!(signed_in_at(&app, address, cookie).await.is_none());
    }
    assert_eq!(
        switch_with(&app, &b.address, &first, &csrf).await,
        StatusCode::UNAUTHORIZED
    );
    // A new sign-in works at once.
    let again = app.session_at(&b.address, TOKEN).await;
    let csrf = signed_in_at(&app, &app.address, &again)
        .await
        .expect("signed in");
    assert_eq!(
        switch_with(&app, &app.address, &again, &csrf).await,
        StatusCode::OK
    );
    // The operator's other way: redis-cli.
    let _: u64 = app.redis(&["DEL", "regiondb:sessions"]).await;
    assert!(signed_in_at(&app, &b.address, &again).await.is_none());
}

#[tokio::test]
async fn without_redis_no_token_is_checked_uncounted_and_pages_show_signed_out() {
    let options = Options::default().env("ADMIN_TOKEN", TOKEN);
    let Some(mut app) = TestApp::spawn_for_faults("sessions_no_redis", options).await else {
        return;
    };
    let cookie = app.session_at(&app.address, TOKEN).await;
    assert!(signed_in_at(&app, &app.address, &cookie).await.is_some());
    app.kill_redis();
    // Fails closed: 503, not a check that nothing counts.
    let (code, _, _) = bearer_at(&app, &app.address, TOKEN).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    let r = app.sign_in_at(&app.address, TOKEN, "/").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("redis could not be reached")
    );
    let html = get_with_cookie(&app, &app.address, &cookie).await;
    assert!(html.contains("Sign in") && !html.contains("Sign out"));
    assert!(app.app_log().contains("session not checked"));
}

/// A bearer call with `token` at `address`: its status, `retry-after` and
/// how long it took.
async fn bearer_at(
    app: &TestApp,
    address: &str,
    token: &str,
) -> (StatusCode, Option<u64>, Duration) {
    let started = Instant::now();
    let r = app
        .http
        .post(format!("{address}/admin/repair?dry_run=true"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    let retry = retry_after(&r);
    (r.status(), retry, started.elapsed())
}

/// A sign-in with `token` at `address`: status, `retry-after`, page, time.
async fn sign_in_with(
    app: &TestApp,
    address: &str,
    token: &str,
) -> (StatusCode, Option<u64>, String, Duration) {
    let started = Instant::now();
    let r = app.sign_in_at(address, token, "/").await;
    let retry = retry_after(&r);
    let code = r.status();
    (code, retry, r.text().await.unwrap(), started.elapsed())
}

#[tokio::test]
async fn wrong_tokens_are_slowed_then_refused_on_every_instance_and_a_right_one_resets() {
    let options = Options::default()
        .env("ADMIN_TOKEN", TOKEN)
        .env("SIGN_IN_MAX_FAILURES", "4")
        .env("SIGN_IN_DELAY_MS", "200")
        .env("SIGN_IN_LOCKOUT_SECS", "3");
    let app = TestApp::spawn_with("sessions_limits", options).await;
    let b = app.spawn_instance("regiondb-b").await;
    let failures = || app.redis::<Option<u32>>(&["GET", "regiondb:sign-in-failures:127.0.0.1"]);

    // Wrong tokens, alternating instances and ways in: each waits twice as
    // long as the one before it (0, 200, 400, 800 ms).
    let (code, ..) = sign_in_with(&app, &app.address, "wrong-1").await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, _, took) = bearer_at(&app, &b.address, "wrong-2").await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert!(took >= Duration::from_millis(200), "{took:?}");
    let (code, .., took) = sign_in_with(&app, &b.address, "wrong-3").await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert!(took >= Duration::from_millis(400), "{took:?}");
    let (code, _, took) = bearer_at(&app, &app.address, "wrong-4").await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert!(took >= Duration::from_millis(800), "{took:?}");
    assert_eq!(failures().await, Some(4));

    // Then refused, even the right token, on both instances, both ways.
    let (code, retry, _) = bearer_at(&app, &b.address, TOKEN).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry.is_some_and(|s| (1..=3).contains(&s)), "{retry:?}");
    let (code, retry, html, _) = sign_in_with(&app, &app.address, TOKEN).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        retry.is_some() && html.contains("Too many wrong tokens from your address"),
        "{html}"
    );
    assert!(app.app_log().contains("too many wrong ones"));

    // Once the lockout has passed, the right token gets in and resets it.
    wait_until("the lockout to end", DEADLINE, || async {
        bearer_at(&app, &b.address, TOKEN).await.0 == StatusCode::OK
    })
    .await;
    assert_eq!(failures().await, None);
    assert_eq!(
        sign_in_with(&app, &app.address, "wrong-5").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(failures().await, Some(1));
    assert_eq!(
        sign_in_with(&app, &b.address, TOKEN).await.0,
        StatusCode::SEE_OTHER
    );
    assert_eq!(failures().await, None);
    let wrong = app
        .metric("regiondb_admin_token_failures_total", &["via=\"sign_in\""])
        .await;
    assert_eq!(wrong, 2.0, "this instance's wrong sign-ins");
}

/// Thirty admin calls at once with the right token: none refused, none
/// slowed by the others in flight (the delay is 2 s a failure). Thirty
/// wrong ones at once from one address: exactly the limit is answered 401,
/// the rest are refused, so parallel guessing gets no further than
/// sequential guessing; then even the right token is refused.
#[tokio::test]
async fn right_tokens_in_parallel_never_wait_and_parallel_guesses_stop_at_the_limit() {
    let options = Options::default()
        .env("ADMIN_TOKEN", TOKEN)
        .env("SIGN_IN_MAX_FAILURES", "4")
        .env("SIGN_IN_DELAY_MS", "2000")
        .env("SIGN_IN_LOCKOUT_SECS", "60");
    let app = TestApp::spawn_with("sessions_parallel", options).await;
    let switch = |token: &'static str| {
        let request = app
            .http
            .post(app.url("/node-status"))
            .header("authorization", format!("Bearer {token}"))
            .json(&serde_json::json!({"node_id": "region_1", "status": "available"}));
        async move {
            let started = Instant::now();
            let code = request.send().await.expect("request").status();
            (code, started.elapsed())
        }
    };
    let right = futures::future::join_all((0..30).map(|_| switch(TOKEN))).await;
    for (code, took) in &right {
        assert_eq!(*code, StatusCode::OK);
        assert!(
            *took < Duration::from_secs(1),
            "a right token waited {took:?}"
        );
    }

    let wrong = futures::future::join_all((0..30).map(|_| switch("wrong"))).await;
    let count = |want: StatusCode| wrong.iter().filter(|(c, _)| *c == want).count();
    assert_eq!(count(StatusCode::UNAUTHORIZED), 4, "{wrong:?}");
    assert_eq!(count(StatusCode::TOO_MANY_REQUESTS), 26, "{wrong:?}");
    let failures: Option<u32> = app
        .redis(&["GET", "regiondb:sign-in-failures:127.0.0.1"])
        .await;
    assert_eq!(failures, Some(4));
    assert_eq!(switch(TOKEN).await.0, StatusCode::TOO_MANY_REQUESTS);
}
