//! AuthZEN Authorization API 1.0 (issue 19): a policy enforcement point written from the spec
//! discovers the gateway, evaluates single and batch requests for its subjects, and a review
//! turns `true` once after approval. Named after the invariants in
//! `countersign_app::gateway::authzen` (once per approval) and `Directory::may_evaluate_for`
//! (a PEP asks only for whom it may).

use crate::support::app::{As, TestApp, free_port, spawn_app_from, write_world};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The policy the PEP's subjects are decided by: the interop "Todo" scenario's rules where they
/// map (reads are free, owners update their own todos, others may not), and reviews.
const POLICY: &str = r#"
version: 1
default: review
defaults:
  review: {approvers: [{group: sre, count: 1}], timeout: 30m, on_timeout: deny}
rules:
  - name: todos-are-read-freely
    match: {kind: ["can_read_todos", "can_read_user"]}
    effect: allow
  - name: owners-update-their-own
    match: {kind: ["can_update_todo", "can_delete_todo"], resource: "todo:*"}
    when: "'user:' + params.resource.ownerID == principal.id"
    effect: allow
  - name: only-owners-update
    match: {kind: ["can_update_todo", "can_delete_todo"]}
    effect: deny
    reason: Only a todo's owner may change it.
  - name: viewers-create-nothing
    match: {kind: "can_create_todo", principal: "user:beth@the-citadel.com"}
    effect: deny
    reason: Beth is a viewer.
  - name: quick-reviews
    match: {kind: "flush-cache"}
    effect: review
    review: {approvers: [{group: sre, count: 1}], timeout: 1s}
  - name: exports-may-be-amended
    match: {kind: "export"}
    effect: review
    review:
      approvers: [{group: sre, count: 1}, {group: security, count: 1}]
      amend: true
"#;

/// Two policy enforcement points: one for the agents, one for the todo app's people.
const PEPS: &str = "  - {id: pep:gateway, evaluates_for: [\"agent:*\"]}
  - {id: pep:todo, evaluates_for: [user:morty@the-citadel.com, user:Rick@the-citadel.com, \"user:beth*\"]}
  - {id: user:morty@the-citadel.com}
  - {id: user:rick@the-citadel.com}
  - {id: user:beth@the-citadel.com}
";

/// A gateway whose public URL is its address (so the discovery document names it), with
/// [`POLICY`] and [`PEPS`].
async fn spawn() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let config = write_world(&dir, 0);
    std::fs::write(dir.path().join("policy.yaml"), POLICY).unwrap();
    let port = free_port();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "listen: 127.0.0.1:0\n",
        &format!("listen: 127.0.0.1:{port}\npublic_url: http://127.0.0.1:{port}\n"),
    );
    std::fs::write(&config, format!("{text}{PEPS}")).unwrap();
    spawn_app_from(dir).await
}

/// A PEP written from the spec: it reads the PDP's metadata from the well-known URL built from
/// the PDP's identifier, refuses metadata naming another PDP (§9.2.3), and posts to the
/// endpoints the metadata gives, with an `X-Request-ID` it expects echoed.
struct Pep {
    who: As,
    evaluation: String,
    evaluations: String,
}

impl Pep {
    async fn discover(app: &TestApp, principal: &str) -> Pep {
        let pdp = app.url.clone();
        let meta: Value = app
            .http
            .get(format!("{pdp}/.well-known/authzen-configuration"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(meta["policy_decision_point"], pdp.as_str(), "{meta}");
        let endpoint = |name: &str| meta[name].as_str().expect(name).to_string();
        Pep {
            who: app.as_(principal),
            evaluation: endpoint("access_evaluation_endpoint"),
            evaluations: endpoint("access_evaluations_endpoint"),
        }
    }

    async fn post(&self, url: &str, body: Value) -> (StatusCode, Value) {
        let id = format!("rid-{}", rand_id());
        let r = self
            .who
            .http
            .post(url)
            .bearer_auth(&self.who.key)
            .header("X-Request-ID", &id)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok()),
            Some(id.as_str()),
            "the request id is echoed"
        );
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn evaluate(&self, body: Value) -> (StatusCode, Value) {
        self.post(&self.evaluation.clone(), body).await
    }

    /// An evaluation that must be answered (200): its decision.
    async fn decide(&self, body: Value) -> Value {
        let (status, answer) = self.evaluate(body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert!(answer["decision"].is_boolean(), "{answer}");
        answer
    }

    async fn batch(&self, body: Value) -> (StatusCode, Value) {
        self.post(&self.evaluations.clone(), body).await
    }
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn ask(subject: (&str, &str), action: &str, resource: (&str, &str)) -> Value {
    json!({
        "subject": {"type": subject.0, "id": subject.1},
        "action": {"name": action},
        "resource": {"type": resource.0, "id": resource.1},
        "context": {"ticket": "OPS-7"},
    })
}

fn deploy() -> Value {
    ask(("agent", "deploy-bot"), "deploy", ("service", "api"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_review_turns_true_once_per_approval_and_a_refusal_is_told_once() {
    let app = spawn().await;
    let pep = Pep::discover(&app, "pep:gateway").await;

    // Review: false, pending, with what the PEP needs to wait; people are asked once.
    let first = pep.decide(deploy()).await;
    assert_eq!(first["decision"], false, "{first}");
    let ctx = &first["context"];
    assert_eq!(ctx["state"], "pending", "{first}");
    let id = ctx["request_id"].as_str().unwrap().to_string();
    assert_eq!(
        ctx["review_url"],
        format!("{}/console/requests/{id}", app.url).as_str()
    );
    assert!(ctx["retry_after"].as_u64().unwrap() > 0);
    let again = pep.decide(deploy()).await;
    assert_eq!(again["context"]["request_id"], id.as_str(), "{again}");
    // Recorded as the agent's request, asked by the PEP, with the mapped action.
    let seen = app.approver("bob").get(&format!("/v1/requests/{id}")).await;
    assert_eq!(
        seen.body["requester"]["id"], "agent:deploy-bot",
        "{}",
        seen.body
    );
    assert_eq!(seen.body["action"]["kind"], "deploy");
    assert_eq!(seen.body["action"]["resource"], "service:api");
    assert_eq!(
        seen.body["action"]["params"],
        json!({"context": {"ticket": "OPS-7"}})
    );
    assert_eq!(seen.body["action"]["labels"]["authzen.pep"], "pep:gateway");

    // Approved: true once, then the same action is a new question.
    app.decide(&id, "approve").await;
    let permit = pep.decide(deploy()).await;
    assert_eq!(permit, json!({"decision": true}));
    let redeemed = app.approver("bob").get(&format!("/v1/requests/{id}")).await;
    assert_eq!(redeemed.state(), "executed", "{}", redeemed.body);
    let next = pep.decide(deploy()).await;
    assert_eq!(next["decision"], false);
    let second = next["context"]["request_id"].as_str().unwrap().to_string();
    assert_ne!(second, id, "an approval permits one evaluation");

    // Denied: false with the final state, once; then asked anew.
    app.decide(&second, "deny").await;
    let denied = pep.decide(deploy()).await;
    assert_eq!(denied["decision"], false);
    assert_eq!(denied["context"]["state"], "denied", "{denied}");
    assert_eq!(denied["context"]["request_id"], second.as_str());
    let third = pep.decide(deploy()).await;
    assert_eq!(third["context"]["state"], "pending", "{third}");
    assert_ne!(third["context"]["request_id"], second.as_str());

    // Nobody decided in time: expired, told once.
    let flush = ask(("agent", "deploy-bot"), "flush-cache", ("cache", "edge"));
    let waiting = pep.decide(flush.clone()).await;
    assert_eq!(waiting["context"]["state"], "pending", "{waiting}");
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let expired = pep.decide(flush.clone()).await;
    assert_eq!(expired["context"]["state"], "expired", "{expired}");
    assert_eq!(
        expired["context"]["request_id"],
        waiting["context"]["request_id"]
    );
    crate::support::app::assert_log_intact(&app).await;
}

/// An approval covers exactly the action shown: one a reviewer amended is never permitted as
/// the PEP first asked it.
#[tokio::test(flavor = "multi_thread")]
async fn an_amended_review_is_not_permitted_as_first_asked() {
    let app = spawn().await;
    let pep = Pep::discover(&app, "pep:gateway").await;
    let mut export = ask(("agent", "deploy-bot"), "export", ("table", "customers"));
    export["resource"]["properties"] = json!({"rows": 5000});
    let pending = pep.decide(export.clone()).await;
    let id = pending["context"]["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let carol = app.as_("user:carol@example.com");
    let amended = carol
        .post(
            &format!("/v1/requests/{id}/amend"),
            json!({"params": {"resource": {"rows": 100}, "context": {"ticket": "OPS-7"}},
                   "comment": "100 rows are enough"}),
        )
        .await;
    assert_eq!(amended.status, StatusCode::OK, "{}", amended.body);
    app.decide(&id, "approve").await;
    let approved = app.approver("bob").get(&format!("/v1/requests/{id}")).await;
    assert_eq!(approved.state(), "approved", "{}", approved.body);
    let answer = pep.decide(export.clone()).await;
    assert_eq!(answer["decision"], false, "{answer}");
    assert_eq!(answer["context"]["state"], "amended", "{answer}");
    let unused = app.approver("bob").get(&format!("/v1/requests/{id}")).await;
    assert_eq!(unused.state(), "approved", "the grant is not redeemed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pep_may_evaluate_only_for_the_subjects_config_names() {
    let app = spawn().await;
    let pep = Pep::discover(&app, "pep:gateway").await;
    let before = app.audit_entries().await.len();
    for (subject, status, code) in [
        (
            ("user", "morty@the-citadel.com"),
            403,
            "subject_not_allowed",
        ),
        (("user", "alice@example.com"), 403, "subject_not_allowed"),
        (("agent", "nobody"), 403, "unknown_subject"),
        (("identity", "deploy-bot"), 400, "invalid_subject"),
        (("pep", "gateway"), 400, "invalid_subject"),
        (("agent", "Deploy Bot"), 400, "invalid_subject"),
    ] {
        let (s, body) = pep
            .evaluate(ask(subject, "can_read_todos", ("todo", "1")))
            .await;
        assert_eq!(
            (s.as_u16(), body["error"]["code"].as_str()),
            (status, Some(code)),
            "{subject:?}: {body}"
        );
    }
    // Not a PEP at all: an agent, a person, or another PEP for its own subjects' outsiders.
    for who in ["agent:deploy-bot", "user:bob@example.com", "pep:todo"] {
        let other = Pep::discover(&app, who).await;
        let (s, body) = other
            .evaluate(ask(
                ("agent", "deploy-bot"),
                "can_read_todos",
                ("todo", "1"),
            ))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{who}: {body}");
        assert_eq!(body["error"]["code"], "subject_not_allowed", "{who}");
    }
    // No key: 401 naming the scheme.
    let r = app
        .http
        .post(format!("{}/access/v1/evaluation", app.url))
        .json(&deploy())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key("www-authenticate"));
    // A PEP never requests in its own name; nobody forges the label naming one.
    let own = app
        .as_("pep:gateway")
        .submit("db.query", "x", json!({"readonly": true}))
        .await;
    assert_eq!(
        (own.status, own.code()),
        (StatusCode::FORBIDDEN, "pep_cannot_request")
    );
    let forged = app
        .agent()
        .post(
            "/v1/actions",
            json!({"kind": "deploy", "resource": "service:api",
                   "labels": {"authzen.pep": "pep:gateway"}}),
        )
        .await;
    assert_eq!(forged.code(), "reserved_label", "{}", forged.body);
    assert_eq!(
        app.audit_entries().await.len(),
        before,
        "refusals record nothing"
    );
    // A batch answers each item: the one it may not ask about is false with its error.
    let (s, body) = pep
        .batch(json!({
            "action": {"name": "can_read_todos"},
            "resource": {"type": "todo", "id": "1"},
            "evaluations": [
                {"subject": {"type": "agent", "id": "deploy-bot"}},
                {"subject": {"type": "user", "id": "rick@the-citadel.com"}},
                {"subject": {"type": "agent", "id": "helper-bot"}},
            ],
        }))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let answers = body["evaluations"].as_array().unwrap();
    assert_eq!(answers.len(), 3, "{body}");
    assert_eq!(answers[0], json!({"decision": true}));
    assert_eq!(answers[1]["decision"], false);
    assert_eq!(answers[1]["context"]["error"]["status"], 403);
    assert_eq!(
        answers[1]["context"]["error"]["code"],
        "subject_not_allowed"
    );
    assert_eq!(answers[2], json!({"decision": true}));
}

/// The interop "Todo" scenario's pairs, where they map: its subjects are people of the todo
/// app (here by address, as Countersign names people), its actions and resources as given.
#[tokio::test(flavor = "multi_thread")]
async fn the_interop_todo_pairs_are_decided_as_the_scenario_expects() {
    let app = spawn().await;
    let pep = Pep::discover(&app, "pep:todo").await;
    let morty = json!({"type": "user", "id": "morty@the-citadel.com"});
    // todo-1.0-id: Morty updates his own todo (true); another owner's (false).
    let own = json!({"subject": morty, "action": {"name": "can_update_todo"},
        "resource": {"type": "todo", "id": "7240d0db-8ff0-41ec-98b2-34a096273b9f",
                     "properties": {"ownerID": "morty@the-citadel.com"}},
        "context": {}});
    assert_eq!(pep.decide(own.clone()).await, json!({"decision": true}));
    let mut theirs = own.clone();
    theirs["resource"]["properties"]["ownerID"] = json!("rick@the-citadel.com");
    let refused = pep.decide(theirs).await;
    assert_eq!(refused["decision"], false);
    assert_eq!(refused["context"]["state"], "denied", "{refused}");
    // decisions-authorization-api-1_0-02 evaluation[27]: Beth, a viewer, creates (false).
    let beth = pep
        .decide(
            json!({"subject": {"type": "user", "id": "beth@the-citadel.com"},
            "action": {"name": "can_create_todo"}, "resource": {"type": "todo", "id": "todo-1"}}),
        )
        .await;
    assert_eq!(beth["decision"], false, "{beth}");

    // todo-1.1 (batch): the placeholder top-level resource is replaced by each item's.
    let batch = |semantic: Option<&str>| {
        let mut b = json!({
            "subject": morty, "action": {"name": "can_update_todo"},
            "resource": {}, "context": {},
            "evaluations": [
                {"resource": {"type": "todo", "id": "7240d0db-8ff0-41ec-98b2-34a096273b9f",
                              "properties": {"ownerID": "rick@the-citadel.com"}}},
                {"resource": {"type": "todo", "id": "7240d0db-8ff0-41ec-98b2-34a096273b9e",
                              "properties": {"ownerID": "morty@the-citadel.com"}}},
            ],
        });
        if let Some(s) = semantic {
            b["options"] = json!({"evaluations_semantic": s});
        }
        b
    };
    let decisions = |body: &Value| -> Vec<bool> {
        body["evaluations"]
            .as_array()
            .unwrap_or_else(|| panic!("{body}"))
            .iter()
            .map(|d| d["decision"].as_bool().unwrap())
            .collect()
    };
    for (semantic, expected) in [
        (None, vec![false, true]),
        (Some("execute_all"), vec![false, true]),
        (Some("deny_on_first_deny"), vec![false]),
        (Some("permit_on_first_permit"), vec![false, true]),
    ] {
        let (s, body) = pep.batch(batch(semantic)).await;
        assert_eq!(s, StatusCode::OK, "{semantic:?}: {body}");
        assert_eq!(decisions(&body), expected, "{semantic:?}: {body}");
    }
    // The first permit ends a batch that asks for it.
    let mut b = batch(Some("permit_on_first_permit"));
    b["evaluations"].as_array_mut().unwrap().reverse();
    assert_eq!(decisions(&pep.batch(b).await.1), vec![true]);
    // No evaluations: a single evaluation's answer.
    let (_, single) = pep.batch(own).await;
    assert_eq!(single, json!({"decision": true}));
}

/// Out of shape is a 400 and nothing is asked: a required member missing (in the evaluation
/// and as the batch's default), an unknown semantic, too many evaluations, not JSON.
#[tokio::test(flavor = "multi_thread")]
async fn an_evaluation_out_of_shape_is_a_400_and_asks_nothing() {
    let app = spawn().await;
    let pep = Pep::discover(&app, "pep:gateway").await;
    let before = app.audit_entries().await.len();
    let mut no_action = deploy();
    no_action.as_object_mut().unwrap().remove("action");
    let (s, body) = pep.evaluate(no_action.clone()).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_body"))
    );
    for bad in [
        json!({"context": {}, "evaluations": [deploy(), no_action]}),
        json!({"subject": {"type": "agent", "id": "deploy-bot"}, "evaluations": [
            {"action": {"name": "deploy"}, "resource": {"type": "service", "id": "api"}}],
            "options": {"evaluations_semantic": "first_wins"}}),
        json!({"evaluations": vec![deploy(); 101]}),
        json!({"evaluations": {"a": deploy()}}),
        json!([deploy()]),
    ] {
        let (s, body) = pep.batch(bad.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["error"]["message"].as_str().is_some(), "{body}");
    }
    assert_eq!(app.audit_entries().await.len(), before, "nothing was asked");
}
