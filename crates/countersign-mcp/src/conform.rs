//! Answers valid for the protocol each agent negotiated, whatever its upstream speaks
//! (invariant: *answers conform to the agent's protocol*). Every result the gateway passes on
//! from an upstream goes through one function here before it reaches the agent.
//!
//! What differs between versions, and how it is met:
//! - Protocol 2026-07-28 requires `resultType` on every result; versions before it have no such
//!   field. An upstream on 2025-11-25 or older sends none, and rmcp keeps what it parsed, so a
//!   forwarded result would reach a 2026 agent without it (its client then rejects the result:
//!   `CallToolResult.resultType Field required`). Here a complete result always gets
//!   `resultType: "complete"`; rmcp removes it again when the agent is on an older version
//!   (`ServerResult::strip_result_type_for_legacy_peer`), and fills the 2026 cache hints
//!   (`ttlMs`, `cacheScope`) itself.
//! - An upstream on 2026-07-28 may answer `input_required` (it wants the client to send more).
//!   That answer is not valid for an agent on an older version, and the follow-up it asks for
//!   would be a different request from the one people approved (the gateway forwards only the
//!   recorded action, see `actions`). So it is never passed on: the agent gets an error that
//!   says so, on every version.

use rmcp::ErrorData;
use rmcp::model::{
    CallToolResponse, CallToolResult, CompleteResult, ContentBlock, GetPromptResponse,
    ReadResourceResponse, ResultType,
};

/// What the agent is told when an upstream asks for more input.
pub const INPUT_REQUIRED: &str = "the MCP server asked for more input before answering, which \
    Countersign cannot relay: the input would change the approved request";

/// A `tools/call` answer from an upstream, as the agent may receive it.
pub fn tool_result(response: CallToolResponse) -> CallToolResponse {
    match response {
        CallToolResponse::Complete(result) => CallToolResponse::Complete(complete_tool(result)),
        // A task handle made by an upstream is never forwarded (the gateway calls upstreams
        // without asking for tasks); should one come, it carries its own `resultType`.
        task @ CallToolResponse::Task(_) => task,
        // `input_required` (or a kind of answer newer than this gateway): never relayed.
        _ => CallToolResult::error(vec![ContentBlock::text(INPUT_REQUIRED)]).into(),
    }
}

/// A complete tool result with its `resultType`.
pub fn complete_tool(mut result: CallToolResult) -> CallToolResult {
    result.result_type.get_or_insert(ResultType::COMPLETE);
    result
}

/// A `resources/read` answer from an upstream, as the agent may receive it.
pub fn resource(response: ReadResourceResponse) -> Result<ReadResourceResponse, ErrorData> {
    match response {
        ReadResourceResponse::Complete(mut result) => {
            result.result_type.get_or_insert(ResultType::COMPLETE);
            Ok(ReadResourceResponse::Complete(result))
        }
        _ => Err(input_required()),
    }
}

/// A `prompts/get` answer from an upstream, as the agent may receive it.
pub fn prompt(response: GetPromptResponse) -> Result<GetPromptResponse, ErrorData> {
    match response {
        GetPromptResponse::Complete(mut result) => {
            result.result_type.get_or_insert(ResultType::COMPLETE);
            Ok(GetPromptResponse::Complete(result))
        }
        _ => Err(input_required()),
    }
}

/// A `completion/complete` answer from an upstream, as the agent may receive it.
pub fn completion(mut result: CompleteResult) -> CompleteResult {
    result.result_type.get_or_insert(ResultType::COMPLETE);
    result
}

fn input_required() -> ErrorData {
    ErrorData::internal_error(INPUT_REQUIRED, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{ReadResourceResult, ResourceContents};
    use serde_json::json;

    /// Every forwarded result says `resultType` on the wire, whatever the upstream sent, and
    /// keeps one the upstream did send.
    #[test]
    fn answers_conform_to_the_agents_protocol() {
        // As parsed from a 2025-11-25 upstream: no resultType.
        let parsed: CallToolResult =
            serde_json::from_value(json!({"content": [{"type": "text", "text": "hi"}]}))
                .expect("a tool result");
        assert_eq!(parsed.result_type, None);
        let CallToolResponse::Complete(out) = tool_result(parsed.into()) else {
            panic!("a complete result stays complete");
        };
        let wire = serde_json::to_value(&out).expect("serializes");
        assert_eq!(wire["resultType"], "complete");
        assert_eq!(wire["content"][0]["text"], "hi");

        let read: ReadResourceResult =
            serde_json::from_value(json!({"contents": [{"uri": "file:///a", "text": "x"}]}))
                .expect("a read result");
        assert_eq!(read.result_type, None);
        let Ok(ReadResourceResponse::Complete(read)) = resource(read.into()) else {
            panic!("complete");
        };
        assert_eq!(
            serde_json::to_value(&read).expect("serializes")["resultType"],
            "complete"
        );
        assert!(matches!(
            read.contents[0],
            ResourceContents::TextResourceContents { .. }
        ));

        let completion: CompleteResult =
            serde_json::from_value(json!({"completion": {"values": ["a"]}})).expect("completion");
        assert_eq!(
            serde_json::to_value(super::completion(completion)).expect("serializes")["resultType"],
            "complete"
        );
    }

    #[test]
    fn input_required_from_an_upstream_is_never_relayed() {
        let asked: CallToolResponse = serde_json::from_value::<rmcp::model::InputRequiredResult>(
            json!({"resultType": "input_required", "inputRequests": {}}),
        )
        .map(CallToolResponse::InputRequired)
        .expect("an input_required result");
        let CallToolResponse::Complete(out) = tool_result(asked) else {
            panic!("an error result instead");
        };
        assert_eq!(out.is_error, Some(true));
        assert_eq!(out.result_type, Some(ResultType::COMPLETE));
    }
}
