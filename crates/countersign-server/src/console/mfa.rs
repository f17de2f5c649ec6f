//! The second-factor page: the person's passkeys (list, add one: a WebAuthn registration whose
//! ceremony the gateway keeps server-side; the browser part is in `static/console.js`), and
//! TOTP enrolment, whose secret is shown once, here. Either is then asked at decision time for
//! rules with `mfa: true`; the gateway verifies it.
//!
//! Must not: show a secret again after enrolment, or store or check a passkey itself.

use super::layout::{page as chrome, when};
use super::{ConsoleError, Viewer};
use crate::http::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use countersign_store::StoredPasskey;
use maud::{Markup, html};
use serde::Deserialize;

fn body(
    viewer: &Viewer,
    passkeys: &[StoredPasskey],
    added: bool,
    enrolled: bool,
    uri: Option<&str>,
) -> Markup {
    html! {
        section.card.narrow id="passkeys" {
            h1 { "Passkeys" }
            p { "A passkey (your device's screen lock, or a security key) confirms a vote on rules marked " code { "mfa: true" } "; the confirmation covers exactly that request, digest and decision." }
            @if added { div.notice.ok role="status" data-passkey-added { p { strong { "Passkey added." } } } }
            @if passkeys.is_empty() {
                p.muted { "You have no passkey yet." }
            } @else {
                ul.passkeys {
                    @for p in passkeys {
                        li data-credential=(p.credential_id) {
                            code { (&p.credential_id[..p.credential_id.len().min(16)]) "…" }
                            " · added " (when(&p.created_at))
                            " · " @match &p.last_used_at { Some(t) => { "last used " (when(t)) }, None => span.muted { "not used yet" } }
                        }
                    }
                }
            }
            form method="post" action="/console/mfa" {
                input type="hidden" name="csrf" value=(viewer.csrf);
                button.secondary type="button" data-passkey="register" data-status="passkey-status" { "Add a passkey" }
                p.notice.error id="passkey-status" role="alert" hidden {}
            }
        }
        section.card.narrow {
            h1 { "One-time codes" }
            p { "Rules marked " code { "mfa: true" } " count your vote only with a one-time code from an authenticator app (RFC 6238; each code once)." }
            @if let Some(u) = uri {
                div.notice.ok role="status" {
                    p { strong { "Enrolled." } " Add this to your authenticator app now; it is not shown again:" }
                    p { code.wrap data-otpauth=(u) { (u) } }
                    @if let Some(secret) = u.split("secret=").nth(1).map(|s| s.split('&').next().unwrap_or(s)) {
                        p { "Or type the secret: " code.wrap data-secret=(secret) { (secret) } }
                    }
                }
            } @else {
                p.muted { @if enrolled { "You have a one-time-code app enrolled. Enrolling again replaces it." } @else { "You have no second factor yet." } }
            }
            form method="post" action="/console/mfa/totp" {
                input type="hidden" name="csrf" value=(viewer.csrf);
                button.secondary type="submit" { @if enrolled || uri.is_some() { "Enrol a new authenticator app" } @else { "Enrol an authenticator app" } }
            }
        }
    }
}

async fn passkeys(state: &AppState, viewer: &Viewer) -> Result<Vec<StoredPasskey>, ConsoleError> {
    Ok(state
        .gateway
        .store
        .passkeys(&viewer.principal.id)
        .await
        .map_err(crate::gateway::GatewayError::from)?)
}

pub async fn page_(
    state: &AppState,
    viewer: &Viewer,
    added: bool,
) -> Result<Response, ConsoleError> {
    let enrolled = state
        .gateway
        .store
        .totp_get(&viewer.principal.id)
        .await
        .map_err(crate::gateway::GatewayError::from)?
        .is_some();
    let keys = passkeys(state, viewer).await?;
    Ok(super::html(chrome(
        "Second factor",
        Some(viewer),
        None,
        body(viewer, &keys, added, enrolled, None),
    )))
}

pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ConsoleError> {
    let viewer = state.page_viewer(&headers, &uri).await?;
    let added = uri.query().is_some_and(|q| q == "passkey=added");
    page_(&state, &viewer, added).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollForm {
    #[allow(dead_code)]
    csrf: String,
}

pub async fn enroll_totp(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let (viewer, _): (Viewer, EnrollForm) = state.form_viewer(&headers, &body).await?;
    let uri = state.gateway.enroll_totp(&viewer.principal).await?;
    let keys = passkeys(&state, &viewer).await?;
    let mut r = super::html(chrome(
        "Second factor",
        Some(&viewer),
        None,
        body_markup(&viewer, &keys, &uri),
    ));
    *r.status_mut() = StatusCode::CREATED;
    Ok(r)
}

fn body_markup(viewer: &Viewer, passkeys: &[StoredPasskey], uri: &str) -> Markup {
    body(viewer, passkeys, false, true, Some(uri))
}

/// Begins registering a passkey: `{ceremony, options}` for `navigator.credentials.create`.
pub async fn passkey_begin(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let (viewer, _): (Viewer, EnrollForm) = state.form_viewer(&headers, &body).await?;
    let begun = state
        .gateway
        .passkey_register_begin(&viewer.principal)
        .await?;
    Ok(
        axum::Json(serde_json::json!({"ceremony": begun.ceremony, "options": begun.options}))
            .into_response(),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinishForm {
    #[allow(dead_code)]
    csrf: String,
    ceremony: String,
    credential: String,
}

/// Finishes a registration with the browser's answer (base64url JSON); `201 {"ok": true}`.
pub async fn passkey_finish(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let (viewer, f): (Viewer, FinishForm) = state.form_viewer(&headers, &body).await?;
    state
        .gateway
        .passkey_register_finish(&viewer.principal, &f.ceremony, &f.credential)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(serde_json::json!({"ok": true})),
    )
        .into_response())
}
