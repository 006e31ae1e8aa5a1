//! `GET /openapi.json`: generated from the handlers, covering every JSON
//! route, and docs/api.md documents every route in it.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_the_api_docs_mention_each() {
    let app = TestApp::spawn("openapi").await;
    let (code, doc) = app.get("/openapi.json").await;
    assert_eq!(code, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths = doc["paths"].as_object().expect("paths");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md"))
        .expect("docs/api.md");

    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            // Described: responses with schemas, errors included.
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                responses.contains_key("200") || responses.contains_key("201"),
                "{method} {path}"
            );
            for (status, response) in responses {
                assert!(
                    response["content"]
                        .as_object()
                        .is_some_and(|c| !c.is_empty()),
                    "{method} {path} {status} has no body description"
                );
            }
            // Served: the router knows this method on this path.
            let method: Method = method.to_uppercase().parse().unwrap();
            // A path with a parameter is asked for a record that does not
            // exist: served, and answered 404.
            let served = path.replace("{customer_id}", "nobody");
            let mut request = app.http.request(method.clone(), app.url(&served));
            if method == Method::POST {
                request = request.json(&serde_json::json!({}));
            }
            if path == "/events" {
                // A stream: only its head.
                let r = request.send().await.unwrap();
                assert_eq!(r.status(), StatusCode::OK);
                continue;
            }
            let code = request.send().await.unwrap().status();
            assert!(
                code != StatusCode::NOT_FOUND || path == "/node-status" || served != *path,
                "{method} {path} is not served"
            );
            assert_ne!(code, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            // Documented for users.
            assert!(
                readme.contains(&format!("{method} {path}")),
                "docs/api.md does not mention `{method} {path}`"
            );
        }
    }
    assert!(operations >= 11, "{operations} operations");
    for path in [
        "/create-customer",
        "/filter-records",
        "/node-status",
        "/node-statuses",
        "/nodes",
        "/admin/repair",
        "/healthz",
        "/readyz",
        "/metrics",
        "/events",
        "/customers/{customer_id}",
    ] {
        assert!(paths.contains_key(path), "{path} is not described");
    }
    assert!(readme.contains("GET /openapi.json"));
    // Error bodies are described once and referenced.
    let error: &Value = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(
        error["required"],
        serde_json::json!(["error", "code"]),
        "{error}"
    );
    // ...with a stable code, each value listed.
    let codes = &doc["components"]["schemas"]["ErrorCode"]["enum"];
    for code in [
        "invalid_field",
        "busy",
        "rejected",
        "no_version",
        "outcome_unknown",
    ] {
        assert!(
            codes
                .as_array()
                .is_some_and(|c| c.iter().any(|v| v == code)),
            "{code} not in {codes}"
        );
    }
}
