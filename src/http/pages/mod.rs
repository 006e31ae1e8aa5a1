//! Server-rendered pages (askama). Every page works without JavaScript:
//! forms post and the page is rendered again with the outcome or the
//! errors; `static/app.js` only makes it smoother (switches and the create
//! form without a reload, live node updates over `/events`). One file a
//! page: `home` (/), `sign_in`, `create` (/create-records and the node
//! switches), `chart` (the node cards' queue charts, on both), `view` (/view-records), `record` (/records/{id}, with its
//! repair and delete buttons).

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use axum::Router;
use axum::routing::{get, post};

use super::AppState;
use super::auth::PageAuth;

mod chart;
mod create;
mod home;
mod record;
mod sign_in;
mod view;

pub use create::{create_form, create_submit, node_replay_submit, node_status_submit};
pub use home::index;
pub use record::{record_delete, record_page, record_repair};
pub use sign_in::{sign_in, sign_in_form, sign_out};
pub use view::view;

/// Every page's route, limited as the class `pages`.
pub(super) fn routes(max_in_progress: usize) -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/create-records", get(create_form).post(create_submit))
        .route("/create-records/node-status", post(node_status_submit))
        .route("/create-records/node-replay", post(node_replay_submit))
        .route("/view-records", get(view))
        .route("/records/{customer_id}", get(record_page))
        .route("/records/{customer_id}/repair", post(record_repair))
        .route("/records/{customer_id}/delete", post(record_delete))
        .route("/sign-in", get(sign_in_form).post(sign_in))
        .route("/sign-out", post(sign_out))
        .route_layer(class_limit!(max_in_progress, "pages"))
}

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

/// Whether this page may do an admin's `action` (switch nodes, repair or
/// delete a record): always without an admin token; with one, only signed
/// in and with the page's CSRF token.
fn admin_allowed(
    auth: &PageAuth,
    csrf: Option<&str>,
    action: &str,
) -> Result<(), (StatusCode, String)> {
    if !auth.required {
        Ok(())
    } else if !auth.signed_in {
        Err((
            StatusCode::UNAUTHORIZED,
            format!("Sign in with the admin token to {action}."),
        ))
    } else if csrf.is_some_and(|c| auth.csrf_matches(c)) {
        Ok(())
    } else {
        Err((
            StatusCode::FORBIDDEN,
            "This form is out of date; nothing was changed. Try again.".to_owned(),
        ))
    }
}

#[derive(Template)]
#[template(path = "refused.html")]
struct RefusedPage<'a> {
    page: &'static str,
    asset_version: &'static str,
    auth: PageAuth,
    title: &'a str,
    message: String,
}

/// The page for a request refused before any handler (`security`).
pub(super) fn refused(status: StatusCode, title: &str, message: String) -> Response {
    let page = RefusedPage {
        page: "refused",
        asset_version: super::assets::version(),
        auth: PageAuth::default(),
        title,
        message,
    };
    render(status, page)
}
