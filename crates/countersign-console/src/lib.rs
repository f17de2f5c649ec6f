//! The web console for approvers at `/console/`: server-rendered pages (maud), one stylesheet
//! and one small script served from here, a signed session cookie backed by a row in the store
//! (so signing out ends it everywhere), a CSRF token on every form,
//! and a strict Content-Security-Policy on every answer. Pages: sign-in (`signin`), the inbox
//! and the list of all requests (`inbox`), a request with its decision form and live updates
//! (`request`), runs (`runs`), the audit log (`audit`), the second factor (`mfa`).
//!
//! Architecture invariant: the console decides nothing. A vote from a page is
//! `Gateway::vote(…, Channel::Console)` — the same path, refusals and audit entries as the API;
//! a run button is `Gateway::set_run`. Refusals are mapped by `countersign_http::error` (the one mapping),
//! then shown as a page. It never reads a form field before its CSRF token has been checked.

mod audit;
pub mod config;
mod inbox;
pub mod layout;
mod mfa;
pub mod oidc;
mod outcome;
mod plan;
mod request;
mod reviews;
mod runs;
pub mod session;
mod signin;
mod standing;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use countersign_core::{Principal, PrincipalId};
use countersign_http::error::ApiError;
use session::{Keys, SESSION_COOKIE, Session};

/// Every page, script and stylesheet is answered with this policy: nothing inline, nothing
/// from elsewhere, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the console's handlers reach: what the API's do, and the console's own keys.
#[derive(Clone)]
pub struct ConsoleState {
    pub gateway: std::sync::Arc<countersign_app::gateway::Gateway>,
    pub auth: std::sync::Arc<countersign_app::auth::Authenticator>,
    pub audit: std::sync::Arc<countersign_app::audit::Audit>,
    pub console: std::sync::Arc<Console>,
}

/// The console's keys and settings.
pub struct Console {
    keys: Keys,
    /// Cookies get `Secure` when the public URL is https.
    secure: bool,
    /// Whether people may sign in with their API key (the local fallback).
    key_sign_in: bool,
    /// The identity provider, when `console.oidc` is configured.
    oidc: Option<oidc::Oidc>,
    /// Console sessions are the console's own table.
    store: std::sync::Arc<dyn countersign_store::Store>,
}

impl Console {
    /// `secret`: the audit signing key's private form, from which the session keys derive.
    pub fn new(
        secret: &[u8],
        public_url: &str,
        config: &crate::config::ConsoleConfig,
        store: std::sync::Arc<dyn countersign_store::Store>,
    ) -> Console {
        Console {
            keys: Keys::derive(secret),
            secure: public_url.starts_with("https://"),
            key_sign_in: config.key_sign_in(),
            oidc: config
                .oidc
                .clone()
                .map(|c| oidc::Oidc::new(c, public_url.trim_end_matches('/'))),
            store,
        }
    }
}

/// The signed-in person looking at a page.
pub struct Viewer {
    /// Groups are the directory's plus any the identity provider's claim gave.
    pub principal: Principal,
    pub session: Session,
    /// The CSRF token for forms on this page.
    pub csrf: String,
}

/// A console failure: a sign-in redirect for pages, or an HTML page with a code.
#[derive(Debug)]
pub enum ConsoleError {
    /// No (valid) session on a page: go to sign-in, then come back to `next`.
    SignIn { next: String },
    Page {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
}

impl ConsoleError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ConsoleError::Page {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn csrf() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "csrf_invalid",
            "This form was not sent from a page of this console (its security token is missing or does not match your session). Nothing was changed; reload the page and try again.",
        )
    }

    fn no_session() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "no_session",
            "You are not signed in, or your session has ended. Nothing was changed; sign in and try again.",
        )
    }
}

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        ConsoleError::Page {
            status: e.status,
            code: e.code,
            message: e.message,
        }
    }
}

impl From<countersign_app::gateway::GatewayError> for ConsoleError {
    fn from(e: countersign_app::gateway::GatewayError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            ConsoleError::SignIn { next } => {
                let to = format!(
                    "/console/sign-in?{}",
                    serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default()
                );
                Redirect::to(&to).into_response()
            }
            ConsoleError::Page {
                status,
                code,
                message,
            } => html_with_code(
                status,
                code,
                layout::error_page(status.as_u16(), code, &message, None),
            ),
        }
    }
}

/// A page with a status and, for scripts, the machine code in `X-Countersign-Error`.
fn html_with_code(status: StatusCode, code: &str, markup: maud::Markup) -> Response {
    let mut r = (status, axum::response::Html(page_text(markup))).into_response();
    if let Ok(v) = HeaderValue::from_str(code) {
        r.headers_mut().insert("x-countersign-error", v);
    }
    r
}

fn html(markup: maud::Markup) -> Response {
    axum::response::Html(page_text(markup)).into_response()
}

/// Every page as sent: maud has escaped the markup, and here, once for all pages, every
/// bidirectional control in any text shown (a kind, a resource, a name, a comment) becomes a
/// visible escape, so no text reorders what a person reads. The pages' own text has none.
fn page_text(markup: maud::Markup) -> String {
    let page = markup.into_string();
    match countersign_core::text::visible_bidi(&page) {
        std::borrow::Cow::Borrowed(_) => page,
        std::borrow::Cow::Owned(escaped) => escaped,
    }
}

impl ConsoleState {
    fn now_unix(&self) -> i64 {
        self.gateway.clock.now().timestamp()
    }

    /// The signed-in person, if the session cookie is authentic, current, still started in the
    /// store (not signed out, its person's keys not revoked: one indexed read, so every replica
    /// honours a sign-out at once), and names a person this gateway knows (from the directory,
    /// or from the identity provider's token).
    async fn viewer(&self, headers: &HeaderMap) -> Option<Viewer> {
        let cookie = session::cookie(headers, SESSION_COOKIE)?;
        let session = self.console.keys.session(cookie, self.now_unix())?;
        let id = PrincipalId::parse(&session.sub).ok()?;
        let stored = match self
            .console
            .store
            .session_get(&session::sid_hash(&session.sid))
            .await
        {
            Ok(stored) => stored?,
            Err(e) => {
                // Fail closed: a session that cannot be checked is not honoured.
                tracing::error!(error = %e, "could not read a console session");
                return None;
            }
        };
        if stored.principal != id || stored.expires_at <= self.gateway.clock.now() {
            return None;
        }
        let mut principal = match self.gateway.directory.get(&id) {
            Some(p) => p.clone(),
            None if session.via == "oidc" => Principal {
                id,
                owner: None,
                groups: vec![],
            },
            None => return None,
        };
        if !principal.is_person() {
            return None;
        }
        for g in &session.groups {
            if !principal.groups.contains(g) {
                principal.groups.push(g.clone());
            }
        }
        let csrf = self
            .console
            .keys
            .csrf_token(&format!("sid:{}", session.sid));
        Some(Viewer {
            principal,
            session,
            csrf,
        })
    }

    /// True while the session `sid` is still started in the store: a live stream opened by a
    /// session checks it before each event and ends once the session is signed out or revoked.
    async fn session_alive(&self, sid: &str) -> bool {
        matches!(
            self.console.store.session_get(&session::sid_hash(sid)).await,
            Ok(Some(s)) if s.expires_at > self.gateway.clock.now()
        )
    }

    /// The viewer of a page, or a redirect to sign-in that comes back here.
    async fn page_viewer(&self, headers: &HeaderMap, uri: &Uri) -> Result<Viewer, ConsoleError> {
        self.viewer(headers)
            .await
            .ok_or_else(|| ConsoleError::SignIn {
                next: uri
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "/console/".into()),
            })
    }

    /// The viewer sending a form, after its CSRF token is checked; nothing else is read first.
    async fn form_viewer<T: serde::de::DeserializeOwned>(
        &self,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<(Viewer, T), ConsoleError> {
        let viewer = self
            .viewer(headers)
            .await
            .ok_or_else(ConsoleError::no_session)?;
        let token = csrf_field(body);
        if !self
            .console
            .keys
            .csrf_ok(&format!("sid:{}", viewer.session.sid), &token)
        {
            self.gateway.metrics.refusal("csrf_invalid");
            return Err(ConsoleError::csrf());
        }
        let form = parse_form::<T>(body)?;
        Ok((viewer, form))
    }
}

/// The `csrf` field of a urlencoded body ("" when absent or unreadable).
fn csrf_field(body: &Bytes) -> String {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()
        .and_then(|fields| fields.into_iter().find(|(k, _)| k == "csrf"))
        .map(|(_, v)| v)
        .unwrap_or_default()
}

fn parse_form<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ConsoleError> {
    serde_urlencoded::from_bytes(body).map_err(|e| {
        ConsoleError::bad_request(
            "invalid_form",
            format!("The form is not valid: {e}. Nothing was changed."),
        )
    })
}

fn parse_query<T: serde::de::DeserializeOwned + Default>(
    q: Option<&str>,
) -> Result<T, ConsoleError> {
    match q {
        None | Some("") => Ok(T::default()),
        Some(q) => serde_urlencoded::from_str(q).map_err(|e| {
            ConsoleError::bad_request(
                "invalid_query",
                format!("The address has a parameter this page does not understand: {e}."),
            )
        }),
    }
}

/// Where to go after signing in: absent means the inbox; otherwise it must be a console path
/// on this gateway, in printable ASCII (no control characters, spaces, `//` or backslashes), so
/// it is always a valid `Location` and never leaves the console. Anything else is refused with
/// 400 `invalid_next` before a cookie is set or a flow begins.
fn safe_next(next: Option<&str>) -> Result<String, ConsoleError> {
    match next {
        None | Some("") => Ok("/console/".into()),
        Some(n)
            if n.starts_with("/console/")
                && !n.contains("//")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(n.to_string())
        }
        Some(_) => Err(ConsoleError::bad_request(
            "invalid_next",
            "The address to return to after signing in must be a console path (/console/…) \
             without spaces, control characters or backslashes.",
        )),
    }
}

/// Headers for every console answer: the CSP, no framing, no sniffing, no caching of pages.
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

const CSS: &str = include_str!("static/console.css");
const JS: &str = include_str!("static/console.js");

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        CSS,
    )
        .into_response()
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        JS,
    )
        .into_response()
}

async fn not_found() -> ConsoleError {
    ConsoleError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "There is no such page in the console.",
    )
}

/// The console's routes, under `/console`. Every page a signed-in person sees carries the
/// recent changes to their second factors (`mfa::with_factor_notices`).
pub fn routes(state: ConsoleState) -> Router {
    Router::new()
        .route("/console/", get(inbox::inbox))
        .route("/console/sign-in", get(signin::page).post(signin::with_key))
        .route("/console/sign-out", post(signin::sign_out))
        .route("/console/oidc/start", get(oidc::start))
        .route("/console/oidc/callback", get(oidc::callback))
        .route("/console/requests/{id}", get(request::page))
        .route("/console/requests/{id}/decide", post(request::decide))
        .route("/console/requests/{id}/amend", post(request::amend))
        .route("/console/requests/{id}/events", get(request::events))
        .route(
            "/console/requests/{id}/passkey",
            post(request::passkey_begin),
        )
        .route("/console/events", get(inbox::events))
        .route("/console/runs/{run}", get(runs::page))
        .route("/console/runs/{run}/{verb}", post(runs::control))
        .route("/console/audit", get(audit::page))
        .route("/console/reviews", get(reviews::page))
        .route("/console/standing", get(standing::page))
        .route("/console/standing/{id}/revoke", post(standing::revoke))
        .route("/console/audit/entries.jsonl", get(audit::export))
        .route("/console/mfa", get(mfa::page))
        .route("/console/mfa/totp", post(mfa::enroll_totp))
        .route("/console/mfa/passkeys/begin", post(mfa::passkey_begin))
        .route("/console/mfa/passkeys/finish", post(mfa::passkey_finish))
        .route("/console/mfa/confirm", post(mfa::confirm_begin))
        .route("/console/static/console.css", get(stylesheet))
        .route("/console/static/console.js", get(script))
        .route("/console/{*rest}", axum::routing::any(not_found))
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            mfa::with_factor_notices,
        ))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_followed_only_inside_the_console() {
        assert_eq!(
            safe_next(Some("/console/requests/r1?x=1")).ok().as_deref(),
            Some("/console/requests/r1?x=1")
        );
        assert_eq!(safe_next(None).ok().as_deref(), Some("/console/"));
        assert_eq!(safe_next(Some("")).ok().as_deref(), Some("/console/"));
        for bad in [
            "https://evil.example/",
            "//evil.example/console/",
            "/console//evil.example",
            "/console/\\evil",
            "/console/\r\nSet-Cookie: x=1",
            "/console/\n",
            "/console/\0",
            "/console/\t",
            "/console/ x",
            "/console/\u{7f}",
            "/console/\u{2028}",
            "/console/é",
            "/consolex",
            "javascript:alert(1)",
        ] {
            assert!(safe_next(Some(bad)).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn cookies_are_secure_exactly_when_the_public_url_is_https() {
        let dir = tempfile::tempdir().unwrap();
        let store: std::sync::Arc<dyn countersign_store::Store> = std::sync::Arc::new(
            countersign_store::SqliteStore::open(&dir.path().join("c.db"))
                .await
                .unwrap(),
        );
        let config = crate::config::ConsoleConfig::default();
        let console = |url| Console::new(b"k", url, &config, store.clone());
        assert!(console("https://cs.example.com").secure);
        assert!(!console("http://127.0.0.1:8750").secure);
        assert!(console("http://127.0.0.1:8750").key_sign_in);
    }

    #[test]
    fn the_csrf_field_is_found_in_a_form() {
        let body = Bytes::from_static(b"decision=approve&csrf=abc%2B1&digest=x");
        assert_eq!(csrf_field(&body), "abc+1");
        assert_eq!(csrf_field(&Bytes::from_static(b"decision=approve")), "");
    }
}
