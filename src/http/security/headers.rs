//! The security headers, added to every answer that does not set its own.
//!
//! The pages load only their own script and stylesheet (`/static/...`,
//! no inline code) and talk only to this service (`fetch`, `EventSource`),
//! so the policy allows exactly that; `data:` images are the blank
//! favicon. Nothing may frame a page (the switches cannot be clickjacked).

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use super::over_https;

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Every answer's headers.
const ALWAYS: [(HeaderName, &str); 6] = [
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    // Not `no-referrer`: with it, browsers send `Origin: null` on a page's
    // own form posts, which `origin` must then refuse.
    (header::REFERRER_POLICY, "same-origin"),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    ),
    (
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    ),
];

/// Over HTTPS (as a proxy says): browsers keep to HTTPS for a year.
const HSTS: &str = "max-age=31536000";

pub async fn set_headers(req: Request, next: Next) -> Response {
    let https = over_https(req.headers());
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    for (name, value) in ALWAYS {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    if https {
        headers
            .entry(header::STRICT_TRANSPORT_SECURITY)
            .or_insert(HeaderValue::from_static(HSTS));
    }
    response
}
