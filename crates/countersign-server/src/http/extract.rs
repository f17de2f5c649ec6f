//! Request extractors that answer malformed input in our error format: the authenticated
//! caller, and JSON bodies (bad JSON, unknown fields and oversized bodies are 4xx with a code).

use super::AppState;
use super::error::ApiError;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use countersign_core::Principal;
use serde::de::DeserializeOwned;

/// The authenticated principal making the call.
pub struct Caller(pub Principal);

impl<S> FromRequestParts<S> for Caller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = AppState::from_ref(state);
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match app.auth.authenticate(header).await {
            Ok(p) => Ok(Caller(p)),
            Err(e) => {
                app.gateway.metrics.refusal("unauthenticated");
                Err(e.into())
            }
        }
    }
}

/// A JSON body decoded with our error format.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        "the request body is larger than this gateway accepts",
                    )
                } else {
                    ApiError::bad_request("invalid_body", rejection.body_text())
                }
            })?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            let code = if e.is_syntax() || e.is_eof() {
                "invalid_json"
            } else {
                "invalid_body"
            };
            ApiError::bad_request(code, format!("the request body is not valid: {e}"))
        })
    }
}
