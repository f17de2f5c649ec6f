//! `countersign hook claude-code` as Claude Code runs it: a recorded PreToolUse event on stdin,
//! the real binary, the real gateway, and the decision read back as Claude Code reads it. People
//! decide over HTTP while the hook waits.

use crate::cli::BIN;
use crate::support::app::{TestApp, spawn_app_with_policy};
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt as _;
use tokio::process::Child;

const POLICY: &str = r#"
version: 1
default: review
defaults:
  review: {approvers: [{group: sre, count: 1}], timeout: 30m, on_timeout: deny}
rules:
  - name: project-edits-are-free
    match: {kind: "claude.tool.{Write,Edit}", resource: "file:///home/user/project/*"}
    effect: allow
  - name: no-recursive-deletes
    match: {kind: "claude.tool.Bash"}
    when: 'params.command.matches("rm\\s+-rf")'
    effect: deny
    reason: Recursive deletes are never automated.
"#;

const RUN: &str = "claude-code:abc123";

/// A PreToolUse event as Claude Code sends it on stdin.
fn event(tool: &str, input: Value) -> String {
    json!({
        "session_id": "abc123",
        "transcript_path": "/home/user/.claude/projects/-home-user-project/abc123.jsonl",
        "cwd": "/home/user/project",
        "permission_mode": "default",
        "hook_event_name": "PreToolUse",
        "tool_name": tool,
        "tool_input": input,
        "tool_use_id": "toolu_01ABC123",
    })
    .to_string()
}

fn bash(command: &str) -> String {
    event(
        "Bash",
        json!({"command": command, "description": "Run the test suite", "timeout": 120000}),
    )
}

fn write_notes() -> String {
    event(
        "Write",
        json!({"file_path": "/home/user/project/notes.txt", "content": "hello"}),
    )
}

fn mcp_create_entities() -> String {
    event(
        "mcp__memory__create_entities",
        json!({"entities": [{"name": "Countersign", "entityType": "project", "observations": ["a gateway"]}]}),
    )
}

/// Starts the hook as the agent, as Claude Code would, and hands it `stdin`.
async fn start_hook(url: &str, key: &str, stdin: &str, args: &[&str]) -> Child {
    let mut child = tokio::process::Command::new(BIN)
        .args(["hook", "claude-code"])
        .args(args)
        .env("COUNTERSIGN_URL", url)
        .env("COUNTERSIGN_TOKEN", key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    child
}

/// What Claude Code gets back from the hook.
struct Answer {
    code: Option<i32>,
    decision: String,
    reason: String,
    stderr: String,
}

async fn answer(child: Child) -> Answer {
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let specific = &json["hookSpecificOutput"];
    if out.status.success() {
        assert_eq!(specific["hookEventName"], "PreToolUse", "{json} {stderr}");
    }
    Answer {
        code: out.status.code(),
        decision: specific["permissionDecision"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        reason: specific["permissionDecisionReason"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        stderr,
    }
}

async fn hook(app: &TestApp, stdin: &str, args: &[&str]) -> Answer {
    let child = start_hook(&app.url, &app.agent().key, stdin, args).await;
    answer(child).await
}

/// The one request of the Claude session, as an approver sees it.
async fn the_request(app: &TestApp, state: &str) -> Option<Value> {
    let list = app
        .approver("bob")
        .get(&format!("/v1/requests?state={state}&run={RUN}"))
        .await;
    list.body["requests"].get(0).cloned()
}

async fn first_pending(app: &TestApp) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(r) = the_request(app, "pending").await {
            return r;
        }
        assert!(Instant::now() < deadline, "no pending request appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn hook_allows_what_the_policy_allows_and_uses_the_grant() {
    let app = spawn_app_with_policy(POLICY).await;
    let a = hook(&app, &write_notes(), &[]).await;
    assert_eq!(a.code, Some(0), "{}", a.stderr);
    assert_eq!(a.decision, "allow", "{}", a.reason);
    assert!(a.reason.contains("project-edits-are-free"), "{}", a.reason);
    let r = the_request(&app, "all").await.unwrap();
    assert_eq!(r["state"], "executed");
    assert_eq!(r["action"]["kind"], "claude.tool.Write");
    assert_eq!(
        r["action"]["resource"],
        "file:///home/user/project/notes.txt"
    );
    assert_eq!(r["action"]["labels"]["tool_use_id"], "toolu_01ABC123");
    assert_eq!(r["action"]["labels"]["cwd"], "/home/user/project");
    assert!(a.reason.contains(r["id"].as_str().unwrap()), "{}", a.reason);
}

#[tokio::test]
async fn hook_denies_what_the_policy_denies_with_its_reason() {
    let app = spawn_app_with_policy(POLICY).await;
    let a = hook(&app, &bash("rm -rf /tmp/build"), &[]).await;
    assert_eq!(a.code, Some(0), "{}", a.stderr);
    assert_eq!(a.decision, "deny");
    assert!(
        a.reason.contains("no-recursive-deletes")
            && a.reason.contains("Recursive deletes are never automated."),
        "{}",
        a.reason
    );
}

#[tokio::test]
async fn hook_waits_for_a_person_and_allows_once_approved() {
    let app = spawn_app_with_policy(POLICY).await;
    let waiting = start_hook(&app.url, &app.agent().key, &bash("npm test"), &[]).await;
    let r = first_pending(&app).await;
    assert_eq!(r["action"]["kind"], "claude.tool.Bash");
    assert_eq!(r["action"]["resource"], "claude-code://Bash");
    assert_eq!(r["action"]["params"]["command"], "npm test");
    assert_eq!(r["action"]["justification"], "Run the test suite");
    let id = r["id"].as_str().unwrap();
    let vote = app
        .approver("bob")
        .vote(id, "approve", r["digest"].as_str().unwrap())
        .await;
    assert_eq!(vote.state(), "approved", "{}", vote.body);
    let a = answer(waiting).await;
    assert_eq!(a.code, Some(0), "{}", a.stderr);
    assert_eq!(a.decision, "allow", "{}", a.reason);
    assert!(
        a.reason.contains(id) && a.reason.contains("approved by user:bob@example.com"),
        "{}",
        a.reason
    );
    // Single use: the hook redeemed the grant, so the approval cannot be replayed.
    let r = the_request(&app, "all").await.unwrap();
    assert_eq!(r["state"], "executed");
}

#[tokio::test]
async fn hook_denies_with_the_approvers_reason() {
    let app = spawn_app_with_policy(POLICY).await;
    let waiting = start_hook(&app.url, &app.agent().key, &bash("git push"), &[]).await;
    let r = first_pending(&app).await;
    let id = r["id"].as_str().unwrap();
    let vote = app
        .approver("bob")
        .post(
            &format!("/v1/requests/{id}/votes"),
            json!({"decision": "deny", "digest": r["digest"], "comment": "not on a Friday"}),
        )
        .await;
    assert_eq!(vote.state(), "denied", "{}", vote.body);
    let a = answer(waiting).await;
    assert_eq!(a.code, Some(0), "{}", a.stderr);
    assert_eq!(a.decision, "deny");
    assert!(
        a.reason
            .contains("denied by user:bob@example.com: not on a Friday"),
        "{}",
        a.reason
    );
}

#[tokio::test]
async fn hook_cancels_and_denies_when_nobody_decides_in_time() {
    let app = spawn_app_with_policy(POLICY).await;
    let started = Instant::now();
    let a = hook(&app, &mcp_create_entities(), &["--timeout", "3"]).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(a.code, Some(0), "{}", a.stderr);
    assert_eq!(a.decision, "deny");
    let r = the_request(&app, "all").await.unwrap();
    let id = r["id"].as_str().unwrap();
    assert!(
        a.reason.contains(&format!(
            "no decision within 3 s (request {id} cancelled); ask again or approve faster"
        )),
        "{}",
        a.reason
    );
    assert_eq!(r["state"], "cancelled");
    assert_eq!(
        r["action"]["kind"],
        "claude.tool.mcp__memory__create_entities"
    );
    assert_eq!(
        r["action"]["resource"],
        "claude-code://mcp__memory__create_entities"
    );
}

#[tokio::test]
async fn hook_exits_2_on_a_bad_event() {
    let nowhere = "http://127.0.0.1:9";
    for stdin in [
        "not json".to_string(),
        r#"{"session_id": "abc123"}"#.to_string(),
        bash("ls").replace("\"PreToolUse\"", "\"PostToolUse\""),
    ] {
        let a = answer(start_hook(nowhere, "cs_x", &stdin, &[]).await).await;
        assert_eq!(a.code, Some(2), "{stdin}: {}", a.stderr);
        assert_eq!(a.decision, "");
        assert!(a.stderr.contains("countersign:"), "{}", a.stderr);
    }
}

#[tokio::test]
async fn hook_fails_closed_when_the_gateway_is_down_or_refuses() {
    let down = answer(start_hook("http://127.0.0.1:9", "cs_x", &bash("ls"), &[]).await).await;
    assert_eq!(down.code, Some(0), "{}", down.stderr);
    assert_eq!(down.decision, "deny");
    assert!(
        down.reason.contains("cannot reach the gateway"),
        "{}",
        down.reason
    );
    assert!(down.stderr.contains("cannot reach the gateway"));

    let app = spawn_app_with_policy(POLICY).await;
    let refused = answer(start_hook(&app.url, "cs_not_a_key", &write_notes(), &[]).await).await;
    assert_eq!(refused.code, Some(0), "{}", refused.stderr);
    assert_eq!(refused.decision, "deny");
    assert!(refused.reason.contains("HTTP 401"), "{}", refused.reason);
}

/// `stdin` as the `PermissionRequest` event Claude Code sends when it would show its prompt.
fn permission_request(stdin: &str) -> String {
    let mut e: Value = serde_json::from_str(stdin).unwrap();
    e["hook_event_name"] = json!("PermissionRequest");
    e["permission_suggestions"] = json!([{"type": "addRules", "behavior": "allow",
        "destination": "localSettings", "rules": [{"toolName": "Bash"}]}]);
    e.as_object_mut().unwrap().remove("tool_use_id");
    e.to_string()
}

/// What Claude Code gets back for a `PermissionRequest`: exit code, behavior, message, stderr.
async fn permission_answer(child: Child) -> (Option<i32>, String, String, String) {
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let specific = &json["hookSpecificOutput"];
    if out.status.success() {
        assert_eq!(specific["hookEventName"], "PermissionRequest", "{json}");
    }
    let decision = &specific["decision"];
    (
        out.status.code(),
        decision["behavior"].as_str().unwrap_or("").to_owned(),
        decision["message"].as_str().unwrap_or("").to_owned(),
        stderr,
    )
}

#[tokio::test]
async fn a_permission_request_is_decided_like_a_pre_tool_use_and_answered_in_its_shape() {
    let app = spawn_app_with_policy(POLICY).await;
    let key = app.agent().key;
    // Allowed by policy: behavior allow, the grant used.
    let allowed = permission_answer(
        start_hook(&app.url, &key, &permission_request(&write_notes()), &[]).await,
    )
    .await;
    assert_eq!(
        (allowed.0, allowed.1.as_str()),
        (Some(0), "allow"),
        "{}",
        allowed.3
    );
    let r = the_request(&app, "all").await.unwrap();
    assert_eq!(r["state"], "executed");
    assert_eq!(r["action"]["kind"], "claude.tool.Write");
    // Denied by policy: behavior deny, the rule's reason as the message.
    let denied = permission_answer(
        start_hook(
            &app.url,
            &key,
            &permission_request(&bash("rm -rf /tmp/x")),
            &[],
        )
        .await,
    )
    .await;
    assert_eq!((denied.0, denied.1.as_str()), (Some(0), "deny"));
    assert!(denied.2.contains("no-recursive-deletes"), "{}", denied.2);
    // Reviewed: waits for a person, then allows.
    let waiting = start_hook(&app.url, &key, &permission_request(&bash("npm test")), &[]).await;
    let pending = first_pending(&app).await;
    app.decide(pending["id"].as_str().unwrap(), "approve").await;
    let approved = permission_answer(waiting).await;
    assert_eq!(
        (approved.0, approved.1.as_str()),
        (Some(0), "allow"),
        "{}",
        approved.3
    );
}

#[tokio::test]
async fn a_permission_request_fails_closed_on_every_error() {
    let request = permission_request(&bash("ls"));
    // The gateway is down.
    let down =
        permission_answer(start_hook("http://127.0.0.1:9", "cs_x", &request, &[]).await).await;
    assert_eq!((down.0, down.1.as_str()), (Some(0), "deny"), "{}", down.3);
    assert!(down.2.contains("cannot reach the gateway"), "{}", down.2);
    // The key is refused.
    let app = spawn_app_with_policy(POLICY).await;
    let refused =
        permission_answer(start_hook(&app.url, "cs_not_a_key", &request, &[]).await).await;
    assert_eq!((refused.0, refused.1.as_str()), (Some(0), "deny"));
    assert!(refused.2.contains("HTTP 401"), "{}", refused.2);
    // Nobody decides in time: cancelled, denied.
    let late = permission_answer(
        start_hook(&app.url, &app.agent().key, &request, &["--timeout", "3"]).await,
    )
    .await;
    assert_eq!((late.0, late.1.as_str()), (Some(0), "deny"));
    assert!(late.2.contains("no decision within 3 s"), "{}", late.2);
    // A number that means two things in the tool input.
    let ambiguous = request.replace("\"timeout\":120000", "\"timeout\":9007199254740993");
    let odd =
        permission_answer(start_hook(&app.url, &app.agent().key, &ambiguous, &[]).await).await;
    assert_eq!((odd.0, odd.1.as_str()), (Some(0), "deny"), "{}", odd.3);
    // Not an event this hook answers: exit 2, which blocks.
    let other = request.replace("\"PermissionRequest\"", "\"PermissionDenied\"");
    let bad = permission_answer(start_hook(&app.url, &app.agent().key, &other, &[]).await).await;
    assert_eq!(bad.0, Some(2), "{}", bad.3);
}
