//! The MCP gateway with the client libraries people use, as real peers at their default
//! settings (issue 15): the official Python SDK both ways it connects (`mcp.Client`, which
//! settles on protocol 2026-07-28, and a 2025-11-25 `ClientSession`), FastMCP, the OpenAI Agents
//! SDK (`tests/peers/mcp_clients.py`), LangChain's MCP adapters (`mcp_client_langchain.py`) and
//! the TypeScript SDK (`tests/peers/mcp_client_ts.mjs`).
//! `.ci/run` installs them.

use crate::mcp_policy::Raw;
use crate::support::app::TestApp;
use crate::support::mcp::{
    everything_over_http, gateway, gateway_editing, peers, recorded_where, stdio_upstream,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The Python libraries `mcp_clients.py` drives.
const PYTHON_LIBRARIES: [&str; 4] = ["mcp", "mcp-session", "fastmcp", "openai"];

/// How a peer calls: once, or again (same arguments, same client) every second for as long as
/// the answer is "Approval pending", as a model told so would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Once,
    Retry,
}

impl Mode {
    /// How long the peer may take in all.
    fn limit(self) -> Duration {
        match self {
            Mode::Once => Duration::from_secs(90),
            Mode::Retry => Duration::from_secs(180),
        }
    }
}

/// One call by a Python client library; the JSON it printed.
async fn python_call(library: &str, url: &str, key: &str, tool: &str, args: Value) -> Value {
    python_calls(library, url, key, tool, args, Mode::Once).await
}

async fn python_calls(
    library: &str,
    url: &str,
    key: &str,
    tool: &str,
    args: Value,
    mode: Mode,
) -> Value {
    let action = if mode == Mode::Retry { "retry" } else { "call" };
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(peers().join("mcp_clients.py")).args([
        library,
        url,
        key,
        action,
        tool,
        &args.to_string(),
    ]);
    run_peer(&format!("{library} {tool}"), cmd, mode).await
}

/// A call by `library` (any of the six), `mode` deciding whether it retries a pending answer.
async fn library_call(
    library: &str,
    url: &str,
    key: &str,
    tool: &str,
    args: Value,
    mode: Mode,
) -> Value {
    match library {
        "typescript" => ts_calls(url, key, tool, args, None, mode).await,
        "langchain" => langchain_calls(url, key, tool, args, mode).await,
        python => python_calls(python, url, key, tool, args, mode).await,
    }
}

/// Runs one peer to its end (`mode.limit()` at most) and returns the JSON line it printed last.
async fn run_peer(what: &str, mut cmd: tokio::process::Command, mode: Mode) -> Value {
    let out = tokio::time::timeout(mode.limit(), cmd.kill_on_drop(true).output())
        .await
        .unwrap_or_else(|_| panic!("{what}: the client did not finish in time"))
        .unwrap_or_else(|e| panic!("{what}: the client does not run: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {stdout}"))
}

/// One call by LangChain's MCP adapters (in their own virtual environment: they need mcp 1.x).
async fn langchain_call(url: &str, key: &str, tool: &str, args: Value) -> Value {
    langchain_calls(url, key, tool, args, Mode::Once).await
}

async fn langchain_calls(url: &str, key: &str, tool: &str, args: Value, mode: Mode) -> Value {
    let python = peers().join(".venv-langchain/bin/python");
    assert!(
        python.exists(),
        "LangChain's MCP adapters are not installed: run `python3 -m venv tests/peers/.venv-langchain && \
         tests/peers/.venv-langchain/bin/pip install langchain-mcp-adapters==0.3.2` (.ci/run does)"
    );
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(peers().join("mcp_client_langchain.py"))
        .args([url, key, tool, &args.to_string()]);
    if mode == Mode::Retry {
        cmd.arg("retry");
    }
    run_peer(&format!("langchain {tool}"), cmd, mode).await
}

/// One call by the TypeScript SDK, with its default timeout unless `timeout_ms` is given.
async fn ts_call(url: &str, key: &str, tool: &str, args: Value, timeout_ms: Option<u64>) -> Value {
    ts_calls(url, key, tool, args, timeout_ms, Mode::Once).await
}

async fn ts_calls(
    url: &str,
    key: &str,
    tool: &str,
    args: Value,
    timeout_ms: Option<u64>,
    mode: Mode,
) -> Value {
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(peers().join("mcp_client_ts.mjs"))
        .args([url, key, tool, &args.to_string()]);
    cmd.arg(timeout_ms.map_or("default".to_string(), |ms| ms.to_string()));
    if mode == Mode::Retry {
        cmd.arg("retry");
    }
    run_peer(&format!("typescript {tool}"), cmd, mode).await
}

fn mcp_url(app: &TestApp) -> String {
    format!("{}/mcp", app.url)
}

/// Every library gets through Countersign what it gets from the upstream directly, on whatever
/// protocol it settles on (the `mcp.Client` settles on 2026-07-28, which requires `resultType`
/// on every result; a forwarded 2025-11-25 result lacked it and the client rejected it), and a
/// refusal it can read.
#[tokio::test]
async fn answers_conform_to_the_agents_protocol_with_every_client_library() {
    let (_server, port) = everything_over_http().await;
    let direct = format!("http://127.0.0.1:{port}/mcp");
    let upstream = format!("    - name: remote\n      url: {direct}\n");
    let app = gateway(&format!("{upstream}{}", stdio_upstream("everything")), "").await;
    let (url, key) = (mcp_url(&app), app.agent().key);
    let calls = [
        ("echo", json!({"message": "same through the gateway"})),
        ("get-sum", json!({"a": 2, "b": 3})),
    ];
    let mut runs = vec![];
    for library in PYTHON_LIBRARIES
        .into_iter()
        .chain(["typescript", "langchain"])
    {
        for (tool, args) in &calls {
            let (url, key, direct) = (url.clone(), key.clone(), direct.clone());
            let (tool, args) = (tool.to_string(), args.clone());
            runs.push(tokio::spawn(async move {
                let through = format!("remote__{tool}");
                let (via, straight) = if library == "typescript" {
                    tokio::join!(
                        ts_call(&url, &key, &through, args.clone(), None),
                        ts_call(&direct, "none", &tool, args, None)
                    )
                } else if library == "langchain" {
                    tokio::join!(
                        langchain_call(&url, &key, &through, args.clone()),
                        langchain_call(&direct, "none", &tool, args)
                    )
                } else {
                    tokio::join!(
                        python_call(library, &url, &key, &through, args.clone()),
                        python_call(library, &direct, "none", &tool, args)
                    )
                };
                (library, tool, via, straight)
            }));
        }
    }
    for run in runs {
        let (library, tool, via, straight) = run.await.unwrap();
        assert_eq!(via["is_error"], false, "{library} {tool}: {via}");
        assert_eq!(via["text"], straight["text"], "{library} {tool}");
        assert!(
            !via["text"].as_str().unwrap().is_empty(),
            "{library} {tool}"
        );
        if library == "mcp" {
            assert_eq!(via["protocol"], "2026-07-28", "{library}: {via}");
        }
        if library == "mcp-session" || library == "typescript" {
            assert_eq!(via["protocol"], "2025-11-25", "{library}: {via}");
        }
    }
    // A refusal is a tool result every library reads (not a protocol error).
    for library in PYTHON_LIBRARIES {
        let denied = python_call(library, &url, &key, "everything__get-env", json!({})).await;
        assert_eq!(denied["is_error"], true, "{library}: {denied}");
        assert!(
            denied["text"].as_str().unwrap().contains("Denied"),
            "{library}: {denied}"
        );
    }
    let denied = ts_call(&url, &key, "everything__get-env", json!({}), None).await;
    assert_eq!(denied["is_error"], true, "{denied}");
    // LangChain hands the model the refusal's text (its tools do not raise on `isError`).
    let denied = langchain_call(&url, &key, "everything__get-env", json!({})).await;
    assert!(
        denied["text"].as_str().unwrap().contains("Denied"),
        "{denied}"
    );
}

/// A held call outlives the session idle timeout (here 1 s; rmcp's own was 300 s and counted a
/// silent held call as idle) and returns the upstream's result once approved, for every library
/// that waits by default (the OpenAI Agents SDK gives up after 5 s: it needs `hold_for`).
#[tokio::test]
async fn a_held_call_is_never_cut_by_an_idle_timeout_with_every_waiting_client() {
    let app = gateway(
        &stdio_upstream("everything"),
        "  session_idle_timeout: 1s\n",
    )
    .await;
    let (url, key) = (mcp_url(&app), app.agent().key);
    let libraries = ["mcp", "mcp-session", "fastmcp", "typescript", "langchain"];
    let mut calls = vec![];
    for (i, library) in libraries.into_iter().enumerate() {
        let (url, key) = (url.clone(), key.clone());
        let args = json!({"a": 2000 + i, "b": 1});
        calls.push(tokio::spawn(async move {
            let out = if library == "typescript" {
                ts_call(&url, &key, "everything__get-sum", args, None).await
            } else if library == "langchain" {
                langchain_call(&url, &key, "everything__get-sum", args).await
            } else {
                python_call(library, &url, &key, "everything__get-sum", args).await
            };
            (library, i, out)
        }));
    }
    // All held; then three idle timeouts pass before anyone approves.
    let deadline = Instant::now() + Duration::from_secs(30);
    let pending = loop {
        let list = app.approver("bob").get("/v1/requests?state=pending").await;
        let held: Vec<Value> = list.body["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"]["kind"] == "mcp.tool.everything.get-sum")
            .cloned()
            .collect();
        if held.len() == libraries.len() {
            break held;
        }
        assert!(Instant::now() < deadline, "not all held: {}", list.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    for r in &pending {
        let vote = app
            .approver("bob")
            .vote(
                r["id"].as_str().unwrap(),
                "approve",
                r["digest"].as_str().unwrap(),
            )
            .await;
        assert_eq!(vote.status, 200, "{}", vote.body);
    }
    for call in calls {
        let (library, i, out) = call.await.unwrap();
        assert_eq!(out["is_error"], false, "{library}: {out}");
        let sum = 2000 + i + 1;
        assert!(
            out["text"].as_str().unwrap().contains(&sum.to_string()),
            "{library}: {out}"
        );
    }
}

/// The request behind `args` once it reached `state`.
async fn request_with(app: &TestApp, state: &str, args: &Value) -> Value {
    recorded_where(app, state, &format!("for {args}"), |r| {
        r["action"]["params"] == *args
    })
    .await
}

/// Starts a Python client of `library` calling `get-sum` with `args` and a progress token (so
/// only the closed connection says it left), waits until the call is held, and kills it.
async fn kill_while_held(app: &TestApp, library: &str, url: &str, key: &str, args: &Value) {
    let mut client = tokio::process::Command::new("python3")
        .arg(peers().join("mcp_clients.py"))
        .args([
            library,
            url,
            key,
            "hang",
            "everything__get-sum",
            &args.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    request_with(app, "pending", args).await;
    client.kill().await.unwrap();
}

/// With `hold_for: off`, a held call whose client is killed (it had a progress token, so only
/// the closed connection says it left) or times out is abandoned: recorded with the reason,
/// refused a later approval, never redeemed, so never forwarded.
#[tokio::test]
async fn no_forwarding_without_a_caller() {
    let app = gateway(&stdio_upstream("everything"), "  hold_for: off\n").await;
    let (url, key) = (mcp_url(&app), app.agent().key);
    let mut abandoned = vec![];
    // Killed clients, on both protocols.
    for (i, library) in ["mcp-session", "mcp"].into_iter().enumerate() {
        let args = json!({"a": 3000 + i, "b": 1});
        kill_while_held(&app, library, &url, &key, &args).await;
        abandoned.push((library, args));
    }
    // A client whose own timeout runs out (the TypeScript SDK's, shortened from 60 s).
    let args = json!({"a": 3100, "b": 1});
    let out = ts_call(&url, &key, "everything__get-sum", args.clone(), Some(1500)).await;
    assert_eq!(out["timed_out"], true, "{out}");
    abandoned.push(("typescript", args));
    for (library, args) in abandoned {
        let r = request_with(&app, "cancelled", &args).await;
        assert_eq!(r["outcome_code"], "abandoned", "{library}: {r}");
        assert!(
            r["outcome"].as_str().unwrap().contains("connection closed"),
            "{library}: {r}"
        );
        let id = r["id"].as_str().unwrap();
        let vote = app
            .approver("bob")
            .vote(id, "approve", r["digest"].as_str().unwrap())
            .await;
        assert_eq!(vote.status, 409, "{library}: {}", vote.body);
        let names = audit_events_of(&app, id).await;
        assert!(
            names.iter().any(|n| n == "request.cancelled")
                && !names.iter().any(|n| n == "grant.redeemed"),
            "{library}: {names:?}"
        );
    }
}

/// The audit events recorded about request `id`, in order.
async fn audit_events_of(app: &TestApp, id: &str) -> Vec<String> {
    app.audit_entries()
        .await
        .into_iter()
        .filter(|e| e["request"] == id)
        .filter_map(|e| e["event"].as_str().map(str::to_owned))
        .collect()
}

/// A session with nothing held ends after `session_idle_timeout` without a request; one that
/// keeps asking lives on.
#[tokio::test]
async fn idle_sessions_end_and_busy_ones_live() {
    let app = gateway(
        &stdio_upstream("everything"),
        "  session_idle_timeout: 1s\n",
    )
    .await;
    let ping = json!({"jsonrpc": "2.0", "id": 7, "method": "ping"}).to_string();
    let quiet = Raw::open(&app).await;
    let busy = Raw::open(&app).await;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(busy.send(&ping).await.status, 200);
    }
    assert_eq!(busy.send(&ping).await.status, 200, "a busy session lives");
    assert_eq!(quiet.send(&ping).await.status, 404, "an idle session ended");
}

/// A `tools/call` over `raw`; its result.
async fn raw_call(raw: &Raw, id: u64, tool: &str, args: &Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": tool, "arguments": args}});
    let r = raw.send(&body.to_string()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["result"].clone()
}

fn text_of(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

/// The request a refusal or pending answer names.
fn request_of(result: &Value) -> String {
    result["_meta"]["io.countersign/request"]
        .as_str()
        .unwrap_or_else(|| panic!("no request named: {result}"))
        .to_string()
}

/// Every request recorded with the arguments `args`.
async fn requests_with(app: &TestApp, args: &Value) -> Vec<Value> {
    let list = app
        .approver("bob")
        .get("/v1/requests?state=all&limit=500")
        .await;
    list.body["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"]["params"] == *args)
        .cloned()
        .collect()
}

/// A call still pending after `hold_for` is answered "Approval pending" (a tool result naming
/// the request, its state and its review page); the same call made again, by the same agent,
/// attaches to the same request: people are asked once. It hears the decision once (a denial,
/// an expiry, or the upstream's result once approved); made again after that, it is a new
/// action. Another agent's identical call is its own request.
#[tokio::test]
async fn a_call_held_past_hold_for_is_answered_pending_and_the_same_call_attaches_to_its_request() {
    let app = gateway_editing(&stdio_upstream("everything"), "  hold_for: 1s\n", |t| {
        t.replace(
            "{id: agent:helper-bot,",
            "{id: agent:helper-bot, mcp_hold_for: 0s,",
        )
    })
    .await;
    let raw = Raw::open(&app).await;
    let (tool, args) = ("everything__get-sum", json!({"a": 4000, "b": 1}));
    let first = raw_call(&raw, 1, tool, &args).await;
    assert_eq!(first["isError"], true, "{first}");
    let said = text_of(&first);
    assert!(said.starts_with("Approval pending"), "{said}");
    assert!(
        said.contains("NOT run") && said.contains("same arguments"),
        "{said}"
    );
    let id = request_of(&first);
    assert_eq!(first["_meta"]["io.countersign/state"], "pending", "{first}");
    let review = first["_meta"]["io.countersign/review_url"]
        .as_str()
        .unwrap();
    assert!(
        review.ends_with(&format!("/console/requests/{id}")),
        "{review}"
    );
    assert!(said.contains(review), "{said}");

    let again = raw_call(&raw, 2, tool, &args).await;
    assert_eq!(request_of(&again), id, "the same call attaches: {again}");
    assert!(text_of(&again).starts_with("Approval pending"), "{again}");
    assert_eq!(
        requests_with(&app, &args).await.len(),
        1,
        "people are asked once"
    );

    app.decide(&id, "deny").await;
    let refused = raw_call(&raw, 3, tool, &args).await;
    assert!(text_of(&refused).contains("Denied"), "{refused}");
    assert_eq!(request_of(&refused), id);
    assert_eq!(refused["_meta"]["io.countersign/state"], "denied");

    let fresh = raw_call(&raw, 4, tool, &args).await;
    let second = request_of(&fresh);
    assert_ne!(second, id, "after its refusal, the call is a new action");
    assert!(text_of(&fresh).starts_with("Approval pending"), "{fresh}");

    app.decide(&second, "approve").await;
    let ran = raw_call(&raw, 5, tool, &args).await;
    assert_ne!(ran["isError"], true, "{ran}");
    assert!(text_of(&ran).contains("4001"), "{ran}");
    let executed = app
        .approver("bob")
        .get(&format!("/v1/requests/{second}"))
        .await;
    assert_eq!(executed.state(), "executed");

    let after = raw_call(&raw, 6, tool, &args).await;
    let third = request_of(&after);
    assert!(
        third != id && third != second,
        "a call that ran, made again, is new: {after}"
    );

    // Another agent with the same arguments: its own request (answered at once: its
    // `mcp_hold_for` is 0s).
    let other = Raw::open_as(&app, "agent:helper-bot").await;
    let theirs = raw_call(&other, 1, tool, &args).await;
    assert!(text_of(&theirs).starts_with("Approval pending"), "{theirs}");
    let fourth = request_of(&theirs);
    assert!(![&id, &second, &third].contains(&&fourth), "{theirs}");

    // Expired while nobody called: the next call hears it once, then asks anew.
    let image = raw_call(&other, 2, "everything__get-tiny-image", &json!({})).await;
    let expiring = request_of(&image);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let expired = raw_call(&other, 3, "everything__get-tiny-image", &json!({})).await;
    assert!(
        text_of(&expired).starts_with("approval expired"),
        "{expired}"
    );
    assert_eq!(request_of(&expired), expiring);
    let anew = raw_call(&other, 4, "everything__get-tiny-image", &json!({})).await;
    assert_ne!(request_of(&anew), expiring, "{anew}");
}

/// With `hold_for` on (the default), a client that leaves a held call (killed, or timed out)
/// detaches: its request stays pending, an approval forwards nothing by itself (no grant is
/// redeemed while nobody is there to receive the result), and the same call made again picks
/// the request up and runs it, once.
#[tokio::test]
async fn a_client_that_left_is_forwarded_nothing_until_it_calls_again() {
    let app = gateway(&stdio_upstream("everything"), "").await;
    let (url, key) = (mcp_url(&app), app.agent().key);
    let mut left = vec![];
    for (i, library) in ["mcp", "mcp-session"].into_iter().enumerate() {
        let args = json!({"a": 6000 + i, "b": 1});
        kill_while_held(&app, library, &url, &key, &args).await;
        left.push((library, args));
    }
    let args = json!({"a": 6100, "b": 1});
    let out = ts_call(&url, &key, "everything__get-sum", args.clone(), Some(1500)).await;
    assert_eq!(out["timed_out"], true, "{out}");
    left.push(("typescript", args));
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (_, args) in &left {
        let r = request_with(&app, "pending", args).await;
        app.decide(r["id"].as_str().unwrap(), "approve").await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (library, args) in left {
        let r = request_with(&app, "approved", &args).await;
        let id = r["id"].as_str().unwrap().to_string();
        let names = audit_events_of(&app, &id).await;
        assert!(
            !names
                .iter()
                .any(|n| n == "grant.redeemed" || n == "request.cancelled"),
            "{library}: nothing forwarded, nothing cancelled: {names:?}"
        );
        let ran = library_call(
            library,
            &url,
            &key,
            "everything__get-sum",
            args.clone(),
            Mode::Once,
        )
        .await;
        assert_eq!(ran["is_error"], false, "{library}: {ran}");
        let sum = args["a"].as_u64().unwrap() + 1;
        assert!(
            ran["text"].as_str().unwrap().contains(&sum.to_string()),
            "{library}: {ran}"
        );
        let recorded = requests_with(&app, &args).await;
        assert_eq!(recorded.len(), 1, "{library}: {recorded:?}");
        assert_eq!(recorded[0]["id"], id.as_str(), "{library}");
        assert_eq!(recorded[0]["state"], "executed", "{library}");
        let redeemed = audit_events_of(&app, &id)
            .await
            .into_iter()
            .filter(|n| n == "grant.redeemed")
            .count();
        assert_eq!(redeemed, 1, "{library}");
    }
}

/// Held calls approved after 20 s and after 70 s return the upstream's result with every
/// library at its default settings. With the default `hold_for` (50 s), a call held longer is
/// answered "Approval pending" and the library calls again (the TypeScript SDK gives up after
/// 60 s: it needs this); the OpenAI Agents SDK gives up after 5 s, so its agent's
/// `mcp_hold_for` is 3 s. Each call is one request, forwarded once.
#[tokio::test]
async fn held_calls_approved_after_20s_and_70s_return_the_result_with_every_library() {
    let app = gateway_editing(&stdio_upstream("everything"), "", |t| {
        t.replace(
            "{id: agent:helper-bot,",
            "{id: agent:helper-bot, mcp_hold_for: 3s,",
        )
    })
    .await;
    let url = mcp_url(&app);
    let libraries = [
        "mcp",
        "mcp-session",
        "fastmcp",
        "openai",
        "typescript",
        "langchain",
    ];
    let delays = [20u64, 70];
    let mut calls = vec![];
    for (d, after) in delays.into_iter().enumerate() {
        for (i, library) in libraries.into_iter().enumerate() {
            let who = if library == "openai" {
                "agent:helper-bot"
            } else {
                "agent:deploy-bot"
            };
            let (url, key) = (url.clone(), app.as_(who).key);
            let args = json!({"a": 5000 + 100 * d + i, "b": 1});
            calls.push(tokio::spawn(async move {
                let out = library_call(
                    library,
                    &url,
                    &key,
                    "everything__get-sum",
                    args.clone(),
                    Mode::Retry,
                )
                .await;
                (library, after, args, out)
            }));
        }
    }
    // Twelve clients start at once on two cores: give them a minute to be held.
    let deadline = Instant::now() + Duration::from_secs(60);
    let waiting: Vec<(u64, Value)> = loop {
        let list = app.approver("bob").get("/v1/requests?state=pending").await;
        let held: Vec<(u64, Value)> = list.body["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"]["kind"] == "mcp.tool.everything.get-sum")
            .map(|r| {
                let a = r["action"]["params"]["a"].as_u64().unwrap();
                (delays[usize::from(a >= 5100)], r.clone())
            })
            .collect();
        if held.len() == delays.len() * libraries.len() {
            break held;
        }
        assert!(Instant::now() < deadline, "not all held: {}", list.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let held_since = Instant::now();
    for after in delays {
        tokio::time::sleep_until((held_since + Duration::from_secs(after)).into()).await;
        for (_, r) in waiting.iter().filter(|(a, _)| *a == after) {
            app.decide(r["id"].as_str().unwrap(), "approve").await;
        }
    }
    for call in calls {
        let (library, after, args, out) = call.await.unwrap();
        assert_eq!(out["is_error"], false, "{library} after {after}s: {out}");
        let sum = args["a"].as_u64().unwrap() + 1;
        assert!(
            out["text"].as_str().unwrap().contains(&sum.to_string()),
            "{library} after {after}s: {out}"
        );
        let attempts = out["attempts"].as_u64().unwrap();
        if library == "openai" {
            assert!(attempts > 1, "{library} after {after}s: {out}");
        } else {
            let expected = if after > 50 { 2 } else { 1 };
            assert_eq!(attempts, expected, "{library} after {after}s: {out}");
        }
        let recorded = requests_with(&app, &args).await;
        assert_eq!(recorded.len(), 1, "{library} after {after}s: {recorded:?}");
        assert_eq!(recorded[0]["state"], "executed", "{library} after {after}s");
    }
}
