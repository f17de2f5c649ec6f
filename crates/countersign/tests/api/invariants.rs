//! One test per invariant of shared/DESIGN.md, named after it, driven over HTTP.

use crate::support::app::{big_export, spawn_app, spawn_app_with};
use reqwest::StatusCode;
use serde_json::json;

// Invariant 1 -------------------------------------------------------------------------------

#[tokio::test]
async fn no_self_approval_owner_requester_and_agents_cannot_vote() {
    let app = spawn_app().await;
    let r = app
        .agent()
        .submit("db.export", "postgres://prod/customers", big_export())
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.state(), "pending");
    let (id, digest) = (r.id(), r.digest());

    // alice owns the requesting agent: refused even though she is in sre.
    let v = app.approver("alice").vote(&id, "approve", &digest).await;
    assert_eq!(
        (v.status, v.code()),
        (StatusCode::FORBIDDEN, "self_approval")
    );
    // The requesting agent itself, and another agent that is in the right groups.
    let v = app.agent().vote(&id, "approve", &digest).await;
    assert_eq!(
        (v.status, v.code()),
        (StatusCode::FORBIDDEN, "agent_cannot_vote")
    );
    let v = app
        .as_("agent:helper-bot")
        .vote(&id, "approve", &digest)
        .await;
    assert_eq!(
        (v.status, v.code()),
        (StatusCode::FORBIDDEN, "agent_cannot_vote")
    );
    // Someone in no required group.
    let v = app.approver("frank").vote(&id, "approve", &digest).await;
    assert_eq!(
        (v.status, v.code()),
        (StatusCode::FORBIDDEN, "not_an_approver")
    );

    let now = app.agent().get(&format!("/v1/requests/{id}")).await;
    assert_eq!(now.state(), "pending");
    assert_eq!(now.body["votes"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn no_self_approval_a_person_in_two_groups_fills_one_slot() {
    let app = spawn_app().await;
    let r = app
        .agent()
        .submit("db.export", "postgres://prod/customers", big_export())
        .await;
    let (id, digest) = (r.id(), r.digest());
    // dana is in sre and security: her vote fills one slot, not both.
    let v = app.approver("dana").vote(&id, "approve", &digest).await;
    assert_eq!(v.status, StatusCode::OK);
    assert_eq!(v.state(), "pending");
    assert_eq!(v.body["remaining"].as_array().unwrap().len(), 1);
    // A second vote by dana is not a second person.
    let again = app.approver("dana").vote(&id, "approve", &digest).await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "already_voted")
    );
    // bob (sre) completes it: the matching moves dana to security.
    let v = app.approver("bob").vote(&id, "approve", &digest).await;
    assert_eq!(v.state(), "approved");
}

// Invariant 2 -------------------------------------------------------------------------------

#[tokio::test]
async fn approval_binds_digest_a_changed_byte_needs_a_new_approval() {
    let app = spawn_app().await;
    let agent = app.agent();
    let a = agent
        .submit(
            "db.export",
            "postgres://prod/customers",
            json!({"rows": 5000}),
        )
        .await;
    let b = agent
        .submit(
            "db.export",
            "postgres://prod/customers",
            json!({"rows": 5001}),
        )
        .await;
    assert_ne!(a.digest(), b.digest());
    // Voting on request b with a's digest is refused: the approver saw something else.
    let v = app
        .approver("bob")
        .vote(&b.id(), "approve", &a.digest())
        .await;
    assert_eq!(
        (v.status, v.code()),
        (StatusCode::CONFLICT, "digest_mismatch")
    );
    // Approve a fully.
    app.approver("bob")
        .vote(&a.id(), "approve", &a.digest())
        .await;
    let done = app
        .approver("carol")
        .vote(&a.id(), "approve", &a.digest())
        .await;
    assert_eq!(done.state(), "approved");
    let grant = done.body["grant"]["id"].as_str().unwrap().to_string();
    // The grant of a does not redeem for b's digest, and b is still pending.
    let r = agent
        .post(
            &format!("/v1/grants/{grant}/redeem"),
            json!({"digest": b.digest()}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "digest_mismatch")
    );
    assert_eq!(
        agent.get(&format!("/v1/requests/{}", b.id())).await.state(),
        "pending"
    );
}

#[tokio::test]
async fn approval_binds_digest_a_grant_redeems_once() {
    let app = spawn_app().await;
    let agent = app.agent();
    let r = agent
        .submit(
            "db.query",
            "postgres://prod/customers",
            json!({"readonly": true}),
        )
        .await;
    assert_eq!(r.state(), "approved", "{}", r.body);
    let grant = r.body["grant"]["id"].as_str().unwrap().to_string();
    let path = format!("/v1/grants/{grant}/redeem");
    // Someone else cannot redeem it.
    let other = app
        .approver("bob")
        .post(&path, json!({"digest": r.digest()}))
        .await;
    assert_eq!(
        (other.status, other.code()),
        (StatusCode::FORBIDDEN, "not_requester")
    );
    let first = agent.post(&path, json!({"digest": r.digest()})).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let second = agent.post(&path, json!({"digest": r.digest()})).await;
    assert_eq!(
        (second.status, second.code()),
        (StatusCode::CONFLICT, "grant_used")
    );
    assert_eq!(
        agent.get(&format!("/v1/requests/{}", r.id())).await.state(),
        "executed"
    );
}

// Invariant 3 -------------------------------------------------------------------------------

#[tokio::test]
async fn terminal_states_are_final() {
    let app = spawn_app().await;
    let r = app
        .agent()
        .submit("db.export", "postgres://prod/customers", big_export())
        .await;
    let (id, digest) = (r.id(), r.digest());
    let d = app
        .approver("carol")
        .post(
            &format!("/v1/requests/{id}/votes"),
            json!({"decision": "deny", "digest": digest, "comment": "not this week"}),
        )
        .await;
    assert_eq!(d.state(), "denied");
    for who in ["bob", "dana"] {
        let v = app.approver(who).vote(&id, "approve", &digest).await;
        assert_eq!(
            (v.status, v.code()),
            (StatusCode::CONFLICT, "request_closed")
        );
    }
    let c = app
        .agent()
        .post(&format!("/v1/requests/{id}/cancel"), json!({}))
        .await;
    assert_eq!(
        (c.status, c.code()),
        (StatusCode::CONFLICT, "request_closed")
    );
    assert_eq!(
        app.agent().get(&format!("/v1/requests/{id}")).await.state(),
        "denied"
    );
}

/// Hundreds of votes in parallel, approvals and denials mixed, plus duplicates: exactly one
/// decision, no vote counted after it, none counted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_votes_counted_once_first_decision_wins() {
    let crowd = 300;
    let app = spawn_app_with(crowd).await;
    let r = app
        .agent()
        .submit("test.crowd", "crowd://one", json!({}))
        .await;
    assert_eq!(r.state(), "pending", "{}", r.body);
    let (id, digest) = (r.id(), r.digest());
    let mut tasks = vec![];
    for i in 0..crowd {
        // Each person votes twice (a retried click); every 7th person denies.
        for _ in 0..2 {
            let who = app.as_(&format!("user:p{i}@example.com"));
            let (id, digest) = (id.clone(), digest.clone());
            let decision = if i % 7 == 3 { "deny" } else { "approve" };
            tasks.push(tokio::spawn(async move {
                who.vote(&id, decision, &digest).await
            }));
        }
    }
    let mut accepted = 0;
    for t in tasks {
        let v = t.await.unwrap();
        match v.status {
            StatusCode::OK => accepted += 1,
            StatusCode::CONFLICT => assert!(
                ["already_voted", "request_closed"].contains(&v.code()),
                "{}",
                v.body
            ),
            s => panic!("unexpected {s}: {}", v.body),
        }
    }
    let fin = app.agent().get(&format!("/v1/requests/{id}")).await;
    let votes = fin.body["votes"].as_array().unwrap();
    assert_eq!(
        votes.len(),
        accepted,
        "every accepted vote is recorded, once"
    );
    let mut people: Vec<&str> = votes
        .iter()
        .map(|v| v["approver"].as_str().unwrap())
        .collect();
    people.sort();
    people.dedup();
    assert_eq!(people.len(), votes.len(), "no person counted twice");
    // The decision came from the votes in order: either the third approval or the first deny.
    let approvals_before_close = votes.iter().filter(|v| v["decision"] == "approve").count();
    match fin.state() {
        "approved" => {
            assert_eq!(approvals_before_close, 3);
            assert!(votes.iter().all(|v| v["decision"] == "approve"));
        }
        "denied" => {
            assert!(approvals_before_close < 3);
            assert_eq!(votes.last().unwrap()["decision"], "deny");
        }
        s => panic!("unexpected final state {s}"),
    }
    let report = countersign_store::SqliteStore::open_read_only(&app.db_path())
        .await
        .unwrap();
    use countersign_store::Store as _;
    let entries = report.audit_entries(0, 100_000).await.unwrap();
    let closing: Vec<_> = entries
        .iter()
        .filter_map(|e| serde_json::from_slice::<serde_json::Value>(&e.bytes).ok())
        .filter(|e| {
            e["request"] == id.as_str()
                && (e["event"] == "request.approved" || e["event"] == "request.denied")
        })
        .collect();
    assert_eq!(closing.len(), 1, "exactly one decision is recorded");
}

// Invariant 5 -------------------------------------------------------------------------------

#[tokio::test]
async fn every_state_change_is_audited_and_the_log_verifies() {
    let app = spawn_app().await;
    let r = app
        .agent()
        .submit("db.export", "postgres://prod/customers", big_export())
        .await;
    let (id, digest) = (r.id(), r.digest());
    app.approver("bob").vote(&id, "approve", &digest).await;
    app.approver("carol").vote(&id, "approve", &digest).await;
    let store = countersign_store::SqliteStore::open_read_only(&app.db_path())
        .await
        .unwrap();
    use countersign_store::Store as _;
    let report = store.verify_audit().await.unwrap();
    assert!(
        report.first_bad.is_none(),
        "{:?}",
        report.first_bad.map(|f| f.problem)
    );
    let events: Vec<String> = store
        .audit_entries(0, 1000)
        .await
        .unwrap()
        .iter()
        .filter_map(|e| serde_json::from_slice::<serde_json::Value>(&e.bytes).ok())
        .filter(|e| e["request"] == id.as_str())
        .map(|e| {
            format!(
                "{} {}",
                e["event"].as_str().unwrap(),
                e["actor"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            "request.created agent:deploy-bot",
            "vote.cast user:bob@example.com",
            "vote.cast user:carol@example.com",
            "request.approved user:carol@example.com",
        ]
    );
}

// Invariant 6 -------------------------------------------------------------------------------

#[tokio::test]
async fn bad_input_changes_nothing() {
    let app = spawn_app().await;
    let agent = app.agent();
    let store = countersign_store::SqliteStore::open_read_only(&app.db_path())
        .await
        .unwrap();
    use countersign_store::Store as _;
    let before = store.verify_audit().await.unwrap().entries;

    let raw = |body: &'static str| {
        let agent = agent.clone();
        async move {
            let r = agent
                .http
                .post(format!("{}/v1/actions", agent.url))
                .bearer_auth(&agent.key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body: serde_json::Value = r.json().await.unwrap();
            (status, body["error"]["code"].as_str().unwrap().to_string())
        }
    };
    assert_eq!(
        raw("{not json").await,
        (StatusCode::BAD_REQUEST, "invalid_json".into())
    );
    assert_eq!(
        raw(r#"{"kind":"db.query","resource":"x","surprise":1}"#).await,
        (StatusCode::BAD_REQUEST, "invalid_body".into())
    );
    assert_eq!(
        raw(r#"{"kind":"db query","resource":"x"}"#).await,
        (StatusCode::BAD_REQUEST, "invalid_action".into())
    );
    assert_eq!(
        raw(r#"{"kind":"db.query","resource":"x","params":{"n":9007199254740993}}"#).await,
        (StatusCode::BAD_REQUEST, "imprecise_number".into())
    );
    let named = agent
        .post(
            "/v1/actions",
            json!({"kind": "db.query", "resource": "x", "requester": "user:bob@example.com"}),
        )
        .await;
    assert_eq!(
        (named.status, named.code()),
        (StatusCode::FORBIDDEN, "requester_not_allowed")
    );
    let huge = "x".repeat(300 * 1024);
    let big = agent
        .post(
            "/v1/actions",
            json!({"kind": "db.query", "resource": "x", "params": {"blob": huge}}),
        )
        .await;
    assert_eq!(
        (big.status, big.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );
    let unknown = agent.get("/v1/requests/req_nope").await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let bad_vote = app
        .approver("bob")
        .post(
            "/v1/requests/req_nope/votes",
            json!({"decision": "maybe", "digest": "x"}),
        )
        .await;
    assert_eq!(bad_vote.status, StatusCode::BAD_REQUEST);
    let no_key = reqwest::Client::new()
        .get(format!("{}/v1/requests", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), StatusCode::UNAUTHORIZED);
    let wrong_key = crate::support::app::As {
        key: "cs_not-a-real-key".into(),
        ..agent.clone()
    };
    let w = wrong_key.get("/v1/requests").await;
    assert_eq!(
        (w.status, w.code()),
        (StatusCode::UNAUTHORIZED, "invalid_key")
    );
    let bad_wait = agent.get("/v1/requests/req_x?wait=forever").await;
    assert_eq!(
        (bad_wait.status, bad_wait.code()),
        (StatusCode::BAD_REQUEST, "invalid_wait")
    );

    assert_eq!(
        store.verify_audit().await.unwrap().entries,
        before,
        "nothing was recorded"
    );
    let list = app.approver("bob").get("/v1/requests?state=all").await;
    assert_eq!(list.body["requests"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn policy_fails_closed_when_a_condition_errors() {
    let app = spawn_app().await;
    // reads-are-free reads params.readonly; without it the condition errors, and an error
    // never allows: the action is denied naming the rule.
    let r = app
        .agent()
        .submit("db.query", "postgres://prod/customers", json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.state(), "denied", "{}", r.body);
    assert_eq!(r.body["decision"]["rule"], "reads-are-free");
    assert!(
        r.body["decision"]["reason"]
            .as_str()
            .unwrap()
            .contains("reads-are-free")
    );
}

// Invariant 7 -------------------------------------------------------------------------------

#[tokio::test]
async fn secrets_are_stored_hashed_and_never_returned() {
    let app = spawn_app().await;
    let key = app.keys["agent:deploy-bot"].clone();
    let me = app.agent().get("/v1/whoami").await;
    assert_eq!(me.body["principal"]["id"], "agent:deploy-bot");
    assert!(!me.body.to_string().contains(&key));
    let r = app
        .agent()
        .submit("db.export", "postgres://prod/customers", big_export())
        .await;
    assert!(!r.body.to_string().contains(&key));
    // The database file holds no key in clear, only hashes.
    let mut bytes = std::fs::read(app.db_path()).unwrap();
    if let Ok(wal) = std::fs::read(app.db_path().with_extension("db-wal")) {
        bytes.extend(wal);
    }
    let needle = key.as_bytes();
    assert!(
        !bytes.windows(needle.len()).any(|w| w == needle),
        "a key is stored in clear"
    );
}
