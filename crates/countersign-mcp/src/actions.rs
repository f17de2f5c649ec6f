//! Every MCP request that reaches an upstream, as a Countersign action — and back.
//!
//! Invariant: every MCP request that reaches an upstream is an action under policy, and
//! everything forwarded is inside the approved digest. [`Planned`] is what an agent asked for,
//! parsed into the action policy sees and people approve (one kind per method);
//! [`forward`] rebuilds the upstream request from the *recorded* action alone, after its grant
//! was redeemed with that action's digest. Nothing of the agent's live request object — its
//! `_meta`, fields added beside the arguments, multi-round-trip state — is ever copied into
//! what is forwarded; fields we cannot put inside the digest are refused up front
//! ([`refuse_unrecorded`]).
//!
//! | method | kind | resource | params |
//! |---|---|---|---|
//! | `tools/call` | `mcp.tool.<server>.<tool>` | `mcp://<server>/<tool>` | the arguments |
//! | `resources/read` | `mcp.resource.read` | the URI | `{server, uri}` |
//! | `prompts/get` | `mcp.prompt.<server>.<prompt>` | `mcp://<server>/prompts/<prompt>` | the arguments |
//! | `completion/complete` | `mcp.completion.<server>` | the prompt's resource, or the template URI | `{ref, argument, context?}` |
//! | `resources/subscribe` | `mcp.resource.subscribe` | the URI | `{server, uri}` |
//! | `resources/unsubscribe` | `mcp.resource.unsubscribe` | the URI | `{server, uri}` |
//!
//! List methods (`tools/list`, `prompts/list`, `resources/list`, `resources/templates/list`)
//! are not actions: they return names and descriptions, never content, and `tools/list` can
//! leave out what policy always denies (`hide_denied_tools`).

use super::naming;
use rmcp::ErrorData;
use rmcp::model::{
    CallToolRequestParams, CompleteRequestParams, GetPromptRequestParams, InputResponses,
    JsonObject, ReadResourceRequestParams, Reference, SubscribeRequestParams,
    UnsubscribeRequestParams,
};
use serde_json::{Value, json};

/// The kinds of the actions that are not tool calls.
pub const RESOURCE_READ: &str = naming::RESOURCE_READ_KIND;
pub const RESOURCE_SUBSCRIBE: &str = "mcp.resource.subscribe";
pub const RESOURCE_UNSUBSCRIBE: &str = "mcp.resource.unsubscribe";
const TOOL_PREFIX: &str = "mcp.tool.";
const PROMPT_PREFIX: &str = "mcp.prompt.";
const COMPLETION_PREFIX: &str = "mcp.completion.";

/// One upstream-bound request as an action, before policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub kind: String,
    pub resource: String,
    pub params: Value,
}

impl Planned {
    /// `tools/call` of `tool` on `server`.
    pub fn tool_call(server: &str, tool: &str, arguments: Option<JsonObject>) -> Planned {
        Planned {
            kind: naming::tool_kind(server, tool),
            resource: naming::tool_resource(server, tool),
            params: Value::Object(arguments.unwrap_or_default()),
        }
    }

    /// `resources/read`, `resources/subscribe` or `resources/unsubscribe` (`kind`) of `uri`,
    /// served by `server`.
    pub fn resource(kind: &'static str, server: &str, uri: &str) -> Planned {
        Planned {
            kind: kind.into(),
            resource: uri.into(),
            params: json!({"server": server, "uri": uri}),
        }
    }

    /// `prompts/get` of `prompt` on `server`.
    pub fn prompt(server: &str, prompt: &str, arguments: Option<JsonObject>) -> Planned {
        Planned {
            kind: prompt_kind(server, prompt),
            resource: prompt_resource(server, prompt),
            params: Value::Object(arguments.unwrap_or_default()),
        }
    }

    /// `completion/complete` on `server`; `reference` already names the upstream's own prompt.
    /// `None` for a kind of reference this gateway does not know.
    pub fn completion(server: &str, request: &CompleteRequestParams) -> Option<Planned> {
        let resource = match &request.r#ref {
            Reference::Prompt(p) => prompt_resource(server, &p.name),
            Reference::Resource(r) => r.uri.clone(),
            _ => return None,
        };
        let mut params = json!({"ref": request.r#ref, "argument": request.argument});
        if let Some(context) = &request.context {
            params["context"] = json!(context);
        }
        Some(Planned {
            kind: format!("{COMPLETION_PREFIX}{server}"),
            resource,
            params,
        })
    }
}

/// The action kind of `prompts/get` of `prompt` on `server` (the same characters rule as tools).
pub fn prompt_kind(server: &str, prompt: &str) -> String {
    let tool_like = naming::tool_kind(server, prompt);
    format!(
        "{PROMPT_PREFIX}{}",
        tool_like.strip_prefix(TOOL_PREFIX).unwrap_or(&tool_like)
    )
}

/// The action resource of `prompts/get` of `prompt` on `server`.
pub fn prompt_resource(server: &str, prompt: &str) -> String {
    format!("mcp://{server}/prompts/{prompt}")
}

/// What is sent upstream: rebuilt from a recorded action by [`forward`].
#[derive(Debug, Clone)]
pub enum Forward {
    CallTool(CallToolRequestParams),
    ReadResource(ReadResourceRequestParams),
    GetPrompt(GetPromptRequestParams),
    Complete(CompleteRequestParams),
    Subscribe(SubscribeRequestParams),
    Unsubscribe(UnsubscribeRequestParams),
}

/// The upstream request a recorded action stands for, and the upstream it goes to. Built from
/// the action's kind, resource and params only: what was digested is what is sent.
pub fn forward(action: &countersign_core::Action) -> Result<(String, Forward), ErrorData> {
    let unreadable = || {
        ErrorData::internal_error(
            format!(
                "the recorded action `{}` on `{}` is not an MCP request this gateway made",
                action.kind, action.resource
            ),
            None,
        )
    };
    let object = || match &action.params {
        Value::Object(map) => Ok(map.clone()),
        _ => Err(unreadable()),
    };
    let server_and_uri = || {
        let server = action.params["server"].as_str().ok_or_else(unreadable)?;
        let uri = action.params["uri"].as_str().ok_or_else(unreadable)?;
        Ok::<_, ErrorData>((server.to_string(), uri.to_string()))
    };
    let kind = action.kind.as_str();
    if kind == RESOURCE_READ {
        let (server, uri) = server_and_uri()?;
        return Ok((
            server,
            Forward::ReadResource(from_json(json!({"uri": uri}))?),
        ));
    }
    if kind == RESOURCE_SUBSCRIBE {
        let (server, uri) = server_and_uri()?;
        return Ok((server, Forward::Subscribe(from_json(json!({"uri": uri}))?)));
    }
    if kind == RESOURCE_UNSUBSCRIBE {
        let (server, uri) = server_and_uri()?;
        return Ok((
            server,
            Forward::Unsubscribe(from_json(json!({"uri": uri}))?),
        ));
    }
    if kind.starts_with(TOOL_PREFIX) {
        let (server, tool) = split_resource(&action.resource, "").ok_or_else(unreadable)?;
        let mut call = CallToolRequestParams::new(tool.to_string());
        call.arguments = Some(object()?);
        return Ok((server.to_string(), Forward::CallTool(call)));
    }
    if kind.starts_with(PROMPT_PREFIX) {
        let (server, prompt) =
            split_resource(&action.resource, "prompts/").ok_or_else(unreadable)?;
        let arguments = object()?;
        let mut get: GetPromptRequestParams = from_json(json!({"name": prompt}))?;
        get.arguments = (!arguments.is_empty()).then_some(arguments);
        return Ok((server.to_string(), Forward::GetPrompt(get)));
    }
    if let Some(server) = kind.strip_prefix(COMPLETION_PREFIX) {
        let p = &action.params;
        let mut body = json!({"ref": p["ref"], "argument": p["argument"]});
        if let Some(context) = p.get("context") {
            body["context"] = context.clone();
        }
        return Ok((server.to_string(), Forward::Complete(from_json(body)?)));
    }
    Err(unreadable())
}

/// `mcp://<server>/<rest>` → (server, rest without `prefix`).
fn split_resource<'a>(resource: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let (server, rest) = resource.strip_prefix("mcp://")?.split_once('/')?;
    let name = rest.strip_prefix(prefix)?;
    (!server.is_empty() && !name.is_empty()).then_some((server, name))
}

fn from_json<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ErrorData> {
    serde_json::from_value(v).map_err(|e| {
        ErrorData::internal_error(format!("cannot rebuild the MCP request: {e}"), None)
    })
}

/// Refuses fields of a request that cannot be part of an action, so that an approval never
/// covers less than what would be forwarded: multi-round-trip answers (`inputResponses`) and
/// state (`requestState`) of a retried request.
pub fn refuse_unrecorded(
    input_responses: Option<&InputResponses>,
    request_state: Option<&str>,
) -> Result<(), ErrorData> {
    if input_responses.is_some() || request_state.is_some() {
        return Err(ErrorData::invalid_params(
            "Countersign does not relay inputResponses or requestState: an approval covers the \
             request's name and arguments only; send the request again without them",
            None,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use countersign_core::Action;

    fn recorded(p: &Planned) -> Action {
        serde_json::from_value(json!({
            "kind": p.kind, "resource": p.resource, "params": p.params,
            "justification": null, "run": null, "labels": {}
        }))
        .expect("an action")
    }

    fn sent(f: &Forward) -> Value {
        match f {
            Forward::CallTool(x) => json!(x),
            Forward::ReadResource(x) => json!(x),
            Forward::GetPrompt(x) => json!(x),
            Forward::Complete(x) => json!(x),
            Forward::Subscribe(x) => json!(x),
            Forward::Unsubscribe(x) => json!(x),
        }
    }

    #[test]
    fn mcp_requests_are_actions_under_policy_and_forward_only_what_was_recorded() {
        let args = json!({"a": 1, "b": {"c": [1, 2]}}).as_object().cloned();
        let complete: CompleteRequestParams = serde_json::from_value(json!({
            "ref": {"type": "ref/prompt", "name": "completable-prompt"},
            "argument": {"name": "department", "value": "Eng"},
            "context": {"arguments": {"x": "y"}},
        }))
        .expect("params");
        let cases = [
            (
                Planned::tool_call("e", "get-sum", args.clone()),
                "mcp.tool.e.get-sum",
                "e",
                json!({"name": "get-sum", "arguments": {"a": 1, "b": {"c": [1, 2]}}}),
            ),
            (
                Planned::tool_call("e", "a/b c", None),
                "mcp.tool.e.a_b_c",
                "e",
                json!({"name": "a/b c", "arguments": {}}),
            ),
            (
                Planned::resource(RESOURCE_READ, "e", "demo://x/1"),
                "mcp.resource.read",
                "e",
                json!({"uri": "demo://x/1"}),
            ),
            (
                Planned::resource(RESOURCE_SUBSCRIBE, "e", "demo://x/1"),
                "mcp.resource.subscribe",
                "e",
                json!({"uri": "demo://x/1"}),
            ),
            (
                Planned::resource(RESOURCE_UNSUBSCRIBE, "e", "demo://x/1"),
                "mcp.resource.unsubscribe",
                "e",
                json!({"uri": "demo://x/1"}),
            ),
            (
                Planned::prompt(
                    "e",
                    "args-prompt",
                    json!({"city": "Oslo"}).as_object().cloned(),
                ),
                "mcp.prompt.e.args-prompt",
                "e",
                json!({"name": "args-prompt", "arguments": {"city": "Oslo"}}),
            ),
            (
                Planned::prompt("e", "simple-prompt", None),
                "mcp.prompt.e.simple-prompt",
                "e",
                json!({"name": "simple-prompt"}),
            ),
            (
                Planned::completion("e", &complete).expect("a known reference"),
                "mcp.completion.e",
                "e",
                json!({"ref": {"type": "ref/prompt", "name": "completable-prompt"},
                    "argument": {"name": "department", "value": "Eng"},
                    "context": {"arguments": {"x": "y"}}}),
            ),
        ];
        for (planned, kind, server, expected) in cases {
            assert_eq!(planned.kind, kind);
            let (to, f) = forward(&recorded(&planned)).expect("forwardable");
            assert_eq!(to, server, "{kind}");
            assert_eq!(sent(&f), expected, "{kind}");
        }
    }

    #[test]
    fn an_action_that_is_not_an_mcp_request_is_never_forwarded() {
        for (kind, resource, params) in [
            ("db.query", "postgres://x", json!({})),
            ("mcp.tool.e.x", "https://e/x", json!({})),
            ("mcp.tool.e.x", "mcp://e/x", json!([1])),
            ("mcp.prompt.e.x", "mcp://e/x", json!({})),
            ("mcp.resource.read", "demo://x", json!({"uri": "demo://x"})),
            ("mcp.completion.e", "mcp://e/prompts/p", json!({"ref": 1})),
        ] {
            let p = Planned {
                kind: kind.into(),
                resource: resource.into(),
                params,
            };
            assert!(forward(&recorded(&p)).is_err(), "{kind} {resource}");
        }
    }
}
