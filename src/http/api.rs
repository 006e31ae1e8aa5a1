//! The JSON API handlers.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use futures::future::join_all;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, JsonObject};
use super::openapi::{
    CustomerBody, ErrorBody, FilterBody, FilterParams, Health, JsonBodyErrors, NodeReadiness,
    NodeStatusAnswer, NodeStatusBody, Readiness, RepairAnswer, RepairParams, RepairUnavailable,
};
use crate::domain::{Customer, FieldError, NodeId, NodeStatus, RecordFilter};
use crate::domain::NodeView;
use crate::reads::FilterResult;
use crate::writes::{Placement, WriteReceipt};

/// `POST /create-customer`: 201 stored, 202 queued, 422 invalid, 409 refused
/// by the home node, 503 neither stored nor queued.
#[utoipa::path(post, path = "/create-customer", tag = "records",
    request_body = CustomerBody,
    responses(
        (status = 201, description = "Stored on its home node (the replica: see `replica`)", body = WriteReceipt),
        (status = 202, description = "Home node unavailable: queued in its Kafka topic, replayed when it is back", body = WriteReceipt),
        JsonBodyErrors,
        (status = 409, description = "Refused for good by the home node (e.g. a unique index); nothing written", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
        (status = 503, description = "Neither stored nor queued, nothing written (see the README for the unknown-outcome cases); or server busy (too many writes in progress, nothing done)", body = ErrorBody),
    ))]
pub async fn create_customer(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<(StatusCode, Json<WriteReceipt>), ApiError> {
    let customer = Customer::parse(&body)?;
    let receipt = state.writes.create_customer(customer).await?;
    let status = match receipt.status {
        Placement::Stored => StatusCode::CREATED,
        _ => StatusCode::ACCEPTED,
    };
    Ok((status, Json(receipt)))
}

/// `GET /filter-records?zipRangeMin=..&city=..` (query parameters).
#[utoipa::path(get, path = "/filter-records", tag = "records",
    params(FilterParams),
    responses(
        (status = 200, description = "One page of the matching records of every region that answered", body = FilterResult),
        (status = 400, description = "Malformed query string", body = ErrorBody),
        (status = 422, description = "A parameter is invalid", body = ErrorBody),
        (status = 503, description = "Server busy (too many reads in progress); retry shortly", body = ErrorBody),
    ))]
pub async fn filter_records_query(
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<FilterResult>, ApiError> {
    let Query(params) = query?;
    let filter = RecordFilter::parse(|k| params.get(k).cloned(), &state.regions)?;
    Ok(Json(state.reads.filter(&filter).await))
}

/// `POST /filter-records` with the same parameters in a JSON body (the
/// seed's form).
#[utoipa::path(post, path = "/filter-records", tag = "records",
    request_body = FilterBody,
    responses(
        (status = 200, description = "As GET", body = FilterResult),
        JsonBodyErrors,
        (status = 422, description = "A parameter is invalid", body = ErrorBody),
        (status = 503, description = "Server busy (too many reads in progress); retry shortly", body = ErrorBody),
    ))]
pub async fn filter_records_json(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<Json<FilterResult>, ApiError> {
    let filter = RecordFilter::parse_json(&body, &state.regions)?;
    Ok(Json(state.reads.filter(&filter).await))
}

/// `POST /node-status {"node_id", "status"}`. Becoming available starts the
/// node's replay in the background; this returns at once.
#[utoipa::path(post, path = "/node-status", tag = "nodes",
    request_body = NodeStatusBody,
    security((), ("admin_token" = [])),
    responses(
        (status = 200, description = "Saved in Redis (source `manual`) and in effect on this instance", body = NodeStatusAnswer),
        JsonBodyErrors,
        (status = 401, description = "ADMIN_TOKEN is set and the request has no valid `Authorization: Bearer` token", body = ErrorBody),
        (status = 403, description = "A signed-in page's call without its CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown node", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
        (status = 503, description = "Redis could not save the status, or server busy", body = ErrorBody),
    ))]
pub async fn set_node_status(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<Json<NodeStatusAnswer>, ApiError> {
    let node = string_field(&body, "node_id")?;
    let status = string_field(&body, "status")?;
    let node = state
        .regions
        .get(node.trim())
        .map(|r| r.id.clone())
        .ok_or_else(|| ApiError::NotFound(format!("unknown node {node:?}")))?;
    let status: NodeStatus = status
        .trim()
        .parse()
        .map_err(|e: crate::domain::BadStatus| FieldError::new("status", e.to_string()))?;
    state.statuses.set(&node, status).await.map_err(|e| {
        tracing::warn!(%node, error = %e, "status not saved");
        ApiError::Unavailable(format!("could not save the status: {}", e.short_reason()))
    })?;
    let queued = state.monitor.queued(&node).await;
    let (source, since) = state.statuses.source(&node);
    Ok(Json(NodeStatusAnswer {
        node_id: node,
        status,
        queued,
        source,
        since: since.and_then(crate::domain::rfc3339),
    }))
}

/// `GET /node-statuses`: `{"region_1": "available", ...}` (the seed's shape),
/// as this instance currently acts on them.
#[utoipa::path(get, path = "/node-statuses", tag = "nodes",
    responses((status = 200, description = "Every node's status, by node id",
        body = BTreeMap<String, NodeStatus>),
        (status = 503, description = "Server busy (too many reads in progress); retry shortly", body = ErrorBody),
    ))]
pub async fn node_statuses(State(state): State<AppState>) -> Json<BTreeMap<NodeId, NodeStatus>> {
    Json(state.statuses.all().into_iter().collect())
}

/// `GET /nodes`: every node with its status (and who set it, when), queue
/// size and hosted replicas.
#[utoipa::path(get, path = "/nodes", tag = "nodes",
    responses((status = 200, description = "Every node, in region order", body = Vec<NodeView>),
        (status = 503, description = "Server busy (too many reads in progress); retry shortly", body = ErrorBody),
    ))]
pub async fn nodes(State(state): State<AppState>) -> Json<Vec<NodeView>> {
    Json(state.monitor.snapshot().await)
}

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// `GET /readyz`: 200 when Redis and Kafka (with every node topic) answer;
/// each node's MongoDB state is reported but does not make the process
/// unready, since a node being down is what regiondb is built for. The
/// checks run at most once per [`READY_CACHE`]: callers in between (and
/// while a check runs) get its answer, so polling cannot multiply the calls
/// made to Kafka, MongoDB and Redis.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Redis and Kafka answer", body = Readiness),
        (status = 503, description = "Redis or Kafka does not answer", body = Readiness),
    ))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let mut cached = state.readiness.lock().await;
    if let Some((at, code, body)) = cached.as_ref()
        && at.elapsed() < READY_CACHE
    {
        return (*code, Json(body.clone()));
    }
    let (code, body) = check_readiness(&state).await;
    *cached = Some((std::time::Instant::now(), code, body.clone()));
    (code, Json(body))
}

/// How long one readiness answer is reused.
pub const READY_CACHE: std::time::Duration = std::time::Duration::from_secs(1);

async fn check_readiness(state: &AppState) -> (StatusCode, Readiness) {
    let (redis, kafka, mongo) = tokio::join!(
        state.statuses.ping(),
        state.hints.check(&state.nodes),
        join_all(
            state
                .stores
                .iter()
                .map(|s| async move { (s.node().clone(), s.ping().await) })
        ),
    );
    let ready = redis.is_ok() && kafka.is_ok();
    let word = |r: Result<(), String>| r.map_or_else(|e| format!("error: {e}"), |()| "ok".into());
    let nodes = mongo
        .into_iter()
        .map(|(node, ping)| {
            let status = state.statuses.status(&node);
            let mongo = word(ping.map_err(|e| e.short_reason()));
            (node.as_str().to_owned(), NodeReadiness { status, mongo })
        })
        .collect();
    let body = Readiness {
        status: if ready { "ready" } else { "not ready" }.into(),
        redis: word(redis.map_err(|e| {
            tracing::warn!(error = %e, "readiness: redis");
            e.short_reason()
        })),
        kafka: word(kafka.map_err(|e| {
            tracing::warn!(error = %e, "readiness: kafka");
            e.short_reason()
        })),
        nodes,
    };
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, body)
}

/// `GET /metrics`: Prometheus text format. Node gauges come from the shared
/// node overview (at most about a second old).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format",
        content_type = "text/plain", body = String),
        (status = 503, description = "Server busy (too many reads in progress); retry shortly", body = ErrorBody),
    ))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    crate::metrics::nodes(&state.monitor.current().await);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

pub async fn method_not_allowed() -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({"error": "method not allowed on this endpoint"})),
    )
}

fn string_field(body: &serde_json::Map<String, Value>, field: &str) -> Result<String, FieldError> {
    match body.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(FieldError::new(field, format!("{field} must not be empty"))),
        None | Some(Value::Null) => Err(FieldError::new(field, format!("{field} is required"))),
        Some(_) => Err(FieldError::new(field, format!("{field} must be a string"))),
    }
}

/// `POST /admin/repair[?region=R][&dry_run=true]`: runs a repair now and
/// answers its report per region; 503 if a region could not be fully
/// compared.
#[utoipa::path(post, path = "/admin/repair", tag = "nodes",
    params(RepairParams),
    security((), ("admin_token" = [])),
    responses(
        (status = 200, description = "Every region compared (and fixed unless dry_run)", body = RepairAnswer),
        (status = 400, description = "Malformed query string", body = ErrorBody),
        (status = 401, description = "ADMIN_TOKEN is set and the request has no valid `Authorization: Bearer` token", body = ErrorBody),
        (status = 403, description = "A signed-in page's call without its CSRF token", body = ErrorBody),
        (status = 422, description = "Unknown region or bad dry_run", body = ErrorBody),
        (status = 503, description = "A node could not be read (the report says which), or the server is busy (an error)", body = RepairUnavailable),
    ))]
pub async fn admin_repair(
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<(StatusCode, Json<RepairAnswer>), ApiError> {
    let Query(params) = query?;
    let only = match params.get("region").map(|r| r.trim()) {
        None | Some("") => None,
        Some(r) => Some(
            state
                .regions
                .get(r)
                .map(|region| region.id.clone())
                .ok_or_else(|| FieldError::new("region", format!("unknown region {r:?}")))?,
        ),
    };
    let dry_run = match params.get("dry_run").map(|v| v.trim()) {
        None | Some("" | "false" | "0") => false,
        Some("true" | "1") => true,
        Some(other) => {
            return Err(FieldError::new(
                "dry_run",
                format!("dry_run must be true or false, got {other:?}"),
            )
            .into());
        }
    };
    let reports =
        crate::repair::repair(&state.regions, &state.stores, only.as_ref(), dry_run).await;
    if !dry_run {
        crate::repair::RepairRecord::new(
            crate::repair::RepairTrigger::Api,
            Vec::new(),
            reports.clone(),
        )
        .save(&state.statuses)
        .await;
    }
    let code = if reports.iter().any(|r| r.unreachable.is_some()) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    Ok((
        code,
        Json(RepairAnswer {
            dry_run,
            regions: reports,
        }),
    ))
}
