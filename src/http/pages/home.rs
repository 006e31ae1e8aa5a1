//! `/`: every node with its status and queue, and the last repair.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::chart::{QueueChart, node_cards};
use super::render;
use crate::domain::{NodeView, rfc3339};
use crate::http::AppState;
use crate::http::assets;
use crate::http::auth::PageAuth;
use crate::repair::{RegionRepair, RepairRecord, RepairTrigger};

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    page: &'static str,
    asset_version: &'static str,
    auth: PageAuth,
    nodes: Vec<(NodeView, QueueChart)>,
    last_repair: Option<RepairLine>,
    /// Listening beyond loopback with no admin token.
    exposed: bool,
}

/// The last repair, in words.
struct RepairLine {
    when: String,
    why: String,
    complete: bool,
    regions: Vec<RegionRepair>,
}

impl RepairLine {
    fn of(record: RepairRecord) -> RepairLine {
        let when = rfc3339(record.at_ms)
            .map(|t| format!("{} {} UTC", &t[..10], &t[11..19]))
            .unwrap_or_default();
        let why = match record.trigger {
            RepairTrigger::Auto if record.after.is_empty() => "automatic".to_owned(),
            RepairTrigger::Auto => format!(
                "automatic, after {}'s queue drained",
                record.after.join(", ")
            ),
            RepairTrigger::Api => "requested through POST /admin/repair".to_owned(),
            RepairTrigger::DataLoss => format!(
                "automatic, after {} came back without its data",
                record.after.join(", ")
            ),
        };
        RepairLine {
            when,
            why,
            complete: record.complete(),
            regions: record.regions,
        }
    }
}

pub async fn index(State(state): State<AppState>, auth: PageAuth) -> Response {
    let (nodes, last) = tokio::join!(node_cards(&state), RepairRecord::last(&state.statuses));
    let page = IndexPage {
        page: "home",
        asset_version: assets::version(),
        auth,
        nodes,
        last_repair: last.map(RepairLine::of),
        exposed: state.guard.exposed,
    };
    render(StatusCode::OK, page)
}
