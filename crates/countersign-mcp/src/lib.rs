//! The MCP gateway: agents speak MCP (Streamable HTTP) to `/mcp`; the gateway speaks MCP to the
//! configured upstream servers and holds their credentials. Every request that reaches an
//! upstream with more than a listing is an action under policy, one kind per method
//! (`actions`), authorized in one place (`authorize`), and forwarded as rebuilt from the
//! recorded action (`actions::forward`); listings pass through (`proxy`). A body that is not
//! one JSON-RPC message (a batch, not JSON) is refused with a JSON-RPC error (`jsonrpc`).
//!
//! The gateway's executors are the tools of a built-in server, `countersign` (`builtin`): their
//! calls are actions under the same policy, carried out by `Gateway::execute`. How every
//! forwarded request went is recorded as its outcome after the agent has its answer
//! (`outcomes`).
//!
//! The official `rmcp` crate is used only inside this module (upstream clients, the
//! agent-facing server and the stdio bridge), so its frequent major versions touch nothing else.

pub mod actions;
pub mod answers;
pub mod authorize;
pub mod bridge;
pub mod builtin;
pub mod caller;
pub mod config;
pub mod conform;
pub mod elicit;
pub mod forward;
pub mod hub;
pub mod jsonrpc;
pub mod naming;
pub mod outcomes;
pub mod proxy;
pub mod sessions;
pub mod tasks;
pub mod upstream;

use crate::config::{HoldFor, McpConfig};
use countersign_app::gateway::Gateway;
use countersign_core::PrincipalId;
use hub::Hub;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use upstream::Upstream;

pub struct Mcp {
    pub gateway: Arc<Gateway>,
    pub upstreams: Vec<Arc<Upstream>>,
    pub hub: Arc<Hub>,
    pub hide_denied_tools: bool,
    pub progress_interval: Duration,
    /// How long an upstream may take to answer a call.
    pub call_timeout: Duration,
    pub tasks: tasks::Tasks,
    /// Sessions' activity and held calls (`sessions`).
    pub liveness: Arc<sessions::Liveness>,
    /// `mcp.hold_for`, and the principals that override it (`mcp_hold_for`).
    hold_for: HoldFor,
    hold_for_of: HashMap<PrincipalId, HoldFor>,
    allowed_hosts: Vec<String>,
    /// Which upstream listed a resource URI, and the fixed prefixes of their URI templates.
    resources: Mutex<HashMap<String, String>>,
    templates: Mutex<Vec<(String, String)>>,
}

impl Mcp {
    /// `hold_for_of`: the principals whose `mcp_hold_for` overrides `config.hold_for`.
    pub fn new(
        config: &McpConfig,
        hold_for_of: HashMap<PrincipalId, HoldFor>,
        gateway: Arc<Gateway>,
    ) -> Self {
        let hub = Arc::new(Hub::default());
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| Arc::new(Upstream::new(u, config.call_timeout, hub.clone())))
            .collect();
        let mut allowed_hosts: Vec<String> = ["localhost", "127.0.0.1", "::1", "[::1]"]
            .into_iter()
            .map(String::from)
            .collect();
        if let Some(host) = host_of(&gateway.public_url) {
            allowed_hosts.push(host);
        }
        allowed_hosts.extend(config.allowed_hosts.iter().cloned());
        Mcp {
            gateway,
            upstreams,
            hub,
            hide_denied_tools: config.hide_denied_tools,
            progress_interval: config.progress_interval,
            call_timeout: config.call_timeout,
            tasks: tasks::Tasks::default(),
            liveness: sessions::Liveness::new(config.session_idle_timeout),
            hold_for: config.hold_for,
            hold_for_of,
            allowed_hosts,
            resources: Mutex::new(HashMap::new()),
            templates: Mutex::new(vec![]),
        }
    }

    /// The Streamable HTTP service for `/mcp` (authentication is the router's job).
    pub fn service(self: &Arc<Self>) -> StreamableHttpService<proxy::Session, LocalSessionManager> {
        let mut config = StreamableHttpServerConfig::default();
        config.legacy_session_mode = true;
        config.allowed_hosts = self.allowed_hosts.clone();
        config.sse_keep_alive = Some(Duration::from_secs(15));
        // Stateless requests (every agent on protocol 2026-07-28): a call answered at once
        // (allowed, or refused) is one JSON body rather than an SSE stream; one that reports
        // progress first (a held call) still streams. Session requests always stream.
        config.json_response = true;
        config.max_request_body_bytes = jsonrpc::MAX_BODY_BYTES;
        // No priming events: a request's stream cannot be resumed after it closes, so a closed
        // stream means the agent has gone (`sessions::ClientGone`).
        config.sse_retry = None;
        let mut manager = LocalSessionManager::default();
        manager.session_config.sse_retry = None;
        // Idle sessions are closed by `sessions::Liveness`, which knows about held calls.
        manager.session_config.keep_alive = None;
        let manager = Arc::new(manager);
        if tokio::runtime::Handle::try_current().is_ok() {
            self.liveness.spawn_reaper(manager.clone());
        }
        let mcp = self.clone();
        StreamableHttpService::new(
            move || Ok(proxy::Session { mcp: mcp.clone() }),
            manager,
            config,
        )
    }

    /// Starts connecting to every upstream in the background, so the first agent does not wait.
    pub fn warm_up(self: &Arc<Self>) {
        for u in &self.upstreams {
            let u = u.clone();
            tokio::spawn(async move {
                if let Err(e) = u.tools().await {
                    tracing::warn!(upstream = %u.name, error = %e, "MCP server not reachable yet");
                }
            });
        }
    }

    pub async fn shutdown(&self) {
        for u in &self.upstreams {
            u.shutdown().await;
        }
    }

    /// How `who`'s calls wait for people.
    pub fn holding(&self, who: &PrincipalId) -> authorize::Holding {
        let HoldFor(hold_for) = self.hold_for_of.get(who).copied().unwrap_or(self.hold_for);
        authorize::Holding {
            every: self.progress_interval,
            hold_for,
            parks: hold_for.is_some(),
        }
    }

    pub fn upstream(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.iter().find(|u| u.name == name)
    }

    /// What an approved (and redeemed) request sends, and to which upstream: both from its
    /// recorded action alone (`actions::forward`).
    pub fn forward_of(
        &self,
        approved: &countersign_core::Request,
    ) -> Result<(Arc<Upstream>, actions::Forward), rmcp::ErrorData> {
        let (server, forward) = actions::forward(approved.action())?;
        let upstream = self.upstream(&server).cloned().ok_or_else(|| {
            rmcp::ErrorData::internal_error(
                format!("request {} names no configured MCP server", approved.id()),
                None,
            )
        })?;
        Ok((upstream, forward))
    }

    fn learn_resources<'a>(&self, server: &str, uris: impl Iterator<Item = &'a str>) {
        let mut map = self.resources.lock().unwrap_or_else(|p| p.into_inner());
        for uri in uris {
            map.insert(uri.to_string(), server.to_string());
        }
    }

    fn learn_templates<'a>(&self, server: &str, templates: impl Iterator<Item = &'a str>) {
        let mut list = self.templates.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|(_, s)| s != server);
        for t in templates {
            let prefix = t.split('{').next().unwrap_or(t).to_string();
            list.push((prefix, server.to_string()));
        }
    }

    /// The upstream serving `uri`, as far as the listings seen so far tell.
    fn resource_owner(&self, uri: &str) -> Option<Arc<Upstream>> {
        let by_name = |name: &str| self.upstream(name).cloned();
        if let Some(name) = self
            .resources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(uri)
        {
            return by_name(name);
        }
        let templates = self.templates.lock().unwrap_or_else(|p| p.into_inner());
        let best = templates
            .iter()
            .filter(|(prefix, _)| !prefix.is_empty() && uri.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len());
        if let Some((_, name)) = best {
            return by_name(name);
        }
        (self.upstreams.len() == 1).then(|| self.upstreams[0].clone())
    }
}

fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    (!host.is_empty()).then(|| host.to_string())
}

/// The `/mcp` endpoint: the agent's Countersign key as a Bearer token (like the rest of the
/// API), one JSON-RPC message per POST, each request's session activity tracked; 404
/// `not_configured` without an `mcp` section or executors.
pub fn routes(
    mcp: Option<Arc<Mcp>>,
    api: countersign_http::ApiState,
) -> utoipa_axum::router::OpenApiRouter {
    let documented = utoipa_axum::router::OpenApiRouter::with_openapi(
        <Documented as utoipa::OpenApi>::openapi(),
    );
    match mcp {
        Some(mcp) => documented
            .route_service("/mcp", mcp.service())
            // Innermost: each request's session activity and its `ClientGone` (`sessions`).
            .route_layer(axum::middleware::from_fn_with_state(
                mcp.clone(),
                sessions::track,
            ))
            // Inner: runs after authentication (route layers added later wrap earlier ones).
            .route_layer(axum::middleware::from_fn(jsonrpc::one_message))
            .route_layer(axum::middleware::from_fn_with_state(api, authenticate)),
        None => documented.route("/mcp", axum::routing::any(not_configured)),
    }
}

/// `/mcp` in the OpenAPI document: the rmcp service answers it, so its path items are
/// written here, beside the route.
#[derive(utoipa::OpenApi)]
#[openapi(paths(message, stream, end))]
struct Documented;

/// One JSON-RPC 2.0 message (MCP Streamable HTTP), answered as JSON or as a server-sent event
/// stream.
#[utoipa::path(
    post,
    path = "/mcp",
    operation_id = "mcp_message",
    security(("bearer" = [])),
    params(("Mcp-Session-Id" = Option<String>, Header, description = "The session, after `initialize`")),
    request_body(content = Object, description = "One JSON-RPC 2.0 message"),
    responses(
        (status = 200, description = "The JSON-RPC answer", content(
            (Object = "application/json"),
            (String = "text/event-stream"),
        )),
        (status = 202, description = "A notification or an answer, accepted"),
        countersign_http::openapi::Refused,
        countersign_http::openapi::TooLarge,
    )
)]
#[allow(dead_code)] // The rmcp service answers; this only carries the path item.
async fn message() {}

/// The session's server-sent event stream (server-to-client messages).
#[utoipa::path(
    get,
    path = "/mcp",
    operation_id = "mcp_stream",
    security(("bearer" = [])),
    params(("Mcp-Session-Id" = String, Header, description = "The session")),
    responses(
        (status = 200, description = "Server-sent events", content_type = "text/event-stream", body = String),
        countersign_http::openapi::Refused,
    )
)]
#[allow(dead_code)] // The rmcp service answers; this only carries the path item.
async fn stream() {}

/// Ends the session.
#[utoipa::path(
    delete,
    path = "/mcp",
    operation_id = "mcp_end_session",
    security(("bearer" = [])),
    params(("Mcp-Session-Id" = String, Header, description = "The session")),
    responses(
        (status = 200, description = "The session has ended"),
        (status = 202, description = "The session has ended"),
        countersign_http::openapi::Refused,
    )
)]
#[allow(dead_code)] // The rmcp service answers; this only carries the path item.
async fn end() {}

/// Puts the authenticated principal in the request's extensions, where the MCP handlers find
/// it.
async fn authenticate(
    countersign_http::extract::Caller(who): countersign_http::extract::Caller,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    request.extensions_mut().insert(who);
    // Tool arguments become an action's params: their numbers and keys must mean one thing
    // before rmcp parses them (invariant 9).
    let request = match countersign_http::extract::checked_body(request).await {
        Ok(request) => request,
        Err(e) => return axum::response::IntoResponse::into_response(e),
    };
    next.run(request).await
}

async fn not_configured() -> countersign_http::error::ApiError {
    countersign_http::not_configured(
        "the MCP gateway is not configured on this gateway (mcp.upstreams, or executors)",
    )
}
