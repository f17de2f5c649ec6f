//! Standing approvals (issue 18): "don't ask again for this for 30 minutes", without weakening
//! any invariant. Named after the invariant in `countersign_core::standing`: a standing
//! approval covers only what its approvers approved.

use crate::support::app::{As, TEST_POLICY, assert_log_intact, events_of, spawn_app_with_policy};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub(crate) fn policy() -> String {
    format!(
        "{TEST_POLICY}  - name: rollouts-may-stand
    match: {{kind: \"deploy.rollout\"}}
    effect: review
    review:
      approvers: [{{group: sre, count: 1}}]
      standing: {{max: 1h, max_uses: 3, scope: [kind, resource]}}
  - name: restarts-may-stand
    match: {{kind: \"deploy.restart\"}}
    effect: review
    review:
      approvers: [{{group: sre, count: 1}}]
      standing: {{max: 1h, max_uses: 3, scope: [resource]}}
  - name: two-must-stand
    match: {{kind: \"deploy.migrate\"}}
    effect: review
    review:
      approvers: [{{group: sre, count: 1}}, {{group: security, count: 1}}]
      standing: {{max: 8h, max_uses: 10}}
"
    )
}

fn rollout(resource: &str, v: u64) -> Value {
    json!({"kind": "deploy.rollout", "resource": resource, "params": {"version": v}})
}

async fn submit(who: &As, body: Value) -> crate::support::app::Resp {
    let r = who.post("/v1/actions", body).await;
    assert!(r.status.is_success(), "{}", r.body);
    r
}

/// `who` approves `r`, asking for a standing approval of `for_` and `uses`.
async fn approve_standing(
    who: &As,
    r: &crate::support::app::Resp,
    for_: &str,
    uses: u32,
) -> crate::support::app::Resp {
    who.post(
        &format!("/v1/requests/{}/votes", r.id()),
        json!({"decision": "approve", "digest": r.digest(), "comment": "ok",
               "standing": {"for": for_, "uses": uses}}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standing_approval_covers_only_what_its_approvers_approved() {
    let app = spawn_app_with_policy(&policy()).await;
    let agent = app.agent();
    let bob = app.approver("bob");

    let first = submit(&agent, rollout("svc://api", 1)).await;
    assert_eq!(first.state(), "pending");
    let voted = approve_standing(&bob, &first, "30m", 2).await;
    assert_eq!(voted.status, StatusCode::OK, "{}", voted.body);
    assert_eq!(voted.state(), "approved");
    let standing = &voted.body["standing"];
    assert_eq!(standing["state"], "active", "{}", voted.body);
    assert_eq!(
        (standing["uses"].as_u64(), standing["used"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(standing["approvers"], json!(["user:bob@example.com"]));
    assert_eq!(
        standing["covers"],
        json!({"kind": "deploy.rollout", "resource": "svc://api"})
    );
    let std_id = standing["id"].as_str().unwrap().to_owned();
    assert!(std_id.starts_with("std_"), "{std_id}");

    // The same requester, rule and scope fields (params may differ: not in scope): approved
    // at once, with its own grant bound to its own digest, naming the standing approval.
    let second = submit(&agent, rollout("svc://api", 2)).await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.body);
    assert_eq!(second.state(), "approved", "{}", second.body);
    assert_eq!(second.body["covered_by"]["standing"], std_id.as_str());
    assert_eq!(second.body["covered_by"]["request"], first.id().as_str());
    assert_eq!(
        second.body["covered_by"]["approvers"],
        json!(["user:bob@example.com"])
    );
    assert_ne!(second.body["grant"]["id"], voted.body["grant"]["id"]);
    assert_ne!(second.digest(), first.digest());
    let grant = second.body["grant"]["id"].as_str().unwrap();
    let wrong = agent
        .post(
            &format!("/v1/grants/{grant}/redeem"),
            json!({"digest": first.digest()}),
        )
        .await;
    assert_eq!(
        wrong.code(),
        "digest_mismatch",
        "its grant is bound to its own digest"
    );
    let redeemed = agent
        .post(
            &format!("/v1/grants/{grant}/redeem"),
            json!({"digest": second.digest()}),
        )
        .await;
    assert_eq!(redeemed.status, StatusCode::OK, "{}", redeemed.body);
    let again = agent
        .post(
            &format!("/v1/grants/{grant}/redeem"),
            json!({"digest": second.digest()}),
        )
        .await;
    assert_eq!(again.code(), "grant_used", "single use");

    // Never across requesters, never for a changed scope field.
    let theirs = submit(&app.as_("agent:helper-bot"), rollout("svc://api", 3)).await;
    assert_eq!(
        theirs.state(),
        "pending",
        "another requester: {}",
        theirs.body
    );
    let elsewhere = submit(&agent, rollout("svc://billing", 3)).await;
    assert_eq!(
        elsewhere.state(),
        "pending",
        "another resource: {}",
        elsewhere.body
    );
    // Never under another rule, even one whose own scope would match.
    let restart = submit(
        &agent,
        json!({"kind": "deploy.restart", "resource": "svc://api", "params": {}}),
    )
    .await;
    assert_eq!(restart.state(), "pending", "another rule: {}", restart.body);

    // The second and last use; then it is used up and people are asked again.
    let third = submit(&agent, rollout("svc://api", 4)).await;
    assert_eq!(third.state(), "approved", "{}", third.body);
    let fourth = submit(&agent, rollout("svc://api", 5)).await;
    assert_eq!(fourth.state(), "pending", "used up: {}", fourth.body);
    let listed = bob.get("/v1/standing?state=all").await;
    let view = listed.body["standing"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == std_id.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{}", listed.body));
    assert_eq!(
        (view["used"].as_u64(), view["state"].as_str()),
        (Some(2), Some("used_up"))
    );
    let active = bob.get("/v1/standing?state=active").await;
    assert!(
        !active.body.to_string().contains(&std_id),
        "a used-up approval is not in force: {}",
        active.body
    );

    // The record names who approved what, under which standing approval.
    let entries = app.audit_entries().await;
    let source = events_of(&entries, &first.id());
    // Each use is recorded on the action it approved, naming the approval and its approvers.
    let uses: Vec<&Value> = entries
        .iter()
        .filter(|e| {
            e["event"] == "request.created"
                && e["data"]["standing"]["standing"] == first.id().as_str()
        })
        .collect();
    assert_eq!(uses.len(), 2, "{entries:?}");
    assert!(
        uses.iter().all(|e| e["data"]["standing"]["uses"] == 2
            && e["data"]["standing"]["approvers"] == json!(["user:bob@example.com"])),
        "{uses:?}"
    );
    assert!(
        source.contains(&"standing.granted".to_owned()),
        "{source:?}"
    );
    assert_eq!(
        events_of(&entries, &second.id()),
        ["request.created", "request.approved", "grant.redeemed"]
    );
    assert_log_intact(&app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_or_expired_standing_approval_covers_nothing() {
    let app = spawn_app_with_policy(&policy()).await;
    let agent = app.agent();
    let bob = app.approver("bob");
    let first = submit(&agent, rollout("svc://api", 1)).await;
    let voted = approve_standing(&bob, &first, "30m", 3).await;
    let std_id = voted.body["standing"]["id"].as_str().unwrap().to_owned();

    // Who may revoke: an approver of the rule, or the owner of the agent; not the agent, not
    // someone outside the rule's groups.
    for (who, code) in [
        ("agent:deploy-bot", "not_an_approver"),
        ("user:carol@example.com", "not_an_approver"),
    ] {
        let r = app
            .as_(who)
            .post(&format!("/v1/standing/{std_id}/revoke"), json!({}))
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::FORBIDDEN, code),
            "{who}: {}",
            r.body
        );
    }
    let missing = bob.post("/v1/standing/std_nothing/revoke", json!({})).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
    let covered = submit(&agent, rollout("svc://api", 2)).await;
    assert_eq!(covered.state(), "approved", "still in force");
    let revoked = app
        .as_("user:alice@example.com")
        .post(&format!("/v1/standing/{std_id}/revoke"), json!({}))
        .await;
    assert_eq!(
        revoked.status,
        StatusCode::OK,
        "the agent's owner: {}",
        revoked.body
    );
    assert_eq!(revoked.body["state"], "revoked");
    assert_eq!(revoked.body["revoked_by"], "user:alice@example.com");
    let twice = bob
        .post(&format!("/v1/standing/{std_id}/revoke"), json!({}))
        .await;
    assert_eq!(
        (twice.status, twice.code()),
        (StatusCode::CONFLICT, "standing_inactive")
    );
    let after = submit(&agent, rollout("svc://api", 3)).await;
    assert_eq!(after.state(), "pending", "revoked: {}", after.body);

    // One that runs out of time.
    let brief = approve_standing(&bob, &after, "1s", 3).await;
    assert_eq!(brief.body["standing"]["state"], "active", "{}", brief.body);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let late = submit(&agent, rollout("svc://api", 4)).await;
    assert_eq!(late.state(), "pending", "expired: {}", late.body);
    assert_log_intact(&app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn standing_is_asked_by_every_approver_and_bounded_by_the_rule() {
    let app = spawn_app_with_policy(&policy()).await;
    let agent = app.agent();
    let bob = app.approver("bob");
    let carol = app.as_("user:carol@example.com");

    // Refused, recording nothing: beyond the rule's bounds, on a denial, on a rule without
    // standing, on a rule with `mfa: true`, or not a duration.
    let r = submit(&agent, rollout("svc://api", 1)).await;
    let before = app.audit_entries().await.len();
    for (body, code) in [
        (json!({"for": "2h", "uses": 1}), "standing_not_allowed"),
        (json!({"for": "10m", "uses": 4}), "standing_not_allowed"),
        (json!({"for": "10m", "uses": 0}), "standing_not_allowed"),
        (json!({"for": "soon", "uses": 1}), "invalid_standing"),
        (json!({"for": "10m"}), "invalid_body"),
    ] {
        let v = bob
            .post(
                &format!("/v1/requests/{}/votes", r.id()),
                json!({"decision": "approve", "digest": r.digest(), "standing": body}),
            )
            .await;
        assert_eq!(
            (v.status, v.code()),
            (StatusCode::BAD_REQUEST, code),
            "{body}: {}",
            v.body
        );
    }
    let deny = bob
        .post(
            &format!("/v1/requests/{}/votes", r.id()),
            json!({"decision": "deny", "digest": r.digest(), "comment": "no",
                   "standing": {"for": "10m", "uses": 1}}),
        )
        .await;
    assert_eq!(deny.code(), "standing_not_allowed", "{}", deny.body);
    for (kind, approver) in [("db.export", &bob), ("iam.grant", &carol)] {
        let other = submit(
            &agent,
            json!({"kind": kind, "resource": "postgres://prod/x", "params": {"rows": 5000}}),
        )
        .await;
        let v = approve_standing(approver, &other, "10m", 1).await;
        assert_eq!(v.code(), "standing_not_allowed", "{kind}: {}", v.body);
        assert!(
            v.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("standing"),
            "{}",
            v.body
        );
    }
    assert_eq!(
        app.audit_entries().await.len(),
        before + 2,
        "only the two submissions"
    );

    // It forms only if every vote that completed the quorum asked (the smallest wins).
    let migrate =
        |n: u64| json!({"kind": "deploy.migrate", "resource": "db://main", "params": {"n": n}});
    let both = submit(&agent, migrate(1)).await;
    approve_standing(&bob, &both, "2h", 5).await;
    let v = approve_standing(&carol, &both, "1h", 7).await;
    assert_eq!(v.state(), "approved", "{}", v.body);
    assert_eq!(v.body["standing"]["uses"], 5, "{}", v.body);
    let until = chrono::DateTime::parse_from_rfc3339(v.body["standing"]["until"].as_str().unwrap())
        .unwrap();
    let left = until
        .signed_duration_since(chrono::Utc::now())
        .num_seconds();
    assert!(
        (3500..=3600).contains(&left),
        "the smaller duration: {left}s"
    );
    let one = submit(&agent, migrate(1)).await;
    assert_eq!(
        one.state(),
        "approved",
        "covered (scope: all four fields, equal): {}",
        one.body
    );
    let changed = submit(&agent, migrate(2)).await;
    assert_eq!(
        changed.state(),
        "pending",
        "params in scope: {}",
        changed.body
    );
    approve_standing(&bob, &changed, "1h", 5).await;
    let plain = carol
        .post(
            &format!("/v1/requests/{}/votes", changed.id()),
            json!({"decision": "approve", "digest": changed.digest(), "comment": "ok"}),
        )
        .await;
    assert_eq!(plain.state(), "approved");
    assert!(
        plain.body.get("standing").is_none(),
        "carol did not ask: {}",
        plain.body
    );

    // People see all standing approvals; an agent its own.
    let seen_by_bob = bob.get("/v1/standing").await;
    assert_eq!(seen_by_bob.body["standing"].as_array().unwrap().len(), 1);
    let helper = app.as_("agent:helper-bot").get("/v1/standing").await;
    assert_eq!(helper.body["standing"], json!([]), "{}", helper.body);
    let bad = bob.get("/v1/standing?state=some").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

/// Uses are counted in the transaction that records each covered request: twenty concurrent
/// submissions under an approval of three uses get exactly three approvals.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_submissions_never_use_a_standing_approval_more_than_allowed() {
    let app = spawn_app_with_policy(&policy()).await;
    let agent = app.agent();
    let first = submit(&agent, rollout("svc://api", 0)).await;
    let voted = approve_standing(&app.approver("bob"), &first, "30m", 3).await;
    assert_eq!(voted.body["standing"]["state"], "active", "{}", voted.body);
    let tries = (1..=20).map(|v| {
        let agent = app.agent();
        async move { agent.post("/v1/actions", rollout("svc://api", v)).await }
    });
    let answers = futures::future::join_all(tries).await;
    let states: Vec<&str> = answers.iter().map(|r| r.state()).collect();
    assert_eq!(
        states.iter().filter(|s| **s == "approved").count(),
        3,
        "{states:?}"
    );
    assert_eq!(
        states.iter().filter(|s| **s == "pending").count(),
        17,
        "{states:?}"
    );
    let listed = app.approver("bob").get("/v1/standing?state=all").await;
    assert_eq!(listed.body["standing"][0]["used"], 3, "{}", listed.body);
    assert_log_intact(&app).await;
}

/// The console offers the choice where the rule allows it, forms the standing approval from the
/// form, lists it, and revokes it.
#[tokio::test(flavor = "multi_thread")]
async fn the_console_asks_lists_and_revokes_standing_approvals() {
    let app = spawn_app_with_policy(&policy()).await;
    let agent = app.agent();
    let bob = crate::support::console::signed_in(&app, "bob").await;
    let first = submit(&agent, rollout("svc://api", 1)).await;
    let page = bob.get(&format!("/console/requests/{}", first.id())).await;
    assert!(page.body.contains("name=\"standing_for\""), "{}", page.body);
    assert!(
        page.body.contains("data-standing-max=\"3600\""),
        "{}",
        page.body
    );
    let plain = submit(
        &agent,
        json!({"kind": "db.write", "resource": "x", "params": {}}),
    )
    .await;
    let other = bob.get(&format!("/console/requests/{}", plain.id())).await;
    assert!(
        !other.body.contains("standing_for"),
        "a rule without standing offers none"
    );

    let csrf = page.field("csrf");
    let digest = first.digest();
    let path = format!("/console/requests/{}/decide", first.id());
    let bad = bob
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("decision", "approve"),
                ("digest", &digest),
                ("standing_for", "1h"),
                ("standing_uses", "many"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    let voted = bob
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("decision", "approve"),
                ("digest", &digest),
                ("standing_for", "1h"),
                ("standing_uses", "2"),
            ],
        )
        .await;
    assert_eq!(voted.status, StatusCode::SEE_OTHER, "{}", voted.body);
    let covered = submit(&agent, rollout("svc://api", 2)).await;
    assert_eq!(covered.state(), "approved", "{}", covered.body);

    let list = bob.get("/console/standing").await;
    assert!(list.body.contains("data-state=\"active\""), "{}", list.body);
    assert!(list.body.contains("1 of 2"), "{}", list.body);
    assert!(list.body.contains("resource = svc://api"), "{}", list.body);
    let std_id = covered.body["covered_by"]["standing"].as_str().unwrap();
    let revoked = bob
        .post(
            &format!("/console/standing/{std_id}/revoke"),
            &[("csrf", &list.field("csrf"))],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.body);
    let list = bob.get("/console/standing").await;
    assert!(
        list.body.contains("data-state=\"revoked\""),
        "{}",
        list.body
    );
    let after = submit(&agent, rollout("svc://api", 3)).await;
    assert_eq!(after.state(), "pending");
    // Without the form's token nothing is revoked.
    let forged = bob
        .post(
            &format!("/console/standing/{std_id}/revoke"),
            &[("csrf", "nope")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
}

/// A review completed while its run was paused forms its standing approval when the run
/// resumes, and that approval covers the next matching action.
#[tokio::test(flavor = "multi_thread")]
async fn a_standing_approval_formed_on_release_covers_the_next_action() {
    let app = spawn_app_with_policy(&policy()).await;
    let agent = app.agent();
    let bob = app.approver("bob");
    let paused = bob.post("/v1/runs/nightly/pause", json!({})).await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.body);
    let in_run = |v: u64| {
        json!({"kind": "deploy.rollout", "resource": "svc://api", "params": {"version": v},
               "run": "nightly"})
    };
    let held = submit(&agent, in_run(1)).await;
    assert_eq!(
        (held.state(), held.body["held"].as_bool()),
        ("pending", Some(true)),
        "{}",
        held.body
    );
    let voted = approve_standing(&bob, &held, "30m", 2).await;
    assert_eq!(voted.status, StatusCode::OK, "{}", voted.body);
    assert_eq!(
        voted.state(),
        "pending",
        "held: approved only when the run resumes"
    );
    let resumed = bob.post("/v1/runs/nightly/resume", json!({})).await;
    assert_eq!(resumed.status, StatusCode::OK, "{}", resumed.body);
    let released = agent.get(&format!("/v1/requests/{}", held.id())).await;
    assert_eq!(released.state(), "approved", "{}", released.body);
    assert_eq!(
        released.body["standing"]["state"], "active",
        "{}",
        released.body
    );
    let next = submit(&agent, in_run(2)).await;
    assert_eq!(next.state(), "approved", "{}", next.body);
    assert_eq!(next.body["covered_by"]["request"], held.id().as_str());
    assert_log_intact(&app).await;
}
