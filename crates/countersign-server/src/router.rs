//! The gateway's one router: every role's routes, merged, with the fallbacks and the body limit
//! over all of them.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use std::sync::Arc;

/// What each role's routes are built from.
pub struct Parts {
    pub api: countersign_http::ApiState,
    pub channels: countersign_channels::Channels,
    /// The MCP gateway, when `mcp:` is configured.
    pub mcp: Option<Arc<countersign_mcp::Mcp>>,
    /// The web console's session keys and settings.
    pub console: Arc<countersign_console::Console>,
}

pub fn router(parts: Parts, max_body_bytes: usize) -> Router {
    let console = countersign_console::ConsoleState {
        gateway: parts.api.gateway.clone(),
        auth: parts.api.auth.clone(),
        audit: parts.api.audit.clone(),
        console: parts.console,
    };
    Router::new()
        .merge(countersign_http::routes(parts.api.clone()))
        .merge(countersign_channels::routes(parts.channels))
        .merge(countersign_mcp::routes(parts.mcp, parts.api))
        .merge(countersign_console::routes(console))
        .fallback(countersign_http::not_found)
        .method_not_allowed_fallback(countersign_http::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
}
