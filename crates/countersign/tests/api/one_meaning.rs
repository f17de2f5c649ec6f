//! Invariant 9, from outside: every number and key in an action means one thing. A body whose
//! number a double cannot hold exactly, or whose object repeats a key (at any depth, in any
//! spelling), is refused with 400 `imprecise_number` / `duplicate_key` by the API, the Slack
//! callback and the CLI, and changes nothing; spellings of one value share one digest.

use crate::cli::{BIN, cli, serve};
use crate::support::app::{TestApp, spawn_app, spawn_app_in};
use crate::support::fake_slack::{self, FakeSlack, SIGNING_SECRET};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Posts `body` as it is written (no re-serialization) to `path` as the agent.
async fn raw(app: &TestApp, path: &str, body: &str) -> (StatusCode, Value) {
    let agent = app.agent();
    let r = agent
        .http
        .post(format!("{}{path}", agent.url))
        .bearer_auth(&agent.key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The number of audit entries and of requests: what a refused body must not change.
async fn footprint(app: &TestApp) -> (u64, usize) {
    let store = countersign_store::SqliteStore::open_read_only(&app.db_path())
        .await
        .unwrap();
    use countersign_store::Store as _;
    let entries = store.verify_audit().await.unwrap().entries;
    let listed = app.approver("bob").get("/v1/requests").await;
    let requests = listed.body["requests"].as_array().map_or(0, Vec::len);
    (entries, requests)
}

fn action_with(params: &str) -> String {
    format!(r#"{{"kind":"db.export","resource":"postgres://prod/customers","params":{params}}}"#)
}

#[tokio::test]
async fn numbers_mean_one_thing_imprecise_numbers_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let before = footprint(&app).await;
    for n in [
        "9007199254740993",
        "9007199254740993.0",
        "9.007199254740993e15",
        "90071992547409930E-1",
        "1e400",
        "-1e400",
        "1e-400",
        "18446744073709551616",
        "-9223372036854775809",
        "0.1000000000000000055511151231257827",
        "-0",
        "-0.0",
    ] {
        for params in [
            format!(r#"{{"rows":{n}}}"#),
            format!(r#"{{"rows":5000,"nested":{{"list":[1,{{"deep":{n}}}]}}}}"#),
        ] {
            let (status, body) = raw(&app, "/v1/actions", &action_with(&params)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{params}: {body}");
            assert_eq!(
                body["error"]["code"], "imprecise_number",
                "{params}: {body}"
            );
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("send it as a string"), "{message}");
        }
    }
    // Outside `params` too: a number anywhere in any JSON body.
    let (status, body) = raw(
        &app,
        "/v1/requests/req_nope/votes",
        r#"{"decision":"approve","digest":"x","n":1e999}"#,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("imprecise_number"))
    );
    assert_eq!(footprint(&app).await, before);
}

#[tokio::test]
async fn numbers_mean_one_thing_exact_spellings_are_one_value_and_one_digest() {
    let app = spawn_app().await;
    let digest_of = |rows: &'static str| {
        let app = &app;
        async move {
            let (status, body) = raw(
                app,
                "/v1/actions",
                &action_with(&format!(r#"{{"rows":{rows},"format":"csv"}}"#)),
            )
            .await;
            assert_eq!(
                body["action"]["params"]["rows"].as_f64(),
                Some(5000.0),
                "{rows}: {body}"
            );
            (status, body)
        }
    };
    let (status, plain) = digest_of("5000").await;
    assert_eq!(status, StatusCode::CREATED, "{plain}");
    // Each other spelling is the same action: the same digest, so the pending request is
    // answered again (one question per action) rather than a second one made.
    for same in ["5000.0", "5e3", "5E+3", "50000e-1", "5000.000"] {
        let (status, body) = digest_of(same).await;
        assert_eq!(status, StatusCode::OK, "{same}: {body}");
        assert_eq!(body["coalesced"], true, "{same}: {body}");
        assert_eq!(body["digest"], plain["digest"], "{same}");
        assert_eq!(body["id"], plain["id"], "{same}");
    }
    // The largest integers a double holds exactly are accepted, and differ in digest.
    let (status, a) = raw(
        &app,
        "/v1/actions",
        &action_with(r#"{"n":9007199254740992}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{a}");
    let (status, b) = raw(
        &app,
        "/v1/actions",
        &action_with(r#"{"n":9007199254740991}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{b}");
    assert_ne!(a["digest"], b["digest"]);
}

#[tokio::test]
async fn duplicate_keys_are_refused_anywhere_in_a_body_and_change_nothing() {
    let app = spawn_app().await;
    let before = footprint(&app).await;
    for body in [
        action_with(r#"{"rows":10,"rows":5000}"#),
        action_with(r#"{"rows":5000,"\u0072ows":10}"#),
        action_with(r#"{"rows":5000,"filter":{"where":"1=1","where":"id=1"}}"#),
        action_with(r#"{"rows":5000,"steps":[{"a":1},{"b":2,"b":3}]}"#),
        action_with(r#"{"rows":5000,"x":[[[{"k":null,"\u006b":true}]]]}"#),
        r#"{"kind":"db.query","kind":"db.export","resource":"postgres://prod/customers"}"#
            .to_string(),
        r#"{"kind":"db.export","resource":"postgres://prod/customers","labels":{"team":"a","team":"b"}}"#
            .to_string(),
        r#"{"kind":"db.export","resource":"postgres://prod/customers","params":{},"params":{"rows":5000}}"#
            .to_string(),
    ] {
        let (status, answer) = raw(&app, "/v1/actions", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "duplicate_key", "{body}: {answer}");
    }
    let (status, answer) = raw(
        &app,
        "/v1/requests/req_nope/votes",
        r#"{"decision":"deny","decision":"approve","digest":"x"}"#,
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("duplicate_key"))
    );
    assert_eq!(footprint(&app).await, before);
    // Equal keys in different objects are fine.
    let (status, answer) = raw(
        &app,
        "/v1/actions",
        &action_with(r#"{"rows":5000,"a":{"rows":1},"b":[{"rows":2},{"rows":3}]}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}

#[tokio::test]
async fn duplicate_keys_are_refused_in_a_signed_slack_callback() {
    let fake = FakeSlack::start().await;
    let config = format!(
        "channels:\n  slack:\n    bot_token: {}\n    signing_secret: {}\n    api_base_url: {}\n    notify: [\"#approvals\"]\n",
        fake_slack::BOT_TOKEN,
        SIGNING_SECRET,
        fake.url
    );
    let app = spawn_app_in(tempfile::tempdir().unwrap(), &config).await;
    let r = app
        .agent()
        .submit("infra.rollback", "k8s://prod/api", json!({"to": "v41"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let id = r.id();
    let m = fake.posted("CAPPROVALS", &id).await;
    // A real click, with a second `user` in front: a parser keeping either one would decide
    // who voted.
    let click = fake_slack::click_payload("UBOB", "approve", &m).to_string();
    let forged = format!(r#"{{"user":{{"id":"UDANA"}},{}"#, &click[1..]);
    let body = serde_urlencoded::to_string([("payload", forged)]).unwrap();
    let (status, text) =
        fake_slack::send_signed(&app.url, &body, fake_slack::now(), SIGNING_SECRET).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("duplicate_key"), "{text}");
    let seen = app
        .as_("user:dana@example.com")
        .get(&format!("/v1/requests/{id}"))
        .await;
    assert_eq!(seen.body["votes"].as_array().map(Vec::len), Some(0));
}

#[test]
fn numbers_mean_one_thing_and_keys_too_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::support::app::write_world(&dir, 0);
    let server = serve(&config, 8);
    let agent = "agent:deploy-bot";
    for (params, expect) in [
        (
            r#"{"rows": 9007199254740993.0}"#,
            "does not mean exactly one value",
        ),
        (r#"{"rows": 1e400}"#, "does not mean exactly one value"),
        (r#"{"rows": 1, "rows": 5000}"#, "more than once"),
        (r#"{"a": {"b": 1, "\u0062": 2}}"#, "more than once"),
    ] {
        let out = cli(
            &server,
            agent,
            &[
                "request",
                "--kind",
                "db.export",
                "--resource",
                "postgres://prod/customers",
                "--params",
                params,
            ],
        )
        .output()
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{params}: {stderr}");
        assert!(stderr.contains(expect), "{params}: {stderr}");
    }
    // `policy explain --action` reads the same way.
    let out = std::process::Command::new(BIN)
        .args([
            "policy",
            "explain",
            &dir.path().join("policy.yaml").display().to_string(),
            "--principal",
            agent,
            "--action",
            r#"{"kind":"db.export","resource":"r","params":{"n":1,"n":2}}"#,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("more than once"));
}
