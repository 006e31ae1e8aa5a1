//! The `Host` allow-list (`ALLOWED_HOSTS`): a page on a name the attacker
//! owns, re-pointed at this machine (DNS rebinding), would otherwise read
//! every record of a localhost-bound demo. Absolute-form request targets
//! are judged by their authority, as HTTP/1.1 says.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

use super::{Policy, refuse, request_host};

pub async fn check_host(State(policy): State<Policy>, req: Request, next: Next) -> Response {
    let Some(host) = request_host(&req) else {
        crate::metrics::request_refused("host");
        let message = "the request has no Host header (or one that is not ASCII)".to_owned();
        return refuse(
            req.headers(),
            StatusCode::BAD_REQUEST,
            "host_not_allowed",
            "No host",
            message,
        );
    };
    if policy.allowed_hosts.allows(host) {
        return next.run(req).await;
    }
    crate::metrics::request_refused("host");
    tracing::info!(host, "request for a host not in ALLOWED_HOSTS refused");
    let message = format!(
        "this service does not answer for the host {host:?}: add it to ALLOWED_HOSTS \
         (or set PUBLIC_URL) if that is how users reach it"
    );
    refuse(
        req.headers(),
        StatusCode::MISDIRECTED_REQUEST,
        "host_not_allowed",
        "Unknown host",
        message,
    )
}
