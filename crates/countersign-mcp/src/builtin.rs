//! The built-in MCP server `countersign` (`naming::BUILTIN`): each executor the gateway holds is
//! a tool, `countersign__<executor>`, whose input is the executor's params (plus an optional
//! `justification`, for agents whose client cannot set `_meta`), so an MCP agent uses
//! credentials only the gateway holds without any code of its own.
//!
//! A call is the executor's action (`ExecutorInfo::action`), submitted under the same policy
//! and held the same way as every tool call (`authorize`, `Carrier::Executor`); once allowed,
//! [`execute`] has `Gateway::execute` redeem its grant and run the *recorded* action, and the
//! tool's result is the outcome it recorded. Nothing here reaches an upstream MCP server, and
//! nothing here records an outcome (the Gateway does, as the execution ends).

use super::answers::{META_REQUEST, META_STATE, refused_meta};
use super::authorize::{Refused, refusal};
use super::naming;
use countersign_app::executors::ExecutorInfo;
use countersign_app::gateway::Gateway;
use countersign_core::{Action, ExecStatus, Principal, Request};
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, MetaObject, Tool};
use serde_json::{Value, json};
use std::sync::Arc;

/// The argument an agent may say why in, when the executor has no parameter of that name.
pub const JUSTIFICATION: &str = "justification";

/// One tool per executor (none without executors); `hide_denied`: without those policy denies
/// `who` whatever the arguments.
pub fn tools(gateway: &Gateway, who: &Principal, hide_denied: bool) -> Vec<Tool> {
    let policy = gateway.policy.current();
    let mut infos = gateway.executors().list();
    infos.sort_by(|a, b| a.name.cmp(&b.name));
    infos
        .into_iter()
        .filter(|info| !(hide_denied && policy.always_denies(who, &info.kind, &info.resource)))
        .map(|info| {
            Tool::new(
                naming::qualify(naming::BUILTIN, &info.name),
                info.description.clone(),
                Arc::new(input_schema(&info)),
            )
        })
        .collect()
}

/// The executor's params schema, with an optional `justification` unless it has a parameter
/// of that name.
fn input_schema(info: &ExecutorInfo) -> JsonObject {
    let mut schema = match &info.params_schema {
        Value::Object(schema) => schema.clone(),
        _ => JsonObject::new(),
    };
    schema.entry("type").or_insert_with(|| json!("object"));
    let properties = schema
        .entry("properties")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    if let Some(properties) = properties
        && !properties.contains_key(JUSTIFICATION)
    {
        properties.insert(
            JUSTIFICATION.into(),
            json!({
                "type": "string",
                "description": "Why this should run: shown to the people who approve it"
            }),
        );
    }
    schema
}

/// The action a call of the tool for executor `name` with `arguments` asks for, in the
/// caller's `run`, or why there is none (an unknown executor, a `justification` that is not a string). The
/// justification is `_meta`'s (`meta_justification`, as for every tool), else the argument.
/// The params are checked when the action is submitted (`invalid_params`, `invalid_sql`).
pub fn action(
    gateway: &Gateway,
    name: &str,
    arguments: Option<JsonObject>,
    meta_justification: Option<String>,
    run: Option<String>,
) -> Result<Action, Refused> {
    let info = gateway
        .executors()
        .list()
        .into_iter()
        .find(|e| e.name == name)
        .ok_or_else(|| {
            before_recording(
                "unknown_executor",
                format!(
                    "no executor is named `{name}` (tools/list shows the {}__<executor> tools)",
                    naming::BUILTIN
                ),
            )
        })?;
    let mut params = arguments.unwrap_or_default();
    let takes_justification = info
        .params_schema
        .pointer(&format!("/properties/{JUSTIFICATION}"))
        .is_some();
    let argued = if takes_justification {
        None
    } else {
        match params.remove(JUSTIFICATION) {
            None => None,
            Some(Value::String(why)) => Some(why),
            Some(_) => {
                return Err(before_recording(
                    "invalid_params",
                    format!("parameter `{JUSTIFICATION}`: a string saying why"),
                ));
            }
        }
    };
    let mut action = info.action(Value::Object(params), meta_justification.or(argued));
    action.run = run;
    Ok(action)
}

/// A refusal made before anything is recorded, with its machine code.
fn before_recording(code: &'static str, why: String) -> Refused {
    Refused {
        message: format!("Countersign refused the request ({code}): {why}"),
        code: Some(code),
        request: None,
        state: None,
        review: None,
    }
}

/// Carries out `approved` (an executor's action, allowed and not yet redeemed) as its requester
/// `who`, and answers with its outcome.
pub async fn execute(
    gateway: &Arc<Gateway>,
    who: &Principal,
    approved: &Request,
) -> CallToolResult {
    match gateway.execute(who, approved.id(), None).await {
        Ok(done) => result(&done),
        Err(e) => {
            let mut refused = refusal(e);
            refused.request = Some(approved.id().to_owned());
            let mut result =
                CallToolResult::error(vec![ContentBlock::text(refused.message.clone())]);
            result.meta = refused_meta(&refused);
            result
        }
    }
}

/// The tool result of an executed request: its outcome as text (JSON) and as structured
/// content, an error unless it succeeded, and `_meta` naming the request.
fn result(req: &Request) -> CallToolResult {
    let outcome = req.execution().map(|e| &e.outcome);
    let structured = serde_json::to_value(outcome).unwrap_or(Value::Null);
    let text = serde_json::to_string(&structured).unwrap_or_default();
    let mut result = if outcome.is_some_and(|o| o.status == ExecStatus::Succeeded) {
        CallToolResult::success(vec![ContentBlock::text(text)])
    } else {
        CallToolResult::error(vec![ContentBlock::text(text)])
    };
    result.structured_content = Some(structured);
    result.meta = Some(MetaObject(
        [
            (META_REQUEST.to_string(), json!(req.id())),
            (META_STATE.to_string(), json!(req.state().as_str())),
        ]
        .into_iter()
        .collect(),
    ));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(schema: Value) -> ExecutorInfo {
        ExecutorInfo {
            name: "rollback".into(),
            kind: "exec.command.rollback".into(),
            description: "Rolls back".into(),
            params_schema: schema,
            resource: "command://rollback".into(),
        }
    }

    #[test]
    fn a_tool_takes_the_executors_params_and_a_justification() {
        let schema = json!({
            "type": "object",
            "properties": {"service": {"type": "string"}},
            "required": ["service"],
            "additionalProperties": false
        });
        let input = input_schema(&info(schema.clone()));
        assert_eq!(
            input["properties"]["service"],
            schema["properties"]["service"]
        );
        assert_eq!(input["properties"][JUSTIFICATION]["type"], "string");
        assert_eq!(input["required"], json!(["service"]));
        assert_eq!(input["additionalProperties"], false);
        // An executor parameter of that name keeps its own schema.
        let own = json!({"type": "object", "properties": {"justification": {"enum": ["a"]}}});
        assert_eq!(
            input_schema(&info(own.clone()))["properties"],
            own["properties"]
        );
    }
}
