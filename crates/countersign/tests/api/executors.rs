//! Executors (issue 17): the gateway carries out approved actions with credentials the agent
//! never holds, at most once, exactly as recorded, and records how each went. Against a real
//! HTTP service started here that refuses calls without the secret header.

use crate::support::app::{As, TestApp};
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
    let names: Vec<&str> = entries
        .iter()
        .filter(|e| e["request"] == r.id())
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "request.created",
            "request.approved",
            "grant.redeemed",
            "execution.started",
            "execution.finished"
        ]
    );
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
