//! HTTP: the router, its layers and the shared state. Handlers live in one
//! module per resource.

mod api;
mod assets;
mod error;
mod events;
mod pages;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;

use crate::backlog::Backlogs;
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
    /// Fires when shutdown begins, so long-lived responses (the event
    /// stream) end and in-flight requests can drain.
    pub stopping: CancellationToken,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::index))
        .route(
            "/create-records",
            get(pages::create_form).post(pages::create_submit),
        )
        .route(
            "/create-records/node-status",
            post(pages::node_status_submit),
        )
        .route("/view-records", get(pages::view))
        .route("/events", get(events::events))
        .route("/static/{name}", get(assets::serve))
        .route("/create-customer", post(api::create_customer))
        .route(
            "/filter-records",
            get(api::filter_records_query).post(api::filter_records_json),
        )
        .route("/node-status", post(api::set_node_status))
        .route("/node-statuses", get(api::node_statuses))
        .route("/nodes", get(api::nodes))
        .route("/admin/repair", post(api::admin_repair))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
