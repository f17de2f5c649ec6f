//! Signing in and out. With an identity provider configured, "Sign in with …" starts the
//! OpenID Connect flow (`oidc`); the local fallback is a form that takes the person's own API
//! key, so a gateway with no identity provider still has a usable console. The sign-in form's
//! CSRF token is bound to a random nonce cookie (there is no session yet).
//!
//! Must not: sign in an agent, follow a `next` address outside the console, or log a key.

use super::layout::page as chrome;
use super::session::{self, NONCE_COOKIE, SESSION_COOKIE, SESSION_TTL_SECONDS, Session};
use super::{ConsoleError, html_with_code, safe_next};
use crate::ConsoleState;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SignInQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyForm {
    #[allow(dead_code)]
    csrf: String,
    key: String,
    next: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsrfOnly {
    #[allow(dead_code)]
    csrf: String,
}

fn form(state: &ConsoleState, nonce: &str, next: &str, error: Option<&str>) -> Markup {
    let csrf = state.console.keys.csrf_token(&format!("pre:{nonce}"));
    chrome(
        "Sign in",
        None,
        None,
        html! {
            section.card.narrow {
                h1 { "Sign in" }
                p.muted { "Approve or deny what agents ask to do. Every decision is recorded." }
                @if let Some(e) = error {
                    p.notice.error role="alert" { (e) }
                }
                @if let Some(o) = &state.console.oidc {
                    p { a.button.primary href={ "/console/oidc/start?" (serde_urlencoded::to_string([("next", next)]).unwrap_or_default()) } {
                        "Sign in with " (o.issuer()) } }
                }
                @if state.console.key_sign_in {
                    form.stack method="post" action="/console/sign-in" {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="next" value=(next);
                        label for="key" { "Your API key" }
                        input id="key" type="password" name="key" autocomplete="off" required
                            placeholder="cs_…" spellcheck="false";
                        p.hint { "The key printed for you when the gateway started (or by "
                            code { "countersign key create" } "). It stays on this gateway." }
                        button.primary type="submit" { "Sign in" }
                    }
                } @else if state.console.oidc.is_none() {
                    p { "Signing in with an API key is turned off on this gateway." }
                }
            }
        },
    )
}

/// The nonce this browser's sign-in forms are bound to, and a `Set-Cookie` when it is new.
fn nonce(state: &ConsoleState, headers: &HeaderMap) -> (String, Option<String>) {
    match session::cookie(headers, NONCE_COOKIE).filter(|n| n.len() >= 32) {
        Some(n) => (n.to_string(), None),
        None => {
            let n = countersign_app::tokens::random_token();
            let set = session::set_cookie(NONCE_COOKIE, &n, 3600, state.console.secure);
            (n, Some(set))
        }
    }
}

pub async fn page_(
    state: &ConsoleState,
    headers: &HeaderMap,
    q: Option<&str>,
) -> Result<Response, ConsoleError> {
    let q: SignInQuery = super::parse_query(q)?;
    let next = safe_next(q.next.as_deref())?;
    if state.viewer(headers).await.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    let (nonce, set) = nonce(state, headers);
    let mut r = super::html(form(state, &nonce, &next, None));
    if let Some(set) = set.and_then(|s| s.parse().ok()) {
        r.headers_mut().append(header::SET_COOKIE, set);
    }
    Ok(r)
}

pub async fn page(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ConsoleError> {
    page_(&state, &headers, q.as_deref()).await
}

/// Issues a session for `sub` and sends the browser to `next`: the cookie carries the random
/// session id, the store keeps its hash (so signing out, or revoking the person's keys, ends
/// it on every replica). Nothing is set when the store cannot record it.
pub async fn start_session(
    state: &ConsoleState,
    sub: &str,
    groups: Vec<String>,
    via: &str,
    next: &str,
) -> Result<Response, ConsoleError> {
    let principal = countersign_core::PrincipalId::parse(sub).map_err(|_| {
        ConsoleError::new(
            StatusCode::FORBIDDEN,
            "people_only",
            "Only people sign in to the console.",
        )
    })?;
    let now = state.gateway.clock.now();
    let session = Session {
        sid: countersign_app::tokens::random_token(),
        sub: principal.to_string(),
        groups,
        via: via.to_string(),
        exp: now.timestamp() + SESSION_TTL_SECONDS,
    };
    state
        .console
        .store
        .session_start(&countersign_store::ConsoleSession {
            id_hash: session::sid_hash(&session.sid),
            principal,
            via: via.to_string(),
            created_at: now,
            expires_at: now + chrono::Duration::seconds(SESSION_TTL_SECONDS),
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "could not record a console session");
            ConsoleError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The gateway could not record your sign-in. Nothing was set; try again shortly.",
            )
        })?;
    let sealed = state.console.keys.seal("session", &session);
    let cookie = session::set_cookie(
        SESSION_COOKIE,
        &sealed,
        SESSION_TTL_SECONDS,
        state.console.secure,
    );
    tracing::info!(principal = %sub, via, channel = "console", "signed in to the console");
    // `next` passed `safe_next`; should it ever not be a valid header, go to the inbox rather
    // than fail after the session was made.
    let next = match axum::http::HeaderValue::from_str(next) {
        Ok(_) => next,
        Err(_) => "/console/",
    };
    let mut r = Redirect::to(next).into_response();
    if let Ok(v) = cookie.parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

pub async fn with_key(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let nonce = session::cookie(&headers, NONCE_COOKIE).unwrap_or("");
    if nonce.len() < 32
        || !state
            .console
            .keys
            .csrf_ok(&format!("pre:{nonce}"), &super::csrf_field(&body))
    {
        state.gateway.metrics.refusal("csrf_invalid");
        return Err(ConsoleError::csrf());
    }
    if !state.console.key_sign_in {
        return Err(ConsoleError::new(
            StatusCode::NOT_FOUND,
            "key_sign_in_disabled",
            "Signing in with an API key is turned off on this gateway; use the identity provider.",
        ));
    }
    let f: KeyForm = super::parse_form(&body)?;
    let next = safe_next(f.next.as_deref())?;
    let refuse = |status: StatusCode, code: &'static str, message: &str| {
        html_with_code(status, code, form(&state, nonce, &next, Some(message)))
    };
    // Asks the store, not the key cache: a key revoked a moment ago starts no session.
    let principal = match state
        .auth
        .authenticate_fresh(Some(&format!("Bearer {}", f.key.trim())))
        .await
    {
        Ok(p) => p,
        Err(_) => {
            state.gateway.metrics.refusal("invalid_key");
            return Ok(refuse(
                StatusCode::UNAUTHORIZED,
                "invalid_key",
                "That API key is not valid on this gateway.",
            ));
        }
    };
    if !principal.is_person() {
        return Ok(refuse(
            StatusCode::FORBIDDEN,
            "people_only",
            "That key belongs to an agent; only people sign in to the console.",
        ));
    }
    start_session(&state, principal.id.as_str(), vec![], "key", &next).await
}

pub async fn sign_out(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let (viewer, _): (_, CsrfOnly) = state.form_viewer(&headers, &body).await?;
    // Ends this session in the store, so a copy of the cookie stops working on every
    // replica; the person's other sessions (other browsers) go on.
    state
        .console
        .store
        .session_end(&session::sid_hash(&viewer.session.sid))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "could not end a console session");
            ConsoleError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The gateway could not end your session. You are still signed in; try again shortly.",
            )
        })?;
    tracing::info!(principal = %viewer.principal.id, channel = "console", "signed out of the console");
    let mut r = Redirect::to("/console/sign-in").into_response();
    let clear = session::set_cookie(SESSION_COOKIE, "", 0, state.console.secure);
    if let Ok(v) = clear.parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}
