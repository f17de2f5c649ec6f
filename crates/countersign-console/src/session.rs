//! Console sessions and CSRF tokens. A session is a cookie holding a random session id, who
//! signed in, how, and until when, authenticated with HMAC-SHA256 under a key derived from the
//! audit signing key; and a row in the store keyed by the SHA-256 of that id
//! ([`sid_hash`], `Store::session_get`), which the console reads on every request. Sessions are
//! revocable: signing out deletes the row, revoking a person's keys deletes all of theirs, and
//! a cookie whose row is gone is refused by every replica; a restart keeps the rows. A CSRF
//! token is an HMAC of the session id (or, before sign-in, of a random per-browser nonce
//! cookie), so it is bound to one browser session.
//!
//! Must not: put anything secret in a cookie in clear (the cookie names a principal, nothing
//! more), store a session id itself (only its hash), compare a MAC other than in constant
//! time, or accept a cookie past its expiry or without its row.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "countersign_session";
/// The pre-sign-in nonce cookie, which sign-in forms' CSRF tokens are bound to.
pub const NONCE_COOKIE: &str = "countersign_nonce";
/// The OpenID Connect flow's state (state, nonce, PKCE verifier), between redirect and callback.
pub const OIDC_COOKIE: &str = "countersign_oidc";
/// How long a console session lasts.
pub const SESSION_TTL_SECONDS: i64 = 8 * 3600;

/// What a session cookie says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    /// Random id: CSRF tokens are bound to it.
    pub sid: String,
    /// The principal id (`user:<email>`).
    pub sub: String,
    /// Groups from the identity provider's claim, added to the directory's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// How the person signed in: `key` or `oidc`.
    pub via: String,
    /// Unix seconds after which the cookie is refused.
    pub exp: i64,
}

/// The keys of the console: one for session cookies, one for CSRF tokens (derived separately
/// so a token can never pass as a cookie or the other way round).
pub struct Keys {
    session: [u8; 32],
    csrf: [u8; 32],
}

use countersign_app::tokens::hmac;

/// How the store names a session: the hex SHA-256 of its id, so a copy of the database holds
/// nothing that passes as a cookie.
pub fn sid_hash(sid: &str) -> String {
    use sha2::Digest as _;
    hex::encode(Sha256::digest(sid.as_bytes()))
}

impl Keys {
    /// Keys derived from a secret (the audit signing key's private form).
    pub fn derive(secret: &[u8]) -> Keys {
        Keys {
            session: hmac(secret, &[b"countersign console session key v1"]),
            csrf: hmac(secret, &[b"countersign console csrf key v1"]),
        }
    }

    /// `payload.mac` for any serializable value, under the session key and a purpose label.
    pub fn seal<T: Serialize>(&self, purpose: &str, value: &T) -> String {
        let payload = B64.encode(serde_json::to_vec(value).unwrap_or_default());
        let mac = hmac(&self.session, &[purpose.as_bytes(), payload.as_bytes()]);
        format!("{payload}.{}", B64.encode(mac))
    }

    /// The value sealed by [`Keys::seal`] for `purpose`, if the MAC is right.
    pub fn open<T: for<'de> Deserialize<'de>>(&self, purpose: &str, sealed: &str) -> Option<T> {
        let (payload, mac) = sealed.split_once('.')?;
        let given = B64.decode(mac).ok()?;
        let expected = hmac(&self.session, &[purpose.as_bytes(), payload.as_bytes()]);
        if !bool::from(given.as_slice().ct_eq(&expected)) {
            return None;
        }
        serde_json::from_slice(&B64.decode(payload).ok()?).ok()
    }

    /// The session a cookie value holds, if it is authentic and not expired at `now`.
    pub fn session(&self, cookie: &str, now: i64) -> Option<Session> {
        self.open::<Session>("session", cookie)
            .filter(|s| s.exp > now)
    }

    /// The CSRF token of forms shown to a signed-in session (`binding` = its sid) or to a
    /// browser before sign-in (`binding` = its nonce cookie).
    pub fn csrf_token(&self, binding: &str) -> String {
        B64.encode(hmac(&self.csrf, &[binding.as_bytes()]))
    }

    /// True when `token` is the CSRF token for `binding` (constant time).
    pub fn csrf_ok(&self, binding: &str, token: &str) -> bool {
        let expected = self.csrf_token(binding);
        !binding.is_empty() && bool::from(expected.as_bytes().ct_eq(token.as_bytes()))
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/console, Secure under https.
pub fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/console; Max-Age={max_age}; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(exp: i64) -> Session {
        Session {
            sid: "s1".into(),
            sub: "user:bob@example.com".into(),
            groups: vec![],
            via: "key".into(),
            exp,
        }
    }

    #[test]
    fn a_sealed_session_opens_until_it_expires() {
        let keys = Keys::derive(b"secret");
        let cookie = keys.seal("session", &session(100));
        assert_eq!(keys.session(&cookie, 99), Some(session(100)));
        assert_eq!(keys.session(&cookie, 100), None);
    }

    #[test]
    fn a_forged_or_foreign_cookie_is_refused() {
        let keys = Keys::derive(b"secret");
        let other = Keys::derive(b"other");
        let cookie = other.seal("session", &session(100));
        assert_eq!(keys.session(&cookie, 0), None);
        // Same key, another purpose: an OIDC-flow cookie cannot pass as a session.
        let flow = keys.seal("oidc", &session(100));
        assert_eq!(keys.session(&flow, 0), None);
        // A payload edited to name someone else keeps the old MAC and fails.
        let (_, mac) = keys
            .seal("session", &session(100))
            .split_once('.')
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .unwrap();
        let mut forged = session(100);
        forged.sub = "user:mallory@example.com".into();
        let payload = B64.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(keys.session(&format!("{payload}.{mac}"), 0), None);
        assert_eq!(keys.session("garbage", 0), None);
    }

    #[test]
    fn csrf_tokens_are_bound_to_their_session() {
        let keys = Keys::derive(b"secret");
        let t = keys.csrf_token("sid-a");
        assert!(keys.csrf_ok("sid-a", &t));
        assert!(!keys.csrf_ok("sid-b", &t));
        assert!(!keys.csrf_ok("", &keys.csrf_token("")));
        assert!(!keys.csrf_ok("sid-a", ""));
    }

    #[test]
    fn cookies_are_read_from_the_header() {
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            "a=1; countersign_session=xyz.abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz.abc"));
        assert_eq!(cookie(&h, "c"), None);
        assert!(set_cookie("n", "v", 10, true).ends_with("; Secure"));
    }
}
