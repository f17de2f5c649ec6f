//! Who is calling through `/mcp`, and how their held call waits: the authenticated principal
//! and the run of a request (from its `_meta`, the `Countersign-Run` header, or the session),
//! the action body an MCP request becomes, and the `Hold` of a live MCP request (progress
//! notifications, the client's cancellation, its departure). Decides nothing about policy.

use super::actions::Planned;
use super::authorize::{Cancelled, Hold};
use super::naming;
use super::sessions::{ClientGone, HeldGuard, Liveness, SESSION_HEADER};
use axum::http::request::Parts;
use countersign_core::Action;
use countersign_core::Principal;
use rmcp::model::{ProgressNotificationParam, ProgressToken, RequestMetaObject};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, Peer, RoleServer};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// `_meta` keys a client may send with `tools/call` or `resources/read`.
pub const META_JUSTIFICATION: &str = "io.countersign/justification";
pub const META_RUN: &str = "io.countersign/run";

/// HTTP header naming the run, for clients that cannot set `_meta` (the stdio bridge sets it).
pub const RUN_HEADER: &str = "countersign-run";

pub(super) struct Caller {
    pub who: Principal,
    pub run: Option<String>,
    /// The run is the one the gateway made up for the MCP session (`mcp:<session id>`).
    pub session_run: bool,
}

pub(super) fn caller(
    ctx: &RequestContext<RoleServer>,
    meta: Option<&RequestMetaObject>,
) -> Result<Caller, ErrorData> {
    let parts = ctx.extensions.get::<Parts>().ok_or_else(|| {
        ErrorData::internal_error("no HTTP request behind this MCP request", None)
    })?;
    let who = parts
        .extensions
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| ErrorData::internal_error("the caller was not authenticated", None))?;
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let given = meta_of(meta, ctx, META_RUN).or_else(|| header(RUN_HEADER));
    // Runs made up per connection: the session's, and the stdio bridge's per launch.
    let session_run = given
        .as_deref()
        .is_none_or(|r| r.starts_with(naming::BRIDGE_RUN_PREFIX));
    let run = given.or_else(|| header("mcp-session-id").and_then(|s| naming::session_run(&s)));
    Ok(Caller {
        session_run: session_run && run.is_some(),
        who,
        run,
    })
}

/// A string from the request's `_meta` (rmcp may keep it on the params or on the context).
pub(super) fn meta_str(meta: Option<&RequestMetaObject>, key: &str) -> Option<String> {
    meta.and_then(|m| m.0.0.get(key))
        .and_then(Value::as_str)
        .map(str::to_string)
}

pub(super) fn meta_of<'a>(
    params: Option<&'a RequestMetaObject>,
    ctx: &'a RequestContext<RoleServer>,
    key: &str,
) -> Option<String> {
    meta_str(params, key).or_else(|| meta_str(Some(&ctx.meta), key))
}

/// The W3C trace context of a request: `_meta.traceparent` (the request's, else the
/// message's), else the HTTP request's `traceparent` header; an invalid one is ignored.
pub(super) fn trace_of(
    params: Option<&RequestMetaObject>,
    ctx: &RequestContext<RoleServer>,
) -> Option<countersign_core::trace::TraceParent> {
    let header = || {
        ctx.extensions
            .get::<Parts>()?
            .headers
            .get("traceparent")?
            .to_str()
            .ok()
            .map(str::to_owned)
    };
    meta_of(params, ctx, "traceparent")
        .or_else(header)
        .and_then(|t| countersign_core::trace::TraceParent::parse(&t))
}

/// The action submitted for `planned`, with the caller's run and justification (`_meta` is
/// read for these two and never forwarded).
pub(super) fn action(planned: Planned, caller: &Caller, justification: Option<String>) -> Action {
    Action {
        kind: planned.kind,
        resource: planned.resource,
        params: planned.params,
        justification,
        run: caller.run.clone(),
        labels: BTreeMap::new(),
    }
}

/// Reports the wait on an MCP request as progress notifications (when the client sent a token),
/// hears the client's `notifications/cancelled` through `ct` and its departure through `gone`
/// (`sessions::ClientGone`), and keeps the session from idling out meanwhile.
pub(super) struct McpHold<'a> {
    peer: &'a Peer<RoleServer>,
    token: Option<ProgressToken>,
    ct: &'a CancellationToken,
    gone: CancellationToken,
    _busy: Option<HeldGuard>,
}

impl Hold for McpHold<'_> {
    async fn progress(&mut self, step: u32, message: String) {
        if let Some(token) = &self.token {
            let mut p = ProgressNotificationParam::new(token.clone(), f64::from(step));
            p.message = Some(message);
            let _ = self.peer.notify_progress(p).await;
        }
    }

    fn cancelled(&self) -> impl std::future::Future<Output = Cancelled> + Send {
        let (ct, gone) = (self.ct, &self.gone);
        async move {
            tokio::select! {
                biased;
                () = gone.cancelled() => Cancelled::Abandoned,
                () = ct.cancelled() => {
                    // rmcp also cancels a handler whose 2026 request stream closed, or whose
                    // session ended: that is the client leaving, not asking.
                    if gone.is_cancelled() || self.peer.is_transport_closed() {
                        Cancelled::Abandoned
                    } else {
                        Cancelled::ByCaller
                    }
                }
            }
        }
    }
}

/// The hold of the MCP request behind `ctx`: its progress token, its cancellation, whether its
/// client left (`sessions::ClientGone`), and a guard that keeps its session alive.
pub(super) fn hold<'a>(
    liveness: &Arc<Liveness>,
    ctx: &'a RequestContext<RoleServer>,
) -> McpHold<'a> {
    let parts = ctx.extensions.get::<Parts>();
    let gone = parts
        .and_then(|p| p.extensions.get::<ClientGone>())
        .map(|g| g.0.clone())
        .unwrap_or_default();
    let session = parts
        .and_then(|p| p.headers.get(SESSION_HEADER))
        .and_then(|v| v.to_str().ok());
    McpHold {
        peer: &ctx.peer,
        token: ctx.meta.get_progress_token(),
        ct: &ctx.ct,
        gone,
        _busy: session.map(|s| liveness.hold(s)),
    }
}
