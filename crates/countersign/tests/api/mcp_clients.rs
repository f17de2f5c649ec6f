//! The MCP gateway with the client libraries people use, as real peers at their default
//! settings (issue 15): the official Python SDK both ways it connects (`mcp.Client`, which
//! settles on protocol 2026-07-28, and a 2025-11-25 `ClientSession`), FastMCP, the OpenAI Agents
//! SDK (`tests/peers/mcp_clients.py`), LangChain's MCP adapters (`mcp_client_langchain.py`) and
//! the TypeScript SDK (`tests/peers/mcp_client_ts.mjs`).
//! `.ci/run` installs them.

use crate::app::TestApp;
use crate::mcp::{everything_over_http, gateway, peers, recorded_where, stdio_upstream};
use crate::mcp_policy::Raw;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The Python libraries `mcp_clients.py` drives.
const PYTHON_LIBRARIES: [&str; 4] = ["mcp", "mcp-session", "fastmcp", "openai"];

/// One call by a Python client library; the JSON it printed.
async fn python_call(library: &str, url: &str, key: &str, tool: &str, args: Value) -> Value {
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(peers().join("mcp_clients.py")).args([
        library,
        url,
        key,
        "call",
        tool,
        &args.to_string(),
    ]);
    run_peer(&format!("{library} {tool}"), cmd).await
}

/// Runs one peer to its end (90 s at most) and returns the JSON line it printed last.
async fn run_peer(what: &str, mut cmd: tokio::process::Command) -> Value {
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.kill_on_drop(true).output())
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
    let python = peers().join(".venv-langchain/bin/python");
    assert!(
        python.exists(),
        "LangChain's MCP adapters are not installed: run `python3 -m venv tests/peers/.venv-langchain && \
         tests/peers/.venv-langchain/bin/pip install langchain-mcp-adapters==0.3.2` (.ci/run does)"
    );
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(peers().join("mcp_client_langchain.py"))
        .args([url, key, tool, &args.to_string()]);
    run_peer(&format!("langchain {tool}"), cmd).await
}

/// One call by the TypeScript SDK, with its default timeout unless `timeout_ms` is given.
async fn ts_call(url: &str, key: &str, tool: &str, args: Value, timeout_ms: Option<u64>) -> Value {
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(peers().join("mcp_client_ts.mjs"))
        .args([url, key, tool, &args.to_string()]);
    if let Some(ms) = timeout_ms {
        cmd.arg(ms.to_string());
    }
    run_peer(&format!("typescript {tool}"), cmd).await
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

/// A held call whose client is killed (it had a progress token, so only the closed connection
/// says it left) or times out is abandoned: recorded with the reason, refused a later approval,
/// never redeemed, so never forwarded.
#[tokio::test]
async fn no_forwarding_without_a_caller() {
    let app = gateway(&stdio_upstream("everything"), "").await;
    let (url, key) = (mcp_url(&app), app.agent().key);
    let mut abandoned = vec![];
    // Killed clients, on both protocols.
    for (i, library) in ["mcp-session", "mcp"].into_iter().enumerate() {
        let args = json!({"a": 3000 + i, "b": 1});
        let mut client = tokio::process::Command::new("python3")
            .arg(peers().join("mcp_clients.py"))
            .args([
                library,
                &url,
                &key,
                "hang",
                "everything__get-sum",
                &args.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        request_with(&app, "pending", &args).await;
        client.kill().await.unwrap();
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
