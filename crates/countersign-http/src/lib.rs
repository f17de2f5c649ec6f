//! The HTTP API under `/v1` (axum). Each handler authenticates, decodes, calls one `Gateway`
//! method and encodes the answer; errors go through `error` only: it is the one function where
//! a `GatewayError` becomes an HTTP status, for this API and for every edge that answers over
//! HTTP (the console renders it, the chat channels' endpoints answer with it). Also the wire
//! types (`wire`) the CLI shares, and the HTTP server loop (`server`).
//!
//! Architecture invariant: arrows only run down. This crate knows the application service
//! (`countersign-app`) and nothing beside or above it; the console, channels and MCP crates use
//! it, and the binary's router composes them all.
#![forbid(unsafe_code)]

mod audit;
pub mod authzen;
pub mod error;
mod executors;
pub mod extract;
pub mod openapi;
mod requests;
mod runs;
pub mod server;
mod standing;
mod system;
pub mod wire;

use axum::http::StatusCode;
use countersign_app::auth::Authenticator;
use countersign_app::gateway::Gateway;
use error::ApiError;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// What the API's handlers reach.
#[derive(Clone)]
pub struct ApiState {
    pub gateway: Arc<Gateway>,
    pub auth: Arc<Authenticator>,
    /// The audit log's key, checkpoints, receipts and attestations.
    pub audit: Arc<countersign_app::audit::Audit>,
    /// The OpenAPI document, once the binary's router has merged every role's paths.
    pub openapi: openapi::Document,
}

/// The `/v1` API's own routes and their OpenAPI paths (the chat channels', MCP's and the
/// console's are theirs; the binary merges them and adds the fallbacks and the body limit).
/// Each `routes!` registers a handler's route and its documented path item together
/// (`openapi`).
pub fn routes(state: ApiState) -> OpenApiRouter {
    // AuthZEN's own routes echo the PEP's `X-Request-ID` (errors included).
    let authzen = OpenApiRouter::new()
        .routes(routes!(authzen::evaluation))
        .routes(routes!(authzen::evaluations))
        .routes(routes!(authzen::configuration))
        .layer(axum::middleware::from_fn(authzen::echo_request_id));
    OpenApiRouter::new()
        .merge(authzen)
        .routes(routes!(requests::submit))
        .routes(routes!(requests::submit_plan))
        .routes(routes!(requests::list))
        .routes(routes!(requests::show))
        .routes(routes!(requests::events))
        .routes(routes!(audit::attestation))
        .routes(routes!(requests::vote))
        .routes(routes!(requests::cancel))
        .routes(routes!(requests::amend))
        .routes(routes!(requests::execute))
        .routes(routes!(requests::report_outcome))
        .routes(routes!(requests::redeem))
        .routes(routes!(executors::list))
        .routes(routes!(standing::list))
        .routes(routes!(standing::revoke))
        .routes(routes!(runs::show))
        .routes(routes!(runs::pause))
        .routes(routes!(runs::resume))
        .routes(routes!(runs::stop))
        .routes(routes!(system::whoami))
        .routes(routes!(system::enroll_totp))
        .routes(routes!(audit::checkpoint))
        .routes(routes!(audit::key))
        .routes(routes!(audit::entries))
        .routes(routes!(audit::inclusion))
        .routes(routes!(audit::consistency))
        .routes(routes!(audit::stream))
        .routes(routes!(openapi::serve))
        .routes(routes!(system::healthz))
        .routes(routes!(system::metrics))
        .layer(axum::middleware::from_fn(trace_context))
        .with_state(state)
}

/// Runs an API call in the trace context its W3C `traceparent` header names (an invalid one is
/// ignored), so the requests it makes record it (`countersign_app::trace`).
async fn trace_context(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let trace = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(countersign_core::trace::TraceParent::parse);
    countersign_app::trace::scope(trace, next.run(req)).await
}

/// The answer of an endpoint whose subsystem is not configured (`what`: the sentence).
pub fn not_configured(what: &'static str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_configured", what)
}

/// The answer to a path no route serves.
pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see /v1/openapi.json",
    )
}

/// The answer to a method a route does not take.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method; see /v1/openapi.json",
    )
}
