//! Forwarding an approved tool call: the request rebuilt from the recorded action (never the
//! agent's own), sent to the upstream the action names, in a `countersign.forward` span, its
//! outcome recorded once answered (`outcomes`). Used by live calls (`proxy`) and by tasks
//! (`tasks`), which may forward long after the call that asked.

use super::Mcp;
use super::actions::Forward;
use super::answers::{META_REQUEST, not_a, tool_error};
use super::conform;
use super::outcomes::Forwarding;
use super::upstream::UpstreamError;
use rmcp::ErrorData;
use rmcp::model::{CallToolResponse, MetaObject, RequestMetaObject};
use serde_json::json;

/// Sends the approved call upstream: the request rebuilt from the recorded action, with only
/// the gateway's own progress token added; how it went is recorded once it is answered.
pub async fn forward_call(
    mcp: &Mcp,
    approved: countersign_core::Request,
    meta: Option<RequestMetaObject>,
) -> Result<CallToolResponse, ErrorData> {
    let (upstream, Forward::CallTool(mut forward)) = mcp.forward_of(&approved)? else {
        return Err(not_a(&approved, "tool call"));
    };
    forward.meta = meta;
    let id = approved.id().to_owned();
    let span = mcp.gateway.telemetry.span("countersign.forward", || {
        vec![
            ("countersign.request", id.clone()),
            ("countersign.upstream", upstream.name.clone()),
        ]
    });
    let forwarding = Forwarding::start(&mcp.gateway, approved, &upstream.name);
    let answer = upstream
        .request(|peer| async move { peer.call_tool_once(forward).await })
        .await;
    forwarding.finish(&answer);
    span.end();
    match answer {
        Ok(response) => Ok(conform::tool_result(response)),
        Err(UpstreamError::Protocol(e)) => Err(e),
        Err(e) => Ok(tool_error(
            e.to_string(),
            Some(MetaObject(
                [(META_REQUEST.to_string(), json!(id))]
                    .into_iter()
                    .collect(),
            )),
        )),
    }
}
