//! Liveness, metrics, the OpenAPI document, and the caller's own identity and second factor.

use super::ApiState;
use super::error::ApiError;
use super::extract::Caller;
use crate::wire::{MfaEnrollBody, MfaEnrollment, WhoAmI};
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

/// The OpenAPI 3.1 document for this API, kept in step with `ROUTES` by a test.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Ready means the database answers a read. The answer names the policy in force (its hash),
/// so replicas on one database can be seen to run the same policy.
pub async fn healthz(State(state): State<ApiState>) -> impl IntoResponse {
    match state.gateway.storage_answers().await {
        Ok(_) => {
            let policy = state.gateway.policy.current();
            (
                StatusCode::OK,
                Json(serde_json::json!({"status": "ok", "policy": policy.hash()})),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "health check: database unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"status": "unavailable"})),
            )
        }
    }
}

pub async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.gateway.metrics.render(),
    )
}

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

pub async fn whoami(Caller(caller): Caller) -> Json<WhoAmI> {
    Json(WhoAmI { principal: caller })
}

/// Enrols TOTP; a person who has a second factor proves it with `otp` (`crate::factors`).
pub async fn enroll_totp(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<MfaEnrollment>), ApiError> {
    // An empty body stays accepted for a first enrolment, as before the proof existed.
    let body: MfaEnrollBody = match body.trim_ascii().is_empty() {
        true => MfaEnrollBody::default(),
        false => serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                "invalid_body",
                format!("the request body is not valid: {e}"),
            )
        })?,
    };
    let presented =
        countersign_app::gateway::factors::CurrentFactor::from_fields(body.otp, None, None);
    let otpauth_uri = state.gateway.enroll_totp(&caller, presented).await?;
    Ok((StatusCode::CREATED, Json(MfaEnrollment { otpauth_uri })))
}
