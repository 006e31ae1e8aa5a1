//! `/records/{id}`: one record with every copy, and (for admins, guarded
//! like the switches) buttons to repair it or delete it.

use std::collections::HashMap;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{admin_allowed, render};
use crate::domain::Text;
use crate::http::actions::delete;
use crate::http::auth::{self, PageAuth};
use crate::http::{AppState, assets};
use crate::lookup::{CopyState, CopyView, Found, Role};
use crate::repair::repair_record;

#[derive(Template)]
#[template(path = "record.html")]
struct RecordPage {
    page: &'static str,
    asset_version: &'static str,
    auth: PageAuth,
    id: String,
    found: Option<Found>,
    /// Why a record found nowhere may still exist (see `lookup::Unsure`).
    unsure: Option<String>,
    banner: Option<String>,
    banner_kind: &'static str,
}

impl CopyView {
    pub fn role_word(&self) -> &'static str {
        match self.role {
            Role::Home => "home",
            Role::Replica => "replica",
        }
    }

    pub fn state_word(&self) -> &'static str {
        match self.state {
            CopyState::Current => "current",
            CopyState::Stale => "stale",
            CopyState::Missing => "missing",
            CopyState::Deleted => "deleted (tombstone)",
            CopyState::Unreachable => "unreachable",
        }
    }
}

/// The page, with an optional banner saying what just happened.
async fn page(
    state: &AppState,
    auth: PageAuth,
    id: String,
    banner: Option<(&'static str, String)>,
) -> RecordPage {
    let (found, unsure) = match state.lookup().find(&id).await {
        Ok(found) => (found, None),
        Err(unsure) => (None, Some(unsure.to_string())),
    };
    let (banner_kind, banner) = banner.map_or(("", None), |(k, b)| (k, Some(b)));
    RecordPage {
        page: "record",
        asset_version: assets::version(),
        auth,
        id,
        found,
        unsure,
        banner,
        banner_kind,
    }
}

pub async fn record_page(
    State(state): State<AppState>,
    auth: PageAuth,
    Path(id): Path<String>,
) -> Response {
    let page = page(&state, auth, id, None).await;
    let status = if page.found.is_some() {
        StatusCode::OK
    } else if page.unsure.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::NOT_FOUND
    };
    render(status, page)
}

/// What a button asks for.
#[derive(Clone, Copy)]
enum Action {
    Repair,
    Delete,
}

/// `POST /records/{id}/repair` (the button).
pub async fn record_repair(
    State(state): State<AppState>,
    auth: PageAuth,
    Path(id): Path<String>,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    act(&state, auth, id, &values, Action::Repair).await
}

/// `POST /records/{id}/delete` (the button).
pub async fn record_delete(
    State(state): State<AppState>,
    auth: PageAuth,
    Path(id): Path<String>,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    act(&state, auth, id, &values, Action::Delete).await
}

/// A button's action, if this page may (guarded like the switches), and
/// the page again with what happened.
async fn act(
    state: &AppState,
    auth: PageAuth,
    id: String,
    values: &HashMap<String, String>,
    action: Action,
) -> Response {
    let csrf = values.get(auth::CSRF_FIELD).map(String::as_str);
    let (status, banner) = match admin_allowed(&auth, csrf, "repair or delete records") {
        Err((status, why)) => (status, ("error", why)),
        Ok(()) => match action {
            Action::Repair => repaired(state, &id).await,
            Action::Delete => deleted(state, &id).await,
        },
    };
    render(status, page(state, auth, id, Some(banner)).await)
}

async fn repaired(state: &AppState, id: &str) -> (StatusCode, (&'static str, String)) {
    let reports = repair_record(&state.regions, &state.stores, Some(&state.hints), id).await;
    let fixed: u64 = reports.iter().map(|r| r.fixed).sum();
    match reports.iter().find_map(|r| r.unreachable.clone()) {
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            ("error", format!("Repair incomplete: {why}.")),
        ),
        None => (
            StatusCode::OK,
            ("warning", format!("Repaired: {fixed} copies written.")),
        ),
    }
}

async fn deleted(state: &AppState, id: &str) -> (StatusCode, (&'static str, String)) {
    let customer = match Text::parse("customer_id", id) {
        Ok(c) => c,
        Err(e) => return (StatusCode::UNPROCESSABLE_ENTITY, ("error", e.message)),
    };
    match delete(state, customer).await {
        Ok(Some(receipt)) => (
            StatusCode::OK,
            (
                "warning",
                format!(
                    "Deleted at version {}: tombstones {} on {}, {} on {}.",
                    receipt.version.get(),
                    word(receipt.status),
                    receipt.node,
                    word(receipt.replica),
                    receipt.replica_node
                ),
            ),
        ),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            ("error", "No region holds this record.".to_owned()),
        ),
        Err(e) => (e.status(), ("error", format!("Not deleted: {e}."))),
    }
}

fn word(placement: crate::writes::Placement) -> &'static str {
    match placement {
        crate::writes::Placement::Stored => "stored",
        crate::writes::Placement::Queued => "queued",
        crate::writes::Placement::Missing => "missing",
    }
}
