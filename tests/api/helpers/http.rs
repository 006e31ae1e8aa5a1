//! Talking to the app over HTTP: JSON calls, pages, forms, metrics.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::*;

/// The body of `GET address+path`, as text.
pub async fn get_text_at(http: &reqwest::Client, address: &str, path: &str) -> String {
    http.get(format!("{address}{path}"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// The JSON body of `GET address+path`.
pub async fn get_json_at(http: &reqwest::Client, address: &str, path: &str) -> Value {
    let text = get_text_at(http, address, path).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"))
}

/// The `GET /nodes` entry of `node` at the instance at `address`.
pub async fn node_at(http: &reqwest::Client, address: &str, node: &str) -> Value {
    get_json_at(http, address, "/nodes")
        .await
        .as_array()
        .expect("array")
        .iter()
        .find(|n| n["node_id"] == node)
        .cloned()
        .expect("node in /nodes")
}

/// The first `GET /nodes` entry of `node` at `address` that `ready` accepts
/// (waited for up to [`DEADLINE`]).
pub async fn node_when(
    http: &reqwest::Client,
    address: &str,
    node: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let what = format!("{node}'s entry in /nodes at {address} to be ready");
    wait_for(&what, DEADLINE, || async {
        let view = node_at(http, address, node).await;
        ready(&view).then_some(view)
    })
    .await
}

/// The `GET /nodes` entry of `node` once a look at its queue answered in
/// time (a slow broker leaves `queued` null for that look, and says so).
pub async fn counted_at(http: &reqwest::Client, address: &str, node: &str) -> Value {
    node_when(http, address, node, |v| v["queued"].is_u64()).await
}

/// A sample of the `/metrics` of the instance at `address` (0 if absent).
pub async fn metric_at(http: &reqwest::Client, address: &str, name: &str, labels: &[&str]) -> f64 {
    let text = get_text_at(http, address, "/metrics").await;
    sample(&text, name, labels).unwrap_or(0.0)
}

impl TestApp {
    /// A Prometheus sample of this instance's `/metrics` (0 if absent).
    pub async fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        metric_at(&self.http, &self.address, name, labels).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A `GET` whose whole response (status, headers, body) the test reads.
    pub async fn get_response(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("request")
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        json_answer(self.http.post(self.url(path)).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        json_answer(self.http.delete(self.url(path))).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        json_answer(self.http.get(self.url(path))).await
    }

    /// A page: status and HTML. Redirects are not followed.
    pub async fn page(&self, path: &str) -> (StatusCode, String) {
        text_answer(self.http.get(self.url(path))).await
    }

    /// Posts a form as a browser without JavaScript would.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
        let request = self
            .http
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(fields).expect("form"));
        text_answer(request).await
    }

    pub async fn create(&self, body: &Value) -> (StatusCode, Value) {
        self.post("/create-customer", body).await
    }

    /// Creates a record that must be stored on its home node (201).
    pub async fn stored(&self, body: &Value) -> Value {
        let (code, answer) = self.create(body).await;
        assert_eq!(code, StatusCode::CREATED, "{answer}");
        answer
    }

    /// Creates a record that must be queued for its home node (202).
    pub async fn queued(&self, body: &Value) -> Value {
        let (code, answer) = self.create(body).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{answer}");
        answer
    }

    /// Creates `n` customers `<prefix><i>` at `zip`, 16 at a time, each
    /// of which must be queued (202).
    pub async fn queue_many(&self, prefix: &str, n: usize, zip: u32) {
        let ids: Vec<usize> = (0..n).collect();
        for chunk in ids.chunks(16) {
            let calls = chunk.iter().map(|i| async move {
                self.queued(&customer(&format!("{prefix}{i:05}"), zip))
                    .await;
            });
            futures::future::join_all(calls).await;
        }
    }

    pub async fn set_status(&self, node: &str, status: &str) {
        let (code, body) = self
            .post("/node-status", &json!({"node_id": node, "status": status}))
            .await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert_eq!(body["status"], status);
    }
}

pub async fn json_answer(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let r = request.send().await.expect("request");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

pub async fn text_answer(request: reqwest::RequestBuilder) -> (StatusCode, String) {
    let r = request.send().await.expect("request");
    let status = r.status();
    (status, r.text().await.unwrap_or_default())
}

impl TestApp {
    /// `POST /sign-in` at `address` as the page's form sends it.
    pub async fn sign_in_at(&self, address: &str, token: &str, next: &str) -> reqwest::Response {
        self.http
            .post(format!("{address}/sign-in"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string([("token", token), ("next", next)]).expect("form"))
            .send()
            .await
            .expect("sign in")
    }

    /// Signs in at `address` with the right `token`: the `name=value` of
    /// the session cookie, which is HttpOnly and SameSite=Strict and is not
    /// the token.
    pub async fn session_at(&self, address: &str, token: &str) -> String {
        let r = self.sign_in_at(address, token, "/create-records").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()["location"], "/create-records");
        let set_cookie = r.headers()["set-cookie"].to_str().expect("ascii");
        assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
        assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
        assert!(!set_cookie.contains(token), "the cookie is not the token");
        set_cookie.split(';').next().expect("cookie").to_owned()
    }

    /// Signs out with `cookie` at `address`: the browser is told to drop it.
    pub async fn sign_out_at(&self, address: &str, cookie: &str) {
        let out = self
            .http
            .post(format!("{address}/sign-out"))
            .header("cookie", cookie)
            .send()
            .await
            .expect("sign out");
        assert_eq!(out.status(), StatusCode::SEE_OTHER);
        let set_cookie = out.headers()["set-cookie"].to_str().expect("ascii");
        assert!(set_cookie.contains("Max-Age=0"), "{set_cookie}");
    }
}

/// A response's `retry-after`, in seconds.
pub fn retry_after(r: &reqwest::Response) -> Option<u64> {
    r.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok())
}
