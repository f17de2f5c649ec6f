//! Liveness, metrics, and the caller's own identity and second factor.

use super::ApiState;
use super::error::ApiError;
use super::extract::Caller;
use super::openapi::{Refused, TooLarge, Unauthenticated};
use crate::wire::{MfaEnrollBody, MfaEnrollment, WhoAmI};
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

/// `GET /healthz`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: &'static str,
    /// The hash of the policy in force (when `ok`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// Ready means the database answers a read. The answer names the policy in force (its hash),
/// so replicas on one database can be seen to run the same policy.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    responses(
        (status = 200, description = "The database answers; the policy in force", body = Health),
        (status = 503, description = "The database does not answer", body = Health),
    )
)]
pub async fn healthz(State(state): State<ApiState>) -> impl IntoResponse {
    match state.gateway.storage_answers().await {
        Ok(_) => {
            let policy = state.gateway.policy.current();
            (
                StatusCode::OK,
                Json(Health {
                    status: "ok",
                    policy: Some(policy.hash().to_owned()),
                }),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "health check: database unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "unavailable",
                    policy: None,
                }),
            )
        }
    }
}

/// Prometheus / OpenMetrics text.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    responses((status = 200, description = "The gateway's metrics", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String))
)]
pub async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.gateway.metrics.render(),
    )
}

#[utoipa::path(
    get,
    path = "/v1/whoami",
    operation_id = "whoami",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller, as the gateway knows it", body = WhoAmI), Unauthenticated)
)]
pub async fn whoami(Caller(caller): Caller) -> Json<WhoAmI> {
    Json(WhoAmI { principal: caller })
}

/// Enrols TOTP; a person who has a second factor proves it with `otp` (`crate::factors`).
#[utoipa::path(
    post,
    path = "/v1/mfa/totp",
    operation_id = "enroll_totp",
    security(("bearer" = [])),
    request_body(content = Option<MfaEnrollBody>, description = "Empty, or `{\"otp\"}` from the current second factor"),
    responses((status = 201, description = "The new TOTP secret, as an `otpauth://` URI", body = MfaEnrollment), Refused, TooLarge)
)]
pub async fn enroll_totp(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<MfaEnrollment>), ApiError> {
    // An empty body stays accepted for a first enrolment, as before the proof existed.
    // An empty body and `null` (what the document's optional body allows) are `{}`.
    let body: MfaEnrollBody = match body.trim_ascii() {
        b"" | b"null" => MfaEnrollBody::default(),
        _ => serde_json::from_slice(&body).map_err(|e| {
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
