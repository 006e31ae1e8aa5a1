//! Admin protection. With `ADMIN_TOKEN` set, the calls that change what the
//! cluster does (switching a node, running a repair, deleting a record,
//! ending sessions) need it; reads and `POST /create-customer` stay open.
//!
//! - The API takes `Authorization: Bearer <token>`; anything else is a 401
//!   JSON error. Tokens are compared as SHA-256 digests in constant time,
//!   so neither where they differ nor the token's length shows in timing.
//! - Wrong tokens are counted per client address in Redis, each before it
//!   is answered, and a right one resets the count (`access::attempts`):
//!   after wrong ones the next wrong answer waits, doubling each time, and
//!   past `SIGN_IN_MAX_FAILURES` the address gets 429 with `retry-after`,
//!   whatever the token. A right token is never counted and never waits.
//! - The pages have a sign-in form. Signing in sets a session cookie
//!   (HttpOnly, SameSite=Strict) signed with the token (`session`), whose
//!   id is kept open in Redis until it expires: signing out ends it on
//!   every instance, `DELETE /admin/sessions` ends them all, and changing
//!   the token ends them too.
//! - Form posts from a signed-in page also carry a CSRF token (an HMAC of the
//!   session), as the `csrf` field or the `x-csrf-token` header (the pages'
//!   script calls the API with the cookie and that header).
//!
//! Without `ADMIN_TOKEN` everything is open, as it was, and start-up logs a
//! warning; cross-site form posts are still refused (`security`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Extensions, HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ApiError;
use crate::access::{Access, AccessError, Attempt};
use crate::config::AdminToken;

mod next;
mod session;

pub use next::safe_next;
pub use session::{SESSION_COOKIE, Session, cleared_cookie, session_cookie, signed_session};

pub const CSRF_HEADER: &str = "x-csrf-token";
/// The form field carrying the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// Whether `given` is `expected`: their SHA-256 digests compared in
/// constant time (fixed length, so the comparison says nothing of either
/// string's length).
pub fn same_secret(given: &str, expected: &str) -> bool {
    let given = Sha256::digest(given.as_bytes());
    let expected = Sha256::digest(expected.as_bytes());
    given.ct_eq(&expected).into()
}

/// Whether `given` is the token.
pub fn token_matches(token: &AdminToken, given: &str) -> bool {
    same_secret(given, token.expose())
}

/// The key failures of a request's client are counted by (see
/// `access::client_key`): its TCP peer, which the server records.
pub fn client(extensions: &Extensions) -> String {
    let address = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    crate::access::client_key(address)
}

/// The token, if any, and where sessions and failures are kept.
#[derive(Clone)]
pub struct Guard {
    pub token: Option<AdminToken>,
    pub access: Access,
    /// Listening beyond loopback with no token: the admin calls are open to
    /// whoever reaches the port (the home page says so).
    pub exposed: bool,
}

/// Why a session could not be checked: for clients.
fn unavailable(e: &AccessError) -> ApiError {
    tracing::warn!(error = %e, "sign-in state not read");
    ApiError::Unavailable(format!(
        "could not check the admin sign-in: {}",
        e.short_reason()
    ))
}

impl Guard {
    /// The request's session, if it is signed, unexpired and still open.
    pub async fn session(
        &self,
        token: &AdminToken,
        headers: &HeaderMap,
    ) -> Result<Option<Session>, AccessError> {
        match signed_session(token, headers) {
            Some(s) if self.access.session_open(&s.id).await? => Ok(Some(s)),
            _ => Ok(None),
        }
    }

    /// Checks a token `client` offers via `via` (`sign_in` or `bearer`):
    /// `Ok(false)` for a wrong one (counted, and answered after the delay
    /// its address has earned), 429 while the address is locked out
    /// (whatever the token), 503 when Redis cannot count. A right token
    /// never waits for other calls in flight (see `access::attempts`).
    pub async fn check_token(
        &self,
        token: &AdminToken,
        client: &str,
        given: &str,
        via: &'static str,
    ) -> Result<bool, ApiError> {
        let right = token_matches(token, given);
        let counted = if right {
            self.access.token_succeeded(client).await
        } else {
            self.access.token_failed(client).await
        };
        match counted.map_err(|e| unavailable(&e))? {
            Attempt::Refused { retry_after } => {
                crate::metrics::request_refused("too_many_failures");
                tracing::info!(client, via, "admin token refused: too many wrong ones");
                Err(ApiError::TooManyAttempts { retry_after })
            }
            Attempt::Answer { .. } if right => Ok(true),
            Attempt::Answer { failures, wait } => {
                crate::metrics::admin_token_failed(via);
                tracing::info!(client, via, failures = failures + 1, "wrong admin token");
                tokio::time::sleep(wait).await;
                Ok(false)
            }
        }
    }

    /// Whether an API request may change the cluster: no token configured,
    /// a right bearer token, or an open page session with its CSRF token in
    /// the header.
    pub async fn authorize(&self, headers: &HeaderMap, client: &str) -> Result<(), ApiError> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let given = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            let Some(given) = given else {
                return Err(ApiError::Unauthorized(
                    "the Authorization header must be \"Bearer <ADMIN_TOKEN>\"".into(),
                ));
            };
            return match self.check_token(token, client, given, "bearer").await? {
                true => Ok(()),
                false => Err(ApiError::Unauthorized("invalid admin token".into())),
            };
        }
        let session = self.session(token, headers).await;
        if let Some(session) = session.map_err(|e| unavailable(&e))? {
            let csrf = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            return match csrf {
                Some(csrf) if session.csrf_matches(token, csrf) => Ok(()),
                _ => Err(ApiError::Forbidden(format!(
                    "a signed-in page must send its CSRF token in the {CSRF_HEADER} header"
                ))),
            };
        }
        Err(ApiError::Unauthorized(
            "this endpoint needs the admin token: send Authorization: Bearer <ADMIN_TOKEN>".into(),
        ))
    }
}

/// Route layer for the admin API (passes everything when no token is set).
pub async fn require_admin(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    let client = client(req.extensions());
    match guard.authorize(req.headers(), &client).await {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// What a page needs to know about its visitor.
#[derive(Debug, Clone, Default)]
pub struct PageAuth {
    /// A token is configured: switching needs a session.
    pub required: bool,
    pub signed_in: bool,
    /// This session's CSRF token (empty when not signed in).
    pub csrf: String,
    /// The open session's id (for signing out).
    pub session_id: Option<String>,
    /// This page's path and query, to come back to after signing in.
    pub here: String,
}

impl PageAuth {
    /// The visitor of a page at `here`. When Redis cannot say whether the
    /// session is open, the visitor counts as signed out (and it is logged).
    pub async fn of(guard: &Guard, headers: &HeaderMap, here: &str) -> PageAuth {
        let here = safe_next(Some(here));
        let Some(token) = &guard.token else {
            return PageAuth {
                here,
                ..PageAuth::default()
            };
        };
        let session = guard.session(token, headers).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "session not checked; showing the page signed out");
            None
        });
        PageAuth {
            required: true,
            signed_in: session.is_some(),
            csrf: session.as_ref().map(|s| s.csrf(token)).unwrap_or_default(),
            session_id: session.map(|s| s.id),
            here,
        }
    }

    /// May this visitor switch nodes?
    pub fn may_switch(&self) -> bool {
        !self.required || self.signed_in
    }

    /// Whether a form's CSRF token is this session's (constant time).
    pub fn csrf_matches(&self, given: &str) -> bool {
        self.signed_in && same_secret(given, &self.csrf)
    }
}

/// Every page handler takes its visitor's [`PageAuth`] as an extractor.
impl axum::extract::FromRequestParts<super::AppState> for PageAuth {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &super::AppState,
    ) -> Result<Self, Self::Rejection> {
        let here = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        Ok(PageAuth::of(&state.guard, &parts.headers, here).await)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use axum::http::HeaderValue;

    use super::*;

    pub(crate) fn token() -> AdminToken {
        crate::config::Config::from_lookup(|k| {
            (k == "ADMIN_TOKEN").then(|| "0123456789abcdef-test".to_owned())
        })
        .ok()
        .and_then(|c| c.admin_token)
        .expect("token")
    }

    pub(crate) fn with(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn tokens_are_compared_whole() {
        let t = token();
        assert!(token_matches(&t, "0123456789abcdef-test"));
        for bad in ["", "0123456789abcdef-tes", "0123456789abcdef-test ", "x"] {
            assert!(!token_matches(&t, bad), "{bad:?}");
        }
    }

    #[test]
    fn failures_are_counted_by_the_peer_address() {
        let mut ext = Extensions::new();
        assert_eq!(client(&ext), "0.0.0.0");
        ext.insert(ConnectInfo::<SocketAddr>("192.0.2.9:5555".parse().unwrap()));
        assert_eq!(client(&ext), "192.0.2.9");
    }
}
