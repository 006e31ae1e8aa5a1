//! Admin protection. With `ADMIN_TOKEN` set, the calls that change what the
//! cluster does (switching a node, running a repair, deleting a record)
//! need it; reads and `POST /create-customer` stay open.
//!
//! - The API takes `Authorization: Bearer <token>`, compared in constant
//!   time; anything else is a 401 JSON error.
//! - The pages have a sign-in form. Signing in sets a session cookie
//!   (HttpOnly, SameSite=Strict) that proves knowledge of the token without
//!   holding it: an expiry and a random nonce, signed with HMAC-SHA256 keyed
//!   by the token. So sessions need no server-side store, work on every
//!   instance, and all end when the token changes.
//! - Form posts from a signed-in page also carry a CSRF token (an HMAC of the
//!   session), as the `csrf` field or the `x-csrf-token` header (the pages'
//!   script calls the API with the cookie and that header).
//!
//! Without `ADMIN_TOKEN` everything is open, as it was, and start-up logs a
//! warning.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::ApiError;
use crate::config::AdminToken;

pub const SESSION_COOKIE: &str = "regiondb_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The form field carrying the CSRF token.
pub const CSRF_FIELD: &str = "csrf";
/// How long a page session lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

type HmacSha256 = Hmac<Sha256>;

fn mac(token: &AdminToken, purpose: &str, data: &str) -> HmacSha256 {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = HmacSha256::new_from_slice(token.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(purpose.as_bytes());
    mac.update(b"\n");
    mac.update(data.as_bytes());
    mac
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether `given` is the token, in time independent of where they differ.
pub fn token_matches(token: &AdminToken, given: &str) -> bool {
    given.as_bytes().ct_eq(token.expose().as_bytes()).into()
}

/// A valid page session: its signed payload (`<expiry>.<nonce>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session(String);

impl Session {
    /// A new session's cookie value.
    pub fn issue(token: &AdminToken) -> String {
        let expiry = unix_now() + SESSION_LIFETIME.as_secs();
        let nonce = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        let payload = format!("{expiry}.{nonce}");
        let tag = URL_SAFE_NO_PAD.encode(mac(token, "session", &payload).finalize().into_bytes());
        format!("{payload}.{tag}")
    }

    /// The session a cookie value stands for, if it is signed with this
    /// token and not expired.
    pub fn verify(token: &AdminToken, cookie: &str) -> Option<Session> {
        let (payload, tag) = cookie.rsplit_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        mac(token, "session", payload).verify_slice(&tag).ok()?;
        let expiry: u64 = payload.split_once('.')?.0.parse().ok()?;
        (expiry > unix_now()).then(|| Session(payload.to_owned()))
    }

    /// The CSRF token of this session.
    pub fn csrf(&self, token: &AdminToken) -> String {
        URL_SAFE_NO_PAD.encode(mac(token, "csrf", &self.0).finalize().into_bytes())
    }

    pub fn csrf_matches(&self, token: &AdminToken, given: &str) -> bool {
        given.as_bytes().ct_eq(self.csrf(token).as_bytes()).into()
    }
}

/// The session cookie of a request, if valid.
pub fn session(token: &AdminToken, headers: &HeaderMap) -> Option<Session> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(|c| c.name() == SESSION_COOKIE)
        .find_map(|c| Session::verify(token, c.value()))
}

/// `Set-Cookie` for a new session (`Secure` when the request came over
/// HTTPS through a proxy that says so).
pub fn session_cookie(value: String, headers: &HeaderMap) -> HeaderValue {
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = cookie::Cookie::build((SESSION_COOKIE, value))
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .path("/")
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(SESSION_LIFETIME.as_secs()).unwrap_or(i64::MAX),
        ))
        .build();
    HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Set-Cookie` that ends the session.
pub fn cleared_cookie() -> HeaderValue {
    let cookie = cookie::Cookie::build((SESSION_COOKIE, ""))
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .path("/")
        .max_age(cookie::time::Duration::ZERO)
        .build();
    HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether an API request may change the cluster: a valid bearer token, or
/// a page session with its CSRF token in the header.
pub fn authorize(token: &AdminToken, headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let given = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        return match given {
            Some(given) if token_matches(token, given) => Ok(()),
            Some(_) => Err(ApiError::Unauthorized("invalid admin token".into())),
            None => Err(ApiError::Unauthorized(
                "the Authorization header must be \"Bearer <ADMIN_TOKEN>\"".into(),
            )),
        };
    }
    if let Some(session) = session(token, headers) {
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

/// Route layer for the admin API: passes everything when no token is set.
pub async fn require_admin(
    State(token): State<Option<AdminToken>>,
    req: Request,
    next: Next,
) -> Response {
    match token.as_ref().map(|t| authorize(t, req.headers())) {
        None | Some(Ok(())) => next.run(req).await,
        Some(Err(e)) => e.into_response(),
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
}

impl PageAuth {
    pub fn of(token: Option<&AdminToken>, headers: &HeaderMap) -> PageAuth {
        let Some(token) = token else {
            return PageAuth::default();
        };
        match session(token, headers) {
            Some(s) => PageAuth {
                required: true,
                signed_in: true,
                csrf: s.csrf(token),
            },
            None => PageAuth {
                required: true,
                ..PageAuth::default()
            },
        }
    }

    /// May this visitor switch nodes?
    pub fn may_switch(&self) -> bool {
        !self.required || self.signed_in
    }

    /// Whether a form's CSRF token is this session's (constant time).
    pub fn csrf_matches(&self, given: &str) -> bool {
        self.signed_in && bool::from(given.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

/// Every page handler takes its visitor's [`PageAuth`] as an extractor.
impl axum::extract::FromRequestParts<super::AppState> for PageAuth {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &super::AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(PageAuth::of(state.admin_token.as_ref(), &parts.headers))
    }
}

/// Where to go after signing in: only a path on this site.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/create-records".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> AdminToken {
        crate::config::Config::from_lookup(|k| {
            (k == "ADMIN_TOKEN").then(|| "0123456789abcdef-test".to_owned())
        })
        .ok()
        .and_then(|c| c.admin_token)
        .expect("token")
    }

    fn with(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn bearer_tokens_are_checked() {
        let t = token();
        assert!(
            authorize(
                &t,
                &with(header::AUTHORIZATION, "Bearer 0123456789abcdef-test")
            )
            .is_ok()
        );
        for bad in [
            "Bearer wrong",
            "Bearer 0123456789abcdef-tes",
            "0123456789abcdef-test",
            "Basic x",
        ] {
            let e = authorize(&t, &with(header::AUTHORIZATION, bad)).unwrap_err();
            assert!(matches!(e, ApiError::Unauthorized(_)), "{bad}");
        }
        assert!(matches!(
            authorize(&t, &HeaderMap::new()),
            Err(ApiError::Unauthorized(_))
        ));
    }

    #[test]
    fn sessions_are_signed_by_the_token_and_carry_their_csrf_token() {
        let t = token();
        let value = Session::issue(&t);
        let mut headers = with(
            header::COOKIE,
            &format!("other=1; {SESSION_COOKIE}={value}"),
        );
        let session = session(&t, &headers).expect("valid session");
        // Signed in, but a change also needs the CSRF token.
        assert!(matches!(
            authorize(&t, &headers),
            Err(ApiError::Forbidden(_))
        ));
        headers.insert(
            CSRF_HEADER,
            HeaderValue::from_str(&session.csrf(&t)).unwrap(),
        );
        assert!(authorize(&t, &headers).is_ok());
        assert!(!session.csrf_matches(&t, "forged"));

        // Tampered, or signed with another token: no session.
        let tampered = value.replacen('.', "9.", 1);
        assert!(Session::verify(&t, &tampered).is_none());
        let other = crate::config::Config::from_lookup(|k| {
            (k == "ADMIN_TOKEN").then(|| "another-token-0123456789".to_owned())
        })
        .unwrap()
        .admin_token
        .unwrap();
        assert!(Session::verify(&other, &value).is_none());
        // Expired.
        let expired = "1.abc";
        let tag = URL_SAFE_NO_PAD.encode(mac(&t, "session", expired).finalize().into_bytes());
        assert!(Session::verify(&t, &format!("{expired}.{tag}")).is_none());
    }

    #[test]
    fn cookies_are_http_only_and_strict() {
        let c = session_cookie("v".into(), &HeaderMap::new());
        let c = c.to_str().unwrap();
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Path=/"));
        assert!(!c.contains("Secure"));
        let https = session_cookie(
            "v".into(),
            &with(
                header::HeaderName::from_static("x-forwarded-proto"),
                "https",
            ),
        );
        assert!(https.to_str().unwrap().contains("Secure"));
    }

    #[test]
    fn sign_in_only_returns_to_this_site() {
        assert_eq!(safe_next(Some("/view-records?x=1")), "/view-records?x=1");
        for bad in [
            None,
            Some("https://evil.example/"),
            Some("//evil.example"),
            Some("/\\evil"),
        ] {
            assert_eq!(safe_next(bad), "/create-records");
        }
    }
}
