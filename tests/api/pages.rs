//! The server-rendered pages, driven as a browser without JavaScript would.

use reqwest::StatusCode;

use crate::helpers::*;

fn form(id: &str, zip: &str, city: &str) -> Vec<(&'static str, String)> {
    vec![
        ("customer_id", id.to_owned()),
        ("customer_unique_id", format!("u-{id}")),
        ("customer_zip_code_prefix", zip.to_owned()),
        ("customer_city", city.to_owned()),
        ("customer_state", "SP".to_owned()),
    ]
}

async fn submit(app: &TestApp, fields: &[(&'static str, String)]) -> (StatusCode, String) {
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    app.post_form("/create-records", &pairs).await
}

#[tokio::test]
async fn home_and_create_pages_show_the_nodes() {
    let app = TestApp::spawn("pages_home").await;
    let (code, html) = app.page("/").await;
    assert_eq!(code, StatusCode::OK);
    assert!(html.contains(r#"href="/create-records""#) && html.contains(r#"href="/view-records""#));
    for node in NODES {
        assert!(html.contains(&format!(r#"data-node="{node}""#)), "{node}");
    }
    assert!(html.contains("Keeps replicas of"));

    app.set_status("region_2", "unavailable").await;
    let (code, html) = app.page("/create-records").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(html.matches(r#"role="switch""#).count(), 3);
    assert!(html.contains(r#"<span class="dot dot-unavailable" data-field="dot""#));
    assert!(html.contains(r#"aria-checked="false""#));
    // Every input has its label.
    for f in [
        "customer_id",
        "customer_unique_id",
        "customer_zip_code_prefix",
        "customer_city",
        "customer_state",
    ] {
        assert!(html.contains(&format!(r#"<label for="{f}">"#)), "{f}");
        assert!(
            html.contains(&format!(r#"<input id="{f}" name="{f}""#)),
            "{f}"
        );
    }
    // Static files are served with caching headers.
    let version = html
        .split("/static/app.css?v=")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("versioned css link")
        .to_owned();
    let r = app
        .get_response(&format!("/static/app.css?v={version}"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/css; charset=utf-8");
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    let etag = r.headers()["etag"].clone();
    let again = app
        .http
        .get(app.url("/static/app.js"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn the_create_form_reports_every_outcome_without_javascript() {
    let mut app = TestApp::spawn("pages_create").await;

    let (code, html) = submit(&app, &form("c1", "01310", "Sao Paulo")).await;
    assert_eq!(code, StatusCode::CREATED, "{html}");
    assert!(html.contains("Stored in region_1"), "{html}");
    assert!(html.contains("Replicated to region_3."));
    assert!(app.doc("region_1", "customers", "c1").await.is_some());

    app.set_status("region_2", "unavailable").await;
    let (code, html) = submit(&app, &form("c2", "45000", "Rio")).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    assert!(
        html.contains("Queued for region_2 because it is down"),
        "{html}"
    );

    app.set_status("region_1", "unavailable").await;
    let (_, html) = submit(&app, &form("c3", "45001", "Rio")).await;
    assert!(
        html.contains("Its replica is queued for node region_1"),
        "{html}"
    );

    // A field error is shown next to its field, and what was typed is kept.
    let (code, html) = submit(&app, &form("c4", "12ab", "Keep me")).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        html.contains(r#"id="customer_zip_code_prefix-error""#),
        "{html}"
    );
    assert!(html.contains(r#"aria-invalid="true""#));
    assert!(html.contains(r#"value="Keep me""#));
    let (code, html) = submit(&app, &form("c5", "500", "x")).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("is in no region"), "{html}");
    let (code, html) = submit(&app, &form("", "1000", "x")).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains(r#"id="customer_id-error""#));

    // Node switch without JavaScript: a form post and a redirect back.
    let (code, _) = app
        .post_form(
            "/create-records/node-status",
            &[("node_id", "region_2"), ("status", "available")],
        )
        .await;
    assert_eq!(code, StatusCode::SEE_OTHER);
    assert_eq!(app.get("/node-statuses").await.1["region_2"], "available");
    let (code, html) = app
        .post_form(
            "/create-records/node-status",
            &[("node_id", "mars"), ("status", "available")],
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(html.contains("Unknown node"));

    // Pausing a node's replay, the same way; the card says so and offers
    // to resume.
    let (code, _) = app
        .post_form(
            "/create-records/node-replay",
            &[("node_id", "region_2"), ("paused", "true")],
        )
        .await;
    assert_eq!(code, StatusCode::SEE_OTHER);
    assert_eq!(app.get("/nodes").await.1[1]["replay_paused"], true);
    let (_, html) = app.page("/create-records").await;
    assert!(html.contains("Resume replay"), "{html}");
    assert!(html.contains(r#"<strong data-field="paused">Replay paused."#));
    let (code, _) = app
        .post_form(
            "/create-records/node-replay",
            &[("node_id", "region_2"), ("paused", "false")],
        )
        .await;
    assert_eq!(code, StatusCode::SEE_OTHER);
    assert_eq!(app.get("/nodes").await.1[1]["replay_paused"], false);

    // Neither stored nor queued: said plainly, and the form keeps its values.
    if app.controls_processes() {
        app.set_status("region_3", "unavailable").await;
        app.kill_kafka();
        let (code, html) = submit(&app, &form("c6", "80000", "Lost city")).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(html.contains("Not saved"), "{html}");
        assert!(html.contains("Nothing was written"));
        assert!(html.contains(r#"value="Lost city""#));
    }
}

#[tokio::test]
async fn the_view_page_filters_pages_and_explains_where_records_came_from() {
    let app = TestApp::spawn("pages_view").await;
    for i in 0..12 {
        let (code, _) = app.create(&customer(&format!("a{i:02}"), 1000 + i)).await;
        assert_eq!(code, StatusCode::CREATED);
    }
    app.create(&customer("b1", ZIP_2)).await;

    let (code, html) = app.page("/view-records?limit=10").await;
    assert_eq!(code, StatusCode::OK);
    assert!(html.contains("Showing 1–10 of 13 records"), "{html}");
    assert!(
        html.contains(r#"href="/view-records?limit=10&#38;offset=10""#),
        "{html}"
    );
    let (_, html) = app.page("/view-records?limit=10&offset=10").await;
    assert!(html.contains("Showing 11–13 of 13 records"));
    assert!(html.contains(r#"rel="prev""#));
    assert!(!html.contains(r#"rel="next""#));

    // Filters stay in the query string and in the form.
    let (_, html) = app
        .page("/view-records?zipRangeMin=1005&zipRangeMax=1006&city=PAULO")
        .await;
    assert!(html.contains("Showing 1–2 of 2 records"), "{html}");
    assert!(html.contains(r#"value="PAULO""#));

    // Served by the replica, and unreachable, said so.
    app.set_status("region_2", "unavailable").await;
    let (_, html) = app.page("/view-records?region=region_2").await;
    assert!(
        html.contains("Region region_2 was read from its replica on node region_1"),
        "{html}"
    );
    assert!(html.contains(r#"<span class="tag">replica</span>"#));
    app.set_status("region_1", "unavailable").await;
    let (_, html) = app.page("/view-records?region=region_2").await;
    assert!(html.contains("Region region_2 could not be read"), "{html}");

    // Empty state and a bad filter.
    let (_, html) = app.page("/view-records?city=nowhere").await;
    assert!(html.contains("No records match these filters."));
    let (code, html) = app.page("/view-records?zipRangeMin=abc").await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains(r#"id="filter-error""#));
    assert!(html.contains(r#"<div class="field invalid">"#));
}

#[tokio::test]
async fn user_text_is_escaped_on_every_page() {
    let app = TestApp::spawn("pages_escape").await;
    let evil = "<script>alert(1)</script>";
    let (code, html) = submit(&app, &form("x<b>1", "01310", evil)).await;
    assert_eq!(code, StatusCode::CREATED);
    assert!(!html.contains("<b>1"), "{html}");
    let (_, html) = app.page("/view-records").await;
    assert!(!html.contains(evil));
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
            || html.contains("&lt;script&gt;"),
        "{html}"
    );
    let (_, html) = app
        .page(&format!("/view-records?city={}", "%3Cscript%3E"))
        .await;
    assert!(!html.contains(r#"value="<script>""#));
}

/// Listening beyond loopback with no admin token: the home page says so
/// (and the start logs it); on loopback, or with a token, it does not.
#[tokio::test]
async fn the_home_page_warns_when_open_beyond_loopback_without_a_token() {
    let open = TestApp::spawn_with(
        "pages_exposed",
        Options::default().env("BIND_ADDRESS", "0.0.0.0"),
    )
    .await;
    let (_, home) = open.page("/").await;
    assert!(home.contains(r#"data-field="exposed""#), "{home}");
    assert!(home.contains("ADMIN_TOKEN"));
    let log = std::fs::read_to_string(open.dir.join("regiondb-1.log")).unwrap_or_default();
    assert!(
        log.contains("listening beyond loopback and ADMIN_TOKEN is not set"),
        "{log}"
    );
    let token = open
        .spawn_instance_with("with-token", &[("ADMIN_TOKEN", "0123456789abcdef-token")])
        .await;
    let (_, home) = text_answer(open.http.get(format!("{}/", token.address))).await;
    assert!(!home.contains(r#"data-field="exposed""#));
    let local = TestApp::spawn("pages_local").await;
    assert!(!local.page("/").await.1.contains(r#"data-field="exposed""#));
}
