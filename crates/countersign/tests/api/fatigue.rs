//! Approval fatigue (issue 18): what keeps people reading before they approve.

use crate::support::app::{TEST_POLICY, spawn_app_with_policy};
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};

fn careful_policy() -> String {
    format!(
        "{TEST_POLICY}  - name: careful-review
    match: {{kind: \"test.careful\"}}
    effect: review
    review:
      approvers: [{{group: sre, count: 1}}]
      require_comment: true
      min_review_time: 2s
"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn approvals_are_read_not_clicked() {
    let app = spawn_app_with_policy(&careful_policy()).await;
    let agent = app.agent();
    let bob = app.approver("bob");
    let r = agent
        .submit("test.careful", "svc://payments", json!({"n": 1}))
        .await;
    let created = Instant::now();
    assert_eq!(r.state(), "pending", "{}", r.body);
    let id = r.id();
    let vote = |body: serde_json::Value| {
        let bob = &bob;
        let id = id.clone();
        async move { bob.post(&format!("/v1/requests/{id}/votes"), body).await }
    };
    let before = app.audit_entries().await.len();
    for comment in [json!(null), json!(""), json!("   ")] {
        let v =
            vote(json!({"decision": "approve", "digest": r.digest(), "comment": comment})).await;
        assert_eq!(v.status, StatusCode::BAD_REQUEST, "{comment}: {}", v.body);
        assert_eq!(v.code(), "comment_required");
    }
    let v =
        vote(json!({"decision": "approve", "digest": r.digest(), "comment": "checked the amount"}))
            .await;
    assert_eq!(v.status, StatusCode::CONFLICT, "{}", v.body);
    assert_eq!(v.code(), "too_fast");
    assert!(
        v.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at least 2 s"),
        "{}",
        v.body
    );
    assert_eq!(
        app.audit_entries().await.len(),
        before,
        "a refused vote records nothing"
    );

    // The console says so before anyone tries.
    let page = crate::support::console::signed_in(&app, "bob")
        .await
        .get(&format!("/console/requests/{id}"))
        .await
        .body;
    assert!(
        page.contains("required to approve") && page.contains("data-min-review=\"2\""),
        "{page}"
    );

    if let Some(left) = Duration::from_millis(2100).checked_sub(created.elapsed()) {
        tokio::time::sleep(left).await;
    }
    let v =
        vote(json!({"decision": "approve", "digest": r.digest(), "comment": "checked the amount"}))
            .await;
    assert_eq!(v.status, StatusCode::OK, "{}", v.body);
    assert_eq!(v.state(), "approved");

    // A quick denial is never refused, with or without a comment.
    let other = agent
        .submit("test.careful", "svc://payments", json!({"n": 2}))
        .await;
    let d = bob.vote(&other.id(), "deny", &other.digest()).await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.body);
    assert_eq!(d.state(), "denied");

    let metrics = app
        .http
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "countersign_time_to_vote_seconds_count{rule=\"careful-review\",channel=\"api\"} 2"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("countersign_fast_approvals_total{channel=\"api\"} 1"),
        "{metrics}"
    );
}

fn action(kind: &str, n: u64) -> serde_json::Value {
    json!({"kind": kind, "resource": "postgres://prod/orders", "params": {"readonly": true, "n": n}})
}

#[tokio::test(flavor = "multi_thread")]
async fn one_question_per_action_an_idempotency_key_returns_the_first_request() {
    let app = crate::support::app::spawn_app().await;
    let agent = app.agent();
    let key = [("Idempotency-Key", "8d0e7a9c-run-42-step-1")];
    let first = agent
        .post_with("/v1/actions", &key, action("db.query", 1))
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let again = agent
        .post_with("/v1/actions", &key, action("db.query", 1))
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.id(), first.id());
    assert!(again.body.get("coalesced").is_none());
    let other = agent
        .post_with("/v1/actions", &key, action("db.query", 2))
        .await;
    assert_eq!(
        other.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        other.body
    );
    assert_eq!(other.code(), "idempotency_mismatch");
    assert!(
        other.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&first.id())
    );
    // Keys belong to their requester: another agent's same key is its own.
    let helper = app.as_("agent:helper-bot");
    let theirs = helper
        .post_with("/v1/actions", &key, action("db.query", 2))
        .await;
    assert_eq!(theirs.status, StatusCode::CREATED, "{}", theirs.body);
    let before = app.audit_entries().await.len();
    let long = "k".repeat(256);
    for bad in ["", "has space", "tab\there", long.as_str(), "é"] {
        let r = agent
            .post_with(
                "/v1/actions",
                &[("Idempotency-Key", bad)],
                action("db.query", 3),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}: {}", r.body);
        assert_eq!(r.code(), "invalid_idempotency_key", "{bad:?}");
    }
    assert_eq!(
        app.audit_entries().await.len(),
        before,
        "refusals record nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_question_per_action_an_identical_pending_action_is_coalesced() {
    let app = crate::support::app::spawn_app().await;
    let agent = app.agent();
    let ask = || agent.post("/v1/actions", action("infra.rollback", 7));
    let first = ask().await;
    assert_eq!(first.state(), "pending", "{}", first.body);
    let second = ask().await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(second.id(), first.id());
    assert_eq!(second.body["coalesced"], true);
    // Another requester, or another action, is asked about on its own.
    let theirs = app
        .as_("agent:helper-bot")
        .post("/v1/actions", action("infra.rollback", 7))
        .await;
    assert_ne!(theirs.id(), first.id());
    let changed = agent.post("/v1/actions", action("infra.rollback", 8)).await;
    assert_ne!(changed.id(), first.id());
    // Once decided, the same action is a new question.
    app.decide(&first.id(), "deny").await;
    let after = ask().await;
    assert_eq!(after.status, StatusCode::CREATED, "{}", after.body);
    assert_ne!(after.id(), first.id());
    // Allowed actions are never coalesced: each is its own request.
    let a = agent.post("/v1/actions", action("db.query", 9)).await;
    let b = agent.post("/v1/actions", action("db.query", 9)).await;
    assert_eq!(
        (a.status, b.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_ne!(a.id(), b.id());
}

#[tokio::test(flavor = "multi_thread")]
async fn one_question_per_action_twenty_concurrent_identical_submissions_make_one_request() {
    let app = crate::support::app::spawn_app().await;
    for (kind, header) in [
        ("db.query", true),
        ("infra.rollback", true),
        ("infra.rollback", false),
    ] {
        let n = if header { 100 } else { 101 };
        let key = format!("concurrent-{kind}");
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let agent = app.agent();
                let key = key.clone();
                tokio::spawn(async move {
                    let with_key = [("Idempotency-Key", key.as_str())];
                    let headers: &[(&str, &str)] = if header { &with_key } else { &[] };
                    agent
                        .post_with("/v1/actions", headers, action(kind, n))
                        .await
                })
            })
            .collect();
        let mut ids = std::collections::BTreeSet::new();
        let mut created = 0;
        for t in tasks {
            let r = t.await.unwrap();
            assert!(r.status.is_success(), "{}", r.body);
            created += usize::from(r.status == StatusCode::CREATED);
            ids.insert(r.id());
        }
        assert_eq!(ids.len(), 1, "{kind} (key: {header}): {ids:?}");
        assert_eq!(created, 1, "{kind} (key: {header})");
    }
}

/// The console's Reviews page shows, per approver, what they decided and how fast: bob's
/// approvals, each within seconds of the request, show as fast.
#[tokio::test(flavor = "multi_thread")]
async fn reviews_show_who_approves_without_reading() {
    let app = crate::support::app::spawn_app().await;
    let agent = app.agent();
    for (n, decision) in [(1, "approve"), (2, "approve"), (3, "deny")] {
        let r = agent
            .submit("test.reviewed", "svc://payments", json!({"n": n}))
            .await;
        assert_eq!(r.state(), "pending", "{}", r.body);
        app.decide(&r.id(), decision).await;
    }
    let alice = crate::support::console::signed_in(&app, "alice").await;
    let page = alice.get("/console/reviews").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let row = page
        .body
        .split("data-approver=\"user:bob@example.com\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no row for bob: {}", page.body));
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("data-decisions=\"3\""), "{row}");
    assert!(
        row.contains("data-approvals=\"2\"") && row.contains("67 %"),
        "{row}"
    );
    assert!(row.contains("data-fast=\"2\""), "{row}");
    assert!(page.body.contains("data-requests=\"3\""), "{}", page.body);
    assert!(
        !page.body.contains("data-approver=\"user:alice"),
        "alice decided nothing"
    );
    assert!(
        page.body.contains("href=\"/console/reviews\""),
        "in the navigation"
    );

    // Another period is a choice; anything else is refused and explained.
    let month = alice.get("/console/reviews?since=30d").await;
    assert_eq!(month.status, StatusCode::OK);
    assert!(month.body.contains("data-decisions=\"3\""));
    for bad in ["since=1y", "since=7", "period=7d"] {
        let r = alice.get(&format!("/console/reviews?{bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
    }
    // Signed out: the sign-in page, not the figures.
    let stranger = crate::support::console::Browser::new(&app);
    let r = stranger.get("/console/reviews").await;
    assert!(!r.body.contains("data-approver"), "{}", r.body);
}

/// `countersign policy replay`: the recorded actions decided again by a proposed policy, and
/// what would change, by transition and rule, with examples; bad input is a usage error.
#[tokio::test(flavor = "multi_thread")]
async fn policy_replay_reports_what_a_proposed_policy_would_change() {
    let app = crate::support::app::spawn_app().await;
    let agent = app.agent();
    for n in 0..3 {
        let r = agent.post("/v1/actions", action("db.query", n)).await;
        assert_eq!(r.state(), "approved", "{}", r.body);
    }
    let reviewed = agent
        .submit("deploy.rollout", "svc://api", json!({"v": 1}))
        .await;
    assert_eq!(reviewed.state(), "pending");
    // Reads now need review; rollouts are allowed.
    let proposed = app.dir.path().join("proposed.yaml");
    std::fs::write(
        &proposed,
        TEST_POLICY
            .replace("effect: allow\n  - name: never-drop-in-prod", "effect: review\n  - name: never-drop-in-prod")
            .replace("rules:\n", "rules:\n  - {name: rollouts-are-free, match: {kind: deploy.rollout}, effect: allow}\n"),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(crate::cli::BIN)
            .args(["policy", "replay"])
            .args(args)
            .env_remove("COUNTERSIGN_CONFIG")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let db = app.db_path().display().to_string();
    let policy = proposed.display().to_string();
    let (code, out, err) = run(&["--json", "--policy", &policy, "--database", &db]);
    assert_eq!(code, Some(0), "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["replayed"], 4, "{report}");
    let transition = |from: &str, to: &str| {
        report["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["from"] == from && t["to"] == to)
            .cloned()
            .unwrap_or_else(|| panic!("no {from} -> {to}: {report}"))
    };
    let tightened = transition("allow", "review");
    assert_eq!(tightened["count"], 3);
    assert_eq!(tightened["rules"][0]["from_rule"], "reads-are-free");
    assert_eq!(tightened["rules"][0]["to_rule"], "reads-are-free");
    assert_eq!(tightened["examples"].as_array().unwrap().len(), 3);
    let loosened = transition("review", "allow");
    assert_eq!(loosened["count"], 1);
    assert_eq!(loosened["examples"][0]["request"], reviewed.id().as_str());
    assert_eq!(loosened["rules"][0]["to_rule"], "rollouts-are-free");

    let (code, out, _) = run(&["--policy", &policy, "--database", &db]);
    assert_eq!(code, Some(0));
    assert!(out.contains("allow -> review: 3"), "{out}");
    assert!(out.contains("review -> allow: 1"), "{out}");
    // A period with nothing in it, a bad duration, a bad policy.
    let (_, out, _) = run(&[
        "--json",
        "--policy",
        &policy,
        "--database",
        &db,
        "--since",
        "1ms",
    ]);
    let empty: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(empty["replayed"], 0, "{empty}");
    let (code, _, err) = run(&["--policy", &policy, "--database", &db, "--since", "soon"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--since"), "{err}");
    let broken = app.dir.path().join("broken.yaml");
    std::fs::write(&broken, "version: 1\ndefault: maybe\n").unwrap();
    let (code, _, err) = run(&["--policy", &broken.display().to_string(), "--database", &db]);
    assert_eq!(code, Some(2), "{err}");
}
