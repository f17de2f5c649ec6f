//! The gateway's one router: every role's routes, merged, with the fallbacks and the body limit
//! over all of them.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse as _;
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
    let document = parts.api.openapi.clone();
    // The API's roles, each route with its OpenAPI path item; the console's pages are not API.
    let (api, openapi) =
        utoipa_axum::router::OpenApiRouter::with_openapi(countersign_http::openapi::base())
            .merge(countersign_http::routes(parts.api.clone()))
            .merge(countersign_channels::routes(parts.channels))
            .merge(countersign_mcp::routes(parts.mcp, parts.api))
            .split_for_parts();
    document.set(&openapi);
    Router::new()
        .merge(api)
        .merge(countersign_console::routes(console))
        .fallback(countersign_http::not_found)
        .method_not_allowed_fallback(countersign_http::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
}

/// A handler that panicked answers 500 with the API's error shape (and the panic is logged),
/// instead of its connection closing without an answer.
fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %what, "a request handler panicked");
    let body = serde_json::json!({"error": {
        "code": "internal",
        "message": "the gateway failed while answering; nothing was changed by this answer, see its log",
    }});
    (
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(body),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt as _;

    async fn boom() -> String {
        panic!("boom")
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_with_the_error_shape() {
        let app: Router = Router::new()
            .route("/boom", axum::routing::get(boom))
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked));
        let request = axum::http::Request::get("/boom")
            .body(axum::body::Body::empty())
            .expect("a request");
        let answer = app.oneshot(request).await.expect("an answer");
        assert_eq!(answer.status(), 500);
        let bytes = axum::body::to_bytes(answer.into_body(), 1 << 16)
            .await
            .expect("a body");
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(body["error"]["code"], "internal");
    }
}
