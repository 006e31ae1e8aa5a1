//! Request bodies are read in full, within [`BODY_READ_TIMEOUT`], before a
//! request reaches its route: so a client that trickles a body in byte by
//! byte holds neither a worker nor its class's permit (see `class_limit!`)
//! while it does, and is answered 408 when the time is up.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::{ApiError, BODY_LIMIT};

/// The longest a request body may take to arrive.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn read_first(req: Request, next: Next) -> Response {
    let headers = req.headers();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    match declared {
        // No body, or one the extractor refuses unread (413).
        None if !chunked => return next.run(req).await,
        Some(0) => return next.run(req).await,
        Some(n) if n > BODY_LIMIT as u64 => return next.run(req).await,
        _ => {}
    }
    let (parts, body) = req.into_parts();
    let read = Limited::new(body, BODY_LIMIT).collect();
    match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
        Ok(Ok(collected)) => {
            let req = Request::from_parts(parts, Body::from(collected.to_bytes()));
            next.run(req).await
        }
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => ApiError::Body {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("request body is larger than {} KiB", BODY_LIMIT / 1024),
        }
        .into_response(),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "request body not read");
            ApiError::Body {
                status: StatusCode::BAD_REQUEST,
                message: "the request body could not be read".into(),
            }
            .into_response()
        }
        Err(_) => ApiError::Body {
            status: StatusCode::REQUEST_TIMEOUT,
            message: format!(
                "the request body did not arrive within {} s",
                BODY_READ_TIMEOUT.as_secs()
            ),
        }
        .into_response(),
    }
}
