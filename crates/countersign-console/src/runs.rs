//! A run's page: its state, its actions in the order they were asked, and Pause / Resume /
//! Stop, which are `Gateway::set_run` (the same as `POST /v1/runs/{run}/…`).
//!
//! Must not: change a run on a GET, or decide who may steer a run (the gateway does).

use super::layout::{page as chrome, state_badge, when};
use super::{ConsoleError, Viewer};
use crate::ConsoleState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use countersign_core::RunState;
use countersign_store::RequestQuery;
use maud::html;
use serde::Deserialize;

pub async fn page(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    uri: Uri,
    Path(run): Path<String>,
) -> Result<Response, ConsoleError> {
    let viewer = state.page_viewer(&headers, &uri).await?;
    let current = match state.gateway.get_run(&run).await {
        Ok(r) => Some(r),
        Err(countersign_app::gateway::GatewayError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let mut actions = state
        .gateway
        .list(
            &viewer.principal,
            RequestQuery {
                state: None,
                run: Some(run.clone()),
                requester: None,
                limit: 500,
                before: None,
            },
        )
        .await?;
    actions.reverse();
    let run_state = current.as_ref().map_or(RunState::Active, |r| r.state);
    let label = match run_state {
        RunState::Active => "active",
        RunState::Paused => "paused",
        RunState::Stopped => "stopped",
    };
    let button = |verb: &str, text: &str, class: &str, enabled: bool| {
        html! {
            form.inline method="post" action={ "/console/runs/" (run) "/" (verb) } {
                input type="hidden" name="csrf" value=(viewer.csrf);
                button class=(class) type="submit" disabled[!enabled] { (text) }
            }
        }
    };
    let body = html! {
        nav.crumbs aria-label="Breadcrumb" { a href="/console/" { "Inbox" } " / run" }
        section.card {
            div.title-row { h1.mono { (run) } span class={ "badge r-" (label) } { (label) } }
            @if let Some(r) = &current {
                p.muted { "Last changed by " (r.updated_by.as_str()) " at " (when(&r.updated_at)) }
            }
            p.hint { "Pause holds new actions of this run until it is resumed; stop refuses them (and closes what is pending)." }
            div.buttons {
                (button("pause", "Pause", "secondary", run_state == RunState::Active))
                (button("resume", "Resume", "secondary", run_state == RunState::Paused))
                (button("stop", "Stop", "deny", run_state != RunState::Stopped))
            }
        }
        section.card {
            h2 { "Actions, in order" }
            @if actions.is_empty() { p.empty { "No action of this run is recorded." } }
            ol.run-actions {
                @for r in &actions {
                    li {
                        a href={ "/console/requests/" (r.id()) } { strong { (r.action().kind) } } " "
                        span.mono.muted { (r.action().resource) } " "
                        (state_badge(r.state(), r.held())) " "
                        span.muted { (when(&r.created_at())) }
                    }
                }
            }
        }
    };
    Ok(super::html(chrome(
        &format!("Run {run}"),
        Some(&viewer),
        None,
        body,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunForm {
    #[allow(dead_code)]
    csrf: String,
}

pub async fn control(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path((run, verb)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let (viewer, _): (Viewer, RunForm) = state.form_viewer(&headers, &body).await?;
    let target = match verb.as_str() {
        "pause" => RunState::Paused,
        "resume" => RunState::Active,
        "stop" => RunState::Stopped,
        _ => {
            return Err(ConsoleError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "A run can be paused, resumed or stopped.",
            ));
        }
    };
    state
        .gateway
        .set_run(&viewer.principal, &run, target)
        .await?;
    Ok(Redirect::to(&format!("/console/runs/{run}")).into_response())
}
