//! Plans (issue 18): approve a plan instead of twenty steps. Named after the invariant in
//! `countersign_core::plan`: a plan's approval covers each reviewed step once, and nothing else.

use crate::support::app::{As, TestApp, assert_log_intact, events_of, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub(crate) const CUSTOMERS: &str = "postgres://prod/customers";

/// Three steps under the test policy: an export that needs sre and security, a read the
/// policy allows, and a rollback that needs two sre.
fn steps() -> Value {
    json!([
        {"kind": "db.export", "resource": CUSTOMERS, "params": {"rows": 5000}},
        {"kind": "db.query", "resource": CUSTOMERS, "params": {"readonly": true}},
        {"kind": "infra.rollback", "resource": "svc://api", "params": {"to": "v41"}},
    ])
}

pub(crate) fn plan_body() -> Value {
    json!({"steps": steps(), "justification": "migrate the customers table"})
}

/// Step `i` (from 0) of [`steps`] as an action, with its own justification.
fn step_action(i: usize) -> Value {
    let mut a = steps()[i].clone();
    a["justification"] = json!(format!("step {} of the migration", i + 1));
    a
}

async fn approve_all(app: &TestApp, plan: &crate::support::app::Resp) -> crate::support::app::Resp {
    let mut last = None;
    for who in ["bob", "erin", "carol"] {
        let r = app
            .approver(who)
            .post(
                &format!("/v1/requests/{}/votes", plan.id()),
                json!({"decision": "approve", "digest": plan.digest(), "comment": "read it"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{who}: {}", r.body);
        last = Some(r);
    }
    last.unwrap()
}

async fn submit(agent: &As, body: Value) -> crate::support::app::Resp {
    let r = agent.post("/v1/actions", body).await;
    assert!(r.status.is_success(), "{}", r.body);
    r
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plans_approval_covers_each_reviewed_step_once_and_nothing_else() {
    let app = spawn_app().await;
    let agent = app.agent();
    let plan = agent
        .post_with("/v1/plans", &[("Idempotency-Key", "plan-1")], plan_body())
        .await;
    assert_eq!(plan.status, StatusCode::CREATED, "{}", plan.body);
    assert_eq!(plan.state(), "pending");
    assert_eq!(plan.body["action"]["kind"], "countersign.plan");
    let effects: Vec<&str> = plan.body["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["effect"].as_str().unwrap())
        .collect();
    assert_eq!(effects, ["review", "allow", "review"]);
    // One review with the union of the reviewed steps' requirements.
    assert_eq!(
        plan.body["decision"]["requirements"]["approvers"],
        json!([{"group": "sre", "count": 2}, {"group": "security", "count": 1}]),
        "{}",
        plan.body
    );
    // Its digest covers the ordered steps, each with its own digest.
    let step_digests: Vec<Value> = plan.body["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["digest"].clone())
        .collect();
    let in_params: Vec<Value> = plan.body["action"]["params"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["digest"].clone())
        .collect();
    assert_eq!(step_digests, in_params);

    // Asked once: the same key answers the first plan; the same plan again is coalesced.
    let again = agent
        .post_with("/v1/plans", &[("Idempotency-Key", "plan-1")], plan_body())
        .await;
    assert_eq!((again.status, again.id()), (StatusCode::OK, plan.id()));
    let other = agent
        .post_with(
            "/v1/plans",
            &[("Idempotency-Key", "plan-1")],
            json!({"steps": [steps()[0]]}),
        )
        .await;
    assert_eq!(other.code(), "idempotency_mismatch", "{}", other.body);
    let same = agent.post("/v1/plans", plan_body()).await;
    assert_eq!(
        (same.status, same.id(), same.body["coalesced"].as_bool()),
        (StatusCode::OK, plan.id(), Some(true))
    );

    let approved = approve_all(&app, &plan).await;
    assert_eq!(approved.state(), "approved", "{}", approved.body);
    assert_eq!(approved.body["plan"]["state"], "active");

    // Step 1, in the agent's own words: approved at once, its own grant on its own digest.
    let first = submit(&agent, step_action(0)).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(first.state(), "approved", "{}", first.body);
    assert_eq!(first.body["planned_by"]["plan"], plan.id().as_str());
    assert_eq!(first.body["planned_by"]["step"], 1);
    assert_eq!(
        first.body["planned_by"]["approvers"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    assert_ne!(first.digest(), plan.digest());
    let grant = first.body["grant"]["id"].as_str().unwrap().to_owned();
    let redeemed = agent
        .post(
            &format!("/v1/grants/{grant}/redeem"),
            json!({"digest": first.digest()}),
        )
        .await;
    assert_eq!(redeemed.status, StatusCode::OK, "{}", redeemed.body);

    // Each step once: the same step again is asked about as usual.
    let twice = submit(&agent, step_action(0)).await;
    assert_eq!(twice.state(), "pending", "{}", twice.body);
    assert!(twice.body.get("planned_by").is_none());
    // The allowed step is allowed by the policy, not by the plan.
    let read = submit(&agent, step_action(1)).await;
    assert_eq!(read.state(), "approved");
    assert!(read.body.get("planned_by").is_none());
    // Not in the plan: another params, another requester.
    let mut changed = step_action(2);
    changed["params"] = json!({"to": "v40"});
    let changed = submit(&agent, changed).await;
    assert_eq!(changed.state(), "pending", "{}", changed.body);
    let theirs = submit(&app.as_("agent:helper-bot"), step_action(2)).await;
    assert_eq!(theirs.state(), "pending", "{}", theirs.body);
    // Step 3.
    let third = submit(&agent, step_action(2)).await;
    assert_eq!(third.state(), "approved", "{}", third.body);
    assert_eq!(third.body["planned_by"]["step"], 3);

    // The plan records who used which step; its own grant is not redeemable.
    let now = agent.get(&format!("/v1/requests/{}", plan.id())).await;
    assert_eq!(now.body["plan"]["state"], "done");
    assert_eq!(now.body["plan"]["steps"][0]["used_by"], first.id().as_str());
    assert_eq!(now.body["plan"]["steps"][2]["used_by"], third.id().as_str());
    assert!(now.body["plan"]["steps"][1].get("used_by").is_none());
    let plan_grant = now.body["grant"]["id"].as_str().unwrap();
    let refused = agent
        .post(
            &format!("/v1/grants/{plan_grant}/redeem"),
            json!({"digest": plan.digest()}),
        )
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::CONFLICT, "plan_not_redeemable"),
        "{}",
        refused.body
    );

    let entries = app.audit_entries().await;
    let on_plan = events_of(&entries, &plan.id());
    assert_eq!(on_plan[..2], ["request.created", "plan.recorded"]);
    assert_eq!(
        on_plan.iter().filter(|e| *e == "plan.step_used").count(),
        2,
        "{on_plan:?}"
    );
    assert_eq!(
        events_of(&entries, &first.id()),
        [
            "request.created",
            "plan.covered",
            "request.approved",
            "grant.redeemed"
        ]
    );
    assert_log_intact(&app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_submissions_of_a_planned_step_use_it_once() {
    let app = spawn_app().await;
    let agent = app.agent();
    let plan = agent.post("/v1/plans", plan_body()).await;
    approve_all(&app, &plan).await;
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let agent = agent.clone();
            tokio::spawn(async move { agent.post("/v1/actions", step_action(2)).await })
        })
        .collect();
    let mut approved = 0;
    for t in tasks {
        let r = t.await.unwrap();
        assert!(r.status.is_success(), "{}", r.body);
        if r.state() == "approved" {
            assert_eq!(r.body["planned_by"]["step"], 3);
            approved += 1;
        } else {
            assert_eq!(r.state(), "pending", "{}", r.body);
        }
    }
    assert_eq!(approved, 1, "one step, one approval");
    assert_log_intact(&app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denied_step_denies_the_plan_naming_the_step_and_rule() {
    let app = spawn_app().await;
    let body = json!({"steps": [
        {"kind": "db.export", "resource": CUSTOMERS, "params": {"rows": 5000}},
        {"kind": "db.ddl", "resource": CUSTOMERS, "params": {"sql": "DROP TABLE customers"}},
    ]});
    let r = app.agent().post("/v1/plans", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.state(), "denied");
    assert_eq!(r.body["outcome_code"], "policy_denied");
    let outcome = r.body["outcome"].as_str().unwrap();
    assert!(
        outcome.contains("step 2 (db.ddl on") && outcome.contains("never-drop-in-prod"),
        "{outcome}"
    );
    assert_eq!(r.body["decision"]["rule"], "never-drop-in-prod");
    // Nothing is covered by a denied plan.
    let step = submit(&app.agent(), step_action(0)).await;
    assert_eq!(step.state(), "pending");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_of_allowed_steps_is_allowed_and_bad_plans_change_nothing() {
    let app = spawn_app().await;
    let agent = app.agent();
    let allowed = agent
        .post("/v1/plans", json!({"steps": [steps()[1]]}))
        .await;
    assert_eq!(allowed.state(), "approved", "{}", allowed.body);
    assert_eq!(allowed.body["plan"]["state"], "done");

    let before = app.audit_entries().await.len();
    let many: Vec<Value> = (0..51).map(|_| steps()[1].clone()).collect();
    for (body, status, code) in [
        (
            json!({"steps": []}),
            StatusCode::BAD_REQUEST,
            "invalid_plan",
        ),
        (
            json!({"steps": many}),
            StatusCode::BAD_REQUEST,
            "invalid_plan",
        ),
        (
            json!({"steps": [{"kind": "no spaces", "resource": "x"}]}),
            StatusCode::BAD_REQUEST,
            "invalid_action",
        ),
        (
            json!({"steps": [{"kind": "countersign.plan", "resource": "x"}]}),
            StatusCode::BAD_REQUEST,
            "invalid_action",
        ),
        (
            json!({"steps": [{"kind": "a.b", "resource": "x", "params": []}]}),
            StatusCode::BAD_REQUEST,
            "invalid_action",
        ),
        (
            json!({"steps": [{"kind": "a.b", "resource": "x", "extra": 1}]}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json!({"steps": [steps()[1]], "requester": "agent:other"}),
            StatusCode::FORBIDDEN,
            "requester_not_allowed",
        ),
    ] {
        let r = agent.post("/v1/plans", body.clone()).await;
        assert_eq!((r.status, r.code()), (status, code), "{body}: {}", r.body);
    }
    let step_one = agent
        .post(
            "/v1/plans",
            json!({"steps": [{"kind": "no spaces", "resource": "x"}]}),
        )
        .await;
    assert!(
        step_one.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("step 1:"),
        "{}",
        step_one.body
    );
    // A plan's kind is reserved: an action cannot pass for a plan.
    let fake = agent
        .post(
            "/v1/actions",
            json!({"kind": "countersign.plan", "resource": "plan of 1 step"}),
        )
        .await;
    assert_eq!(
        (fake.status, fake.code()),
        (StatusCode::BAD_REQUEST, "reserved_kind"),
        "{}",
        fake.body
    );
    assert_eq!(app.audit_entries().await.len(), before, "nothing recorded");
}

#[tokio::test(flavor = "multi_thread")]
async fn approvers_see_a_plan_as_a_numbered_list_in_the_cli() {
    let app = spawn_app().await;
    let file = app.dir.path().join("steps.json");
    std::fs::write(&file, steps().to_string()).unwrap();
    let out = app
        .cli(
            "agent:deploy-bot",
            &[
                "plan",
                "--steps",
                file.to_str().unwrap(),
                "--justification",
                "migrate",
            ],
        )
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(5),
        "pending: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("request   "))
        .unwrap()
        .trim()
        .to_owned();
    let shown = app
        .cli("user:bob@example.com", &["show", &id])
        .output()
        .await
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    for line in [
        "steps     1. db.export on postgres://prod/customers — review (prod-export-needs-two)",
        "          2. db.query on postgres://prod/customers — allow (reads-are-free)",
        "          3. infra.rollback on svc://api — review (rollback-needs-two-sre)",
        "             \"to\": \"v41\"",
    ] {
        assert!(shown.contains(line), "{line}\n{shown}");
    }
    let bad = app
        .cli(
            "agent:deploy-bot",
            &["plan", "--steps", "/nonexistent.json"],
        )
        .output()
        .await
        .unwrap();
    assert_eq!(
        bad.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_shows_a_plan_as_numbered_steps_and_approves_it_as_one() {
    let app = spawn_app().await;
    let mut body = plan_body();
    body["steps"][2]["params"]["token"] = json!("ghp_0123456789abcdefghijklmnopqrstuvwxyz");
    let plan = app.agent().post("/v1/plans", body).await;
    assert_eq!(plan.state(), "pending", "{}", plan.body);
    let bob = crate::support::console::signed_in(&app, "bob").await;
    let page = bob.get(&format!("/console/requests/{}", plan.id())).await;
    assert_eq!(page.status, StatusCode::OK);
    let list = &page.body[page.body.find("plan-steps").expect("the steps")..];
    let first = list.find("db.export").unwrap();
    let second = list.find("db.query").unwrap();
    let third = list.find("infra.rollback").unwrap();
    assert!(first < second && second < third, "in order");
    assert!(
        list.contains("prod-export-needs-two"),
        "each step names its rule"
    );
    assert!(!page.body.contains("ghp_0123456789"), "masked");
    assert!(page.body.contains("1 value masked"), "says so");
    let csrf = page.field("csrf");
    let done = bob
        .post(
            &format!("/console/requests/{}/decide", plan.id()),
            &[
                ("csrf", &csrf),
                ("digest", &plan.digest()),
                ("decision", "approve"),
                ("comment", "read all three"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let votes = app.votes(&plan.id()).await;
    assert_eq!(votes[0]["channel"], "console");
}
