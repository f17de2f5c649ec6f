//! The MCP gateway as an agent trying to get around policy: every request that reaches an
//! upstream is an action under policy (prompts, completions, subscriptions as well as tool
//! calls and reads), everything forwarded is inside the approved digest, and a body that is
//! not one JSON-RPC message gets a JSON-RPC error with 400.

use crate::support::app::TestApp;
use crate::support::mcp::{
    flaky_upstream, gateway, over_http, python, recorded, stdio_upstream, with_outcome,
};
use rmcp::model::{
    ArgumentInfo, ClientCapabilities, ClientConfig, CompleteRequestParams, GetPromptRequestParams,
    Implementation, Reference, SubscribeRequestParams, UnsubscribeRequestParams,
};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

/// JSON-RPC error code of a request policy or people refused.
const REFUSED: i32 = -32010;

async fn client(app: &TestApp) -> RunningService<RoleClient, ClientConfig> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", app.url));
    config.auth_header = Some(app.agent().key);
    let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("policy-test", "1"),
    )
    .serve(transport)
    .await
    .unwrap()
}

/// The JSON-RPC error code and message of a refused call.
fn refusal(e: rmcp::ServiceError) -> (i32, String) {
    match e {
        rmcp::ServiceError::McpError(e) => (e.code.0, e.message.to_string()),
        other => panic!("expected a JSON-RPC error, got {other}"),
    }
}

/// Every request recorded so far, any state.
async fn all_requests(app: &TestApp) -> Vec<Value> {
    let r = app.approver("bob").get("/v1/requests?state=all").await;
    r.body["requests"].as_array().cloned().unwrap_or_default()
}

fn prompt(name: &str, arguments: Value) -> GetPromptRequestParams {
    let mut p = GetPromptRequestParams::new(name);
    p.arguments = arguments.as_object().cloned();
    p
}

#[tokio::test]
async fn mcp_requests_are_actions_under_policy_prompts() {
    let app = gateway(&stdio_upstream("everything"), "").await;
    let c = client(&app).await;

    // A prompt that embeds a resource's text: denied by policy, as a JSON-RPC error.
    for args in [
        json!({"resourceType": "Text", "resourceId": "1"}),
        json!({"resourceType": "Blob", "resourceId": "2"}),
    ] {
        let err = c
            .peer()
            .get_prompt(prompt("everything__resource-prompt", args.clone()))
            .await
            .expect_err("denied");
        let (code, message) = refusal(err);
        assert_eq!(code, REFUSED, "{message}");
        assert!(message.contains("around resources/read"), "{message}");
    }
    let denied = recorded(&app, "mcp.prompt.everything.resource-prompt", "denied").await;
    assert_eq!(
        denied["action"]["resource"],
        "mcp://everything/prompts/resource-prompt"
    );

    // An allowed prompt is forwarded with the recorded arguments, and recorded as executed.
    let got = c
        .peer()
        .get_prompt(prompt("everything__args-prompt", json!({"city": "Oslo"})))
        .await
        .expect("allowed");
    let text = serde_json::to_string(&got.messages).unwrap();
    assert!(text.contains("What's weather in Oslo?"), "{text}");
    let req = recorded(&app, "mcp.prompt.everything.args-prompt", "executed").await;
    assert_eq!(req["action"]["params"], json!({"city": "Oslo"}));
    let done = with_outcome(&app, req["id"].as_str().unwrap()).await;
    assert_eq!(
        done["execution"]["outcome"]["status"], "succeeded",
        "{done}"
    );
    let events: Vec<String> = app
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e["request"] == req["id"])
        .map(|e| e["event"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        events,
        [
            "request.created",
            "request.approved",
            "grant.redeemed",
            "execution.finished"
        ],
        "the allowed prompt and how it went are in the audit log"
    );

    // A prompt of no configured server, or with no server in its name, asks nobody.
    let before = all_requests(&app).await.len();
    for name in ["nope__simple-prompt", "simple-prompt", "everything__"] {
        let err = c.peer().get_prompt(prompt(name, json!({}))).await;
        assert!(err.is_err(), "{name}");
    }
    assert_eq!(all_requests(&app).await.len(), before);
}

fn completion(reference: Reference, argument: &str, value: &str) -> CompleteRequestParams {
    CompleteRequestParams::new(reference, ArgumentInfo::new(argument, value))
}

#[tokio::test]
async fn mcp_requests_are_actions_under_policy_completions() {
    let app = gateway(&stdio_upstream("everything"), "").await;
    let c = client(&app).await;
    let allowed = c
        .peer()
        .complete(completion(
            Reference::for_prompt("everything__completable-prompt"),
            "department",
            "Eng",
        ))
        .await
        .expect("allowed");
    assert_eq!(allowed.completion.values, ["Engineering"]);
    let req = recorded(&app, "mcp.completion.everything", "executed").await;
    assert_eq!(
        req["action"]["resource"],
        "mcp://everything/prompts/completable-prompt"
    );
    assert_eq!(
        req["action"]["params"]["argument"],
        json!({"name": "department", "value": "Eng"})
    );

    for reference in [
        Reference::for_prompt("everything__resource-prompt"),
        Reference::for_resource("demo://resource/dynamic/text/{resourceId}"),
    ] {
        let err = c
            .peer()
            .complete(completion(reference.clone(), "resourceId", "1"))
            .await
            .expect_err("denied");
        let (code, message) = refusal(err);
        assert_eq!(code, REFUSED, "{reference:?}: {message}");
        assert!(message.contains("Only the team prompt"), "{message}");
    }
    recorded(&app, "mcp.completion.everything", "denied").await;
}

#[tokio::test]
#[allow(deprecated)] // resources/subscribe is what pre-2026 clients send
async fn mcp_requests_are_actions_under_policy_subscriptions() {
    let app = gateway(&stdio_upstream("everything"), "").await;
    let c = client(&app).await;
    let uri = "demo://resource/static/document/architecture.md";
    let err = c
        .peer()
        .subscribe(SubscribeRequestParams::new(uri))
        .await
        .expect_err("denied");
    let (code, message) = refusal(err);
    assert_eq!(code, REFUSED, "{message}");
    let denied = recorded(&app, "mcp.resource.subscribe", "denied").await;
    assert_eq!(denied["action"]["resource"], uri);
    assert_eq!(denied["action"]["params"]["server"], "everything");

    c.peer()
        .unsubscribe(UnsubscribeRequestParams::new(uri))
        .await
        .expect("allowed");
    recorded(&app, "mcp.resource.unsubscribe", "executed").await;
}

/// A hand-written MCP session over `/mcp`, for requests no SDK would send.
pub(crate) struct Raw {
    http: reqwest::Client,
    url: String,
    key: String,
    session: Option<String>,
    version: String,
}

impl Raw {
    pub(crate) async fn open(app: &TestApp) -> Raw {
        Raw::open_as(app, "agent:deploy-bot").await
    }

    /// A session of `principal`.
    pub(crate) async fn open_as(app: &TestApp, principal: &str) -> Raw {
        let mut raw = Raw {
            http: reqwest::Client::new(),
            url: format!("{}/mcp", app.url),
            key: app.as_(principal).key,
            session: None,
            version: "2025-11-25".into(),
        };
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": raw.version, "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}});
        let r = raw.send(&init.to_string()).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        raw.session = r.session;
        if let Some(v) = r.body["result"]["protocolVersion"].as_str() {
            raw.version = v.to_string();
        }
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let r = raw.send(&initialized.to_string()).await;
        assert!(r.status < 300, "{:?}", r.body);
        raw
    }

    pub(crate) async fn send(&self, body: &str) -> RawResponse {
        let mut req = self
            .http
            .post(&self.url)
            .bearer_auth(&self.key)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", &self.version)
            .body(body.to_string());
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let json_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let session = r
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = r.text().await.unwrap_or_default();
        // A JSON body, or the last JSON-RPC answer of an SSE stream.
        let body = serde_json::from_str(&text).unwrap_or_else(|_| {
            text.lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
                .rfind(|v| v.get("result").is_some() || v.get("error").is_some())
                .unwrap_or(Value::String(text.clone()))
        });
        RawResponse {
            status,
            json_type,
            session,
            body,
        }
    }
}

pub(crate) struct RawResponse {
    pub(crate) status: u16,
    pub(crate) json_type: bool,
    pub(crate) session: Option<String>,
    pub(crate) body: Value,
}

#[tokio::test]
async fn mcp_requests_are_actions_under_policy_forwarding_only_what_was_recorded() {
    let app = gateway(&flaky_upstream(), "").await;
    let raw = Raw::open(&app).await;
    // `_meta` the gateway reads (justification, run) or has no use for, fields beside the
    // arguments, and a task request: none of it is in the digest, none of it is forwarded.
    let smuggling = [
        json!({"name": "flaky__seen", "arguments": {"note": "hi"},
            "_meta": {"io.countersign/justification": "why", "smuggled": "meta"}}),
        json!({"name": "flaky__seen", "arguments": {"note": "hi"}, "smuggled": {"a": 1},
            "_meta": {"progressToken": "p-1", "io.countersign/run": "run-7"}}),
        json!({"name": "flaky__seen", "arguments": {"note": "hi"},
            "task": {"ttl": 60000}, "extra": [1, 2, 3]}),
    ];
    for (i, params) in smuggling.iter().enumerate() {
        let call = json!({"jsonrpc": "2.0", "id": 10 + i, "method": "tools/call",
            "params": params});
        let r = raw.send(&call.to_string()).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let result = &r.body["result"];
        assert_eq!(result["isError"], json!(false), "{result}");
        let text = result["content"][0]["text"].as_str().expect("text");
        let arrived: Value = serde_json::from_str(text).expect("the params that arrived");
        assert_eq!(arrived["name"], "seen", "{arrived}");
        assert_eq!(arrived["arguments"], json!({"note": "hi"}), "{arrived}");
        let keys: Vec<&String> = arrived.as_object().unwrap().keys().collect();
        assert!(
            keys.iter()
                .all(|k| ["name", "arguments", "_meta"].contains(&k.as_str())),
            "{arrived}"
        );
        let meta = arrived["_meta"].as_object().cloned().unwrap_or_default();
        assert!(
            meta.keys().all(|k| k == "progressToken"),
            "only the gateway's own progress token: {arrived}"
        );
        assert_ne!(meta.get("progressToken"), Some(&json!("p-1")), "{arrived}");
    }
    let executed: Vec<Value> = all_requests(&app)
        .await
        .into_iter()
        .filter(|r| r["action"]["kind"] == "mcp.tool.flaky.seen")
        .collect();
    assert_eq!(executed.len(), smuggling.len());
    assert!(
        executed
            .iter()
            .all(|r| r["action"]["params"] == json!({"note": "hi"}) && r["state"] == "executed"),
        "{executed:?}"
    );

    // Multi-round-trip state cannot be put inside a digest: refused, nothing recorded.
    for extra in [
        json!({"requestState": "opaque"}),
        json!({"inputResponses": {"q1": {"action": "accept", "content": {}}}}),
    ] {
        let mut params = json!({"name": "flaky__seen", "arguments": {"note": "hi"}});
        for (k, v) in extra.as_object().unwrap() {
            params[k] = v.clone();
        }
        let call = json!({"jsonrpc": "2.0", "id": 20, "method": "tools/call", "params": params});
        let r = raw.send(&call.to_string()).await;
        assert_eq!(
            r.body["error"]["code"],
            json!(-32602),
            "{extra}: {:?}",
            r.body
        );
    }
    assert_eq!(
        all_requests(&app).await.len(),
        smuggling.len(),
        "nothing new recorded"
    );

    // The official Python client, with a justification and a progress token.
    let called = python(over_http(
        &app,
        &["call", "flaky__seen", r#"{"note": "py"}"#, "because"],
    ))
    .await;
    let arrived: Value = serde_json::from_str(called["text"].as_str().unwrap()).unwrap();
    assert_eq!(arrived["arguments"], json!({"note": "py"}), "{arrived}");
    let meta = arrived["_meta"].as_object().cloned().unwrap_or_default();
    assert!(meta.keys().all(|k| k == "progressToken"), "{arrived}");
}

#[tokio::test]
async fn mcp_batches_and_unreadable_bodies_get_400_with_a_json_rpc_error() {
    let app = gateway(&stdio_upstream("everything"), "").await;
    let raw = Raw::open(&app).await;
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let cases = [
        ("[]".to_string(), -32600),
        (json!([ping]).to_string(), -32600),
        (json!([ping, ping]).to_string(), -32600),
        (json!([note, note]).to_string(), -32600),
        (format!("  \n{}", json!([note])), -32600),
        ("[1, 2, 3]".to_string(), -32600),
        ("{\"jsonrpc\": \"2.0\", \"id\": 1".to_string(), -32700),
        ("not json".to_string(), -32700),
        ("{\"hello\": 1}".to_string(), -32600),
        ("\"ping\"".to_string(), -32600),
    ];
    for (body, code) in cases {
        let r = raw.send(&body).await;
        assert_eq!(r.status, 400, "{body}: {:?}", r.body);
        assert!(r.json_type, "{body}: a JSON body");
        assert_eq!(r.body["jsonrpc"], "2.0", "{body}: {:?}", r.body);
        assert_eq!(r.body["error"]["code"], json!(code), "{body}: {:?}", r.body);
        assert!(r.body["error"]["message"].is_string(), "{body}");
        assert!(
            r.body.get("id").is_some(),
            "{body}: an id, null when unknown"
        );
    }
    // The session still works, and a stranger's batch is refused before anything is read.
    let r = raw.send(&ping.to_string()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let stranger = app
        .http
        .post(format!("{}/mcp", app.url))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), 401);
}

/// A tool's annotations, as the upstream lists them, are what the policy reads
/// (`tool.annotations`); when the upstream lists them again changed, the next call is another
/// action, decided again. Nobody else can set them.
#[tokio::test]
async fn tool_annotations_reach_the_policy_and_a_change_is_decided_again() {
    let policy = "version: 1\ndefault: review\ndefaults:\n  review: {approvers: [{group: sre, count: 1}], timeout: 30m, on_timeout: deny}\nrules:\n  - name: read-only-tools-are-free\n    match: {kind: \"mcp.tool.*\"}\n    when: 'tool.annotations.readOnlyHint && !tool.annotations.destructiveHint'\n    effect: allow\n";
    let app = crate::support::app::spawn_app_configured(
        policy,
        &crate::support::mcp::mcp_config(&flaky_upstream(), ""),
    )
    .await;
    let first = python(over_http(&app, &["call", "flaky__shifty", "{}"])).await;
    assert_eq!(first["is_error"], false, "{first}");
    assert_eq!(first["text"], "shifted", "{first}");
    let allowed = recorded(&app, "mcp.tool.flaky.shifty", "executed").await;
    assert_eq!(
        allowed["action"]["labels"],
        json!({"mcp.annotation.destructiveHint": "false", "mcp.annotation.readOnlyHint": "true"}),
        "{allowed}"
    );
    assert_eq!(allowed["decision"]["rule"], "read-only-tools-are-free");
    // The upstream lists `shifty` again, now destructive.
    let turned = python(over_http(&app, &["call", "flaky__turn", "{}"])).await;
    assert_eq!(turned["text"], "turned", "{turned}");
    let again = tokio::spawn(python(over_http(&app, &["call", "flaky__shifty", "{}"])));
    let pending = recorded(&app, "mcp.tool.flaky.shifty", "pending").await;
    assert_eq!(
        pending["action"]["labels"]["mcp.annotation.destructiveHint"], "true",
        "{pending}"
    );
    assert_ne!(pending["digest"], allowed["digest"]);
    app.decide(pending["id"].as_str().unwrap(), "deny").await;
    let refused = again.await.unwrap();
    assert_eq!(refused["is_error"], true, "{refused}");

    // Only the gateway sets them: an action or a plan that names one is refused.
    let forged = app
        .agent()
        .post(
            "/v1/actions",
            json!({"kind": "mcp.tool.flaky.shifty", "resource": "mcp://flaky/shifty",
                   "labels": {"mcp.annotation.readOnlyHint": "true"}}),
        )
        .await;
    assert_eq!(
        (forged.status.as_u16(), forged.code()),
        (400, "reserved_label"),
        "{}",
        forged.body
    );
    let plan = app
        .agent()
        .post(
            "/v1/plans",
            json!({"steps": [{"kind": "mcp.tool.flaky.shifty", "resource": "mcp://flaky/shifty"}],
                   "labels": {"mcp.anything": "x"}}),
        )
        .await;
    assert_eq!(plan.code(), "reserved_label", "{}", plan.body);
}
