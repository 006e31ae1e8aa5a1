//! `/sign-in` and `/sign-out`: the admin token for the pages, kept as a
//! signed session cookie whose session is open in Redis until it expires
//! or is signed out.

use std::collections::HashMap;

use askama::Template;
use axum::Form;
use axum::extract::{FromRequest, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::render;
use crate::http::assets;
use crate::http::auth::{self, PageAuth};
use crate::http::error::retry_secs;
use crate::http::{ApiError, AppState};

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    page: &'static str,
    asset_version: &'static str,
    auth: PageAuth,
    next: String,
    error: Option<String>,
}

impl SignInPage {
    fn new(auth: PageAuth, next: String, error: Option<String>) -> SignInPage {
        SignInPage {
            page: "sign-in",
            asset_version: assets::version(),
            auth,
            next,
            error,
        }
    }
}

pub async fn sign_in_form(
    auth: PageAuth,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let next = auth::safe_next(params.get("next").map(String::as_str));
    render(StatusCode::OK, SignInPage::new(auth, next, None))
}

/// `POST /sign-in` (`token`, `next`): a session and back to `next`; the
/// form again with 401 (wrong token), 429 (too many wrong tokens from this
/// address, with `retry-after`) or 503 (Redis unreachable).
pub async fn sign_in(
    State(state): State<AppState>,
    auth: PageAuth,
    request: axum::extract::Request,
) -> Response {
    let client = auth::client(request.extensions());
    let headers = request.headers().clone();
    let Ok(Form(values)) = Form::<HashMap<String, String>>::from_request(request, &state).await
    else {
        let error = "The form could not be read; try again.".to_owned();
        let page = SignInPage::new(auth, "/".into(), Some(error));
        return render(StatusCode::BAD_REQUEST, page);
    };
    let next = auth::safe_next(values.get("next").map(String::as_str));
    let given = values.get("token").map(|t| t.trim()).unwrap_or_default();
    let Some(token) = state.guard.token.as_ref() else {
        return Redirect::to(&next).into_response();
    };
    let refused = match state
        .guard
        .check_token(token, &client, given, "sign_in")
        .await
    {
        Ok(true) => return open_session(&state, token, &headers, &next).await,
        Ok(false) => ApiError::Unauthorized("That is not the admin token.".into()),
        Err(e) => e,
    };
    let (message, retry) = match &refused {
        ApiError::TooManyAttempts { retry_after } => {
            let secs = retry_secs(*retry_after);
            let message =
                format!("Too many wrong tokens from your address: try again in {secs} s.");
            (message, Some(secs))
        }
        other => (other.to_string(), None),
    };
    let page = SignInPage::new(auth, next, Some(message));
    let mut response = render(refused.status(), page);
    if let Some(secs) = retry {
        let headers = response.headers_mut();
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// After a right token: a new session, open in Redis, and its cookie.
async fn open_session(
    state: &AppState,
    token: &crate::config::AdminToken,
    headers: &HeaderMap,
    next: &str,
) -> Response {
    let (session, value) = auth::Session::issue(token);
    if let Err(e) = state
        .guard
        .access
        .open_session(&session.id, session.expiry)
        .await
    {
        tracing::warn!(error = %e, "session not opened");
        let error = format!("Could not sign in: {}.", e.short_reason());
        let page = SignInPage::new(PageAuth::default(), next.to_owned(), Some(error));
        return render(StatusCode::SERVICE_UNAVAILABLE, page);
    }
    tracing::info!("admin signed in on a page");
    let cookie = auth::session_cookie(value, headers);
    ([(header::SET_COOKIE, cookie)], Redirect::to(next)).into_response()
}

/// `POST /sign-out`: ends this session on every instance and removes the
/// cookie. (A copy of the cookie is then worth nothing.)
pub async fn sign_out(State(state): State<AppState>, auth: PageAuth) -> Response {
    if let Some(id) = &auth.session_id
        && let Err(e) = state.guard.access.end_session(id).await
    {
        tracing::warn!(error = %e, "session not ended");
        let error = format!("Could not sign out: {}. Try again.", e.short_reason());
        let page = SignInPage::new(auth, "/".into(), Some(error));
        return render(StatusCode::SERVICE_UNAVAILABLE, page);
    }
    (
        [(header::SET_COOKIE, auth::cleared_cookie())],
        Redirect::to("/"),
    )
        .into_response()
}
