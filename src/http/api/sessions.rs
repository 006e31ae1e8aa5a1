//! `DELETE /admin/sessions`: ends every page session at once, on every
//! instance (for a session cookie that may have been copied; changing
//! `ADMIN_TOKEN` also ends them all).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::openapi::{AdminErrors, ErrorBody};

/// Ends every signed-in page session: each must sign in again. API
/// clients with the bearer token are not affected.
#[utoipa::path(delete, path = "/admin/sessions", tag = "nodes",
    security((), ("admin_token" = [])),
    responses(
        (status = 200, description = "Every session ended", body = SessionsEnded),
        AdminErrors,
        (status = 503, description = "Redis could not be reached (nothing ended), or the server is busy", body = ErrorBody),
    ))]
pub async fn end_sessions(State(state): State<AppState>) -> Result<Json<SessionsEnded>, ApiError> {
    let ended = state.guard.access.end_all_sessions().await.map_err(|e| {
        tracing::warn!(error = %e, "sessions not ended");
        ApiError::Unavailable(format!("could not end the sessions: {}", e.short_reason()))
    })?;
    tracing::info!(ended, "every page session ended");
    Ok(Json(SessionsEnded { ended }))
}

/// The answer to `DELETE /admin/sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionsEnded {
    /// How many sessions were open.
    pub ended: u64,
}
