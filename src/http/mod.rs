//! HTTP: the router, its layers and the shared state. The JSON API lives in
//! `api` (one file a resource), the server-rendered pages in `pages` (one
//! file a page); what both do is in `actions`, the one error type in
//! `error`, the admin token and sessions in `auth`, the guards every
//! request passes (hosts, origins, security headers) in `security`.

/// A `route_layer` that sheds past `max` requests in progress in a class:
/// more get a 503 at once (never queued), so a flood of one kind cannot
/// hold every worker. (A macro: the layer's type is unwieldy to name.)
macro_rules! class_limit {
    ($max:expr, $class:literal) => {
        tower::ServiceBuilder::new()
            .layer(axum::error_handling::HandleErrorLayer::new(
                |_: tower::BoxError| async {
                    $crate::http::ApiError::Busy(
                        concat!(
                            "server busy: too many ",
                            $class,
                            " in progress; retry shortly"
                        )
                        .to_owned(),
                    )
                },
            ))
            .load_shed()
            .layer(tower::limit::GlobalConcurrencyLimitLayer::new($max))
    };
}

mod actions;
pub mod api;
mod assets;
pub mod auth;
mod body;
mod error;
mod events;
pub mod openapi;
mod pages;
pub mod security;
pub mod server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;

use tokio::sync::Semaphore;

use crate::backlog::Backlogs;
use crate::config::HttpLimits;
use crate::domain::{NodeId, RegionMap};
use crate::hints::HintLog;
use crate::monitor::Monitor;
use crate::nodes::NodeStatuses;
use crate::reads::ReadPath;
use crate::store::Stores;
use crate::writes::WritePath;

/// Largest request body accepted (a customer is a few hundred bytes).
pub const BODY_LIMIT: usize = 64 * 1024;
/// Backstop only: every backing call has its own, shorter timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub regions: RegionMap,
    pub nodes: Vec<NodeId>,
    pub statuses: Arc<NodeStatuses>,
    pub stores: Arc<Stores>,
    pub hints: Arc<HintLog>,
    pub writes: Arc<WritePath>,
    pub reads: Arc<ReadPath>,
    pub monitor: Arc<Monitor>,
    pub backlogs: Arc<Backlogs>,
    /// Renders `GET /metrics`.
    pub metrics: PrometheusHandle,
    pub limits: HttpLimits,
    /// One permit per open `GET /events` stream.
    pub event_streams: Arc<Semaphore>,
    /// Fires when shutdown begins, so long-lived responses (the event
    /// stream) end and in-flight requests can drain.
    pub stopping: CancellationToken,
    /// The admin token, if set (switches, repairs and deletes need it),
    /// and the sign-in state in Redis (see `auth`).
    pub guard: auth::Guard,
    /// Allowed hosts and this service's public origin (see `security`).
    pub web: security::Policy,
    /// The last `GET /readyz` answer and when it was made.
    pub readiness: Arc<tokio::sync::Mutex<Option<ReadyAnswer>>>,
}

impl AppState {
    /// Looking one record up with every copy (see `lookup`).
    pub fn lookup(&self) -> crate::lookup::Lookup<'_> {
        crate::lookup::Lookup {
            regions: &self.regions,
            stores: &self.stores,
            statuses: &self.statuses,
            backlogs: &self.backlogs,
        }
    }
}

pub type ReadyAnswer = (Instant, StatusCode, api::Readiness);

pub fn router(state: AppState) -> Router {
    let (api, document) = api::routes(&state.limits, state.guard.clone());
    let nodes: Vec<&str> = state.nodes.iter().map(NodeId::as_str).collect();
    // Serialized once: every request serves the same bytes.
    let document = axum::body::Bytes::from(
        serde_json::to_vec(&openapi::with_regions(&document, &nodes)).unwrap_or_default(),
    );
    let pages = pages::routes(state.limits.max_requests_per_class);
    Router::new()
        .merge(api)
        .merge(pages)
        .route(
            "/openapi.json",
            get(move || async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    document,
                )
            }),
        )
        .route("/static/{name}", get(assets::serve))
        .route_layer(middleware::from_fn(track))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        // Outside the class limits: a body is in before a permit is taken.
        .layer(middleware::from_fn(body::read_first))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        // Before anything reads the body: the host, then the origin; the
        // security headers go on every answer, refusals included.
        .layer(middleware::from_fn_with_state(state.web.clone(), security::check_origin))
        .layer(middleware::from_fn_with_state(state.web.clone(), security::check_host))
        .layer(middleware::from_fn(security::set_headers))
        // Every log line of a request carries its id (the client's
        // `x-request-id`, or a new UUID), which the response echoes.
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req
                .headers()
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            tracing::info_span!("request", method = %req.method(), uri = %req.uri(), request_id = %id)
        }).on_response(log_response))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

const REQUEST_ID: &str = "x-request-id";

/// One line per answered request: at DEBUG for a success (a line per write
/// costs more than the write's own CPU under load), at INFO for the rest.
fn log_response(response: &Response, latency: Duration, _: &tracing::Span) {
    let status = response.status();
    let ms = latency.as_millis();
    if status.is_success() || status.is_redirection() {
        tracing::debug!(latency_ms = ms, status = status.as_u16(), "answered");
    } else {
        tracing::info!(latency_ms = ms, status = status.as_u16(), "answered");
    }
}

/// Counts and times every request that matched a route, by route template
/// (never the raw path, so ids do not become labels).
async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = match *req.method() {
        Method::GET | Method::POST | Method::HEAD | Method::PUT | Method::DELETE => {
            req.method().as_str().to_owned()
        }
        _ => "other".to_owned(),
    };
    let started = Instant::now();
    let response = next.run(req).await;
    crate::metrics::http_request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_operation_with_a_json_body_documents_its_unreadable_body_errors() {
        let limits = HttpLimits {
            max_connections: 1,
            header_timeout: Duration::from_secs(1),
            max_event_streams: 1,
            max_requests_per_class: 1,
        };
        // Never connected: the document needs no Redis.
        let conn = crate::nodes::RedisLink::unconnected("redis://127.0.0.1:1").expect("url");
        let web = crate::config::Config::from_lookup(|_| None)
            .expect("defaults")
            .web;
        let guard = auth::Guard {
            token: None,
            access: crate::access::Access::new(conn, web.sign_in),
            exposed: false,
        };
        let (_, document) = api::routes(&limits, guard);
        let doc = serde_json::to_value(document).expect("document");
        let mut with_body = 0;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("operations") {
                if op.get("requestBody").is_none() {
                    continue;
                }
                with_body += 1;
                for status in ["400", "408", "413", "415"] {
                    let schema = &op["responses"][status]["content"]["application/json"]["schema"];
                    assert_eq!(
                        schema["$ref"], "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
        assert_eq!(
            with_body, 4,
            "create-customer, node-status, node-replay, POST filter-records"
        );
    }
}
