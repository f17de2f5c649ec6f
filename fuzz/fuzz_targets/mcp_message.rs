//! MCP JSON-RPC messages as the gateway's proxy reads them: rmcp's client message type, then
//! each upstream-bound request as the action people approve (`actions::Planned`), stored as
//! canonical JSON, read back and rebuilt for the upstream (`actions::forward`). Property:
//! what is forwarded is exactly what was asked (the invariant of `countersign_mcp::actions`).
#![no_main]

use countersign_core::{Action, canonical};
use countersign_mcp::actions::{self, Forward, Planned};
use countersign_mcp::naming;
use libfuzzer_sys::fuzz_target;
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, JsonRpcMessage};
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Ok(message) = serde_json::from_slice::<ClientJsonRpcMessage>(data) else {
        return;
    };
    let JsonRpcMessage::Request(request) = message else {
        return;
    };
    let (planned, asked) = match &request.request {
        ClientRequest::CallToolRequest(call) => {
            let Some((server, tool)) = naming::split(&call.params.name) else {
                return;
            };
            let planned = Planned::tool_call(server, tool, call.params.arguments.clone());
            let asked = json!({"server": server, "name": tool,
                "arguments": call.params.arguments.clone().unwrap_or_default()});
            (planned, asked)
        }
        ClientRequest::GetPromptRequest(get) => {
            let Some((server, prompt)) = naming::split(&get.params.name) else {
                return;
            };
            let planned = Planned::prompt(server, prompt, get.params.arguments.clone());
            let asked = json!({"server": server, "name": prompt,
                "arguments": get.params.arguments.clone().unwrap_or_default()});
            (planned, asked)
        }
        ClientRequest::ReadResourceRequest(read) => {
            let planned = Planned::resource(actions::RESOURCE_READ, "s", &read.params.uri);
            (planned, json!({"server": "s", "uri": read.params.uri}))
        }
        _ => return,
    };
    let action = Action {
        kind: planned.kind,
        resource: planned.resource,
        params: planned.params,
        justification: None,
        run: None,
        labels: Default::default(),
    };
    if action.validate().is_err() {
        return; // refused before it is recorded
    }
    // The store keeps the canonical JSON; forwarding reads it back.
    let stored: Action =
        serde_json::from_slice(&canonical::to_vec(&action)).expect("canonical JSON reads back");
    let (server, forward) = actions::forward(&stored).expect("a recorded MCP action forwards");
    let sent = match forward {
        Forward::CallTool(c) => json!({"server": server, "name": c.name,
            "arguments": c.arguments.unwrap_or_default()}),
        Forward::GetPrompt(g) => json!({"server": server, "name": g.name,
            "arguments": g.arguments.unwrap_or_default()}),
        Forward::ReadResource(r) => json!({"server": server, "uri": r.uri}),
        other => panic!("a different request was rebuilt: {other:?}"),
    };
    assert_eq!(sent, normalise(asked), "forwarded what was asked");
});

/// The asked request as JSON values compare (numbers as the store keeps them).
fn normalise(v: Value) -> Value {
    serde_json::from_slice(&canonical::to_vec(&v)).expect("canonical JSON reads back")
}
