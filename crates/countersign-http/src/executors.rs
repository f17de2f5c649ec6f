//! `GET /v1/executors`: the executors the gateway holds, as agents and their tools see them
//! (name, action kind, description, the JSON Schema of the params, the resource), for any
//! authenticated principal. An `ExecutorInfo` holds no secret, so nothing here can show one.

use super::ApiState;
use super::extract::Caller;
use crate::wire::{ExecutorList, ExecutorView};
use axum::Json;
use axum::extract::State;

pub async fn list(State(state): State<ApiState>, Caller(_caller): Caller) -> Json<ExecutorList> {
    let executors = state.gateway.executors().list();
    Json(ExecutorList {
        executors: executors.iter().map(ExecutorView::from).collect(),
    })
}
