//! What the JSON API and the pages both do, written once: an operator's
//! node switch, a replay's pause, a delete, and the status codes of
//! accepted writes and deletes.

use axum::http::StatusCode;

use super::AppState;
use super::error::ApiError;
use crate::domain::{BadStatus, CustomerId, FieldError, NodeId, NodeStatus};
use crate::nodes::StatusError;
use crate::writes::{Placement, WriteReceipt};

/// Deletes the customer `id` (see `WritePath::delete_customer`); `None`
/// when no region holds it.
pub async fn delete(state: &AppState, id: CustomerId) -> Result<Option<WriteReceipt>, ApiError> {
    Ok(state.writes.delete_customer(id).await?)
}

/// 200 when the home tombstone is stored, 202 when it is queued.
pub fn delete_status(receipt: &WriteReceipt) -> StatusCode {
    match receipt.status {
        Placement::Stored => StatusCode::OK,
        _ => StatusCode::ACCEPTED,
    }
}

/// 201 when the home copy is stored, 202 when it is queued for its node.
pub fn write_status(receipt: &WriteReceipt) -> StatusCode {
    match receipt.status {
        Placement::Stored => StatusCode::CREATED,
        _ => StatusCode::ACCEPTED,
    }
}

/// Why a switch was not made.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    #[error("unknown node {0:?}")]
    UnknownNode(String),
    #[error(transparent)]
    BadStatus(#[from] BadStatus),
    #[error("could not save the status: {}", .source.short_reason())]
    NotSaved { node: NodeId, source: StatusError },
    #[error("could not save the pause: {}", .source.short_reason())]
    PauseNotSaved { node: NodeId, source: StatusError },
}

impl From<SwitchError> for ApiError {
    fn from(e: SwitchError) -> Self {
        match e {
            SwitchError::UnknownNode(_) => ApiError::NotFound(e.to_string()),
            SwitchError::BadStatus(e) => FieldError::new("status", e.to_string()).into(),
            SwitchError::NotSaved { .. } | SwitchError::PauseNotSaved { .. } => {
                ApiError::Unavailable(e.to_string())
            }
        }
    }
}

/// The node `node` (as typed) names.
fn known_node(state: &AppState, node: &str) -> Result<NodeId, SwitchError> {
    (state.regions.get(node.trim()))
        .map(|r| r.id.clone())
        .ok_or_else(|| SwitchError::UnknownNode(node.to_owned()))
}

/// Pauses (or resumes) the replay of `node` (as typed) on every instance:
/// saved in Redis, announced, in effect here at once.
pub async fn pause_replay(
    state: &AppState,
    node: &str,
    paused: bool,
) -> Result<NodeId, SwitchError> {
    let node = known_node(state, node)?;
    if let Err(source) = state.statuses.set_paused(&node, paused).await {
        tracing::warn!(%node, error = %source, "pause not saved");
        return Err(SwitchError::PauseNotSaved { node, source });
    }
    Ok(node)
}

/// Sets `node` (a node id as typed) to `status` (as typed): saved in Redis
/// as the operator's (`manual`), announced, and in effect here at once.
pub async fn switch_node(
    state: &AppState,
    node: &str,
    status: &str,
) -> Result<(NodeId, NodeStatus), SwitchError> {
    let node = known_node(state, node)?;
    let status: NodeStatus = status.trim().parse()?;
    if let Err(source) = state.statuses.set(&node, status).await {
        tracing::warn!(%node, error = %source, "status not saved");
        return Err(SwitchError::NotSaved { node, source });
    }
    Ok((node, status))
}
