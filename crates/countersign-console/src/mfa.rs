//! The second-factor page: the person's passkeys (list, add one: a WebAuthn registration whose
//! ceremony the gateway keeps server-side; the browser part is in `static/console.js`), and
//! TOTP enrolment, whose secret is shown once, here. Either is then asked at decision time for
//! rules with `mfa: true`; the gateway verifies it. A person who has a factor confirms any
//! change with it (a current code, or a passkey assertion begun at `/console/mfa/confirm`);
//! `Gateway::authorize_factor_change` decides, not this page.
//!
//! Also the banner every console page shows for a while after a change to the viewer's
//! factors (`with_factor_notices`; the banner itself is page chrome: `layout::factor_banner`).
//!
//! Must not: show a secret again after enrolment, or store or check a passkey itself.

use super::layout::{page as chrome, when};
use super::{ConsoleError, Viewer};
use crate::ConsoleState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use countersign_app::gateway::factors::CurrentFactor;
use countersign_store::StoredPasskey;
use maud::{Markup, html};
use serde::Deserialize;

/// The fields that prove a current factor, when the person has one: a code if they have a
/// TOTP app; with passkeys, the script asks one first when no code is typed.
fn proof_fields(enrolled: bool, has_passkeys: bool, id: &str) -> Markup {
    html! {
        @if enrolled {
            label for=(id) { "Current one-time code" @if has_passkeys { " (or leave empty to confirm with a passkey)" } }
            input id=(id) name="otp" inputmode="numeric" autocomplete="one-time-code" maxlength="10";
        } @else if has_passkeys {
            p.muted { "You will confirm with one of your passkeys first." }
        }
    }
}

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
            form method="post" action="/console/mfa" data-confirm-begin=[(!passkeys.is_empty()).then_some("/console/mfa/confirm")] {
                input type="hidden" name="csrf" value=(viewer.csrf);
                (proof_fields(enrolled, !passkeys.is_empty(), "passkey-otp"))
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
            form method="post" action="/console/mfa/totp" data-confirm-begin=[(!passkeys.is_empty()).then_some("/console/mfa/confirm")] {
                input type="hidden" name="csrf" value=(viewer.csrf);
                (proof_fields(enrolled, !passkeys.is_empty(), "totp-otp"))
                button.secondary type="submit" data-passkey=[(!passkeys.is_empty()).then_some("confirm")] data-status="totp-status" { @if enrolled || uri.is_some() { "Enrol a new authenticator app" } @else { "Enrol an authenticator app" } }
                p.notice.error id="totp-status" role="alert" hidden {}
            }
        }
    }
}

async fn passkeys(
    state: &ConsoleState,
    viewer: &Viewer,
) -> Result<Vec<StoredPasskey>, ConsoleError> {
    Ok(state.gateway.passkeys(&viewer.principal.id).await?)
}

pub async fn page_(
    state: &ConsoleState,
    viewer: &Viewer,
    added: bool,
) -> Result<Response, ConsoleError> {
    let enrolled = state.gateway.totp_enrolled(&viewer.principal.id).await?;
    let keys = passkeys(state, viewer).await?;
    Ok(super::html(chrome(
        "Second factor",
        Some(viewer),
        None,
        body(viewer, &keys, added, enrolled, None),
    )))
}

pub async fn page(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ConsoleError> {
    let viewer = state.page_viewer(&headers, &uri).await?;
    let added = uri.query().is_some_and(|q| q == "passkey=added");
    page_(&state, &viewer, added).await
}

/// A form that changes a factor: the CSRF token and the proof of a current factor, if any.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollForm {
    #[allow(dead_code)]
    csrf: String,
    #[serde(default)]
    otp: Option<String>,
    #[serde(default)]
    ceremony: Option<String>,
    #[serde(default)]
    credential: Option<String>,
}

impl EnrollForm {
    fn presented(self) -> Option<CurrentFactor> {
        CurrentFactor::from_fields(self.otp, self.ceremony, self.credential)
    }
}

pub async fn enroll_totp(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let (viewer, form): (Viewer, EnrollForm) = state.form_viewer(&headers, &body).await?;
    let uri = state
        .gateway
        .enroll_totp(&viewer.principal, form.presented())
        .await?;
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
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let (viewer, form): (Viewer, EnrollForm) = state.form_viewer(&headers, &body).await?;
    let begun = state
        .gateway
        .passkey_register(&viewer.principal, form.presented())
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
    State(state): State<ConsoleState>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmForm {
    #[allow(dead_code)]
    csrf: String,
}

/// Begins a passkey assertion that proves a current factor for one change of factors:
/// `{ceremony, options}` for `navigator.credentials.get`.
pub async fn confirm_begin(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let (viewer, _): (Viewer, ConfirmForm) = state.form_viewer(&headers, &body).await?;
    let begun = state
        .gateway
        .passkey_confirm_begin(&viewer.principal)
        .await?;
    Ok(
        axum::Json(serde_json::json!({"ceremony": begun.ceremony, "options": begun.options}))
            .into_response(),
    )
}

/// Middleware: reads the signed-in person's recent factor changes (none without a valid
/// session) and answers the request with them in scope for [`factor_banner`].
pub async fn with_factor_notices(
    State(state): State<ConsoleState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // Only pages show the banner: assets and event streams need no store read.
    let path = request.uri().path();
    let page = !path.starts_with("/console/static/") && !path.ends_with("/events");
    let viewer = if page {
        state.viewer(request.headers()).await
    } else {
        None
    };
    let notices = match viewer {
        Some(viewer) => state
            .gateway
            .factor_notices(&viewer.principal.id)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "could not read the factor changes for the banner");
                Vec::new()
            }),
        None => Vec::new(),
    };
    super::layout::FACTOR_NOTICES
        .scope(notices, next.run(request))
        .await
}
