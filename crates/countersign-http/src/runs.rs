//! Handlers for runs: read, pause, resume, stop (people only).

use super::ApiState;
use super::error::ApiError;
use super::extract::Caller;
use super::openapi::Refused;
use crate::wire::{RunView, timestamp};
use axum::Json;
use axum::extract::{Path, State};
use countersign_core::{Run, RunState};

fn run_view(run: &Run, changed: Vec<String>) -> RunView {
    RunView {
        id: run.id.clone(),
        state: run.state,
        updated_by: run.updated_by.to_string(),
        updated_at: timestamp(&run.updated_at),
        changed,
    }
}

#[utoipa::path(
    get,
    path = "/v1/runs/{run}",
    operation_id = "get_run",
    security(("bearer" = [])),
    params(("run" = String, Path, pattern = "^[A-Za-z0-9._:-]{1,200}$", description = "The run's id, as actions name it")),
    responses((status = 200, description = "The run", body = RunView), Refused)
)]
pub async fn show(
    State(state): State<ApiState>,
    Caller(_caller): Caller,
    Path(run): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    let run = state.gateway.get_run(&run).await?;
    Ok(Json(run_view(&run, vec![])))
}

/// Sets a run's state (people only); the requests it changed are listed.
async fn control(
    state: ApiState,
    caller: countersign_core::Principal,
    run: String,
    target: RunState,
) -> Result<Json<RunView>, ApiError> {
    let (run, changed) = state.gateway.set_run(&caller, &run, target).await?;
    Ok(Json(run_view(&run, changed)))
}

/// Pauses a run: its new actions are held, its pending ones wait.
#[utoipa::path(
    post,
    path = "/v1/runs/{run}/pause",
    operation_id = "pause_run",
    security(("bearer" = [])),
    params(("run" = String, Path, pattern = "^[A-Za-z0-9._:-]{1,200}$", description = "The run's id")),
    responses((status = 200, description = "The run, paused", body = RunView), Refused)
)]
pub async fn pause(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(run): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    control(state, caller, run, RunState::Paused).await
}

/// Resumes a paused run.
#[utoipa::path(
    post,
    path = "/v1/runs/{run}/resume",
    operation_id = "resume_run",
    security(("bearer" = [])),
    params(("run" = String, Path, pattern = "^[A-Za-z0-9._:-]{1,200}$", description = "The run's id")),
    responses((status = 200, description = "The run, active again", body = RunView), Refused)
)]
pub async fn resume(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(run): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    control(state, caller, run, RunState::Active).await
}

/// Stops a run: its pending requests are cancelled and its new actions refused.
#[utoipa::path(
    post,
    path = "/v1/runs/{run}/stop",
    operation_id = "stop_run",
    security(("bearer" = [])),
    params(("run" = String, Path, pattern = "^[A-Za-z0-9._:-]{1,200}$", description = "The run's id")),
    responses((status = 200, description = "The run, stopped", body = RunView), Refused)
)]
pub async fn stop(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(run): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    control(state, caller, run, RunState::Stopped).await
}
