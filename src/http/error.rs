//! One error type for every API handler, rendered as JSON
//! `{"error": "...", "field": "...", "code": "..."}` with an honest status
//! code. `code` is stable and machine-readable (see [`ApiError::code`]), so
//! a client never matches the message to tell what happened.

use axum::Json;
use axum::extract::FromRequest;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::domain::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A field of the input is wrong (422).
    #[error(transparent)]
    Field(#[from] FieldError),
    /// The body could not be read as JSON: malformed (400), too large (413),
    /// not declared as JSON (415), not an object (422).
    #[error("{message}")]
    Body { status: StatusCode, message: String },
    #[error("{0}")]
    NotFound(String),
    /// A backing service needed for this request is unreachable (503): the
    /// client may retry.
    #[error("{0}")]
    Unavailable(String),
    /// The request conflicts with what is stored (409).
    #[error("{0}")]
    Conflict(String),
    /// A write answered with a code of its own: refused for good (409
    /// `rejected`), no version to give (503 `no_version`), or an outcome
    /// that is unknown (503 `outcome_unknown`).
    #[error("{message}")]
    Write {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// Too much in progress; retry shortly (503 with `retry-after`).
    #[error("{0}")]
    Busy(String),
    /// No valid admin token (401 with `www-authenticate`).
    #[error("{0}")]
    Unauthorized(String),
    /// Signed in, but the request lacks its CSRF token (403).
    #[error("{0}")]
    Forbidden(String),
    /// Too many wrong admin tokens from this address (429 with
    /// `retry-after`).
    #[error(
        "too many wrong admin tokens from this address: try again in {} s",
        retry_secs(*retry_after)
    )]
    TooManyAttempts { retry_after: std::time::Duration },
}

/// Whole seconds, rounded up, at least 1: for `retry-after`.
pub fn retry_secs(wait: std::time::Duration) -> u64 {
    wait.as_millis().div_ceil(1000).max(1) as u64
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Field(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Body { status, .. } => *status,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unavailable(_) | ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Write { status, .. } => *status,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The stable, machine-readable `code` of the body: one of
    /// [`ErrorCode`](super::openapi::ErrorCode)'s values.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Field(_) => "invalid_field",
            ApiError::Body { status, .. } => match *status {
                StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
                StatusCode::UNSUPPORTED_MEDIA_TYPE => "not_json",
                StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
                _ => "malformed_request",
            },
            ApiError::NotFound(_) => "not_found",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Conflict(_) => "conflict",
            ApiError::Write { code, .. } => code,
            ApiError::Busy(_) => "busy",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::TooManyAttempts { .. } => "too_many_attempts",
        }
    }
}

impl From<crate::writes::WriteError> for ApiError {
    fn from(e: crate::writes::WriteError) -> Self {
        use crate::writes::WriteError;
        let write = |status, code, e: WriteError| ApiError::Write {
            status,
            code,
            message: e.to_string(),
        };
        match e {
            WriteError::Invalid(e) => ApiError::Field(e),
            e @ WriteError::Rejected { .. } => write(StatusCode::CONFLICT, "rejected", e),
            e @ WriteError::Busy => ApiError::Busy(e.to_string()),
            e @ WriteError::Unavailable { .. } => ApiError::Unavailable(e.to_string()),
            e @ WriteError::NoVersion => write(StatusCode::SERVICE_UNAVAILABLE, "no_version", e),
            e @ (WriteError::Interrupted | WriteError::OutcomeUnknown { .. }) => {
                write(StatusCode::SERVICE_UNAVAILABLE, "outcome_unknown", e)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        let body = match &self {
            ApiError::Field(e) => json!({"error": e.message, "field": e.field, "code": code}),
            _ => json!({"error": self.to_string(), "code": code}),
        };
        if let ApiError::TooManyAttempts { retry_after } = self {
            let wait = (header::RETRY_AFTER, retry_secs(retry_after).to_string());
            return (status, [wait], Json(body)).into_response();
        }
        if let ApiError::Unauthorized(_) = self {
            tracing::info!(error = %self, "admin call refused");
            let challenge = (header::WWW_AUTHENTICATE, r#"Bearer realm="regiondb""#);
            return (status, [challenge], Json(body)).into_response();
        }
        if let ApiError::Busy(_) = self {
            tracing::debug!(error = %self, "request shed");
            return (status, [(header::RETRY_AFTER, "1")], Json(body)).into_response();
        }
        if status.is_server_error() {
            tracing::warn!(%status, error = %self, "request failed");
        }
        (status, Json(body)).into_response()
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::Body {
            status: StatusCode::BAD_REQUEST,
            message: format!("malformed query string: {}", rejection.body_text()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let message = match status {
            StatusCode::PAYLOAD_TOO_LARGE => {
                format!(
                    "request body is larger than {} KiB",
                    super::BODY_LIMIT / 1024
                )
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                "expected a JSON body with content-type: application/json".to_owned()
            }
            _ => format!("malformed JSON body: {}", rejection.body_text()),
        };
        ApiError::Body { status, message }
    }
}

/// A JSON object body. Fields are then parsed one by one so that every error
/// can name its field.
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match Json::<Value>::from_request(req, state).await? {
            Json(Value::Object(map)) => Ok(JsonObject(map)),
            Json(_) => Err(ApiError::Body {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message: "the body must be a JSON object".into(),
            }),
        }
    }
}
