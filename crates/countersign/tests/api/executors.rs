//! Executors (issue 17): the gateway carries out approved actions with credentials the agent
//! never holds, at most once, exactly as recorded, and records how each went. Against a real
//! HTTP service started by each test (`support::upstream`) that refuses calls without the
//! secret header.

use crate::support::app::{As, TEST_POLICY, TestApp, spawn_app_configured};
use crate::support::upstream::{SECRET, Upstream, exec_gateway as gateway};
use axum::http::StatusCode;
use serde_json::{Value, json};

fn call(upstream: &Upstream, method: &str, path: &str, extra: Value) -> (String, Value) {
    let mut params = json!({"method": method, "path": path});
    if let Value::Object(more) = extra {
        params.as_object_mut().unwrap().extend(more);
    }
    (format!("{}/api{path}", upstream.url), params)
}

async fn execute(agent: &As, id: &str) -> crate::support::app::Resp {
    agent
        .post(&format!("/v1/requests/{id}/execute"), json!({}))
        .await
}

/// The audit events of an allowed action executed at once, in order.
const EXECUTED_AT_ONCE: [&str; 5] = [
    "request.created",
    "request.approved",
    "grant.redeemed",
    "execution.started",
    "execution.finished",
];

/// The events of request `id`'s audit entries, in order.
fn events_of<'a>(entries: &'a [Value], id: &str) -> Vec<&'a str> {
    entries
        .iter()
        .filter(|e| e["request"] == id)
        .map(|e| e["event"].as_str().unwrap())
        .collect()
}

/// Nothing a person or an agent can read holds the secret.
async fn assert_no_secret(app: &TestApp, id: &str) {
    let agent = app.agent();
    let shown = agent.get(&format!("/v1/requests/{id}")).await;
    let text = shown.body.to_string();
    assert!(!text.contains(SECRET), "request view leaks: {text}");
    let entries = app.audit_entries().await;
    let text = serde_json::to_string(&entries).unwrap();
    assert!(!text.contains(SECRET), "audit leaks");
    let attestation = agent.get(&format!("/v1/requests/{id}/attestation")).await;
    assert!(!attestation.body.to_string().contains(SECRET));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allowed_call_runs_once_with_the_gateway_credentials() {
    let upstream = Upstream::start().await;
    let app = gateway(&upstream).await;
    let agent = app.agent();
    let (resource, params) = call(&upstream, "GET", "/repos/a", json!({"query": {"page": 2}}));
    let r = agent.submit("exec.http.upstream", &resource, params).await;
    assert_eq!(r.state(), "approved", "{}", r.body);
    assert!(upstream.calls().is_empty(), "nothing runs before execute");

    let done = execute(&agent, &r.id()).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let outcome = &done.body["outcome"];
    assert_eq!(outcome["status"], "succeeded", "{outcome}");
    assert_eq!(outcome["http"]["status"], 200);
    assert_eq!(done.body["request"]["state"], "executed");
    let headers = outcome["http"]["headers"].as_object().unwrap();
    assert!(headers.contains_key("x-request-id"));
    assert!(!headers.contains_key("set-cookie"), "{headers:?}");
    assert!(!headers.contains_key("x-echo-authorization"), "{headers:?}");
    let body = outcome["http"]["body"].as_str().unwrap();
    assert!(
        body.contains("[redacted]") && !body.contains(SECRET),
        "{body}"
    );
    // `bytes` counts the body as received: the secret, not its replacement.
    let shown_len = body.len() - "[redacted]".len() + SECRET.len();
    assert_eq!(outcome["bytes"].as_u64().unwrap() as usize, shown_len);
    assert_eq!(outcome["output_sha256"].as_str().unwrap().len(), 64);

    let calls = upstream.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "GET");
    assert_eq!(calls[0].path_and_query, "/api/repos/a?page=2");
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some(format!("Bearer {SECRET}").as_str())
    );

    // At most once: a second call answers with the recorded outcome and runs nothing.
    let again = execute(&agent, &r.id()).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "grant_used");
    assert_eq!(again.body["outcome"]["status"], "succeeded");
    assert_eq!(upstream.calls().len(), 1);

    let shown = agent.get(&format!("/v1/requests/{}", r.id())).await;
    assert_eq!(shown.body["execution"]["executor"], "upstream");
    assert_eq!(shown.body["execution"]["outcome"]["status"], "succeeded");
    let entries = app.audit_entries().await;
    assert_eq!(events_of(&entries, &r.id()), EXECUTED_AT_ONCE);
    let finished = entries
        .iter()
        .find(|e| e["event"] == "execution.finished")
        .unwrap();
    assert_eq!(finished["data"]["http_status"], 200);
    assert_eq!(finished["data"]["output_sha256"], outcome["output_sha256"]);
    assert_no_secret(&app, &r.id()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reviewed_call_runs_only_after_approval_and_only_as_recorded() {
    let upstream = Upstream::start().await;
    let app = gateway(&upstream).await;
    let agent = app.agent();
    let (resource, params) = call(
        &upstream,
        "POST",
        "/deploy",
        json!({"body": {"version": "1.2.3"}}),
    );
    let r = agent.submit("exec.http.upstream", &resource, params).await;
    assert_eq!(r.state(), "pending", "{}", r.body);

    let early = execute(&agent, &r.id()).await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{}", early.body);
    assert_eq!(early.code(), "no_grant");

    // Only the requester executes; parameters sent now are refused, never used.
    app.decide(&r.id(), "approve").await;
    let by_approver = execute(&app.approver("bob"), &r.id()).await;
    assert_eq!(
        by_approver.status,
        StatusCode::FORBIDDEN,
        "{}",
        by_approver.body
    );
    let changed = agent
        .post(
            &format!("/v1/requests/{}/execute", r.id()),
            json!({"params": {"method": "POST", "path": "/deploy", "body": {"version": "6.6.6"}}}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::BAD_REQUEST);
    assert_eq!(changed.code(), "invalid_body");
    assert!(upstream.calls().is_empty());

    let done = agent
        .post(
            &format!("/v1/requests/{}/execute?wait=5s", r.id()),
            json!({}),
        )
        .await;
    assert_eq!(done.body["outcome"]["status"], "succeeded", "{}", done.body);
    let calls = upstream.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "POST");
    assert_eq!(calls[0].body, r#"{"version":"1.2.3"}"#);
}

#[tokio::test(flavor = "multi_thread")]
async fn paths_that_leave_the_base_url_are_refused_before_anything_is_recorded() {
    let upstream = Upstream::start().await;
    let app = gateway(&upstream).await;
    let agent = app.agent();
    let before = app.audit_entries().await.len();
    for path in [
        "//evil.example/x",
        "/../x",
        "/a/../../x",
        "/%2e%2e/x",
        "/%2E%2e/x",
        "/.%2E/x",
        "/%252e%252e/x",
        "/a%2f..%2fx",
        "http://evil.example/x",
        "@evil.example/x",
        "/x?admin=1",
        "/a\\..\\x",
    ] {
        let resource = format!("{}/api{path}", upstream.url);
        let r = agent
            .submit(
                "exec.http.upstream",
                &resource,
                json!({"method": "GET", "path": path}),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.body);
        assert_eq!(r.code(), "invalid_params", "{path}");
    }
    for (kind, resource, params, code) in [
        ("exec.http.nope", "x", json!({}), "unknown_executor"),
        (
            "exec.command.upstream",
            "command://upstream",
            json!({}),
            "unknown_executor",
        ),
        ("exec.http", "x", json!({}), "unknown_executor"),
        (
            "exec.http.upstream",
            "x",
            json!({"path": "/x"}),
            "invalid_params",
        ),
        (
            "exec.http.upstream",
            "x",
            json!({"method": "DELETE", "path": "/x"}),
            "invalid_params",
        ),
        (
            "exec.http.upstream",
            "https://elsewhere/api/x",
            json!({"method": "GET", "path": "/x"}),
            "invalid_params",
        ),
    ] {
        let r = agent.submit(kind, resource, params.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{kind} {params}: {}",
            r.body
        );
        assert_eq!(r.code(), code, "{kind} {params}");
    }
    assert_eq!(app.audit_entries().await.len(), before);
    assert!(upstream.calls().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_upstream_marks_the_request_failed() {
    let upstream = Upstream::start().await;
    let app = gateway(&upstream).await;
    let agent = app.agent();
    let (resource, params) = call(&upstream, "GET", "/fail", json!({}));
    let r = agent.submit("exec.http.upstream", &resource, params).await;
    let done = execute(&agent, &r.id()).await;
    assert_eq!(done.status, StatusCode::OK);
    assert_eq!(done.body["outcome"]["status"], "failed");
    assert_eq!(done.body["outcome"]["http"]["status"], 500);
    assert_eq!(done.body["request"]["state"], "failed");

    // The upstream outlives the executor's timeout: failed or unknown, never retried.
    let (resource, params) = call(&upstream, "GET", "/slow", json!({}));
    let r = agent.submit("exec.http.upstream", &resource, params).await;
    let done = execute(&agent, &r.id()).await;
    assert_eq!(done.body["outcome"]["status"], "unknown", "{}", done.body);
    assert_eq!(done.body["request"]["state"], "failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_requester_reports_the_outcome_of_what_they_ran_once() {
    let upstream = Upstream::start().await;
    let app = gateway(&upstream).await;
    let agent = app.agent();
    let r = agent
        .submit(
            "db.query",
            "postgres://prod/orders",
            json!({"readonly": true}),
        )
        .await;
    assert_eq!(r.state(), "approved");
    let id = r.id();
    let not_yet = agent
        .post(
            &format!("/v1/requests/{id}/outcome"),
            json!({"status": "succeeded"}),
        )
        .await;
    assert_eq!(not_yet.status, StatusCode::CONFLICT);
    assert_eq!(not_yet.code(), "not_redeemed");
    let not_mine = execute(&agent, &id).await;
    assert_eq!(not_mine.code(), "not_executable");

    let grant = r.body["grant"]["id"].as_str().unwrap();
    let redeemed = agent
        .post(
            &format!("/v1/grants/{grant}/redeem"),
            json!({"digest": r.digest()}),
        )
        .await;
    assert_eq!(redeemed.status, StatusCode::OK);
    for bad in [
        json!({}),
        json!({"status": "running"}),
        json!({"status": "failed", "output_sha256": "xyz"}),
        json!({"status": "failed", "http_status": 42}),
        json!({"status": "failed", "extra": 1}),
        json!({"status": "failed", "error": "a\u{7}b"}),
    ] {
        let r = agent
            .post(&format!("/v1/requests/{id}/outcome"), bad.clone())
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
    }
    let by_other = app
        .approver("bob")
        .post(
            &format!("/v1/requests/{id}/outcome"),
            json!({"status": "succeeded"}),
        )
        .await;
    assert_eq!(by_other.status, StatusCode::FORBIDDEN, "{}", by_other.body);
    let reported = agent
        .post(
            &format!("/v1/requests/{id}/outcome"),
            json!({"status": "failed", "exit_code": 3, "output_sha256": "ab".repeat(32)}),
        )
        .await;
    assert_eq!(reported.status, StatusCode::OK, "{}", reported.body);
    assert_eq!(reported.state(), "failed");
    assert_eq!(reported.body["execution"]["reported"], true);
    assert_eq!(reported.body["execution"]["outcome"]["exit_code"], 3);
    let twice = agent
        .post(
            &format!("/v1/requests/{id}/outcome"),
            json!({"status": "succeeded"}),
        )
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    assert_eq!(twice.code(), "outcome_recorded");
    let entries = app.audit_entries().await;
    let finished: Vec<&Value> = entries
        .iter()
        .filter(|e| e["request"] == id && e["event"] == "execution.finished")
        .collect();
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0]["data"]["reported"], true);
    assert_eq!(finished[0]["data"]["exit_code"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_executions_output_is_read_only_by_its_requester_and_its_approvers() {
    use base64::Engine as _;
    let upstream = Upstream::start().await;
    let app = gateway(&upstream).await;
    let agent = app.agent();
    let (resource, params) = call(&upstream, "POST", "/deploy", json!({"body": {"v": 1}}));
    let r = agent.submit("exec.http.upstream", &resource, params).await;
    app.decide(&r.id(), "approve").await;
    let done = execute(&agent, &r.id()).await;
    assert_eq!(done.body["outcome"]["status"], "succeeded", "{}", done.body);
    let sha = done.body["outcome"]["output_sha256"].clone();

    // The requester, its owner (alice), who voted (bob), who may decide (erin, sre): the copy.
    for who in [
        "agent:deploy-bot",
        "user:alice@example.com",
        "user:bob@example.com",
        "user:erin@example.com",
    ] {
        let seen = app.as_(who).get(&format!("/v1/requests/{}", r.id())).await;
        let http = &seen.body["execution"]["outcome"]["http"];
        assert!(
            http["body"].as_str().unwrap().contains("\"seen\""),
            "{who}: {http}"
        );
        assert_eq!(http["headers"]["x-request-id"], "rq-1", "{who}");
    }
    // Other people (security, finance): what ran and its digest, not the output, in a
    // request, in a list, and on the console page.
    for who in ["user:carol@example.com", "user:frank@example.com"] {
        let seen = app.as_(who).get(&format!("/v1/requests/{}", r.id())).await;
        let outcome = &seen.body["execution"]["outcome"];
        assert_eq!(outcome["status"], "succeeded", "{who}");
        assert_eq!(outcome["http"]["status"], 200);
        assert_eq!(outcome["output_sha256"], sha);
        assert_eq!(outcome["http"]["body"], "", "{who}");
        assert_eq!(outcome["http"]["headers"], json!({}), "{who}");
        let list = app.as_(who).get("/v1/requests?state=all").await;
        let listed = list.body["requests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == r.id().as_str())
            .unwrap()
            .clone();
        assert_eq!(listed["execution"]["outcome"]["http"]["body"], "", "{who}");
    }
    let page_of = |who: &'static str| {
        let app = &app;
        let id = r.id();
        async move {
            let b = crate::support::console::signed_in(app, who).await;
            b.get(&format!("/console/requests/{id}")).await.body
        }
    };
    let bob = page_of("bob").await;
    assert!(
        bob.contains("Outcome") && bob.contains("data-output=\"body\""),
        "{bob}"
    );
    assert!(bob.contains("rq-1") && bob.contains(sha.as_str().unwrap()));
    let carol = page_of("carol").await;
    assert!(carol.contains("data-output=\"hidden\"") && carol.contains(sha.as_str().unwrap()));
    assert!(!carol.contains("rq-1") && !carol.contains("data-output=\"body\""));
    for page in [&bob, &carol] {
        assert!(!page.contains(SECRET));
    }

    // The attestation's predicate carries the outcome (never the output or a secret).
    let envelope = agent
        .get(&format!("/v1/requests/{}/attestation", r.id()))
        .await;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope.body["payload"].as_str().unwrap())
        .unwrap();
    let statement: Value = serde_json::from_slice(&payload).unwrap();
    let outcome = &statement["predicate"]["execution"]["outcome"];
    assert_eq!(outcome["status"], "succeeded", "{statement}");
    assert_eq!(outcome["executor"], "upstream");
    assert_eq!(outcome["http_status"], 200);
    assert_eq!(outcome["output_sha256"], sha);
    assert_eq!(outcome["reported"], false);
    assert!(!String::from_utf8_lossy(&payload).contains(SECRET));
}

/// A gateway process (the real binary) with `executors` configured, every `exec.` action
/// allowed, and its log at `level` written to `dir/gateway.log`.
fn serve_executing(
    dir: &tempfile::TempDir,
    executors: &str,
    level: &str,
    expect_keys: usize,
) -> crate::cli::Server {
    let config = crate::support::app::write_world(dir, 0);
    std::fs::write(
        dir.path().join("policy.yaml"),
        format!(
            "{TEST_POLICY}  - name: exec-is-free\n    match: {{kind: \"exec.*\"}}\n    effect: allow\n"
        ),
    )
    .unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(executors);
    std::fs::write(&config, text).unwrap();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("gateway.log"))
        .unwrap();
    crate::cli::serve_logging(&config, expect_keys, level, log.into())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_execution_interrupted_by_a_gateway_kill_9_is_unknown_and_never_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    // `run` when it starts; `done` only if it lived 4 s (the gateway dies long before).
    let executors = format!(
        "executors:
  - name: slow
    command:
      argv: [/bin/sh, -c, \"echo run >> {m}; sleep 4; echo done >> {m}\"]
      timeout: 3s
",
        m = marker.display()
    );
    let mut first = serve_executing(&dir, &executors, "warn", 8);
    let keys = first.keys.clone();
    let agent = As::new(&first.url, &keys["agent:deploy-bot"]);
    let r = agent
        .submit("exec.command.slow", "command://slow", json!({}))
        .await;
    assert_eq!(r.state(), "approved", "{}", r.body);
    let id = r.id();
    let running = {
        let agent = As::new(&first.url, &keys["agent:deploy-bot"]);
        let id = id.clone();
        tokio::spawn(async move { execute(&agent, &id).await })
    };
    let started = std::time::Instant::now();
    while !marker.exists() {
        assert!(
            started.elapsed().as_secs() < 20,
            "the command never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    first.child.kill().unwrap(); // SIGKILL, mid-run
    first.child.wait().unwrap();
    let _ = running.await;

    let second = serve_executing(&dir, &executors, "warn", 0);
    let agent = As::new(&second.url, &keys["agent:deploy-bot"]);
    let during = agent.get(&format!("/v1/requests/{id}")).await;
    assert_eq!(during.body["execution"]["outcome"]["status"], "running");
    // Past its deadline (timeout + grace) the restarted gateway closes it as unknown.
    let closed = loop {
        let now = agent.get(&format!("/v1/requests/{id}")).await;
        if now.state() == "failed" {
            break now;
        }
        assert!(
            started.elapsed().as_secs() < 40,
            "never closed: {}",
            now.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    let outcome = &closed.body["execution"]["outcome"];
    assert_eq!(outcome["status"], "unknown", "{outcome}");
    assert_eq!(outcome["error"], "interrupted; not retried");
    // Never run again: not by the gateway, not by the requester.
    let again = execute(&agent, &id).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(again.code(), "grant_used");
    assert_eq!(again.body["outcome"]["status"], "unknown");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "run\n",
        "ran once, and died with the gateway"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_the_gateways_log() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let executors = format!(
        "executors:
  - name: upstream
    http:
      base_url: {u}/api
      headers: {{Authorization: \"Bearer ${{file:{s}}}\"}}
      methods: [GET]
      timeout: 2s
  - name: gone
    http:
      base_url: http://127.0.0.1:9/api
      headers: {{Authorization: \"Bearer ${{file:{s}}}\"}}
      methods: [GET]
      timeout: 2s
  - name: echoer
    command:
      argv: [/bin/sh, -c, \"echo token=$TOKEN; echo $TOKEN >&2; exit 3\"]
      env: {{TOKEN: \"${{file:{s}}}\"}}
      timeout: 5s
",
        u = upstream.url,
        s = secret_file.display()
    );
    let server = serve_executing(&dir, &executors, "debug", 8);
    let agent = As::new(&server.url, &server.keys["agent:deploy-bot"]);
    let actions = [
        (
            "exec.http.upstream",
            format!("{}/api/x", upstream.url),
            json!({"method": "GET", "path": "/x"}),
        ),
        (
            "exec.http.upstream",
            format!("{}/api/fail", upstream.url),
            json!({"method": "GET", "path": "/fail"}),
        ),
        (
            "exec.http.gone",
            "http://127.0.0.1:9/api/x".to_owned(),
            json!({"method": "GET", "path": "/x"}),
        ),
        (
            "exec.command.echoer",
            "command://echoer".to_owned(),
            json!({}),
        ),
    ];
    let mut statuses = vec![];
    for (kind, resource, params) in actions {
        let r = agent.submit(kind, &resource, params).await;
        assert_eq!(r.state(), "approved", "{}", r.body);
        let done = execute(&agent, &r.id()).await;
        assert!(!done.body.to_string().contains(SECRET), "{}", done.body);
        statuses.push(done.body["outcome"]["status"].as_str().unwrap().to_owned());
    }
    assert_eq!(statuses, ["succeeded", "failed", "failed", "failed"]);
    assert_eq!(upstream.calls().len(), 2, "the secret header was sent");
    drop(server);
    let log = std::fs::read_to_string(dir.path().join("gateway.log")).unwrap();
    assert!(
        log.contains("execution finished"),
        "the log was written: {log}"
    );
    assert!(!log.contains(SECRET), "the gateway's log holds the secret");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allowed_action_submitted_with_execute_runs_in_its_submission() {
    let upstream = Upstream::start().await;
    let app = gateway(&upstream).await;
    let agent = app.agent();
    let submit = |method: &str, path: &str| {
        let (resource, params) = call(&upstream, method, path, json!({}));
        json!({"kind": "exec.http.upstream", "resource": resource, "params": params})
    };
    let r = agent
        .post("/v1/actions?execute=true", submit("GET", "/now"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.state(), "executed");
    assert_eq!(r.body["execution"]["outcome"]["status"], "succeeded");
    assert_eq!(r.body["execution"]["outcome"]["http"]["status"], 200);
    assert_eq!(upstream.calls().len(), 1);
    let entries = app.audit_entries().await;
    assert_eq!(events_of(&entries, &r.id()), EXECUTED_AT_ONCE);
    let again = execute(&agent, &r.id()).await;
    assert_eq!(again.code(), "grant_used");
    assert_eq!(upstream.calls().len(), 1);

    // One that needs review is answered pending and runs nothing; not an executor's: refused.
    let held = agent
        .post("/v1/actions?execute=true", submit("POST", "/deploy"))
        .await;
    assert_eq!(held.state(), "pending", "{}", held.body);
    assert!(held.body["execution"].is_null());
    assert_eq!(upstream.calls().len(), 1);
    let plain = agent
        .post(
            "/v1/actions?execute=true",
            json!({"kind": "db.query", "resource": "postgres://prod/orders", "params": {"readonly": true}}),
        )
        .await;
    assert_eq!(plain.status, StatusCode::BAD_REQUEST, "{}", plain.body);
    assert_eq!(plain.code(), "not_executable");
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_runs_through_the_gateway_read_only_bounded_and_without_its_password() {
    use sqlx::Connection as _;
    let Some(database) = crate::postgres::fresh_database().await else {
        return;
    };
    const PASSWORD: &str = "db-password-51c0ffee";
    let mut conn = sqlx::PgConnection::connect(&database).await.unwrap();
    for sql in [
        "CREATE TABLE items (id int PRIMARY KEY, name text)",
        "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 5) g",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    // The server trusts local connections: the password is carried, never needed, and must
    // never be shown.
    let mut url = reqwest::Url::parse(&database).unwrap();
    url.set_password(Some(PASSWORD)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("db-url");
    std::fs::write(&url_file, url.as_str()).unwrap();
    let policy = format!(
        "{TEST_POLICY}  - name: sql-reads-are-free
    match: {{kind: \"exec.sql.*\"}}
    when: '!sql.writes'
    effect: allow
"
    );
    let extra = format!(
        "executors:
  - name: prod-db
    postgres:
      url: \"${{file:{}}}\"
      read_only: true
      max_rows: 3
      statement_timeout: 5s
",
        url_file.display()
    );
    let app = spawn_app_configured(&policy, &extra).await;
    let agent = app.agent();
    let sql = |text: &str| json!({"sql": text});

    let read = agent
        .post(
            "/v1/actions?execute=true",
            json!({"kind": "exec.sql.prod-db", "resource": "postgres://prod-db",
                   "params": sql("SELECT id, name FROM items ORDER BY id")}),
        )
        .await;
    let outcome = &read.body["execution"]["outcome"];
    assert_eq!(outcome["status"], "succeeded", "{}", read.body);
    assert_eq!(outcome["columns"], json!(["id", "name"]));
    assert_eq!(outcome["rows"].as_array().unwrap().len(), 3);
    assert_eq!(
        outcome["truncated"], true,
        "max_rows cut the answer and says so"
    );

    // A write goes to review; approved, it still fails: the executor is read-only.
    let write = agent
        .submit(
            "exec.sql.prod-db",
            "postgres://prod-db",
            sql("DELETE FROM items WHERE id = 1"),
        )
        .await;
    assert_eq!(write.state(), "pending", "{}", write.body);
    app.decide(&write.id(), "approve").await;
    let done = execute(&agent, &write.id()).await;
    assert_eq!(done.body["outcome"]["status"], "failed", "{}", done.body);
    assert_eq!(done.body["request"]["state"], "failed");
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM items")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 5, "nothing changed");

    // SQL that cannot be parsed is refused before anything is recorded.
    let before = app.audit_entries().await.len();
    let bad = agent
        .submit(
            "exec.sql.prod-db",
            "postgres://prod-db",
            sql("SELEC oops FROM"),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert_eq!(bad.code(), "invalid_sql");
    assert_eq!(app.audit_entries().await.len(), before);

    for id in [read.id(), write.id()] {
        for who in ["agent:deploy-bot", "user:bob@example.com"] {
            let seen = app.as_(who).get(&format!("/v1/requests/{id}")).await;
            assert!(!seen.body.to_string().contains(PASSWORD));
        }
        let attestation = agent.get(&format!("/v1/requests/{id}/attestation")).await;
        assert!(!attestation.body.to_string().contains(PASSWORD));
    }
    let entries = serde_json::to_string(&app.audit_entries().await).unwrap();
    assert!(!entries.contains(PASSWORD));
    let page = crate::support::console::signed_in(&app, "bob")
        .await
        .get(&format!("/console/requests/{}", write.id()))
        .await;
    assert!(!page.body.contains(PASSWORD));
}
