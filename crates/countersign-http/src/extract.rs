//! Request extractors that answer malformed input in our error format: the authenticated
//! caller, and JSON bodies (bad JSON, unknown fields and oversized bodies are 4xx with a code;
//! so are numbers and keys that would mean two things: `json_text::check` runs on the bytes
//! before they are parsed, here and in `checked_body` for the routes that parse bodies
//! themselves).

use super::ApiState;
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
    ApiState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = ApiState::from_ref(state);
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
            .map_err(body_rejection)?;
        countersign_core::json_text::check(&bytes)?;
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

fn body_rejection(rejection: axum::extract::rejection::BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body is larger than this gateway accepts",
        )
    } else {
        ApiError::bad_request("invalid_body", rejection.body_text())
    }
}

/// For a route whose handler parses the body itself (the MCP service): reads a POST body within
/// the body limit, checks its JSON text as `JsonBody` does, and hands the request on with the
/// same bytes. Other methods pass untouched.
pub async fn checked_body(req: Request) -> Result<Request, ApiError> {
    if req.method() != axum::http::Method::POST {
        return Ok(req);
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::Bytes::from_request(Request::from_parts(parts.clone(), body), &())
        .await
        .map_err(body_rejection)?;
    countersign_core::json_text::check(&bytes)?;
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn post(body: &'static str) -> Request {
        axum::http::Request::post("/mcp")
            .body(Body::from(body))
            .expect("a request")
    }

    #[tokio::test]
    async fn duplicate_keys_are_refused_before_the_mcp_service_parses_them() {
        let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x__pay","arguments":{"to":"a","to":"b"}}}"#;
        let err = checked_body(post(call)).await.expect_err("duplicate");
        assert_eq!(
            (err.status, err.code),
            (StatusCode::BAD_REQUEST, "duplicate_key")
        );
        let imprecise = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x__pay","arguments":{"cents":9007199254740993}}}"#;
        let err = checked_body(post(imprecise)).await.expect_err("imprecise");
        assert_eq!(err.code, "imprecise_number");
        // A sound body goes on unchanged; other methods are not read.
        let fine = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        let passed = checked_body(post(fine)).await.expect("passes");
        let bytes = axum::body::to_bytes(passed.into_body(), usize::MAX)
            .await
            .expect("body");
        assert_eq!(&bytes[..], fine.as_bytes());
        let get = axum::http::Request::get("/mcp")
            .body(Body::empty())
            .expect("a request");
        assert!(checked_body(get).await.is_ok());
    }
}
