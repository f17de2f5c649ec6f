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
mod requests;
mod runs;
pub mod server;
mod standing;
mod system;
pub mod wire;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use countersign_app::auth::Authenticator;
use countersign_app::gateway::Gateway;
use error::ApiError;
use std::sync::Arc;

/// What the API's handlers reach.
#[derive(Clone)]
pub struct ApiState {
    pub gateway: Arc<Gateway>,
    pub auth: Arc<Authenticator>,
    /// The audit log's key, checkpoints, receipts and attestations.
    pub audit: Arc<countersign_app::audit::Audit>,
}

/// Every route the API serves, as (method, path) in OpenAPI notation. The OpenAPI document is
/// checked against this list in tests.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/actions"),
    ("post", "/v1/plans"),
    ("get", "/v1/requests"),
    ("get", "/v1/requests/{id}"),
    ("get", "/v1/requests/{id}/events"),
    ("get", "/v1/requests/{id}/attestation"),
    ("post", "/v1/requests/{id}/votes"),
    ("post", "/v1/requests/{id}/cancel"),
    ("post", "/v1/requests/{id}/amend"),
    ("post", "/v1/requests/{id}/execute"),
    ("post", "/v1/requests/{id}/outcome"),
    ("post", "/v1/grants/{id}/redeem"),
    ("get", "/v1/executors"),
    ("get", "/v1/standing"),
    ("post", "/v1/standing/{id}/revoke"),
    ("get", "/v1/runs/{run}"),
    ("post", "/v1/runs/{run}/pause"),
    ("post", "/v1/runs/{run}/resume"),
    ("post", "/v1/runs/{run}/stop"),
    ("get", "/v1/whoami"),
    ("post", "/v1/mfa/totp"),
    ("get", "/v1/audit/checkpoint"),
    ("get", "/v1/audit/key"),
    ("get", "/v1/audit/entries"),
    ("get", "/v1/audit/entries/{index}/proof"),
    ("get", "/v1/audit/consistency"),
    ("get", "/v1/audit/stream"),
    ("post", "/access/v1/evaluation"),
    ("post", "/access/v1/evaluations"),
    ("get", "/.well-known/authzen-configuration"),
    ("post", "/v1/channels/slack/interactions"),
    ("post", "/v1/channels/teams/messages"),
    ("post", "/mcp"),
    ("get", "/mcp"),
    ("delete", "/mcp"),
    ("get", "/v1/openapi.json"),
    ("get", "/healthz"),
    ("get", "/metrics"),
];

/// The `/v1` API's own routes (the chat channels', MCP's and the console's are theirs; the
/// binary merges them and adds the fallbacks and the body limit).
pub fn routes(state: ApiState) -> Router {
    // AuthZEN's own routes echo the PEP's `X-Request-ID` (errors included).
    let authzen = Router::new()
        .route("/access/v1/evaluation", post(authzen::evaluation))
        .route("/access/v1/evaluations", post(authzen::evaluations))
        .route(
            "/.well-known/authzen-configuration",
            get(authzen::configuration),
        )
        .layer(axum::middleware::from_fn(authzen::echo_request_id));
    Router::new()
        .merge(authzen)
        .route("/v1/actions", post(requests::submit))
        .route("/v1/plans", post(requests::submit_plan))
        .route("/v1/requests", get(requests::list))
        .route("/v1/requests/{id}", get(requests::show))
        .route("/v1/requests/{id}/events", get(requests::events))
        .route("/v1/requests/{id}/attestation", get(audit::attestation))
        .route("/v1/requests/{id}/votes", post(requests::vote))
        .route("/v1/requests/{id}/cancel", post(requests::cancel))
        .route("/v1/requests/{id}/amend", post(requests::amend))
        .route("/v1/requests/{id}/execute", post(requests::execute))
        .route("/v1/requests/{id}/outcome", post(requests::report_outcome))
        .route("/v1/grants/{id}/redeem", post(requests::redeem))
        .route("/v1/executors", get(executors::list))
        .route("/v1/standing", get(standing::list))
        .route("/v1/standing/{id}/revoke", post(standing::revoke))
        .route("/v1/runs/{run}", get(runs::show))
        .route("/v1/runs/{run}/{verb}", post(runs::control))
        .route("/v1/whoami", get(system::whoami))
        .route("/v1/mfa/totp", post(system::enroll_totp))
        .route("/v1/audit/checkpoint", get(audit::checkpoint))
        .route("/v1/audit/key", get(audit::key))
        .route("/v1/audit/entries", get(audit::entries))
        .route("/v1/audit/entries/{index}/proof", get(audit::inclusion))
        .route("/v1/audit/consistency", get(audit::consistency))
        .route("/v1/audit/stream", get(audit::stream))
        .route("/v1/openapi.json", get(system::openapi))
        .route("/healthz", get(system::healthz))
        .route("/metrics", get(system::metrics))
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
