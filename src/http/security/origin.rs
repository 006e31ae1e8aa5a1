//! Cross-site request refusal, for every state-changing method (anything
//! but GET, HEAD and OPTIONS), the way Go's `http.CrossOriginProtection`
//! does it:
//!
//! 1. an `Origin` equal to `PUBLIC_URL`'s origin passes;
//! 2. a `Sec-Fetch-Site` header (sent by every current browser) passes only
//!    as `same-origin` or `none` (typed by the user); `same-site` and
//!    `cross-site` are refused;
//! 3. without it, an `Origin` passes only if its host is the request's
//!    `Host`;
//! 4. with neither header the request is not from a browser page (curl, an
//!    API client) and passes: such a client sends what its user wants.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::{Policy, refuse, request_host};

pub async fn check_origin(State(policy): State<Policy>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let host = request_host(&req);
    let Some(why) = cross_site(req.headers(), host, policy.public_origin.as_deref()) else {
        return next.run(req).await;
    };
    crate::metrics::request_refused("cross_site");
    tracing::info!(method = %req.method(), uri = %req.uri(), why, "cross-site request refused");
    let message = format!(
        "cross-site request refused: it was sent by a page of another site ({why}); \
         changes can only be made from regiondb's own pages or by API clients such as curl"
    );
    refuse(
        req.headers(),
        StatusCode::FORBIDDEN,
        "cross_site",
        "Refused: sent from another site",
        message,
    )
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Why the request counts as cross-site, or `None` if it does not.
fn cross_site(headers: &HeaderMap, host: Option<&str>, public: Option<&str>) -> Option<String> {
    let origin = header_str(headers, header::ORIGIN.as_str()).map(str::trim);
    if let (Some(origin), Some(public)) = (origin, public)
        && origin.eq_ignore_ascii_case(public)
    {
        return None;
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => None,
            other => Some(format!(
                "Sec-Fetch-Site: {}",
                String::from_utf8_lossy(other)
            )),
        };
    }
    let origin = origin?;
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .filter(|rest| !rest.is_empty() && !rest.contains('/'));
    match (origin_host, host) {
        (Some(o), Some(h)) if o.eq_ignore_ascii_case(h) => None,
        _ => Some(format!("Origin: {origin}")),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_same_origin_browser_requests_and_non_browsers_pass() {
        let host = Some("127.0.0.1:8000");
        let check =
            |pairs: &[(&'static str, &str)], public| cross_site(&headers(pairs), host, public);
        // Not a browser, or the browser says same-origin / user-typed.
        assert_eq!(check(&[], None), None);
        assert_eq!(check(&[("sec-fetch-site", "same-origin")], None), None);
        assert_eq!(check(&[("sec-fetch-site", "none")], None), None);
        assert_eq!(check(&[("origin", "http://127.0.0.1:8000")], None), None);
        assert_eq!(check(&[("origin", "HTTP://127.0.0.1:8000")], None), None);
        // Behind a proxy that rewrites Host: PUBLIC_URL's origin passes.
        let public = Some("https://db.example.com");
        let proxied = [
            ("origin", "https://db.example.com"),
            ("sec-fetch-site", "cross-site"),
        ];
        assert_eq!(check(&proxied, public), None);
        // Everything else is refused.
        for pairs in [
            &[("sec-fetch-site", "cross-site")][..],
            &[("sec-fetch-site", "same-site")],
            &[
                ("sec-fetch-site", "cross-site"),
                ("origin", "http://127.0.0.1:8000"),
            ],
            &[("origin", "http://evil.example")],
            &[("origin", "null")],
            &[("origin", "http://127.0.0.1:8001")],
            &[("origin", "http://127.0.0.1:8000/x")],
        ] {
            assert!(check(pairs, None).is_some(), "{pairs:?}");
            assert!(check(pairs, public).is_some(), "{pairs:?}");
        }
    }
}
