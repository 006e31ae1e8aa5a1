//! The page session cookie: `<expiry>.<id>.<tag>`, the tag an HMAC-SHA256
//! of `<expiry>.<id>` keyed by the admin token. The signature proves the
//! cookie was issued by an instance that knows the token (so changing the
//! token ends every session); the id is looked up in Redis (`access`), so
//! that signing out ends the session on every instance.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::same_secret;
use crate::config::AdminToken;
use crate::domain::now_secs;

pub const SESSION_COOKIE: &str = "regiondb_session";
/// How long a page session lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

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

/// A correctly signed, unexpired session cookie (whether it is still open
/// is Redis's to say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// `<expiry>.<id>`
    payload: String,
    pub id: String,
    pub expiry: u64,
}

impl Session {
    /// A new session and its cookie value.
    pub fn issue(token: &AdminToken) -> (Session, String) {
        let expiry = now_secs() + SESSION_LIFETIME.as_secs();
        let id = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        let payload = format!("{expiry}.{id}");
        let tag = URL_SAFE_NO_PAD.encode(mac(token, "session", &payload).finalize().into_bytes());
        let cookie = format!("{payload}.{tag}");
        (
            Session {
                payload,
                id,
                expiry,
            },
            cookie,
        )
    }

    /// The session a cookie value stands for, if it is signed with this
    /// token and not expired.
    pub fn verify(token: &AdminToken, cookie: &str) -> Option<Session> {
        let (payload, tag) = cookie.rsplit_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        mac(token, "session", payload).verify_slice(&tag).ok()?;
        let (expiry, id) = payload.split_once('.')?;
        let expiry: u64 = expiry.parse().ok()?;
        (expiry > now_secs()).then(|| Session {
            payload: payload.to_owned(),
            id: id.to_owned(),
            expiry,
        })
    }

    /// The CSRF token of this session.
    pub fn csrf(&self, token: &AdminToken) -> String {
        URL_SAFE_NO_PAD.encode(mac(token, "csrf", &self.payload).finalize().into_bytes())
    }

    pub fn csrf_matches(&self, token: &AdminToken, given: &str) -> bool {
        same_secret(given, &self.csrf(token))
    }
}

/// The correctly signed session cookie of a request, if any.
pub fn signed_session(token: &AdminToken, headers: &HeaderMap) -> Option<Session> {
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
    let cookie = cookie::Cookie::build((SESSION_COOKIE, value))
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .path("/")
        .secure(super::super::security::over_https(headers))
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(SESSION_LIFETIME.as_secs()).unwrap_or(i64::MAX),
        ))
        .build();
    HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Set-Cookie` that removes the session cookie from the browser.
pub fn cleared_cookie() -> HeaderValue {
    let cookie = cookie::Cookie::build((SESSION_COOKIE, ""))
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .path("/")
        .max_age(cookie::time::Duration::ZERO)
        .build();
    HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::auth::tests::{token, with};

    #[test]
    fn sessions_are_signed_by_the_token_and_carry_their_csrf_token() {
        let t = token();
        let (issued, value) = Session::issue(&t);
        let headers = with(
            header::COOKIE,
            &format!("other=1; {SESSION_COOKIE}={value}"),
        );
        let session = signed_session(&t, &headers).expect("valid session");
        assert_eq!(session, issued);
        assert!(session.csrf_matches(&t, &session.csrf(&t)));
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
}
