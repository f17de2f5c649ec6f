//! `GET /v1/executors`: the executors the gateway holds, as agents and their tools see them
//! (name, action kind, description, the JSON Schema of the params, the resource), for any
//! authenticated principal. An `ExecutorInfo` holds no secret, so nothing here can show one.

use super::ApiState;
use super::extract::Caller;
use super::openapi::Unauthenticated;
use crate::wire::{ExecutorList, ExecutorView};
use axum::Json;
use axum::extract::State;

#[utoipa::path(
    get,
    path = "/v1/executors",
    operation_id = "list_executors",
    security(("bearer" = [])),
    responses((status = 200, description = "The executors this gateway holds", body = ExecutorList), Unauthenticated)
)]
pub async fn list(State(state): State<ApiState>, Caller(_caller): Caller) -> Json<ExecutorList> {
    let executors = state.gateway.executors().list();
    Json(ExecutorList {
        executors: executors.iter().map(ExecutorView::from).collect(),
    })
}
