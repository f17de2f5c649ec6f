//! The HTTP API under `/v1` (axum). Each handler authenticates, decodes, calls one `Gateway`
//! method and encodes the answer; errors go through `error` only.

mod audit;
pub mod error;
pub mod extract;
mod requests;
mod runs;
pub mod server;
mod system;

use crate::auth::Authenticator;
use crate::gateway::Gateway;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use error::ApiError;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub gateway: Arc<Gateway>,
    pub auth: Arc<Authenticator>,
    pub channels: crate::channels::Channels,
    /// The MCP gateway, when `mcp:` is configured.
    pub mcp: Option<Arc<crate::mcp::Mcp>>,
    /// The audit log's key, checkpoints, receipts and attestations.
    pub audit: Arc<crate::audit::Audit>,
    /// The web console's session keys and settings.
    pub console: Arc<crate::console::Console>,
}

/// Every route the API serves, as (method, path) in OpenAPI notation. The OpenAPI document is
/// checked against this list in tests.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/actions"),
    ("get", "/v1/requests"),
    ("get", "/v1/requests/{id}"),
    ("get", "/v1/requests/{id}/events"),
    ("get", "/v1/requests/{id}/attestation"),
    ("post", "/v1/requests/{id}/votes"),
    ("post", "/v1/requests/{id}/cancel"),
    ("post", "/v1/grants/{id}/redeem"),
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
    ("post", "/v1/channels/slack/interactions"),
    ("post", "/v1/channels/teams/messages"),
    ("post", "/mcp"),
    ("get", "/mcp"),
    ("delete", "/mcp"),
    ("get", "/v1/openapi.json"),
    ("get", "/healthz"),
    ("get", "/metrics"),
];

pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let mcp: Router<AppState> = match &state.mcp {
        Some(mcp) => Router::new()
            .route_service("/mcp", mcp.service())
            // Innermost: each request's session activity and its `ClientGone` (mcp::sessions).
            .route_layer(axum::middleware::from_fn_with_state(
                mcp.clone(),
                crate::mcp::sessions::track,
            ))
            // Inner: runs after authentication (route layers added later wrap earlier ones).
            .route_layer(axum::middleware::from_fn(crate::mcp::jsonrpc::one_message))
            .route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                mcp_authenticate,
            )),
        None => Router::new().route("/mcp", axum::routing::any(mcp_not_configured)),
    };
    Router::new()
        .route("/v1/actions", post(requests::submit))
        .route("/v1/requests", get(requests::list))
        .route("/v1/requests/{id}", get(requests::show))
        .route("/v1/requests/{id}/events", get(requests::events))
        .route("/v1/requests/{id}/attestation", get(audit::attestation))
        .route("/v1/requests/{id}/votes", post(requests::vote))
        .route("/v1/requests/{id}/cancel", post(requests::cancel))
        .route("/v1/grants/{id}/redeem", post(requests::redeem))
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
        .route("/v1/channels/slack/interactions", post(slack_interactions))
        .route("/v1/channels/teams/messages", post(teams_messages))
        .route("/v1/openapi.json", get(system::openapi))
        .route("/healthz", get(system::healthz))
        .route("/metrics", get(system::metrics))
        .merge(mcp)
        .merge(crate::console::routes(&state))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// Slack's interactivity requests; 404 unless Slack is configured.
async fn slack_interactions(
    axum::extract::State(state): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match &state.channels.slack {
        Some(slack) => {
            crate::channels::slack::interactions::http(slack.clone(), headers, body).await
        }
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_configured",
            "Slack is not configured on this gateway (channels.slack)",
        )
        .into_response(),
    }
}

/// The Teams bot endpoint (Bot Connector activities); 404 unless Teams is configured.
async fn teams_messages(
    axum::extract::State(state): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match &state.channels.teams {
        Some(teams) => crate::channels::teams::activity::http(teams.clone(), headers, body).await,
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_configured",
            "Microsoft Teams is not configured on this gateway (channels.teams)",
        )
        .into_response(),
    }
}

/// `/mcp` takes the agent's Countersign key as a Bearer token, like the rest of the API; the MCP
/// handlers find the principal in the request's extensions.
async fn mcp_authenticate(
    extract::Caller(who): extract::Caller,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    request.extensions_mut().insert(who);
    // Tool arguments become an action's params: their numbers and keys must mean one thing
    // before rmcp parses them (invariant 9).
    let request = match extract::checked_body(request).await {
        Ok(request) => request,
        Err(e) => return axum::response::IntoResponse::into_response(e),
    };
    next.run(request).await
}

async fn mcp_not_configured() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_configured",
        "the MCP gateway is not configured on this gateway (mcp.upstreams)",
    )
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see /v1/openapi.json",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method; see /v1/openapi.json",
    )
}
