//! `GET /events`: Server-Sent Events with the node overview (statuses and
//! queue sizes) on every change, so open pages follow changes made anywhere
//! (another browser, curl, redis-cli). Browsers reconnect on their own.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use futures::stream::{self, StreamExt};

use super::{ApiError, AppState};
use crate::domain::NodeView;

/// How long a browser waits before reconnecting after the stream broke.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

fn nodes_event(nodes: &[NodeView]) -> Event {
    Event::default()
        .event("nodes")
        .retry(RECONNECT_AFTER)
        .json_data(nodes)
        .unwrap_or_else(|_| Event::default().comment("unserializable snapshot"))
}

/// `GET /events`: a `nodes` event with the `GET /nodes` body at once and on
/// every change.
#[utoipa::path(get, path = "/events", tag = "operations",
    responses((status = 200, description = "Server-Sent Events: `event: nodes`, `data:` the GET /nodes body",
        content_type = "text/event-stream", body = String),
        (status = 503, description = "Too many open streams; retry shortly", body = super::openapi::ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // One permit per open stream, released when the stream is dropped.
    let permit = state
        .event_streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::Busy("server busy: too many open event streams; retry shortly".into())
        })?;
    // The current overview at once, then every change until shutdown.
    let first = nodes_event(&state.monitor.current().await);
    let live = state.monitor.subscribe();
    let stopping = state.stopping.clone();
    let changes = stream::unfold((live, stopping), |(mut live, stopping)| async move {
        tokio::select! {
            _ = stopping.cancelled() => None,
            changed = live.changed() => match changed {
                Err(_) => None,
                Ok(()) => {
                    let event = nodes_event(&live.borrow_and_update());
                    Some((event, (live, stopping)))
                }
            },
        }
    });
    let all = stream::once(async { first })
        .chain(changes)
        .map(move |event| {
            let _held = &permit;
            Ok(event)
        });
    Ok(Sse::new(all).keep_alive(KeepAlive::default()))
}
