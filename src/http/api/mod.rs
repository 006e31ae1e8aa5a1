//! The JSON API, one file a resource, each with the bodies it reads and
//! answers beside its handlers: `customers` (writes), `records` (reads),
//! `nodes` (statuses and the overview), `admin` (repair), `sessions`
//! (ending every page session), `ops` (health,
//! readiness, metrics). Every route is registered through its
//! `#[utoipa::path]`, which also describes it in `/openapi.json`.

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::{AppState, auth, events, openapi};
use crate::config::HttpLimits;
use crate::domain::FieldError;

pub mod admin;
pub mod customers;
pub mod nodes;
pub mod ops;
pub mod records;
pub mod sessions;

pub use ops::Readiness;

/// The JSON API's routes and their document. Writes and reads are limited
/// as classes; metrics, health, readiness and the event stream (capped on
/// its own) are not: an operator needs them most when the service is busy.
/// The admin calls check the token before anything else.
pub(super) fn routes(
    limits: &HttpLimits,
    guard: auth::Guard,
) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let writes = OpenApiRouter::new()
        .routes(routes!(customers::create_customer))
        .route_layer(class_limit!(limits.max_requests_per_class, "writes"));
    let admin = OpenApiRouter::new()
        .routes(routes!(nodes::set_node_status))
        .routes(routes!(nodes::set_node_replay))
        .routes(routes!(customers::delete_customer))
        .routes(routes!(admin::admin_repair))
        .routes(routes!(sessions::end_sessions))
        .route_layer(class_limit!(limits.max_requests_per_class, "admin calls"))
        .route_layer(middleware::from_fn_with_state(guard, auth::require_admin));
    let reads = OpenApiRouter::new()
        .routes(routes!(
            records::filter_records_query,
            records::filter_records_json
        ))
        .routes(routes!(customers::lookup_customer))
        .routes(routes!(nodes::node_statuses))
        .routes(routes!(nodes::nodes))
        .route_layer(class_limit!(limits.max_requests_per_class, "reads"));
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(writes)
        .merge(admin)
        .merge(reads)
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(events::events))
        .split_for_parts()
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

pub async fn method_not_allowed() -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({"error": "method not allowed on this endpoint", "code": "method_not_allowed"})),
    )
}

/// A yes-or-no parameter: `true`/`1` or `false`/`0` (empty or absent:
/// false).
pub(super) fn flag() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["true", "false", "1", "0", ""]))
        .build()
}

/// The value of the yes-or-no parameter `name` (see [`flag`]).
pub(super) fn flag_value(
    params: &std::collections::HashMap<String, String>,
    name: &str,
) -> Result<bool, FieldError> {
    match params.get(name).map(|v| v.trim()) {
        None | Some("" | "false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(other) => Err(FieldError::new(
            name,
            format!("{name} must be true or false, got {other:?}"),
        )),
    }
}

fn bool_field(body: &serde_json::Map<String, Value>, field: &str) -> Result<bool, FieldError> {
    match body.get(field) {
        Some(Value::Bool(b)) => Ok(*b),
        None | Some(Value::Null) => Err(FieldError::new(field, format!("{field} is required"))),
        Some(_) => Err(FieldError::new(
            field,
            format!("{field} must be true or false"),
        )),
    }
}

fn string_field(body: &serde_json::Map<String, Value>, field: &str) -> Result<String, FieldError> {
    match body.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(FieldError::new(field, format!("{field} must not be empty"))),
        None | Some(Value::Null) => Err(FieldError::new(field, format!("{field} is required"))),
        Some(_) => Err(FieldError::new(field, format!("{field} must be a string"))),
    }
}
