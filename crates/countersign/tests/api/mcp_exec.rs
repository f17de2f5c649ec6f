//! Executors over MCP (issue 17, item 6) and the outcome of every forwarded MCP call (item 4):
//! an agent using the official Rust SDK sees the gateway's executors as the tools of a built-in
//! server, `countersign__<executor>`, and gets their outcome as the tool's result, with
//! credentials only the gateway holds (a real HTTP service started here refuses calls without
//! them); a call forwarded to the reference MCP server records how it went.

use crate::support::app::TestApp;
use crate::support::mcp::{gateway, recorded, rmcp_client, stdio_upstream, with_outcome};
use crate::support::upstream::{SECRET, Upstream, exec_gateway};
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::{RoleClient, model::ClientConfig};
use serde_json::{Value, json};
use std::time::Duration;

type Client = RunningService<RoleClient, ClientConfig>;

/// Calls tool `name` with `arguments`, as the agent.
async fn call(client: &Client, name: &str, arguments: Value) -> CallToolResult {
    let mut params = CallToolRequestParams::new(name.to_string());
    params.arguments = arguments.as_object().cloned();
    client
        .peer()
        .call_tool(params)
        .await
        .expect("a tool result")
}

/// The request a tool result names in its `_meta`, as the agent reads it over the API.
async fn request_of(app: &TestApp, result: &CallToolResult) -> Value {
    let id = result
        .meta
        .as_ref()
        .and_then(|m| m.0.get("io.countersign/request"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no request in {result:?}"));
    app.agent().get(&format!("/v1/requests/{id}")).await.body
}

fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_exec_tools_list_the_executors_and_an_allowed_call_runs_with_the_gateway_credentials() {
    let upstream = Upstream::start().await;
    let app = exec_gateway(&upstream).await;
    let client = rmcp_client(&app, false).await;

    let tools = client.peer().list_all_tools().await.unwrap();
    let tool = tools
        .iter()
        .find(|t| t.name == "countersign__upstream")
        .unwrap_or_else(|| panic!("no executor tool in {tools:?}"));
    let description = tool.description.as_deref().unwrap_or_default();
    assert!(
        description.contains(&format!("{}/api", upstream.url)),
        "{description}"
    );
    let schema = Value::Object((*tool.input_schema).clone());
    assert_eq!(
        schema["properties"]["method"]["enum"],
        json!(["GET", "POST"])
    );
    assert_eq!(schema["properties"]["path"]["pattern"], "^/");
    assert_eq!(schema["properties"]["justification"]["type"], "string");
    assert_eq!(schema["required"], json!(["method", "path"]));
    assert_eq!(schema["additionalProperties"], false);

    let result = call(
        &client,
        "countersign__upstream",
        json!({"method": "GET", "path": "/repos/a", "query": {"page": 2}, "justification": "reading the repo"}),
    )
    .await;
    assert_ne!(result.is_error, Some(true), "{result:?}");
    let wire = serde_json::to_string(&result).unwrap();
    assert!(
        !wire.contains(SECRET),
        "the result leaks the secret: {wire}"
    );
    let outcome = result
        .structured_content
        .clone()
        .expect("structured content");
    assert_eq!(outcome["status"], "succeeded", "{outcome}");
    assert_eq!(outcome["http"]["status"], 200);
    let body: Value = serde_json::from_str(outcome["http"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["path"], "/api/repos/a");
    assert_eq!(body["query"], "page=2");
    assert_eq!(body["seen"], "Bearer [redacted]");
    let text: Value = serde_json::from_str(&text_of(&result)).expect("the text is JSON");
    assert_eq!(text, outcome);

    let req = request_of(&app, &result).await;
    assert_eq!(req["state"], "executed", "{req}");
    assert_eq!(req["action"]["kind"], "exec.http.upstream");
    assert_eq!(req["action"]["justification"], "reading the repo");
    assert_eq!(
        req["action"]["params"],
        json!({"method": "GET", "path": "/repos/a", "query": {"page": 2}}),
        "the justification is not a parameter"
    );
    assert_eq!(req["execution"]["executor"], "upstream");
    assert_eq!(req["execution"]["reported"], false);
    assert_eq!(req["execution"]["outcome"]["status"], "succeeded");
    assert_eq!(
        req["execution"]["outcome"]["output_sha256"],
        outcome["output_sha256"]
    );
    assert!(!req.to_string().contains(SECRET));

    let calls = upstream.calls();
    assert_eq!(calls.len(), 1, "ran once");
    assert_eq!(calls[0].path_and_query, "/api/repos/a?page=2");
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some(format!("Bearer {SECRET}").as_str())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_exec_held_call_runs_once_another_principal_approves() {
    let upstream = Upstream::start().await;
    let app = exec_gateway(&upstream).await;
    let client = rmcp_client(&app, false).await;
    let held = tokio::spawn(async move {
        let result = call(
            &client,
            "countersign__upstream",
            json!({"method": "POST", "path": "/deploy", "body": {"version": "1.2.3"}}),
        )
        .await;
        drop(client);
        result
    });
    let pending = recorded(&app, "exec.http.upstream", "pending").await;
    assert_eq!(
        pending["action"]["params"]["body"],
        json!({"version": "1.2.3"})
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(upstream.calls().is_empty(), "nothing runs before approval");
    app.decide(pending["id"].as_str().unwrap(), "approve").await;

    let result = tokio::time::timeout(Duration::from_secs(20), held)
        .await
        .expect("the result arrives once approved")
        .unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    let outcome = result.structured_content.clone().unwrap();
    assert_eq!(outcome["status"], "succeeded", "{outcome}");
    let calls = upstream.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "POST");
    assert_eq!(calls[0].body, r#"{"version":"1.2.3"}"#);
    let req = request_of(&app, &result).await;
    assert_eq!(req["id"], pending["id"]);
    assert_eq!(req["state"], "executed");
    assert_eq!(req["votes"][0]["approver"], "user:bob@example.com");
    assert_eq!(req["execution"]["outcome"]["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_exec_bad_input_is_a_tool_error_with_its_code_and_records_nothing() {
    let upstream = Upstream::start().await;
    let app = exec_gateway(&upstream).await;
    let client = rmcp_client(&app, false).await;
    let before = app.audit_entries().await.len();
    for (tool, arguments, code) in [
        (
            "countersign__upstream",
            json!({"method": "DELETE", "path": "/x"}),
            "invalid_params",
        ),
        (
            "countersign__upstream",
            json!({"method": "GET", "path": "//evil.example/x"}),
            "invalid_params",
        ),
        (
            "countersign__upstream",
            json!({"method": "GET"}),
            "invalid_params",
        ),
        (
            "countersign__upstream",
            json!({"method": "GET", "path": "/x", "justification": 5}),
            "invalid_params",
        ),
        (
            "countersign__nope",
            json!({"method": "GET", "path": "/x"}),
            "unknown_executor",
        ),
    ] {
        let result = call(&client, tool, arguments.clone()).await;
        assert_eq!(result.is_error, Some(true), "{arguments}: {result:?}");
        assert!(
            text_of(&result).contains(code),
            "{arguments}: {}",
            text_of(&result)
        );
        let meta = result.meta.clone().unwrap_or_default();
        assert_eq!(meta.0.get("io.countersign/code"), Some(&json!(code)));
        assert_eq!(meta.0.get("io.countersign/request"), None, "{meta:?}");
    }
    let all = app.approver("bob").get("/v1/requests?state=all").await;
    assert_eq!(all.body["requests"], json!([]), "{}", all.body);
    assert_eq!(app.audit_entries().await.len(), before);
    assert!(upstream.calls().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_forwarded_calls_record_their_outcome() {
    let app = gateway(&stdio_upstream("everything"), "").await;
    let client = rmcp_client(&app, false).await;
    let tools = client.peer().list_all_tools().await.unwrap();
    assert!(
        tools.iter().all(|t| !t.name.starts_with("countersign__")),
        "no executors, no built-in tools: {tools:?}"
    );

    let ok = call(&client, "everything__echo", json!({"message": "hi"})).await;
    assert_ne!(ok.is_error, Some(true), "{ok:?}");
    let id = recorded(&app, "mcp.tool.everything.echo", "executed").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let req = with_outcome(&app, &id).await;
    assert_eq!(req["state"], "executed", "{req}");
    let execution = &req["execution"];
    assert_eq!(execution["executor"], "mcp:everything", "{req}");
    assert_eq!(execution["reported"], false);
    let outcome = &execution["outcome"];
    assert_eq!(outcome["status"], "succeeded");
    assert_eq!(
        outcome["output_sha256"].as_str().unwrap().len(),
        64,
        "{outcome}"
    );
    assert!(outcome["bytes"].as_u64().unwrap() > 0, "{outcome}");
    assert!(
        outcome["http"].is_null() && outcome["stdout"].is_null(),
        "{outcome}"
    );
    // The gateway saw it: the requester cannot report it as well.
    let claim = app
        .agent()
        .post(
            &format!("/v1/requests/{id}/outcome"),
            json!({"status": "failed"}),
        )
        .await;
    assert_eq!(claim.status, 409, "{}", claim.body);
    assert_eq!(claim.code(), "outcome_recorded");

    // A call the upstream refuses (a missing argument: an `isError` result or a JSON-RPC
    // error, as the server chooses) is recorded failed.
    let mut params = CallToolRequestParams::new("everything__echo");
    params.arguments = json!({}).as_object().cloned();
    match client.peer().call_tool(params).await {
        Ok(result) => assert_eq!(result.is_error, Some(true), "{result:?}"),
        Err(e) => assert!(e.to_string().contains("message"), "{e}"),
    }
    let failed = recorded(&app, "mcp.tool.everything.echo", "failed").await;
    let failed = with_outcome(&app, failed["id"].as_str().unwrap()).await;
    assert_eq!(
        failed["execution"]["outcome"]["status"], "failed",
        "{failed}"
    );
    assert_eq!(failed["execution"]["executor"], "mcp:everything");
    assert_eq!(failed["execution"]["reported"], false);
    assert!(
        failed["execution"]["outcome"]["output_sha256"].is_string(),
        "the upstream's answer is hashed: {failed}"
    );

    let entries = app.audit_entries().await;
    let finished: Vec<&Value> = entries
        .iter()
        .filter(|e| e["event"] == "execution.finished")
        .collect();
    assert_eq!(finished.len(), 2, "{finished:?}");
    assert!(finished.iter().all(|e| e["data"]["reported"] == false));
    // The stored requests are what their audit entries produce (an outcome recorded right
    // after the redemption, with no execution.started).
    use countersign_store::Store as _;
    let store = countersign_store::SqliteStore::open_read_only(&app.db_path())
        .await
        .unwrap();
    assert_eq!(store.verify_requests().await.unwrap(), vec![]);
}
