//! Operations: `GET /healthz`, `GET /readyz` (cached for a second) and
//! `GET /metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use futures::future::join_all;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::NodeStatus;
use crate::http::AppState;

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
    // Until every node's queue was looked at once, every node counts as
    // behind (deletes and moves would take every region as unreadable).
    let looked = state.backlogs.looked();
    let ready = redis.is_ok() && kafka.is_ok() && looked;
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
        kafka: match kafka {
            Ok(()) if !looked => "starting: the node queues are being looked at".into(),
            kafka => word(kafka.map_err(|e| {
                tracing::warn!(error = %e, "readiness: kafka");
                e.short_reason()
            })),
        },
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
    ))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    crate::metrics::nodes(&state.monitor.current().await);
    crate::metrics::collect_process();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

/// `GET /readyz`: `status` is `ready` or `not ready`; each dependency is
/// `ok` or `error: <reason>`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Readiness {
    #[schema(example = "ready")]
    pub status: String,
    #[schema(example = "ok")]
    pub redis: String,
    #[schema(example = "ok")]
    pub kafka: String,
    pub nodes: std::collections::BTreeMap<String, NodeReadiness>,
}

/// One node in `GET /readyz`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeReadiness {
    pub status: NodeStatus,
    #[schema(example = "ok")]
    pub mongo: String,
}
