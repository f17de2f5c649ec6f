//! Invariant 11, from outside: policy evaluation has a budget. A condition that would run for
//! hours over large params is denied once its budget is spent, naming the rule and the code
//! `evaluation_budget_exceeded`; meanwhile `/healthz` and other decisions are answered; a fast
//! rule still decides; the budget is configured (and validated) as `policy_evaluation`.

use crate::support::app::{TestApp, spawn_app_editing};
use countersign_server::Config;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// `whole-sums` would allow after evaluating n³ sums of its params (hours for 3000 numbers);
/// `small-is-free` is an ordinary, linear condition.
const POLICY: &str = r#"
version: 1
default: deny
rules:
  - name: small-is-free
    match: {kind: "fast.*"}
    when: 'params.n < 10'
    effect: allow
  - name: whole-sums
    match: {kind: "sums.*"}
    when: '![params.a].exists(l, l.exists(x, l.exists(y, l.exists(z, x + y + z == -1))))'
    effect: allow
  - name: short-loops
    match: {kind: "loops.*"}
    when: 'params.a.all(x, x > 0)'
    effect: allow
"#;

/// A gateway with `POLICY` and `policy_evaluation` set to `section`.
async fn world(section: &str) -> (TestApp, tempfile::TempDir) {
    let policy_dir = tempfile::tempdir().unwrap();
    let policy = policy_dir.path().join("budget-policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let section = section.to_string();
    let app = spawn_app_editing(move |text| {
        format!(
            "{}policy_evaluation: {section}\n",
            text.replace(
                "policy: policy.yaml",
                &format!("policy: '{}'", policy.display())
            )
        )
    })
    .await;
    (app, policy_dir)
}

fn many() -> Value {
    json!({"a": (1..=3000).collect::<Vec<i64>>()})
}

fn client() -> reqwest::Client {
    // Generous: nothing here is a timing assertion, only a bound on a hung test.
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

#[tokio::test]
async fn policy_evaluation_has_a_budget_slow_rule_is_denied_by_name() {
    let (app, _policy) = world("{budget: 1s}").await;
    let r = app.agent().submit("sums.check", "r", many()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.state(), "denied", "{:?}", r.body);
    assert_eq!(r.body["decision"]["effect"], "deny");
    assert_eq!(r.body["decision"]["rule"], "whole-sums");
    let reason = r.body["decision"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("evaluation_budget_exceeded"), "{reason}");
    assert!(reason.contains("`whole-sums`"), "{reason}");
    // The same rule over small params is evaluated and allows; a fast rule still allows.
    let small = app
        .agent()
        .submit("sums.check", "r", json!({"a": [1, 2, 3]}))
        .await;
    assert_eq!(small.state(), "approved", "{:?}", small.body);
    let fast = app.agent().submit("fast.thing", "r", json!({"n": 3})).await;
    assert_eq!(fast.state(), "approved", "{:?}", fast.body);
    let loops = app.agent().submit("loops.thing", "r", many()).await;
    assert_eq!(loops.state(), "approved", "{:?}", loops.body);
}

#[tokio::test]
async fn policy_evaluation_has_a_budget_healthz_answers_while_slow_evaluations_run() {
    // A long budget and two evaluators, so that six slow decisions are still running or
    // queued while the others are asked.
    let (app, _policy) = world("{budget: 2s, concurrency: 2}").await;
    let agent = app.agent();
    let slow: Vec<_> = (0..6)
        .map(|i| {
            let (agent, http) = (agent.clone(), client());
            tokio::spawn(async move {
                let r = http
                    .post(format!("{}/v1/actions", agent.url))
                    .bearer_auth(&agent.key)
                    .json(&json!({"kind": "sums.check", "resource": format!("r{i}"), "params": many()}))
                    .send()
                    .await
                    .unwrap();
                (r.status(), r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let health = client()
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let fast = agent.submit("fast.thing", "r", json!({"n": 1})).await;
    assert_eq!(fast.state(), "approved", "{:?}", fast.body);
    for job in slow {
        let (status, body) = job.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["state"], "denied", "{body}");
        assert_eq!(body["decision"]["rule"], "whole-sums", "{body}");
        let reason = body["decision"]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("evaluation_budget_exceeded"), "{reason}");
    }
    // The evaluators are free again: a small deferred decision is made as usual.
    let small = agent
        .submit("sums.check", "r", json!({"a": [1, 2, 3]}))
        .await;
    assert_eq!(small.state(), "approved", "{:?}", small.body);
}

#[test]
fn policy_evaluation_has_a_budget_config_key_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let load = |section: &str| {
        let path = dir.path().join("countersign.yaml");
        std::fs::write(
            &path,
            format!("listen: 127.0.0.1:0\ndatabase: x.db\npolicy_evaluation: {section}\n"),
        )
        .unwrap();
        Config::load(Some(&path)).map_err(|e| e.to_string())
    };
    let config = load("{budget: 75ms, concurrency: 3}").expect("valid");
    assert_eq!(config.policy_evaluation.budget, Duration::from_millis(75));
    assert_eq!(config.policy_evaluation.concurrency, Some(3));
    for (bad, says) in [
        ("{budget: 0ms}", "policy_evaluation"),
        ("{budget: 1h}", "between 1ms and 10s"),
        ("{concurrency: 0}", "concurrency"),
        ("{budget: soon}", "not a duration"),
        ("{budjet: 50ms}", "budjet"),
    ] {
        let err = load(bad).expect_err(bad);
        assert!(err.contains(says), "{bad}: {err}");
    }
}
