//! Server-rendered pages (askama). Every page works without JavaScript:
//! forms post and the page is rendered again with the outcome or the
//! errors; `static/app.js` only makes it smoother (switches and the create
//! form without a reload, live node updates over `/events`).

use std::collections::HashMap;

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::AppState;
use super::assets;
use super::auth::{self, PageAuth};
use crate::domain::{Customer, FieldError, NodeId, NodeStatus, RecordFilter, RegionMap};
use crate::domain::{NodeView, rfc3339};
use crate::reads::FilterResult;
use crate::repair::{RepairRecord, RepairTrigger};
use crate::writes::{Placement, WriteError, WriteReceipt};

fn render(status: StatusCode, page: impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "page could not be rendered",
            )
                .into_response()
        }
    }
}

// ---- / ----

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    page: &'static str,
    asset_version: &'static str,
    auth: PageAuth,
    nodes: Vec<NodeView>,
    last_repair: Option<RepairLine>,
}

/// The last repair, in words.
struct RepairLine {
    when: String,
    why: String,
    complete: bool,
    regions: Vec<crate::repair::RegionRepair>,
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
    let (nodes, last) = tokio::join!(state.monitor.current(), RepairRecord::last(&state.statuses));
    let page = IndexPage {
        page: "home",
        asset_version: assets::version(),
        auth,
        nodes,
        last_repair: last.map(RepairLine::of),
    };
    render(StatusCode::OK, page)
}

// ---- /sign-in, /sign-out ----

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    page: &'static str,
    asset_version: &'static str,
    auth: PageAuth,
    next: String,
    error: Option<String>,
}

pub async fn sign_in_form(
    auth: PageAuth,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let page = SignInPage {
        page: "sign-in",
        asset_version: assets::version(),
        auth,
        next: auth::safe_next(params.get("next").map(String::as_str)),
        error: None,
    };
    render(StatusCode::OK, page)
}

/// `POST /sign-in` (`token`, `next`): a session cookie and back to `next`,
/// or the form again with 401.
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    let next = auth::safe_next(values.get("next").map(String::as_str));
    let given = values.get("token").map(|t| t.trim()).unwrap_or_default();
    let Some(token) = state.admin_token.as_ref() else {
        return Redirect::to(&next).into_response();
    };
    if auth::token_matches(token, given) {
        let cookie = auth::session_cookie(auth::Session::issue(token), &headers);
        tracing::info!("admin signed in on a page");
        return ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response();
    }
    tracing::info!("page sign-in refused: wrong token");
    let page = SignInPage {
        page: "sign-in",
        asset_version: assets::version(),
        auth: PageAuth::of(Some(token), &headers),
        next,
        error: Some("That is not the admin token.".into()),
    };
    render(StatusCode::UNAUTHORIZED, page)
}

pub async fn sign_out() -> Response {
    (
        [(header::SET_COOKIE, auth::cleared_cookie())],
        Redirect::to("/"),
    )
        .into_response()
}

// ---- /create-records ----

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
    nodes: Vec<NodeView>,
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
            nodes: state.monitor.current().await,
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
    let parsed = Customer::parse_form(|f| values.get(f).cloned());
    let (status, outcome, error) = match parsed {
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, None, Some(e)),
        Ok(customer) => {
            let id = customer.customer_id.to_string();
            match state.writes.create_customer(customer).await {
                Ok(receipt) => {
                    let status = match receipt.status {
                        Placement::Stored => StatusCode::CREATED,
                        _ => StatusCode::ACCEPTED,
                    };
                    (status, Some(describe(&id, &receipt)), None)
                }
                Err(WriteError::Invalid(e)) => (StatusCode::UNPROCESSABLE_ENTITY, None, Some(e)),
                Err(e) => {
                    let error = super::ApiError::from(e);
                    let reason = error.to_string();
                    let status = error.status();
                    let advice = if status == StatusCode::CONFLICT {
                        "Nothing was written. Change the conflicting value and try again."
                    } else {
                        "Nothing was written. Please try again in a moment."
                    };
                    let outcome = Outcome {
                        kind: "failed",
                        title: "Not saved".into(),
                        lines: vec![reason, advice.into()],
                    };
                    (status, Some(outcome), None)
                }
            }
        }
    };
    // Built after the write: its queue sizes include this record.
    let mut page = CreatePage::new(&state, auth).await;
    // Keep what the user typed when something is wrong; clear it on success.
    let keep = error.is_some() || status.is_client_error() || status.is_server_error();
    let empty = HashMap::new();
    page.fields = form_fields(
        &state.regions,
        if keep { &values } else { &empty },
        error.as_ref(),
    );
    page.outcome = outcome;
    render(status, page)
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
    let node = values.get("node_id").map(|s| s.trim()).unwrap_or_default();
    let status = values.get("status").map(|s| s.trim()).unwrap_or_default();
    let csrf = values.get(auth::CSRF_FIELD).map(String::as_str);
    let allowed = if !auth.required {
        Ok(())
    } else if !auth.signed_in {
        Err((
            StatusCode::UNAUTHORIZED,
            "Sign in with the admin token to switch nodes.".to_owned(),
        ))
    } else if csrf.is_some_and(|c| auth.csrf_matches(c)) {
        Ok(())
    } else {
        Err((
            StatusCode::FORBIDDEN,
            "This form is out of date; nothing was changed. Try again.".to_owned(),
        ))
    };
    let problem = match (
        allowed,
        state.regions.get(node),
        status.parse::<NodeStatus>(),
    ) {
        (Err(refused), _, _) => refused,
        (_, None, _) => (StatusCode::NOT_FOUND, format!("Unknown node {node:?}.")),
        (_, _, Err(e)) => (StatusCode::UNPROCESSABLE_ENTITY, format!("{e}.")),
        (Ok(()), Some(region), Ok(status)) => match state.statuses.set(&region.id, status).await {
            Ok(()) => {
                return Redirect::to(&format!("/create-records#node-{}", region.id))
                    .into_response();
            }
            Err(e) => {
                tracing::warn!(%node, error = %e, "status not saved");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("Could not change {node}: {}.", e.short_reason()),
                )
            }
        },
    };
    let mut page = CreatePage::new(&state, auth).await;
    page.banner = Some(problem.1);
    render(problem.0, page)
}

// ---- /view-records ----

/// The filter form's values as typed, kept for re-rendering and paging links.
#[derive(Default)]
struct FilterForm {
    zip_min: String,
    zip_max: String,
    city: String,
    state: String,
    region: String,
    limit: String,
}

pub struct Note {
    kind: &'static str,
    text: String,
}

#[derive(Template)]
#[template(path = "view.html")]
struct ViewPage {
    page: &'static str,
    asset_version: &'static str,
    auth: PageAuth,
    regions: Vec<NodeId>,
    page_sizes: [u32; 4],
    q: FilterForm,
    error: Option<String>,
    error_field: String,
    result: Option<FilterResult>,
    notes: Vec<Note>,
    first: u64,
    last: u64,
    prev_href: Option<String>,
    next_href: Option<String>,
}

const PAGE_SIZES: [u32; 4] = [10, 25, 50, 100];
const DEFAULT_PAGE_SIZE: u32 = 25;

pub async fn view(
    State(state): State<AppState>,
    auth: PageAuth,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| params.get(k).cloned().unwrap_or_default();
    let q = FilterForm {
        zip_min: get("zipRangeMin"),
        zip_max: get("zipRangeMax"),
        city: get("city"),
        state: get("state"),
        region: get("region"),
        limit: params
            .get("limit")
            .cloned()
            .unwrap_or_else(|| DEFAULT_PAGE_SIZE.to_string()),
    };
    let mut page = ViewPage {
        page: "view",
        asset_version: assets::version(),
        auth,
        regions: state.regions.nodes().cloned().collect(),
        page_sizes: PAGE_SIZES,
        q,
        error: None,
        error_field: String::new(),
        result: None,
        notes: Vec::new(),
        first: 0,
        last: 0,
        prev_href: None,
        next_href: None,
    };
    let lookup = |k: &str| match k {
        "limit" => Some(page.q.limit.clone()),
        _ => params.get(k).cloned(),
    };
    let filter = match RecordFilter::parse(lookup, &state.regions) {
        Ok(f) => f,
        Err(e) => {
            page.error = Some(e.message);
            page.error_field = e.field;
            return render(StatusCode::UNPROCESSABLE_ENTITY, page);
        }
    };
    let result = state.reads.filter(&filter).await;
    for s in result.sources.iter().filter(|s| s.replica) {
        page.notes.push(Note {
            kind: "warning",
            text: format!(
                "Region {} was read from its replica on node {}: its home node is unavailable or did not answer.",
                s.region, s.served_by
            ),
        });
    }
    for region in &result.unavailable_regions {
        page.notes.push(Note {
            kind: "error",
            text: format!(
                "Region {region} could not be read: its home node and its replica node are both unavailable. Its records are missing from this list."
            ),
        });
    }
    let shown = result.records.len() as u64;
    page.first = filter.offset + u64::from(shown > 0);
    page.last = filter.offset + shown;
    let limit = u64::from(filter.limit);
    if filter.offset > 0 {
        page.prev_href = Some(page_href(&page.q, filter.offset.saturating_sub(limit)));
    }
    if filter.offset + shown < result.total {
        page.next_href = Some(page_href(&page.q, filter.offset + limit));
    }
    page.result = Some(result);
    render(StatusCode::OK, page)
}

/// A link to another page of the same filter (filters stay in the query
/// string, so every view can be bookmarked and shared).
fn page_href(q: &FilterForm, offset: u64) -> String {
    let offset = offset.to_string();
    let pairs: Vec<(&str, &str)> = [
        ("zipRangeMin", q.zip_min.as_str()),
        ("zipRangeMax", q.zip_max.as_str()),
        ("city", q.city.as_str()),
        ("state", q.state.as_str()),
        ("region", q.region.as_str()),
        ("limit", q.limit.as_str()),
        ("offset", offset.as_str()),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .collect();
    format!(
        "/view-records?{}",
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Version;

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

    #[test]
    fn paging_links_keep_the_filters() {
        let q = FilterForm {
            city: "São Paulo & co".into(),
            limit: "10".into(),
            ..FilterForm::default()
        };
        assert_eq!(
            page_href(&q, 20),
            "/view-records?city=S%C3%A3o+Paulo+%26+co&limit=10&offset=20"
        );
    }
}
