//! Issue 21 part 5: the limits README states are enforced at the edge with a clear 4xx/429 —
//! event streams and long-poll waits per principal, list page sizes, body size, JSON depth,
//! labels — and a refused call changes nothing.

use crate::support::app::{TEST_POLICY, spawn_app_configured};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const TWO_OF_EACH: &str = "limits: {streams_per_principal: 2, waits_per_principal: 2}\n";

/// Opens a server-sent event stream; returns the response (its body still streaming).
async fn open(http: &reqwest::Client, url: &str, key: &str) -> reqwest::Response {
    http.get(url).bearer_auth(key).send().await.unwrap()
}

async fn error_code(r: reqwest::Response) -> (StatusCode, String) {
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn event_streams_per_principal_are_limited_and_given_back_when_closed() {
    let app = spawn_app_configured(TEST_POLICY, TWO_OF_EACH).await;
    let pending = app
        .agent()
        .submit(
            "db.export",
            "postgres://prod/customers",
            json!({"rows": 5000}),
        )
        .await;
    let bob = &app.keys["user:bob@example.com"];
    let carol = &app.keys["user:carol@example.com"];
    let http = reqwest::Client::new();
    let audit = format!("{}/v1/audit/stream", app.url);
    let events = format!("{}/v1/requests/{}/events", app.url, pending.id());
    // Two kinds of stream count together.
    let first = open(&http, &audit, bob).await;
    assert_eq!(first.status(), StatusCode::OK);
    let second = open(&http, &events, bob).await;
    assert_eq!(second.status(), StatusCode::OK);
    for url in [&audit, &events] {
        let (status, code) = error_code(open(&http, url, bob).await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::TOO_MANY_REQUESTS, "too_many_streams")
        );
    }
    // Another person has their own.
    let carols = open(&http, &audit, carol).await;
    assert_eq!(carols.status(), StatusCode::OK);
    // Closing one gives its slot back (once the gateway sees the connection gone).
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(30);
    let again = loop {
        let r = open(&http, &audit, bob).await;
        if r.status() == StatusCode::OK {
            break r;
        }
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(
            Instant::now() < deadline,
            "the closed stream's slot came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    drop((again, second, carols));
}

#[tokio::test(flavor = "multi_thread")]
async fn long_poll_waits_per_principal_are_limited_and_end_with_the_decision() {
    let app = spawn_app_configured(TEST_POLICY, TWO_OF_EACH).await;
    let agent = app.agent();
    let pending = agent
        .submit(
            "db.export",
            "postgres://prod/customers",
            json!({"rows": 5000}),
        )
        .await;
    let path = format!("/v1/requests/{}?wait=60s", pending.id());
    let waits: Vec<_> = (0..2)
        .map(|_| {
            let (agent, path) = (agent.clone(), path.clone());
            // A wait that finds both slots taken (by a probe below) asks again.
            tokio::spawn(async move {
                loop {
                    let r = agent.get(&path).await;
                    if r.status != StatusCode::TOO_MANY_REQUESTS {
                        return r;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        })
        .collect();
    // Asked until both waits are held (a probe that finds a slot free waits only a second).
    let probe = format!("/v1/requests/{}?wait=1s", pending.id());
    let deadline = Instant::now() + Duration::from_secs(30);
    let third = loop {
        let r = agent.get(&probe).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (third.status, third.code()),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_waits"),
        "{}",
        third.body
    );
    assert!(
        third.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("limits.waits_per_principal")
    );
    // A read without waiting needs no slot.
    let now = agent.get(&format!("/v1/requests/{}", pending.id())).await;
    assert_eq!(now.state(), "pending");
    // The decision ends both waits, and their slots come back.
    app.decide(&pending.id(), "deny").await;
    for w in waits {
        assert_eq!(w.await.unwrap().state(), "denied");
    }
    let after = agent
        .get(&format!("/v1/requests/{}?wait=1s", pending.id()))
        .await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn list_pages_outside_their_range_are_refused_not_changed() {
    let app = spawn_app_configured(TEST_POLICY, "").await;
    let bob = app.approver("bob");
    for (path, ok) in [
        ("/v1/requests?limit=500", true),
        ("/v1/requests?limit=1", true),
        ("/v1/requests?limit=501", false),
        ("/v1/requests?limit=0", false),
        ("/v1/requests?limit=4294967295", false),
        ("/v1/audit/entries?limit=10000", true),
        ("/v1/audit/entries?limit=10001", false),
        ("/v1/audit/entries?limit=0", false),
        ("/v1/audit/entries?limit=18446744073709551615", false),
    ] {
        let r = bob.get(path).await;
        if ok {
            assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
        } else {
            assert_eq!(
                (r.status, r.code()),
                (StatusCode::BAD_REQUEST, "invalid_query"),
                "{path}: {}",
                r.body
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_depth_and_labels_beyond_their_limits_are_refused_and_change_nothing() {
    let app = spawn_app_configured(TEST_POLICY, "max_body_bytes: 4096\n").await;
    let agent = app.agent();
    let before = app.audit_entries().await.len();
    let too_big = agent
        .post(
            "/v1/actions",
            json!({"kind": "db.query", "resource": "x", "params": {"blob": "x".repeat(5000)}}),
        )
        .await;
    assert_eq!(
        (too_big.status, too_big.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );
    let deep = format!(
        r#"{{"kind":"db.query","resource":"x","params":{}1{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let r = agent
        .http
        .post(format!("{}/v1/actions", agent.url))
        .bearer_auth(&agent.key)
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    let (status, code) = error_code(r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{code}");
    let labels: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("l{i}"), json!("v"))).collect();
    let many = agent
        .post(
            "/v1/actions",
            json!({"kind": "db.query", "resource": "x", "labels": labels, "params": {"readonly": true}}),
        )
        .await;
    assert_eq!(
        (many.status, many.code()),
        (StatusCode::BAD_REQUEST, "invalid_action"),
        "{}",
        many.body
    );
    assert_eq!(
        app.audit_entries().await.len(),
        before,
        "refused calls record nothing"
    );
}
