//! The Standing approvals page (issue 18): every standing approval of the last 7 days, what it
//! covers, who formed it, how many uses are left and until when, and a Revoke button (the
//! same as `POST /v1/standing/{id}/revoke`: `Gateway::revoke_standing`, which decides who may).
//!
//! Must not: change anything on a GET, or decide who may revoke.

use super::layout::{page as chrome, when};
use super::{ConsoleError, Viewer};
use crate::ConsoleState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use countersign_app::gateway::GatewayError;
use countersign_core::standing::{ScopeField, request_id_for_standing, standing_id_for};
use maud::html;
use serde::Deserialize;

pub async fn page(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ConsoleError> {
    let viewer = state.page_viewer(&headers, &uri).await?;
    let held = state.gateway.standing(&viewer.principal, false).await?;
    let now = state.gateway.clock.now();
    let body = html! {
        section.card {
            h1 { "Standing approvals" }
            p { "An approval that also approves the same agent's later actions under the same rule, "
                "as long as the fields below stay equal, until it runs out of time or uses, or is revoked. "
                "Revoking takes effect for the next action." }
            @if held.is_empty() {
                p.empty { "No standing approval in the last 7 days." }
            } @else {
                div.table-wrap {
                    table.list {
                        thead { tr {
                            th scope="col" { "Agent and rule" }
                            th scope="col" { "Covers" }
                            th scope="col" { "Approved by" }
                            th scope="col" { "Uses" }
                            th scope="col" { "State" }
                            th scope="col" { "" }
                        } }
                        tbody {
                            @for req in &held {
                                @if let Some(s) = req.standing() {
                                    @let id = standing_id_for(req.id());
                                    @let status = s.status(now);
                                    tr data-standing=(id) data-state=(status) {
                                        td {
                                            span.mono { (req.requester().id.as_str()) } br;
                                            a href={ "/console/requests/" (req.id()) } { code { (req.decision().rule.as_deref().unwrap_or("(default)")) } }
                                        }
                                        td {
                                            @for f in &s.scope {
                                                div.mono { (covers(req, *f)) }
                                            }
                                        }
                                        td { @for a in &s.approvers { div.mono { (a.as_str()) } } }
                                        td { (s.used) " of " (s.uses) }
                                        td {
                                            (status) br;
                                            span.muted { "until " (when(&s.until)) }
                                            @if let Some(by) = &s.revoked_by { br; span.muted { "revoked by " (by.as_str()) } }
                                        }
                                        td {
                                            @if status == "active" {
                                                form.inline method="post" action={ "/console/standing/" (id) "/revoke" } {
                                                    input type="hidden" name="csrf" value=(viewer.csrf);
                                                    button.deny type="submit" { "Revoke" }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(super::html(chrome(
        "Standing approvals",
        Some(&viewer),
        None,
        body,
    )))
}

/// One scope field of `req`'s action as `field = value`.
fn covers(req: &countersign_core::Request, field: ScopeField) -> String {
    let a = req.action();
    match field {
        ScopeField::Kind => format!("kind = {}", a.kind),
        ScopeField::Resource => format!("resource = {}", a.resource),
        ScopeField::Params => format!("params = {}", a.params),
        ScopeField::Run => format!("run = {}", a.run.as_deref().unwrap_or("(none)")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeForm {
    #[allow(dead_code)]
    csrf: String,
}

pub async fn revoke(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let (viewer, _): (Viewer, RevokeForm) = state.form_viewer(&headers, &body).await?;
    let request =
        request_id_for_standing(&id).ok_or(GatewayError::NotFound("standing approval"))?;
    state
        .gateway
        .revoke_standing(&viewer.principal, &request)
        .await?;
    Ok(Redirect::to("/console/standing").into_response())
}
