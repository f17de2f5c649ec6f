//! Executors from the command line (issue 17): `countersign invoke` asks the gateway to run an
//! executor and prints its outcome (exit 6 when it ran and failed), `countersign exec` reports
//! the outcome of the command it ran, and `GET /v1/executors` lists what can be invoked. The
//! real binary against a real gateway, a real HTTP service that needs the gateway's secret
//! (`support::upstream`) and real commands.

use crate::support::app::{TEST_POLICY, TestApp, spawn_app_configured};
use crate::support::upstream::{SECRET, Upstream};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::process::{Output, Stdio};

/// GET calls to the upstream and the `say` command run at once, `say` of `forbidden` is
/// denied; anything else (an upstream POST, `shell.exec`) waits for one sre.
fn policy() -> String {
    format!(
        "{TEST_POLICY}  - name: no-forbidden-words
    match: {{kind: \"exec.command.say\"}}
    when: 'params.word == \"forbidden\"'
    effect: deny
    reason: That word is not said here.
  - name: say-is-free
    match: {{kind: \"exec.command.say\"}}
    effect: allow
  - name: upstream-reads-are-free
    match: {{kind: \"exec.http.upstream\"}}
    when: 'params.method == \"GET\"'
    effect: allow
"
    )
}

/// A gateway with the upstream's HTTP executor and `say`: a command that prints its word on
/// stdout, a line on stderr, and exits with the code asked for.
async fn gateway(upstream: &Upstream) -> TestApp {
    let extra = format!(
        "executors:
{}  - name: say
    command:
      argv: [/bin/sh, -c, \"echo {{word}}; echo said >&2; exit {{code}}\"]
      params:
        word: {{pattern: \"[a-z]{{1,20}}\"}}
        code: {{enum: [\"0\", \"4\"]}}
      timeout: 10s
",
        upstream.http_executor("upstream")
    );
    spawn_app_configured(&policy(), &extra).await
}

const AGENT: &str = "agent:deploy-bot";

async fn run(app: &TestApp, args: &[&str]) -> Output {
    app.cli(AGENT, args).output().await.unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn executors_are_listed_to_any_principal_without_their_secrets() {
    let upstream = Upstream::start().await;
    let app = gateway(&upstream).await;
    for who in [app.agent(), app.approver("bob")] {
        let list = who.get("/v1/executors").await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.body);
        let executors = list.body["executors"].as_array().unwrap();
        let names: Vec<&str> = executors
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["say", "upstream"]);
        let say = &executors[0];
        assert_eq!(say["kind"], "exec.command.say");
        assert_eq!(say["resource"], "command://say");
        assert_eq!(
            say["params_schema"]["properties"]["code"]["enum"],
            json!(["0", "4"])
        );
        let http = &executors[1];
        assert_eq!(http["kind"], "exec.http.upstream");
        assert_eq!(http["resource"], format!("{}/api", upstream.url));
        assert!(http["description"].as_str().unwrap().contains("HTTP"));
        assert!(!list.body.to_string().contains(SECRET), "{}", list.body);
    }
    let anonymous = app
        .http
        .get(format!("{}/v1/executors", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_invoke_calls_the_upstream_with_the_gateways_secret_and_prints_the_body() {
    let upstream = Upstream::start().await;
    let app = gateway(&upstream).await;
    let out = run(
        &app,
        &[
            "invoke",
            "upstream",
            "--param",
            "method=GET",
            "--param",
            "path=/repos/a",
            "--param",
            r#"query={"page": 2}"#,
            "--justification",
            "read the repo",
        ],
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    // The upstream's echo: what it received, the secret it saw redacted by the gateway.
    let body: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(body["path"], "/api/repos/a");
    assert_eq!(body["query"], "page=2");
    assert_eq!(body["seen"], "Bearer [redacted]");
    assert!(stderr.starts_with("HTTP 200\n"), "{stderr}");
    assert!(stderr.contains(" succeeded in "), "{stderr}");
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET));

    let calls = upstream.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "GET");
    assert_eq!(calls[0].path_and_query, "/api/repos/a?page=2");
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some(format!("Bearer {SECRET}").as_str())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_invoke_exits_6_when_the_action_ran_and_failed() {
    let upstream = Upstream::start().await;
    let app = gateway(&upstream).await;
    let out = run(
        &app,
        &[
            "invoke",
            "say",
            "--param",
            "word=hello",
            "--param",
            "code=4",
        ],
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(6), "{stdout}\n{stderr}");
    assert_eq!(stdout, "hello\n");
    assert!(stderr.starts_with("said\n"), "{stderr}");
    assert!(
        stderr.contains(" failed in ") && stderr.contains("exit code 4"),
        "{stderr}"
    );

    // `--json`: the whole answer, the request and its outcome.
    let out = run(
        &app,
        &[
            "invoke",
            "say",
            "--param",
            "word=again",
            "--param",
            "code=4",
            "--json",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["outcome"]["status"], "failed");
    assert_eq!(answer["outcome"]["exit_code"], 4);
    assert_eq!(answer["outcome"]["stdout"], "again\n");
    assert_eq!(answer["request"]["state"], "failed");
    assert_eq!(answer["request"]["action"]["kind"], "exec.command.say");
    assert_eq!(answer["request"]["execution"]["executor"], "say");

    // The same command succeeding exits 0.
    let ok = run(
        &app,
        &["invoke", "say", "--param", "word=fine", "--param", "code=0"],
    )
    .await;
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    assert_eq!(text(&ok.stdout), "fine\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_invoke_denied_by_policy_exits_3_and_runs_nothing() {
    let upstream = Upstream::start().await;
    let app = gateway(&upstream).await;
    let out = run(
        &app,
        &[
            "invoke",
            "say",
            "--param",
            "word=forbidden",
            "--param",
            "code=0",
        ],
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("not running say") && stderr.contains("That word is not said here."),
        "{stderr}"
    );
    let entries = app.audit_entries().await;
    assert!(entries.iter().any(|e| e["event"] == "request.denied"));
    assert!(!entries.iter().any(|e| e["event"] == "execution.started"));
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_invoke_waits_for_an_approval_given_during_the_wait() {
    let upstream = Upstream::start().await;
    let app = gateway(&upstream).await;
    let waiting = app
        .cli(
            AGENT,
            &[
                "invoke",
                "upstream",
                "--param",
                "method=POST",
                "--param",
                "path=/deploy",
                "--param",
                r#"body={"version": "1.2.3"}"#,
                "--wait",
                "60s",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = app.first_pending().await;
    assert!(upstream.calls().is_empty(), "nothing runs before approval");
    app.decide(&id, "approve").await;
    let out = waiting.wait_with_output().await.unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("waiting for approval of {id}")),
        "{stderr}"
    );
    let calls = upstream.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "POST");
    assert_eq!(calls[0].body, r#"{"version":"1.2.3"}"#);
    let shown = app.agent().get(&format!("/v1/requests/{id}")).await;
    assert_eq!(shown.state(), "executed");
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_invoke_of_an_unknown_executor_is_bad_usage() {
    let upstream = Upstream::start().await;
    let app = gateway(&upstream).await;
    let before = app.audit_entries().await.len();
    let out = run(&app, &["invoke", "nope", "--param", "x=1"]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no executor named `nope`") && stderr.contains("say, upstream"),
        "{stderr}"
    );
    // A bad parameter is the gateway's 400, also bad usage; neither records anything.
    let out = run(
        &app,
        &["invoke", "say", "--param", "word=NO", "--param", "code=0"],
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid_params"), "{stderr}");
    assert_eq!(app.audit_entries().await.len(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_exec_reports_the_exit_code_and_output_digest_of_its_command() {
    let upstream = Upstream::start().await;
    let app = gateway(&upstream).await;
    let exec = app
        .cli(AGENT, &["exec", "--", "sh", "-c", "echo hi; exit 3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = app.first_pending().await;
    app.decide(&id, "approve").await;
    let out = exec.wait_with_output().await.unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(text(&out.stdout), "hi\n");
    assert!(!stderr.contains("warning"), "{stderr}");

    let shown = app.approver("bob").get(&format!("/v1/requests/{id}")).await;
    assert_eq!(shown.state(), "failed", "{}", shown.body);
    let execution = &shown.body["execution"];
    assert_eq!(execution["reported"], true, "{execution}");
    assert_eq!(execution["outcome"]["status"], "failed");
    assert_eq!(execution["outcome"]["exit_code"], 3);
    assert_eq!(execution["outcome"]["bytes"], 3);
    assert_eq!(
        execution["outcome"]["output_sha256"],
        hex::encode(Sha256::digest(b"hi\n"))
    );
    let entries = app.audit_entries().await;
    let finished: Vec<&Value> = entries
        .iter()
        .filter(|e| e["request"] == id && e["event"] == "execution.finished")
        .collect();
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0]["data"]["exit_code"], 3);
}
