//! Server-rendered pages (askama). Every page works without JavaScript:
//! forms post and the page is rendered again with the outcome or the
//! errors; `static/app.js` only makes it smoother (switches and the create
//! form without a reload, live node updates over `/events`). One file a
//! page: `home` (/), `sign_in`, `create` (/create-records and the node
//! switches), `view` (/view-records).

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

mod create;
mod home;
mod sign_in;
mod view;

pub use create::{create_form, create_submit, node_status_submit};
pub use home::index;
pub use sign_in::{sign_in, sign_in_form, sign_out};
pub use view::view;

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
