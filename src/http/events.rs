//! `GET /events`: Server-Sent Events with the node overview (statuses and
//! queue sizes) on every change, so open pages follow changes made anywhere
//! (another browser, curl, redis-cli). Browsers reconnect on their own.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use futures::stream::{self, StreamExt};

use super::AppState;
use crate::monitor::NodeView;

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
        content_type = "text/event-stream", body = String)))]
pub async fn events(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // The current overview at once, then every change until shutdown.
    let first = nodes_event(&state.monitor.snapshot().await);
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
    let all = stream::once(async { first }).chain(changes).map(Ok);
    Sse::new(all).keep_alive(KeepAlive::default())
}
