//! `/sign-in` and `/sign-out`: the admin token for the pages, kept in a
//! signed session cookie.

use std::collections::HashMap;

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::render;
use crate::http::AppState;
use crate::http::assets;
use crate::http::auth::{self, PageAuth};

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
