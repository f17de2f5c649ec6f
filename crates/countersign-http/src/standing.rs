//! Standing approvals (issue 18): `GET /v1/standing` lists them (people: all; an agent: its
//! own), `POST /v1/standing/{id}/revoke` revokes one (an eligible approver of its rule, or the
//! owner of the requesting agent; the core decides). Revocation takes effect for the next
//! action.

use super::ApiState;
use super::error::ApiError;
use super::extract::Caller;
use super::openapi::Refused;
use crate::wire::{StandingList, StandingView};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use countersign_app::gateway::GatewayError;

#[utoipa::path(
    get,
    path = "/v1/standing",
    operation_id = "list_standing",
    security(("bearer" = [])),
    params(("state" = Option<String>, Query, pattern = "^(active|all)$", description = "`active`: only those still usable (default `all`)")),
    responses((status = 200, description = "Standing approvals the caller may see", body = StandingList), Refused)
)]
pub async fn list(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<StandingList>, ApiError> {
    let active = match raw.as_deref() {
        None | Some("") | Some("state=all") => false,
        Some("state=active") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("`{other}`: the only query is `state=active` or `state=all`"),
            ));
        }
    };
    let now = state.gateway.clock.now();
    let held = state.gateway.standing(&caller, active).await?;
    Ok(Json(StandingList {
        standing: held
            .iter()
            .filter_map(|r| StandingView::of(r, now))
            .collect(),
    }))
}

#[utoipa::path(
    post,
    path = "/v1/standing/{id}/revoke",
    operation_id = "revoke_standing",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The standing approval (`std_…`)")),
    responses((status = 200, description = "The standing approval, revoked", body = StandingView), Refused)
)]
pub async fn revoke(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<StandingView>, ApiError> {
    let request = countersign_core::standing::request_id_for_standing(&id)
        .ok_or(GatewayError::NotFound("standing approval"))?;
    let req = state.gateway.revoke_standing(&caller, &request).await?;
    let now = state.gateway.clock.now();
    Ok(Json(
        StandingView::of(&req, now).ok_or(GatewayError::NotFound("standing approval"))?,
    ))
}
