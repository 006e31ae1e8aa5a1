//! Bad input gets an honest 4xx JSON error naming the field, and writes
//! nothing.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn every_malformed_body_gets_its_4xx_and_writes_nothing() {
    let app = TestApp::spawn("bad_input").await;
    unreadable_bodies(&app).await;
    bad_fields(&app).await;
    bad_node_switches(&app).await;
    bad_queries(&app).await;
    // Unknown route and wrong method are JSON too.
    let (code, body) = app.get("/no-such-thing").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string());
    assert_eq!(body["code"], "not_found");
    let (code, body) = app.get("/create-customer").await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    assert!(body["error"].is_string());
    assert_eq!(body["code"], "method_not_allowed");

    // Nothing was written anywhere, and every node is still available.
    for node in NODES {
        assert_eq!(app.offsets(node).await.0, 0, "{node} topic");
        assert!(app.docs(node, "customers").await.is_empty(), "{node}");
    }
    let (_, statuses) = app.get("/node-statuses").await;
    assert_eq!(
        statuses,
        json!({"region_1": "available", "region_2": "available", "region_3": "available"})
    );
}

/// Bodies that cannot be read as a JSON object: 400, 415, 413, 422.
async fn unreadable_bodies(app: &TestApp) {
    let url = format!("{}/create-customer", app.address);
    let raw = |body: String, content_type: &'static str| {
        let url = url.clone();
        async move {
            let r = app
                .http
                .post(url)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            let code = r.status();
            (code, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    let (code, body) = raw("{not json".into(), "application/json").await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].is_string());
    assert_eq!(body["code"], "malformed_request");
    let (code, body) = raw(customer("c", ZIP_1).to_string(), "text/plain").await;
    assert_eq!(code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body["code"], "not_json");
    let big = json!({"customer_id": "x".repeat(70 * 1024)}).to_string();
    let (code, body) = raw(big, "application/json").await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(body["error"].as_str().unwrap().contains("64 KiB"));
    assert_eq!(body["code"], "body_too_large");
    let (code, body) = raw("[1,2]".into(), "application/json").await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "invalid_body");
}

/// Each field of a customer wrong in turn: 422 naming it.
async fn bad_fields(app: &TestApp) {
    let cases: Vec<(&str, Value)> = vec![
        ("customer_id", json!(null)),
        ("customer_id", json!("  ")),
        ("customer_id", json!(12)),
        ("customer_unique_id", json!(false)),
        ("customer_zip_code_prefix", json!("12a45")),
        ("customer_zip_code_prefix", json!(-1)),
        ("customer_zip_code_prefix", json!(500)),
        ("customer_zip_code_prefix", json!(100000)),
        ("customer_city", json!("")),
        ("customer_state", json!({"x": 1})),
    ];
    for (field, value) in cases {
        let mut body = customer("c1", ZIP_1);
        body[field] = value.clone();
        let (code, answer) = app.create(&body).await;
        assert_eq!(
            code,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}={value}: {answer}"
        );
        assert_eq!(answer["field"], field, "{answer}");
        assert_eq!(answer["code"], "invalid_field", "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(field),
            "{answer}"
        );
    }
    let mut missing = customer("c1", ZIP_1);
    missing.as_object_mut().unwrap().remove("customer_state");
    let (code, answer) = app.create(&missing).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer["field"], "customer_state");
}

/// Switches of an unknown node, to an unknown status, without a node.
async fn bad_node_switches(app: &TestApp) {
    let (code, _) = app
        .post(
            "/node-status",
            &json!({"node_id": "region_9", "status": "available"}),
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, body) = app
        .post(
            "/node-status",
            &json!({"node_id": "region_1", "status": "down"}),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "status");
    let (code, body) = app
        .post("/node-status", &json!({"status": "available"}))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "node_id");
}

/// Filters that cannot be read: 422 naming the parameter; an empty value
/// means "not given".
async fn bad_queries(app: &TestApp) {
    for (query, field) in [
        ("zipRangeMin=abc", "zipRangeMin"),
        ("zipRangeMin=9&zipRangeMax=1", "zipRangeMin"),
        ("limit=0", "limit"),
        ("limit=100000", "limit"),
        ("region=mars", "region"),
    ] {
        let (code, body) = app.get(&format!("/filter-records?{query}")).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(body["field"], field, "{query}");
    }

    for query in ["offset=", "limit=", "zipRangeMin=&zipRangeMax=", "region="] {
        let (code, body) = app.get(&format!("/filter-records?{query}")).await;
        assert_eq!(code, StatusCode::OK, "{query}: {body}");
    }
}
