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

/// Rules that let approvers amend exports (appended to a policy's rules).
pub(crate) const AMEND_RULES: &str = "  - name: huge-exports-never
    match: {kind: \"data.export\"}
    when: 'params.rows > 1000000'
    effect: deny
    reason: too many rows
  - name: exports-may-be-amended
    match: {kind: \"data.export\"}
    effect: review
    review:
      approvers: [{group: sre, count: 1}, {group: security, count: 1}]
      amend: true
";

fn amendable_policy() -> String {
    format!("{TEST_POLICY}{AMEND_RULES}")
}

/// Edit, then approve: an approver answers with amended params; the request carries the
/// amended action, its new digest, the amender's approval and the RFC 6902 patch; earlier
/// votes no longer count; only the amended action can be redeemed.
#[tokio::test(flavor = "multi_thread")]
async fn an_approver_amends_and_approves_exactly_the_amended_action() {
    let app = spawn_app_with_policy(&amendable_policy()).await;
    let agent = app.agent();
    let r = agent
        .submit(
            "data.export",
            "postgres://prod/customers",
            json!({"rows": 5000, "table": "customers"}),
        )
        .await;
    assert_eq!(r.state(), "pending", "{}", r.body);
    let (id, first_digest) = (r.id(), r.digest());
    let bob = app.approver("bob");
    let carol = app.as_("user:carol@example.com");
    let v = bob.vote(&id, "approve", &first_digest).await;
    assert_eq!(v.status, StatusCode::OK, "{}", v.body);
    let amend = |who: &crate::support::app::As, params: serde_json::Value| {
        let path = format!("/v1/requests/{id}/amend");
        let who = who.clone();
        async move {
            who.post(
                &path,
                json!({"params": params, "comment": "100 rows are enough"}),
            )
            .await
        }
    };
    let before = app.audit_entries().await.len();
    // Never the requester or its owner; never unchanged; never to what another rule decides.
    for (who, code) in [
        ("agent:deploy-bot", "agent_cannot_vote"),
        ("user:alice@example.com", "self_approval"),
    ] {
        let a = amend(&app.as_(who), json!({"rows": 100, "table": "customers"})).await;
        assert_eq!(a.code(), code, "{who}: {}", a.body);
    }
    let same = amend(&carol, json!({"rows": 5000, "table": "customers"})).await;
    assert_eq!(
        (same.status, same.code()),
        (StatusCode::BAD_REQUEST, "amend_unchanged")
    );
    let denied = amend(&carol, json!({"rows": 2000000, "table": "customers"})).await;
    assert_eq!(denied.code(), "amend_changes_decision", "{}", denied.body);
    assert_eq!(
        app.audit_entries().await.len(),
        before,
        "refusals record nothing"
    );

    let amended = amend(&carol, json!({"rows": 100, "table": "customers"})).await;
    assert_eq!(amended.status, StatusCode::OK, "{}", amended.body);
    let new_digest = amended.digest();
    assert_ne!(new_digest, first_digest);
    assert_eq!(amended.body["action"]["params"]["rows"], 100);
    let a = &amended.body["amendments"][0];
    assert_eq!(a["by"], "user:carol@example.com");
    assert_eq!(a["from_digest"], first_digest.as_str());
    assert_eq!(a["to_digest"], new_digest.as_str());
    assert_eq!(
        a["patch"],
        json!([{"op": "replace", "path": "/rows", "value": 100}])
    );
    // Bob's approval was of the old digest: it no longer counts.
    assert_eq!(amended.state(), "pending", "{}", amended.body);
    assert_eq!(amended.body["votes"].as_array().unwrap().len(), 1);
    let stale = bob.vote(&id, "approve", &first_digest).await;
    assert_eq!(stale.code(), "digest_mismatch", "{}", stale.body);
    let v = bob.vote(&id, "approve", &new_digest).await;
    assert_eq!(v.state(), "approved", "{}", v.body);

    // The agent's wait returns the amended action and digest; only that can be redeemed.
    let seen = agent.get(&format!("/v1/requests/{id}?wait=1s")).await;
    assert_eq!(seen.body["action"]["params"]["rows"], 100);
    assert_eq!(seen.digest(), new_digest);
    let grant = seen.body["grant"]["id"].as_str().unwrap().to_owned();
    let old = agent
        .post(
            &format!("/v1/grants/{grant}/redeem"),
            json!({"digest": first_digest}),
        )
        .await;
    assert_eq!(old.code(), "digest_mismatch");
    let ok = agent
        .post(
            &format!("/v1/grants/{grant}/redeem"),
            json!({"digest": new_digest}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);

    // A rule without `amend: true`.
    let plain = agent
        .submit("deploy.rollout", "svc://api", json!({"v": 1}))
        .await;
    let refused = bob
        .post(
            &format!("/v1/requests/{}/amend", plain.id()),
            json!({"params": {"v": 2}}),
        )
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::FORBIDDEN, "amend_not_allowed")
    );

    let events: Vec<String> = app
        .audit_entries()
        .await
        .iter()
        .filter(|e| e["request"] == id.as_str())
        .map(|e| e["event"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(events.contains(&"request.amended".to_owned()), "{events:?}");
    use countersign_store::Store as _;
    let store = countersign_store::SqliteStore::open_read_only(&app.db_path())
        .await
        .unwrap();
    assert_eq!(store.verify_requests().await.unwrap(), vec![]);
}

/// The console's editor: offered where the rule allows amending, it amends and approves.
#[tokio::test(flavor = "multi_thread")]
async fn the_console_amends_then_approves() {
    let app = spawn_app_with_policy(&amendable_policy()).await;
    let r = app
        .agent()
        .submit(
            "data.export",
            "postgres://prod/customers",
            json!({"rows": 5000}),
        )
        .await;
    let carol = crate::support::console::signed_in(&app, "carol").await;
    let page = carol.get(&format!("/console/requests/{}", r.id())).await;
    assert!(page.body.contains("Amend the params"), "{}", page.body);
    let csrf = page.field("csrf");
    let path = format!("/console/requests/{}/amend", r.id());
    let digest = r.digest();
    let bad = carol
        .post(
            &path,
            &[("csrf", &csrf), ("digest", &digest), ("params", "{rows: 1")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    let done = carol
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("digest", &digest),
                ("params", r#"{"rows": 50}"#),
                ("comment", "50 is plenty"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let now = app.agent().get(&format!("/v1/requests/{}", r.id())).await;
    assert_eq!(now.body["action"]["params"], json!({"rows": 50}));
    assert_eq!(now.body["amendments"][0]["by"], "user:carol@example.com");
    assert_eq!(now.body["votes"][0]["channel"], "console");
    let plain = app
        .agent()
        .submit("deploy.rollout", "svc://api", json!({}))
        .await;
    let page = crate::support::console::signed_in(&app, "bob")
        .await
        .get(&format!("/console/requests/{}", plain.id()))
        .await;
    assert!(
        !page.body.contains("Amend the params"),
        "not offered without amend"
    );
}
