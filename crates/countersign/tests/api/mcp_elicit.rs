//! URL-mode elicitation (issue 19, part 2): a client that declares it (and not tasks) is
//! pointed, for a held call, at the request's console page; the call completes when people
//! decide, a declined elicitation cancels it, and a retry on protocol 2026-07-28 is answered
//! from the request it names, never asking people again. The client is the official Python SDK
//! (`tests/peers/mcp_elicit.py`), on a session and on 2026-07-28.

use crate::support::app::TestApp;
use crate::support::mcp::{gateway, peers, rmcp_client_2026, stdio_upstream};
use reqwest::StatusCode;
use rmcp::model::{CallToolRequestParams, CallToolResponse, ClientCapabilities};
use serde_json::{Value, json};
use std::time::Duration;

/// Runs the Python client: `mode` (`legacy` or `2026-07-28`), calling get-sum with `a`, and
/// answering every elicitation with `answer`.
fn python(app: &TestApp, mode: &str, a: i64, answer: &str) -> tokio::process::Child {
    tokio::process::Command::new("python3")
        .arg(peers().join("mcp_elicit.py"))
        .args([
            mode,
            &format!("{}/mcp", app.url),
            &app.agent().key,
            "everything__get-sum",
            &json!({"a": a, "b": 3}).to_string(),
            answer,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs")
}

async fn printed(child: tokio::process::Child) -> Value {
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("the MCP client finished in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "mcp_elicit.py failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

async fn approve(app: &TestApp, id: &str) {
    let bob = app.approver("bob");
    let r = bob.get(&format!("/v1/requests/{id}")).await;
    let vote = bob.vote(id, "approve", &r.digest()).await;
    assert_eq!(vote.status, StatusCode::OK, "{}", vote.body);
}

fn assert_pointed_at(out: &Value, id: &str) {
    let asked = out["elicitations"].as_array().unwrap();
    assert_eq!(asked.len(), 1, "asked once: {out}");
    assert_eq!(asked[0]["mode"], "url", "{out}");
    let url = asked[0]["url"].as_str().unwrap();
    assert!(url.ends_with(&format!("/console/requests/{id}")), "{url}");
    assert!(asked[0]["message"].as_str().unwrap().contains(id), "{out}");
}

async fn requests(app: &TestApp) -> Vec<Value> {
    let all = app.approver("bob").get("/v1/requests?state=all").await;
    all.body["requests"].as_array().unwrap().clone()
}

#[tokio::test]
async fn mcp_url_elicitation_points_a_session_client_at_the_request_until_decided() {
    let app = gateway(&stdio_upstream("everything"), "").await;
    let client = python(&app, "legacy", 8000, "accept");
    let id = app.first_pending().await;
    approve(&app, &id).await;
    let out = printed(client).await;
    assert_eq!(out["is_error"], false, "{out}");
    assert!(out["text"].as_str().unwrap().contains("8003"), "{out}");
    assert_pointed_at(&out, &id);
    assert_eq!(out["elicitations"][0]["elicitation_id"], id.as_str());
    assert_eq!(out["completed"], json!([id]), "told the step is complete");
    let r = app.approver("bob").get(&format!("/v1/requests/{id}")).await;
    assert_eq!(r.state(), "executed");

    // Declined: the request is cancelled, and nothing runs.
    let client = python(&app, "legacy", 8001, "decline");
    let out = printed(client).await;
    assert_eq!(out["is_error"], true, "{out}");
    let id = out["meta"]["io.countersign/request"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_pointed_at(&out, &id);
    assert!(out["text"].as_str().unwrap().contains("declined"), "{out}");
    let r = app.approver("bob").get(&format!("/v1/requests/{id}")).await;
    assert_eq!(r.state(), "cancelled", "{}", r.body);
}

#[tokio::test]
async fn mcp_url_elicitation_on_2026_07_28_retries_into_the_same_request() {
    let app = gateway(&stdio_upstream("everything"), "").await;
    let client = python(&app, "2026-07-28", 8100, "accept");
    let id = app.first_pending().await;
    approve(&app, &id).await;
    let out = printed(client).await;
    assert_eq!(out["is_error"], false, "{out}");
    assert!(out["text"].as_str().unwrap().contains("8103"), "{out}");
    assert_pointed_at(&out, &id);
    assert_eq!(
        requests(&app).await.len(),
        1,
        "the retry asked nobody again"
    );

    let client = python(&app, "2026-07-28", 8101, "decline");
    let out = printed(client).await;
    assert_eq!(out["is_error"], true, "{out}");
    let declined = out["meta"]["io.countersign/request"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .approver("bob")
        .get(&format!("/v1/requests/{declined}"))
        .await;
    assert_eq!(r.state(), "cancelled", "{}", r.body);
    assert_eq!(requests(&app).await.len(), 2);
}

/// A retry's `requestState` carries no approval of its own: it is answered from the request it
/// names only if that request is the caller's and records exactly this call.
#[tokio::test]
async fn mcp_a_retry_naming_another_request_is_refused_and_changes_nothing() {
    // Held calls without elicitation are answered "pending" after a second.
    let app = gateway(&stdio_upstream("everything"), "  hold_for: 1s\n").await;
    let agent = rmcp_client_2026(&app.url, &app.agent().key, ClientCapabilities::default()).await;
    let helper_key = app.keys["agent:helper-bot"].clone();
    let helper = rmcp_client_2026(&app.url, &helper_key, ClientCapabilities::default()).await;
    let call = |a: i64, state: Option<&str>, answer: &str| {
        let mut params = CallToolRequestParams::new("everything__get-sum");
        params.arguments = json!({"a": a, "b": 3}).as_object().cloned();
        params.request_state = state.map(str::to_owned);
        params.input_responses = state.map(|_| {
            [(
                countersign_mcp::elicit::INPUT_KEY.to_owned(),
                json!({"action": answer}),
            )]
            .into_iter()
            .collect()
        });
        params
    };
    // The agent's own pending request, approved: only exactly this call may take it.
    let mine = agent.peer().call_tool_once(call(8200, None, "")).await;
    let mine = match mine {
        Ok(CallToolResponse::Complete(r)) => r.meta.unwrap().0["io.countersign/request"]
            .as_str()
            .unwrap()
            .to_owned(),
        other => panic!("expected an answered call (pending), got {other:?}"),
    };
    approve(&app, &mine).await;
    let before = requests(&app).await;
    for (who, a, state, answer) in [
        (&helper, 8200, mine.as_str(), "accept"), // another agent naming it
        (&agent, 8201, mine.as_str(), "accept"),  // other arguments
        (&agent, 8200, "req_unknown", "accept"),  // no such request
        (&helper, 8200, mine.as_str(), "decline"), // nor may another cancel it
    ] {
        let got = who
            .peer()
            .call_tool_once(call(a, Some(state), answer))
            .await;
        let err = got.expect_err("refused");
        assert!(err.to_string().contains("requestState"), "{err}");
    }
    assert_eq!(requests(&app).await, before, "nothing changed");
    let r = app
        .approver("bob")
        .get(&format!("/v1/requests/{mine}"))
        .await;
    assert_eq!(r.state(), "approved");
    // Exactly this call, by its requester: answered from the request, once.
    match agent
        .peer()
        .call_tool_once(call(8200, Some(&mine), "accept"))
        .await
    {
        Ok(CallToolResponse::Complete(r)) => {
            assert_ne!(r.is_error, Some(true), "{r:?}");
        }
        other => panic!("expected the result, got {other:?}"),
    }
    let r = app
        .approver("bob")
        .get(&format!("/v1/requests/{mine}"))
        .await;
    assert_eq!(r.state(), "executed");
}
