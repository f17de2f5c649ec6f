//! The MCP gateway with real peers: the reference server `@modelcontextprotocol/server-everything`
//! (npm) as upstream over stdio and Streamable HTTP, a misbehaving upstream written with the
//! Python SDK, and the official Python MCP client as the agent — over `/mcp` and through
//! `countersign mcp stdio`. `.ci/run` installs the peers (`npm ci --prefix tests/peers`, `pip
//! install mcp`).

use crate::cli::BIN;
use crate::support::app::{TestApp, spawn_app_in};
use crate::support::mcp::*;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn mcp_lists_namespaced_tools_and_forwards_an_allowed_call() {
    let app = gateway(&stdio_upstream("everything"), "").await;
    let listed = python(over_http(&app, &["list"])).await;
    let tools: Vec<&str> = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(tools.contains(&"everything__echo"), "{tools:?}");
    assert!(tools.contains(&"everything__get-env"), "{tools:?}");

    let called = python(over_http(
        &app,
        &[
            "call",
            "everything__echo",
            r#"{"message": "hi"}"#,
            "saying hello",
        ],
    ))
    .await;
    assert_eq!(called["is_error"], false, "{called}");
    assert_eq!(called["text"], "Echo: hi");
    let req = recorded(&app, "mcp.tool.everything.echo", "executed").await;
    assert_eq!(req["action"]["resource"], "mcp://everything/echo");
    assert_eq!(req["action"]["params"], json!({"message": "hi"}));
    assert_eq!(req["action"]["justification"], "saying hello");
    assert_eq!(req["requester"]["id"], "agent:deploy-bot");
    // Recorded, approved and redeemed in the one transaction that answered the call, and the
    // log says all three; the outcome follows, in a write of its own after the answer.
    let id = req["id"].as_str().unwrap();
    let done = with_outcome(&app, id).await;
    assert_eq!(
        done["execution"]["outcome"]["status"], "succeeded",
        "{done}"
    );
    let store = countersign_store::SqliteStore::open_read_only(&app.db_path())
        .await
        .unwrap();
    use countersign_store::Store as _;
    let entries = store.audit_entries(0, 1000).await.unwrap();
    let events: Vec<(String, u64)> = entries
        .iter()
        .filter_map(|e| Some((serde_json::from_slice::<Value>(&e.bytes).ok()?, e.seq)))
        .filter(|(e, _)| e["request"] == id)
        .map(|(e, seq)| (e["event"].as_str().unwrap_or("").to_string(), seq))
        .collect();
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "request.created",
            "request.approved",
            "grant.redeemed",
            "execution.finished"
        ],
        "{events:?}"
    );
    assert!(
        events[..3].windows(2).all(|w| w[1].1 == w[0].1 + 1),
        "one transaction writes consecutive entries: {events:?}"
    );
}

#[tokio::test]
async fn mcp_denied_call_is_a_tool_error_with_the_reason() {
    let app = gateway(&stdio_upstream("everything"), "").await;
    let called = python(over_http(&app, &["call", "everything__get-env", "{}"])).await;
    assert_eq!(called["is_error"], true, "{called}");
    let text = called["text"].as_str().unwrap();
    assert!(
        text.contains("The environment holds the server's secrets"),
        "{text}"
    );
    assert!(!text.contains("upstream-secret"), "{text}");
    let id = called["meta"]["io.countersign/request"].as_str().unwrap();
    assert!(id.starts_with("req_"), "{called}");
    assert_eq!(called["meta"]["io.countersign/state"], "denied");
}

#[tokio::test]
async fn mcp_held_call_reports_progress_and_resumes_when_approved() {
    let app = gateway(&stdio_upstream("everything"), "").await;
    let call = tokio::spawn(python(over_http(
        &app,
        &["call", "everything__get-sum", r#"{"a": 5000, "b": 1}"#],
    )));
    let pending = recorded(&app, "mcp.tool.everything.get-sum", "pending").await;
    assert_eq!(pending["action"]["params"], json!({"a": 5000, "b": 1}));
    // Let at least one "still waiting" progress go out, then approve.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let id = pending["id"].as_str().unwrap();
    let digest = pending["digest"].as_str().unwrap();
    let vote = app.approver("bob").vote(id, "approve", digest).await;
    assert_eq!(vote.status, 200, "{}", vote.body);
    let called = call.await.unwrap();
    assert_eq!(called["is_error"], false, "{called}");
    assert!(
        called["text"].as_str().unwrap().contains("5001"),
        "{called}"
    );
    let progress = called["progress"].as_array().unwrap();
    assert!(
        progress[0]
            .as_str()
            .unwrap()
            .contains(&format!("/console/requests/{id}")),
        "the first progress carries the approver's link: {progress:?}"
    );
    assert!(progress.len() >= 2, "{progress:?}");
    let done = app.approver("bob").get(&format!("/v1/requests/{id}")).await;
    assert_eq!(done.state(), "executed");
}

#[tokio::test]
async fn mcp_expired_approval_says_expired_not_denied() {
    let app = gateway(&stdio_upstream("everything"), "").await;
    let called = python(over_http(
        &app,
        &["call", "everything__get-tiny-image", "{}"],
    ))
    .await;
    assert_eq!(called["is_error"], true, "{called}");
    let text = called["text"].as_str().unwrap();
    assert!(text.starts_with("approval expired"), "{text}");
    assert_eq!(called["meta"]["io.countersign/state"], "expired");
}

#[tokio::test]
async fn mcp_client_cancel_cancels_the_pending_request() {
    let app = gateway(&stdio_upstream("everything"), "").await;
    let out = python(over_http(
        &app,
        &["cancel", "everything__get-sum", r#"{"a": 7000, "b": 2}"#],
    ))
    .await;
    assert_eq!(out["cancelled"], true, "{out}");
    let req = recorded(&app, "mcp.tool.everything.get-sum", "cancelled").await;
    assert_eq!(req["action"]["params"], json!({"a": 7000, "b": 2}));
}

#[tokio::test]
async fn mcp_stdio_bridge_relays_lists_calls_and_refusals() {
    let app = gateway(&stdio_upstream("everything"), "").await;
    let listed = python(over_stdio(&app, &["list"])).await;
    assert!(
        listed["tools"]
            .as_array()
            .unwrap()
            .contains(&json!("everything__echo")),
        "{listed}"
    );
    let called = python(over_stdio(
        &app,
        &["call", "everything__echo", r#"{"message": "via stdio"}"#],
    ))
    .await;
    assert_eq!(called["text"], "Echo: via stdio", "{called}");
    let req = recorded(&app, "mcp.tool.everything.echo", "executed").await;
    assert!(
        req["action"]["run"]
            .as_str()
            .unwrap()
            .starts_with("mcp-stdio:"),
        "the bridge names its run: {req}"
    );
    let denied = python(over_stdio(&app, &["call", "everything__get-env", "{}"])).await;
    assert_eq!(denied["is_error"], true, "{denied}");

    // A held call through the bridge, approved by a person.
    let call = tokio::spawn(python(over_stdio(
        &app,
        &["call", "everything__get-sum", r#"{"a": 4000, "b": 2}"#],
    )));
    let pending = recorded(&app, "mcp.tool.everything.get-sum", "pending").await;
    let vote = app
        .approver("erin")
        .vote(
            pending["id"].as_str().unwrap(),
            "approve",
            pending["digest"].as_str().unwrap(),
        )
        .await;
    assert_eq!(vote.status, 200, "{}", vote.body);
    let called = call.await.unwrap();
    assert!(
        called["text"].as_str().unwrap().contains("4002"),
        "{called}"
    );
}

#[tokio::test]
async fn mcp_stdio_bridge_refuses_a_bad_key_with_a_clear_error() {
    let app = gateway(&stdio_upstream("everything"), "").await;
    let out = tokio::process::Command::new(BIN)
        .args(["mcp", "stdio"])
        .env("COUNTERSIGN_URL", &app.url)
        .env("COUNTERSIGN_TOKEN", "cs_not-a-real-key")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing but MCP on stdout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not valid"), "{stderr}");
}

#[tokio::test]
async fn mcp_streamable_http_upstream() {
    let (mut server, port) = everything_over_http().await;
    let upstream = format!(
        "    - name: remote\n      url: http://127.0.0.1:{port}/mcp\n      headers: {{X-Api-Key: upstream-secret}}\n"
    );
    let app = gateway(&upstream, "").await;
    let called = python(over_http(
        &app,
        &["call", "remote__echo", r#"{"message": "over http"}"#],
    ))
    .await;
    assert_eq!(called["text"], "Echo: over http", "{called}");
    recorded(&app, "mcp.tool.remote.echo", "executed").await;
    let _ = server.kill().await;
}

#[tokio::test]
async fn mcp_upstream_hang_or_crash_is_a_clear_error_and_others_keep_serving() {
    let upstreams = format!("{}{}", stdio_upstream("everything"), flaky_upstream());
    let app = gateway(&upstreams, "  call_timeout: 2s\n").await;
    let hung = tokio::spawn(python(over_http(&app, &["call", "flaky__hang", "{}"])));
    // While the flaky server hangs, the other upstream answers.
    let echo = python(over_http(
        &app,
        &["call", "everything__echo", r#"{"message": "still here"}"#],
    ))
    .await;
    assert_eq!(echo["text"], "Echo: still here", "{echo}");
    let hung = hung.await.unwrap();
    assert_eq!(hung["is_error"], true, "{hung}");
    assert!(
        hung["text"]
            .as_str()
            .unwrap()
            .contains("did not answer within"),
        "{hung}"
    );

    let crashed = python(over_http(&app, &["call", "flaky__crash", "{}"])).await;
    assert_eq!(crashed["is_error"], true, "{crashed}");
    assert!(
        crashed["text"].as_str().unwrap().contains("flaky"),
        "{crashed}"
    );
    // The next call starts the server again.
    let ok = python(over_http(&app, &["call", "flaky__ok", "{}"])).await;
    assert_eq!(ok["is_error"], false, "{ok}");
    assert!(ok["text"].as_str().unwrap().starts_with("fine"), "{ok}");
}

#[tokio::test]
async fn mcp_tools_list_hides_tools_policy_always_denies() {
    let app = gateway(&stdio_upstream("everything"), "  hide_denied_tools: true\n").await;
    let listed = python(over_http(&app, &["list"])).await;
    let tools = listed["tools"].as_array().unwrap();
    assert!(tools.contains(&json!("everything__echo")), "{listed}");
    assert!(
        tools.contains(&json!("everything__get-sum")),
        "conditional: {listed}"
    );
    assert!(!tools.contains(&json!("everything__get-env")), "{listed}");
}

#[tokio::test]
async fn mcp_resources_read_and_prompts_get_are_actions() {
    let app = gateway(&stdio_upstream("everything"), "").await;
    let res = python(over_http(&app, &["resources"])).await;
    let first = res["resources"][0].as_str().unwrap().to_string();
    assert!(first.starts_with("demo://"), "{res}");
    assert!(res["read"][0].as_str().is_some(), "{res}");
    let req = recorded(&app, "mcp.resource.read", "executed").await;
    assert_eq!(req["action"]["resource"], first);
    assert_eq!(req["action"]["params"]["server"], "everything");

    let prompts = python(over_http(&app, &["prompts"])).await;
    assert_eq!(
        prompts["prompts"][0], "everything__simple-prompt",
        "{prompts}"
    );
    assert!(
        !prompts["first"].as_array().unwrap().is_empty(),
        "{prompts}"
    );
    let req = recorded(&app, "mcp.prompt.everything.simple-prompt", "executed").await;
    assert_eq!(
        req["action"]["resource"],
        "mcp://everything/prompts/simple-prompt"
    );
}

#[tokio::test]
async fn mcp_endpoint_requires_the_agent_key() {
    let app = gateway(&stdio_upstream("everything"), "").await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}});
    for auth in [None, Some("Bearer cs_wrong")] {
        let mut req = app
            .http
            .post(format!("{}/mcp", app.url))
            .header("accept", "application/json, text/event-stream")
            .json(&init);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"]["code"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn mcp_not_configured_is_a_clear_404() {
    let app = spawn_app_in(tempfile::tempdir().unwrap(), "").await;
    let resp = app
        .http
        .post(format!("{}/mcp", app.url))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_configured");
}

mod tasks {
    //! Task-based calls, with the official Rust SDK as a client that declares the tasks
    //! extension (the Python SDK's client does not yet).

    use super::*;
    use rmcp::RoleClient;
    use rmcp::model::{
        CallToolRequestParams, CancelTaskParams, ClientConfig, GetTaskParams, TaskPayload,
        TaskStatus,
    };
    use rmcp::service::RunningService;

    async fn task_client(app: &TestApp) -> RunningService<RoleClient, ClientConfig> {
        rmcp_client(app, true).await
    }

    async fn start(client: &RunningService<RoleClient, ClientConfig>, a: i64) -> String {
        crate::support::mcp::start_sum_task(client, a).await
    }

    async fn until_finished(
        client: &RunningService<RoleClient, ClientConfig>,
        id: &str,
    ) -> rmcp::model::DetailedTask {
        crate::support::mcp::until_task_ended(client, id).await
    }

    #[tokio::test]
    async fn mcp_task_call_returns_at_once_and_completes_when_approved() {
        let app = gateway(&stdio_upstream("everything"), "").await;
        let client = task_client(&app).await;
        let id = start(&client, 6000).await;
        assert!(id.starts_with("req_"), "the task is the request: {id}");
        let again = start(&client, 6000).await;
        assert_eq!(again, id, "the same call made again is the same task");
        let working = client
            .peer()
            .get_task(GetTaskParams::new(&id))
            .await
            .unwrap();
        assert_eq!(working.task.status(), TaskStatus::Working);
        let message = working.task.task.status_message.clone().unwrap_or_default();
        assert!(
            message.contains(&format!("/console/requests/{id}")),
            "{message}"
        );

        let pending = app.approver("bob").get(&format!("/v1/requests/{id}")).await;
        assert_eq!(pending.state(), "pending");
        let vote = app
            .approver("bob")
            .vote(&id, "approve", &pending.digest())
            .await;
        assert_eq!(vote.status, 200, "{}", vote.body);
        let done = until_finished(&client, &id).await;
        let TaskPayload::Completed { result } = done.payload else {
            panic!("expected completed, got {done:?}");
        };
        assert!(
            result["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains("6003"),
            "{result:?}"
        );
        let executed = app.approver("bob").get(&format!("/v1/requests/{id}")).await;
        assert_eq!(executed.state(), "executed");
        let next = start(&client, 6000).await;
        assert_ne!(next, id, "once it ran, the same call is a new request");

        // Another agent's task does not exist for this one; a bogus id is a clear error.
        assert!(
            client
                .peer()
                .get_task(GetTaskParams::new("req_nope"))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn mcp_task_cancel_cancels_the_request() {
        let app = gateway(&stdio_upstream("everything"), "").await;
        let client = task_client(&app).await;
        let id = start(&client, 6001).await;
        client
            .peer()
            .cancel_task(CancelTaskParams::new(&id))
            .await
            .unwrap();
        let done = until_finished(&client, &id).await;
        assert_eq!(done.status(), TaskStatus::Cancelled, "{done:?}");
        let req = app.approver("bob").get(&format!("/v1/requests/{id}")).await;
        assert_eq!(req.state(), "cancelled");
    }

    #[tokio::test]
    async fn mcp_unknown_tool_is_invalid_params_and_asks_nobody() {
        let app = gateway(&stdio_upstream("everything"), "").await;
        let client = task_client(&app).await;
        for name in ["nope__echo", "everything__nope", "no-separator"] {
            let err = client
                .peer()
                .call_tool_once(CallToolRequestParams::new(name))
                .await
                .expect_err(name);
            assert!(err.to_string().contains("unknown tool"), "{name}: {err}");
        }
        let all = app.approver("bob").get("/v1/requests?state=all").await;
        assert_eq!(all.body["requests"], json!([]), "{}", all.body);
    }
}

/// An agent on protocol 2026-07-28 has no session: it hears of an upstream's list changes by
/// `subscriptions/listen`, and gets exactly what it asked for (the gateway forwards list
/// changes, names only, as it does to sessions).
#[tokio::test]
async fn list_changes_reach_agents_on_2026_07_28_that_listen() {
    use rmcp::model::{
        CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion,
        ServerNotification, SubscriptionFilter,
    };
    use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

    let app = gateway(&flaky_upstream(), "").await;
    let mut config = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", app.url));
    config.auth_header = Some(app.agent().key);
    let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
    let client = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("listen-test", "1"),
    )
    .serve_with_lifecycle(
        transport,
        ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
    )
    .await
    .unwrap();
    let asked = SubscriptionFilter::builder()
        .tools_list_changed()
        .resource_subscriptions(["demo://resource/static/document/architecture.md"])
        .build();
    let mut listening = client.peer().listen(asked).await.unwrap();
    assert_eq!(listening.acknowledged().tools_list_changed, Some(true));
    assert_eq!(
        listening.acknowledged().resource_subscriptions,
        None,
        "resource updates need resources/subscribe, an action under policy"
    );
    let announced = client
        .peer()
        .call_tool(CallToolRequestParams::new("flaky__announce"))
        .await
        .unwrap();
    assert_ne!(announced.is_error, Some(true), "{announced:?}");
    let heard = tokio::time::timeout(Duration::from_secs(10), listening.next())
        .await
        .expect("a list change within 10 s")
        .unwrap();
    assert!(
        matches!(
            heard,
            Some(ServerNotification::ToolListChangedNotification(_))
        ),
        "{heard:?}"
    );
}

/// A standing approval covers the agent's next matching tool call: it is forwarded at once,
/// with its own grant, and the record names the approval.
#[tokio::test]
async fn mcp_calls_are_covered_by_a_standing_approval() {
    let policy = crate::support::app::TEST_POLICY.replace(
        "rules:\n",
        "rules:\n  - name: sums-may-stand\n    match: {kind: \"mcp.tool.*.get-sum\"}\n    effect: review\n    review:\n      approvers: [{group: sre, count: 1}]\n      standing: {max: 1h, max_uses: 3, scope: [kind, resource]}\n",
    );
    let app = crate::support::app::spawn_app_configured(
        &policy,
        &crate::support::mcp::mcp_config(&stdio_upstream("everything"), ""),
    )
    .await;
    let call = tokio::spawn(python(over_http(
        &app,
        &["call", "everything__get-sum", r#"{"a": 5000, "b": 1}"#],
    )));
    let pending = recorded(&app, "mcp.tool.everything.get-sum", "pending").await;
    let id = pending["id"].as_str().unwrap().to_owned();
    let vote = app
        .approver("bob")
        .post(
            &format!("/v1/requests/{id}/votes"),
            json!({"decision": "approve", "digest": pending["digest"],
                   "standing": {"for": "30m", "uses": 3}}),
        )
        .await;
    assert_eq!(vote.status, 200, "{}", vote.body);
    assert_eq!(vote.body["standing"]["state"], "active", "{}", vote.body);
    let first = call.await.unwrap();
    assert!(first["text"].as_str().unwrap().contains("5001"), "{first}");
    // The next call, other arguments (out of scope): forwarded at once.
    let second = python(over_http(
        &app,
        &["call", "everything__get-sum", r#"{"a": 7000, "b": 2}"#],
    ))
    .await;
    assert_eq!(second["is_error"], false, "{second}");
    assert!(
        second["text"].as_str().unwrap().contains("7002"),
        "{second}"
    );
    let covered = recorded_where(&app, "executed", "the covered call", |r| {
        r["action"]["params"] == json!({"a": 7000, "b": 2})
    })
    .await;
    assert_eq!(covered["covered_by"]["request"], id.as_str(), "{covered}");
}

/// An approved plan covers the agent's tool call equal to one of its steps: forwarded at once,
/// naming the plan; the same call again is asked about as usual (each step once).
#[tokio::test]
async fn mcp_calls_are_covered_by_an_approved_plan_step_once() {
    let app = crate::support::app::spawn_app_configured(
        crate::support::app::TEST_POLICY,
        &crate::support::mcp::mcp_config(&stdio_upstream("everything"), ""),
    )
    .await;
    let plan = app
        .agent()
        .post(
            "/v1/plans",
            json!({"steps": [{"kind": "mcp.tool.everything.get-sum",
                              "resource": "mcp://everything/get-sum",
                              "params": {"a": 5000, "b": 1}}],
                   "justification": "add them up"}),
        )
        .await;
    assert_eq!(plan.state(), "pending", "{}", plan.body);
    app.decide(&plan.id(), "approve").await;
    let call = python(over_http(
        &app,
        &["call", "everything__get-sum", r#"{"a": 5000, "b": 1}"#],
    ))
    .await;
    assert_eq!(call["is_error"], false, "{call}");
    assert!(call["text"].as_str().unwrap().contains("5001"), "{call}");
    let covered = recorded_where(&app, "executed", "the planned call", |r| {
        r["planned_by"]["plan"] == plan.id().as_str()
    })
    .await;
    assert_eq!(covered["planned_by"]["step"], 1, "{covered}");
    // Once: the same call again waits for people.
    let again = tokio::spawn(python(over_http(
        &app,
        &["call", "everything__get-sum", r#"{"a": 5000, "b": 1}"#],
    )));
    let pending = recorded(&app, "mcp.tool.everything.get-sum", "pending").await;
    assert!(pending.get("planned_by").is_none(), "{pending}");
    app.decide(pending["id"].as_str().unwrap(), "deny").await;
    let refused = again.await.unwrap();
    assert_eq!(refused["is_error"], true, "{refused}");
}
