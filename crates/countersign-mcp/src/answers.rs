//! Refusals and failures as MCP answers: a tool call refused by policy or people is a tool
//! result with `isError` (the model reads it) and `_meta` naming the request, its state and
//! its review page; every other method answers a JSON-RPC error with the same data.

use super::authorize::Refused;
use super::upstream::UpstreamError;
use rmcp::ErrorData;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock, ErrorCode, MetaObject};
use serde_json::{Value, json};

/// `_meta` keys on a refused result.
pub const META_REQUEST: &str = "io.countersign/request";
pub const META_STATE: &str = "io.countersign/state";
/// The request's page in the console, where people decide.
pub const META_REVIEW: &str = "io.countersign/review_url";
/// The machine code of a refusal made before anything was recorded (`invalid_params`, ...).
pub const META_CODE: &str = "io.countersign/code";

/// JSON-RPC error code of a `resources/read` that policy or people refused (tool calls get an
/// `isError` result instead, which the model reads).
pub const REFUSED_CODE: ErrorCode = ErrorCode(-32010);

pub(super) fn refused_meta(r: &Refused) -> Option<MetaObject> {
    let mut m = serde_json::Map::new();
    if let Some(id) = &r.request {
        m.insert(META_REQUEST.into(), json!(id));
    }
    if let Some(state) = r.state {
        m.insert(META_STATE.into(), json!(state.as_str()));
    }
    if let Some(review) = &r.review {
        m.insert(META_REVIEW.into(), json!(review));
    }
    if let Some(code) = r.code {
        m.insert(META_CODE.into(), json!(code));
    }
    (!m.is_empty()).then_some(MetaObject(m))
}

pub(super) fn tool_error(message: String, meta: Option<MetaObject>) -> CallToolResponse {
    let mut result = CallToolResult::error(vec![ContentBlock::text(message)]);
    result.meta = meta;
    result.into()
}

pub(super) fn upstream_error(e: UpstreamError) -> ErrorData {
    match e {
        UpstreamError::Protocol(e) => e,
        other => ErrorData::internal_error(other.to_string(), None),
    }
}

pub(super) fn unknown_task(id: &str) -> ErrorData {
    ErrorData::invalid_params(format!("unknown task `{id}`"), None)
}

/// The error for a recorded action that is not the request being answered (never expected:
/// the action was planned by the same handler).
pub(super) fn not_a(approved: &countersign_core::Request, what: &str) -> ErrorData {
    ErrorData::internal_error(
        format!("request {} does not record a {what}", approved.id()),
        None,
    )
}

/// A refusal by policy or people, as the JSON-RPC error every method but `tools/call` answers.
pub(super) fn refused_error(refused: Refused) -> ErrorData {
    let data = refused_meta(&refused).map(|m| Value::Object(m.0));
    ErrorData::new(REFUSED_CODE, refused.message, data)
}
