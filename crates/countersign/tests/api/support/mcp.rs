//! The MCP peers the tests run (`tests/peers`: the reference server, the Python and
//! TypeScript clients, a misbehaving upstream; the official Rust SDK as a client) and a gateway
//! in front of them; finding what a call recorded.

use super::app::{TestApp, spawn_app_editing, spawn_app_in};
use crate::cli::BIN;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub(crate) fn peers() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers")
}

pub(crate) fn everything_js() -> PathBuf {
    let js = peers().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        js.exists(),
        "the MCP reference server is not installed: run `npm ci --prefix tests/peers`"
    );
    js
}

/// The reference server over Streamable HTTP on a free port (killed when the child is dropped).
pub(crate) async fn everything_over_http() -> (tokio::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = tokio::process::Command::new("node")
        .arg(everything_js())
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "server-everything did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (server, port)
}

pub(crate) fn stdio_upstream(name: &str) -> String {
    format!(
        "    - name: {name}\n      command: node\n      args: [\"{}\", \"stdio\"]\n      env: {{API_KEY: upstream-secret}}\n",
        everything_js().display()
    )
}

pub(crate) fn flaky_upstream() -> String {
    format!(
        "    - name: flaky\n      command: python3\n      args: [\"{}\"]\n",
        peers().join("flaky_server.py").display()
    )
}

pub(crate) fn mcp_config(upstreams: &str, extra: &str) -> String {
    format!("mcp:\n  progress_interval: 200ms\n{extra}  upstreams:\n{upstreams}")
}

pub(crate) async fn gateway(upstreams: &str, extra: &str) -> TestApp {
    spawn_app_in(tempfile::tempdir().unwrap(), &mcp_config(upstreams, extra)).await
}

/// Like [`gateway`], with the test world's config text (its principals) first passed through
/// `edit`.
pub(crate) async fn gateway_editing(
    upstreams: &str,
    extra: &str,
    edit: impl FnOnce(String) -> String,
) -> TestApp {
    let mcp = mcp_config(upstreams, extra);
    spawn_app_editing(|text| edit(text) + &mcp).await
}

/// The official Rust SDK as the agent's MCP client over `/mcp`, declaring the tasks extension
/// when `tasks`.
pub(crate) async fn rmcp_client(
    app: &TestApp,
    tasks: bool,
) -> rmcp::service::RunningService<rmcp::RoleClient, rmcp::model::ClientConfig> {
    rmcp_client_at(&app.url, &app.agent().key, tasks).await
}

/// [`rmcp_client`] for the gateway at `url`, with `key`.
pub(crate) async fn rmcp_client_at(
    url: &str,
    key: &str,
    tasks: bool,
) -> rmcp::service::RunningService<rmcp::RoleClient, rmcp::model::ClientConfig> {
    use rmcp::ServiceExt as _;
    use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let mut config = StreamableHttpClientTransportConfig::with_uri(format!("{url}/mcp"));
    config.auth_header = Some(key.to_owned());
    let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
    let capabilities = if tasks {
        ClientCapabilities::builder().enable_tasks().build()
    } else {
        ClientCapabilities::default()
    };
    ClientConfig::new(capabilities, Implementation::new("countersign-tests", "1"))
        .serve(transport)
        .await
        .unwrap()
}

/// The official Rust SDK as a client on protocol 2026-07-28 (no session), declaring
/// `capabilities`, for the gateway at `url` with `key`.
pub(crate) async fn rmcp_client_2026(
    url: &str,
    key: &str,
    capabilities: rmcp::model::ClientCapabilities,
) -> rmcp::service::RunningService<rmcp::RoleClient, rmcp::model::ClientConfig> {
    use rmcp::model::{ClientConfig, Implementation, ProtocolVersion};
    use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let mut config = StreamableHttpClientTransportConfig::with_uri(format!("{url}/mcp"));
    config.auth_header = Some(key.to_owned());
    let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
    ClientConfig::new(
        capabilities,
        Implementation::new("countersign-tests-2026", "1"),
    )
    .serve_with_lifecycle(
        transport,
        ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
    )
    .await
    .unwrap()
}

/// Runs the Python MCP client with `args` and returns the JSON it printed.
pub(crate) async fn python(args: Vec<String>) -> Value {
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("python3")
            .arg(peers().join("mcp_client.py"))
            .args(&args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the MCP client finished in time")
    .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "mcp_client.py {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

pub(crate) fn over_http(app: &TestApp, action: &[&str]) -> Vec<String> {
    let mut args = vec![
        "http".to_string(),
        format!("{}/mcp", app.url),
        app.agent().key,
    ];
    args.extend(action.iter().map(|s| s.to_string()));
    args
}

pub(crate) fn over_stdio(app: &TestApp, action: &[&str]) -> Vec<String> {
    let mut args = vec![
        "stdio".to_string(),
        BIN.to_string(),
        app.url.clone(),
        app.agent().key,
    ];
    args.extend(action.iter().map(|s| s.to_string()));
    args
}

/// The request of `kind` the gateway recorded (as a person sees it), waiting up to 20 s.
pub(crate) async fn recorded(app: &TestApp, kind: &str, state: &str) -> Value {
    recorded_where(app, state, &format!("of kind {kind}"), |r| {
        r["action"]["kind"] == kind
    })
    .await
}

/// The first request in `state` that `matches` (`what` names it in the failure), waiting up to
/// 20 s.
pub(crate) async fn recorded_where(
    app: &TestApp,
    state: &str,
    what: &str,
    matches: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = app
            .approver("bob")
            .get(&format!("/v1/requests?state={state}"))
            .await;
        if let Some(r) = list.body["requests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| matches(r))
        {
            return r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {state} request {what}: {}",
            list.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Request `id` (as a person sees it) once its execution has ended, waiting up to 20 s: the
/// outcome of a forwarded call is recorded just after the agent has its answer.
pub(crate) async fn with_outcome(app: &TestApp, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = app.approver("bob").get(&format!("/v1/requests/{id}")).await;
        let status = &r.body["execution"]["outcome"]["status"];
        if status.is_string() && status != "running" {
            return r.body;
        }
        assert!(Instant::now() < deadline, "no outcome for {id}: {}", r.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Calls get-sum with `a` (and `b` 3) as a task; returns the task id.
pub(crate) async fn start_sum_task(
    client: &rmcp::service::RunningService<rmcp::RoleClient, rmcp::model::ClientConfig>,
    a: i64,
) -> String {
    use rmcp::model::{CallToolRequestParams, CallToolResponse};
    let mut params = CallToolRequestParams::new("everything__get-sum");
    params.arguments = serde_json::json!({"a": a, "b": 3}).as_object().cloned();
    match client.peer().call_tool_once(params).await.unwrap() {
        CallToolResponse::Task(created) => created.task.task_id,
        other => panic!("expected a task, got {other:?}"),
    }
}

/// Polls `tasks/get` until task `id` is no longer working (at most 30 s).
pub(crate) async fn until_task_ended(
    client: &rmcp::service::RunningService<rmcp::RoleClient, rmcp::model::ClientConfig>,
    id: &str,
) -> rmcp::model::DetailedTask {
    use rmcp::model::{GetTaskParams, TaskStatus};
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = client
            .peer()
            .get_task(GetTaskParams::new(id))
            .await
            .unwrap();
        if got.task.status() != TaskStatus::Working {
            return got.task;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "task {id} still working"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
