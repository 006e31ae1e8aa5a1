//! `/create-records`: the create form and the node switches, both of which
//! work without JavaScript.

use std::collections::HashMap;

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::chart::{QueueChart, node_cards};
use super::{admin_allowed, render};
use crate::domain::{Customer, FieldError, NodeId, NodeView, RegionMap};
use crate::http::actions::{SwitchError, pause_replay, switch_node, write_status};
use crate::http::auth::{self, PageAuth};
use crate::http::error::ApiError;
use crate::http::{AppState, assets};
use crate::writes::{Placement, WriteError, WriteReceipt};

/// One input of the create form, with what the user typed and its error.
struct FormField {
    name: &'static str,
    label: &'static str,
    hint: String,
    numeric: bool,
    value: String,
    error: Option<String>,
}

/// What happened to a submitted customer, in plain words.
pub struct Outcome {
    kind: &'static str,
    title: String,
    lines: Vec<String>,
}

#[derive(Template)]
#[template(path = "create.html")]
struct CreatePage {
    page: &'static str,
    asset_version: &'static str,
    auth: PageAuth,
    nodes: Vec<(NodeView, QueueChart)>,
    fields: Vec<FormField>,
    outcome: Option<Outcome>,
    banner: Option<String>,
}

fn form_fields(
    regions: &RegionMap,
    values: &HashMap<String, String>,
    error: Option<&FieldError>,
) -> Vec<FormField> {
    let field = |name, label, hint: &str, numeric| FormField {
        name,
        label,
        hint: hint.to_owned(),
        numeric,
        value: values.get(name).cloned().unwrap_or_default(),
        error: error.filter(|e| e.field == name).map(|e| e.message.clone()),
    };
    vec![
        field(
            "customer_id",
            "Customer id",
            "Existing ids are updated.",
            false,
        ),
        field(
            "customer_unique_id",
            "Customer unique id",
            "Required.",
            false,
        ),
        field(
            "customer_zip_code_prefix",
            "Zip code prefix",
            &format!("Digits; decides the home region: {}.", regions.describe()),
            true,
        ),
        field("customer_city", "City", "Required.", false),
        field("customer_state", "State", "Required.", false),
    ]
}

impl CreatePage {
    async fn new(state: &AppState, auth: PageAuth) -> CreatePage {
        CreatePage {
            page: "create",
            asset_version: assets::version(),
            auth,
            nodes: node_cards(state).await,
            fields: form_fields(&state.regions, &HashMap::new(), None),
            outcome: None,
            banner: None,
        }
    }
}

pub async fn create_form(State(state): State<AppState>, auth: PageAuth) -> Response {
    render(StatusCode::OK, CreatePage::new(&state, auth).await)
}

/// `POST /create-records` (the form, urlencoded).
pub async fn create_submit(
    State(state): State<AppState>,
    auth: PageAuth,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    let (status, outcome, error) = match Customer::parse_form(|f| values.get(f).cloned()) {
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, None, Some(e)),
        Ok(customer) => {
            let id = customer.customer_id.to_string();
            match state.writes.create_customer(customer).await {
                Ok(receipt) => (write_status(&receipt), Some(describe(&id, &receipt)), None),
                Err(WriteError::Invalid(e)) => (StatusCode::UNPROCESSABLE_ENTITY, None, Some(e)),
                Err(e) => {
                    let error = ApiError::from(e);
                    (error.status(), Some(not_saved(&error)), None)
                }
            }
        }
    };
    // Built after the write: its queue sizes include this record.
    let mut page = CreatePage::new(&state, auth).await;
    // Keep what the user typed when something is wrong; clear it on success.
    let keep = error.is_some() || status.is_client_error() || status.is_server_error();
    let empty = HashMap::new();
    let typed = if keep { &values } else { &empty };
    page.fields = form_fields(&state.regions, typed, error.as_ref());
    page.outcome = outcome;
    render(status, page)
}

/// The result panel for a write that was refused or failed.
fn not_saved(error: &ApiError) -> Outcome {
    let advice = if error.status() == StatusCode::CONFLICT {
        "Nothing was written. Change the conflicting value and try again."
    } else {
        "Nothing was written. Please try again in a moment."
    };
    Outcome {
        kind: "failed",
        title: "Not saved".into(),
        lines: vec![error.to_string(), advice.into()],
    }
}

/// The result panel's words for an accepted write.
pub fn describe(customer_id: &str, r: &WriteReceipt) -> Outcome {
    let mut lines = Vec::new();
    let (kind, title) = match r.status {
        Placement::Stored => {
            lines.push(format!(
                "Customer {customer_id} was stored in region {} (node {}).",
                r.region, r.node
            ));
            ("stored", format!("Stored in {}", r.region))
        }
        _ => {
            lines.push(format!(
                "Node {} is unavailable, so customer {customer_id} is queued in its Kafka topic \
                 and will be written to region {} as soon as the node is back.",
                r.node, r.region
            ));
            (
                "queued",
                format!("Queued for {} because it is down", r.region),
            )
        }
    };
    lines.push(match r.replica {
        Placement::Stored => format!("Replicated to {}.", r.replica_node),
        Placement::Queued => format!(
            "Its replica is queued for node {}, which is unavailable, until it is back.",
            r.replica_node
        ),
        Placement::Missing => format!(
            "Its replica on node {} could neither be written nor queued; a repair will restore it.",
            r.replica_node
        ),
    });
    lines.push(format!("Version {}.", r.version.get()));
    Outcome { kind, title, lines }
}

/// `POST /create-records/node-status`: the switches without JavaScript.
/// With an admin token: only from a signed-in page, with its CSRF token.
pub async fn node_status_submit(
    State(state): State<AppState>,
    auth: PageAuth,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    let status = field(&values, "status");
    let switch = async |state: &AppState, node: &str| {
        switch_node(state, node, status).await.map(|(node, _)| node)
    };
    card_action(&state, auth, &values, "switch nodes", switch).await
}

/// `POST /create-records/node-replay`: pausing and resuming a node's replay
/// without JavaScript, under the same rules as the switches.
pub async fn node_replay_submit(
    State(state): State<AppState>,
    auth: PageAuth,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    let paused = field(&values, "paused") == "true";
    let pause = async |state: &AppState, node: &str| pause_replay(state, node, paused).await;
    card_action(&state, auth, &values, "pause replays", pause).await
}

fn field<'a>(values: &'a HashMap<String, String>, name: &str) -> &'a str {
    values.get(name).map(|s| s.trim()).unwrap_or_default()
}

/// A node card's admin form: if this page may `action`, `act` on the
/// form's node and go back to its card; else (or if that failed) the page
/// again, saying why.
async fn card_action(
    state: &AppState,
    auth: PageAuth,
    values: &HashMap<String, String>,
    action: &str,
    act: impl AsyncFnOnce(&AppState, &str) -> Result<NodeId, SwitchError>,
) -> Response {
    let node = field(values, "node_id");
    let csrf = values.get(auth::CSRF_FIELD).map(String::as_str);
    let problem = match admin_allowed(&auth, csrf, action) {
        Err(refused) => refused,
        Ok(()) => match act(state, node).await {
            Ok(node) => {
                return Redirect::to(&format!("/create-records#node-{node}")).into_response();
            }
            Err(e) => switch_problem(node, e),
        },
    };
    let mut page = CreatePage::new(state, auth).await;
    page.banner = Some(problem.1);
    render(problem.0, page)
}

/// A switch that was not made, in the page's words.
fn switch_problem(node: &str, e: SwitchError) -> (StatusCode, String) {
    let text = match &e {
        SwitchError::UnknownNode(_) => format!("Unknown node {node:?}."),
        SwitchError::BadStatus(e) => format!("{e}."),
        SwitchError::NotSaved { source, .. } | SwitchError::PauseNotSaved { source, .. } => {
            format!("Could not change {node}: {}.", source.short_reason())
        }
    };
    (ApiError::from(e).status(), text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{NodeId, Version};

    fn receipt(status: Placement, replica: Placement) -> WriteReceipt {
        let id = |s: &str| NodeId::parse(s).unwrap();
        WriteReceipt {
            status,
            region: id("region_2"),
            node: id("region_2"),
            replica_node: id("region_1"),
            replica,
            version: Version::new(7),
        }
    }

    #[test]
    fn outcomes_are_said_in_plain_words() {
        let o = describe("c1", &receipt(Placement::Stored, Placement::Stored));
        assert_eq!((o.kind, o.title.as_str()), ("stored", "Stored in region_2"));
        assert_eq!(
            o.lines[0],
            "Customer c1 was stored in region region_2 (node region_2)."
        );
        assert_eq!(o.lines[1], "Replicated to region_1.");

        let o = describe("c1", &receipt(Placement::Queued, Placement::Queued));
        assert_eq!(o.title, "Queued for region_2 because it is down");
        assert!(o.lines[0].starts_with("Node region_2 is unavailable"));
        assert!(o.lines[1].contains("replica is queued for node region_1"));

        let o = describe("c1", &receipt(Placement::Stored, Placement::Missing));
        assert!(o.lines[1].contains("could neither be written nor queued"));
    }
}
