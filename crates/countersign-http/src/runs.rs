//! Handlers for runs: read, pause, resume, stop (people only).

use super::ApiState;
use super::error::ApiError;
use super::extract::Caller;
use crate::wire::{RunView, timestamp};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
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

pub async fn show(
    State(state): State<ApiState>,
    Caller(_caller): Caller,
    Path(run): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    let run = state.gateway.get_run(&run).await?;
    Ok(Json(run_view(&run, vec![])))
}

pub async fn control(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path((run, verb)): Path<(String, String)>,
) -> Result<Json<RunView>, ApiError> {
    let target = match verb.as_str() {
        "pause" => RunState::Paused,
        "resume" => RunState::Active,
        "stop" => RunState::Stopped,
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "a run can be paused, resumed or stopped: POST /v1/runs/{run}/pause|resume|stop",
            ));
        }
    };
    let (run, changed) = state.gateway.set_run(&caller, &run, target).await?;
    Ok(Json(run_view(&run, changed)))
}
