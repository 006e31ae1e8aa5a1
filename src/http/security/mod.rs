//! The guards every request passes before any handler, outermost first:
//!
//! - `headers`: the security headers on every answer (CSP, framing,
//!   nosniff, referrer, cross-origin isolation; HSTS over HTTPS);
//! - `hosts`: the `Host` must be one this service answers
//!   (`ALLOWED_HOSTS`), so a DNS-rebound name cannot read it (421);
//! - `origin`: a state-changing request a browser sends from another site
//!   is refused (403), with or without an admin token.
//!
//! A refusal is JSON `{"error": ...}`, or a short page when the client
//! asked for HTML (a browser's navigation or form post).

use std::sync::Arc;

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::config::WebConfig;

mod headers;
mod hosts;
mod origin;

pub use headers::{CONTENT_SECURITY_POLICY, set_headers};
pub use hosts::check_host;
pub use origin::check_origin;

/// What the host and origin checks compare against.
pub type Policy = Arc<WebConfig>;

/// Whether the request came over HTTPS through a proxy that says so
/// (`X-Forwarded-Proto: https`).
pub fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// The host a request is for: an absolute-form target's authority (as
/// HTTP/1.1 says), else its `Host` header (`None`: none, or not ASCII).
fn request_host(req: &axum::extract::Request) -> Option<&str> {
    match req.uri().authority() {
        Some(authority) => Some(authority.as_str()),
        None => req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok()),
    }
}

/// Whether the client would rather read HTML than JSON.
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// A refusal, as JSON (with its `code`) or as a page (`title` and
/// `message`).
fn refuse(
    headers: &HeaderMap,
    status: StatusCode,
    code: &'static str,
    title: &str,
    message: String,
) -> Response {
    if wants_html(headers) {
        return super::pages::refused(status, title, message);
    }
    (status, Json(json!({"error": message, "code": code}))).into_response()
}
