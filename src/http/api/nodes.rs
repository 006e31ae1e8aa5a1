//! The node routes: `POST /node-status` (an operator's switch),
//! `POST /node-replay` (pausing and resuming a node's replay),
//! `GET /node-statuses` (the seed's shape) and `GET /nodes` (the overview).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::{bool_field, string_field};
use crate::domain::{NodeId, NodeStatus, NodeView, StatusSource};
use crate::http::AppState;
use crate::http::actions::{pause_replay, switch_node};
use crate::http::error::{ApiError, JsonObject};
use crate::http::openapi::{AdminErrors, ErrorBody, JsonBodyErrors, ReadsBusy};

/// `POST /node-status {"node_id", "status"}`. Becoming available starts the
/// node's replay in the background; this returns at once.
#[utoipa::path(post, path = "/node-status", tag = "nodes",
    request_body = NodeStatusBody,
    security((), ("admin_token" = [])),
    responses(
        (status = 200, description = "Saved in Redis (source `manual`) and in effect on this instance", body = NodeStatusAnswer),
        JsonBodyErrors,
        AdminErrors,
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
    let (node, status) = switch_node(&state, &node, &status).await?;
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

/// `POST /node-replay {"node_id", "paused"}`: pauses (`true`) or resumes
/// (`false`) the replay of the node's queue on every instance (a
/// maintenance window: hints wait, reads keep going to the other copy).
/// A batch being applied is finished first.
#[utoipa::path(post, path = "/node-replay", tag = "nodes",
    request_body = NodeReplayBody,
    security((), ("admin_token" = [])),
    responses(
        (status = 200, description = "Saved in Redis and in effect here; the node as `GET /nodes` shows it", body = NodeView),
        JsonBodyErrors,
        AdminErrors,
        (status = 404, description = "Unknown node", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
        (status = 503, description = "Redis could not save the pause, or server busy", body = ErrorBody),
    ))]
pub async fn set_node_replay(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<Json<NodeView>, ApiError> {
    let node = string_field(&body, "node_id")?;
    let paused = bool_field(&body, "paused")?;
    let node = pause_replay(&state, &node, paused).await?;
    Ok(Json(state.monitor.view(&node).await))
}

/// `GET /node-statuses`: `{"region_1": "available", ...}` (the seed's shape),
/// as this instance currently acts on them.
#[utoipa::path(get, path = "/node-statuses", tag = "nodes",
    responses((status = 200, description = "Every node's status, by node id",
        body = BTreeMap<String, NodeStatus>),
        ReadsBusy,
    ))]
pub async fn node_statuses(State(state): State<AppState>) -> Json<BTreeMap<NodeId, NodeStatus>> {
    Json(state.statuses.all().into_iter().collect())
}

/// `GET /nodes`: every node with its status (and who set it, when), its
/// queue (size, age, replay rate, time to drain), dead letters and hosted
/// replicas.
#[utoipa::path(get, path = "/nodes", tag = "nodes",
    responses((status = 200, description = "Every node, in region order", body = Vec<NodeView>),
        ReadsBusy,
    ))]
pub async fn nodes(State(state): State<AppState>) -> Json<Vec<NodeView>> {
    Json(state.monitor.snapshot().await)
}

/// `POST /node-status`.
#[derive(Debug, ToSchema)]
pub struct NodeStatusBody {
    #[schema(example = "region_2")]
    pub node_id: String,
    pub status: NodeStatus,
}

/// `POST /node-replay`.
#[derive(Debug, ToSchema)]
pub struct NodeReplayBody {
    #[schema(example = "region_2")]
    pub node_id: String,
    /// `true` pauses, `false` resumes.
    pub paused: bool,
}

/// The answer to `POST /node-status`.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeStatusAnswer {
    pub node_id: NodeId,
    pub status: NodeStatus,
    /// Records waiting in the node's Kafka topic; null if Kafka could not
    /// be asked.
    pub queued: Option<u64>,
    /// Always `manual`: an operator's switch.
    pub source: StatusSource,
    /// When it was set (RFC 3339, UTC).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
}
