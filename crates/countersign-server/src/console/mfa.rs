//! The second-factor page: enrol (or re-enrol) TOTP, whose secret is shown once, here. The
//! code is then asked at decision time for rules with `mfa: true`; the gateway verifies it.
//!
//! Must not: show a secret again after enrolment.

use super::layout::page as chrome;
use super::{ConsoleError, Viewer};
use crate::http::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

fn body(viewer: &Viewer, enrolled: bool, uri: Option<&str>) -> Markup {
    html! {
        section.card.narrow {
            h1 { "Second factor" }
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

pub async fn page_(state: &AppState, viewer: &Viewer) -> Result<Response, ConsoleError> {
    let enrolled = state
        .gateway
        .store
        .totp_get(&viewer.principal.id)
        .await
        .map_err(crate::gateway::GatewayError::from)?
        .is_some();
    Ok(super::html(chrome(
        "Second factor",
        Some(viewer),
        None,
        body(viewer, enrolled, None),
    )))
}

pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ConsoleError> {
    let viewer = state.page_viewer(&headers, &uri)?;
    page_(&state, &viewer).await
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
    let (viewer, _): (Viewer, EnrollForm) = state.form_viewer(&headers, &body)?;
    let uri = state.gateway.enroll_totp(&viewer.principal).await?;
    let mut r = super::html(chrome(
        "Second factor",
        Some(&viewer),
        None,
        body_markup(&viewer, &uri),
    ));
    *r.status_mut() = StatusCode::CREATED;
    Ok(r)
}

fn body_markup(viewer: &Viewer, uri: &str) -> Markup {
    body(viewer, true, Some(uri))
}
