//! Slack, end to end: the real gateway talking to a fake Slack over Slack's protocol, clicks
//! arriving as signed interactivity requests.

use crate::support::app::{As, TestApp, spawn_app_in};
use crate::support::fake_slack::{self, FakeSlack, SIGNING_SECRET};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn world() -> (TestApp, FakeSlack) {
    let fake = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir, &fake_slack::config(&fake)).await;
    (app, fake)
}

/// Submits an action needing two SRE approvals and waits for its Slack message.
async fn pending_rollback(
    app: &TestApp,
    fake: &FakeSlack,
) -> (String, String, fake_slack::Message) {
    let params = json!({"to": "v41", "api_token": "xoxb-1234567890-secretvalue"});
    reviewed(
        &app.agent(),
        fake,
        "infra.rollback",
        "k8s://prod/api",
        params,
    )
    .await
}

/// `who` submits an action that needs review; waits for its message in #approvals.
async fn reviewed(
    who: &As,
    fake: &FakeSlack,
    kind: &str,
    resource: &str,
    params: Value,
) -> (String, String, fake_slack::Message) {
    let r = who.submit(kind, resource, params).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let (id, digest) = (r.id(), r.digest());
    let m = fake.posted("CAPPROVALS", &id).await;
    (id, digest, m)
}

async fn click(
    app: &TestApp,
    user: &str,
    action: &str,
    m: &fake_slack::Message,
) -> (StatusCode, String) {
    let body = fake_slack::form(&fake_slack::click_payload(user, action, m));
    fake_slack::send_signed(&app.url, &body, fake_slack::now(), SIGNING_SECRET).await
}

fn buttons(m: &fake_slack::Message) -> Vec<String> {
    m.blocks
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["action_id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn slack_message_shows_the_request_masks_secrets_and_has_buttons() {
    let (app, fake) = world().await;
    let (id, digest, m) = pending_rollback(&app, &fake).await;
    let blocks = m.blocks.to_string();
    assert!(blocks.contains("agent:deploy-bot"), "{blocks}");
    assert!(
        blocks.contains("user:alice@example.com"),
        "owner shown: {blocks}"
    );
    assert!(blocks.contains("infra.rollback") && blocks.contains("k8s://prod/api"));
    assert!(blocks.contains("rollback-needs-two-sre") && blocks.contains("2 of sre"));
    assert!(blocks.contains("v41"), "params shown");
    assert!(!blocks.contains("secretvalue"), "secret masked: {blocks}");
    assert!(
        blocks.contains(&format!("{id}|{digest}")),
        "buttons carry the digest shown"
    );
    assert_eq!(buttons(&m), ["approve", "deny", "open"]);
}

#[tokio::test]
async fn slack_message_is_updated_after_an_api_vote_and_closed_at_the_end() {
    let (app, fake) = world().await;
    let (id, digest, _) = pending_rollback(&app, &fake).await;
    let bob = app.as_("user:bob@example.com");
    assert_eq!(
        bob.vote(&id, "approve", &digest).await.status,
        StatusCode::OK
    );
    fake.wait_for("progress 1 of 2", |f| {
        f.message_for("CAPPROVALS", &id)
            .is_some_and(|m| m.blocks.to_string().contains("1 of 2 approvals"))
    })
    .await;
    // (Alice owns the agent, so she may not approve its requests.)
    let erin = app.as_("user:erin@example.com");
    assert_eq!(
        erin.vote(&id, "approve", &digest).await.status,
        StatusCode::OK
    );
    fake.wait_for("final state", |f| {
        f.message_for("CAPPROVALS", &id)
            .is_some_and(|m| m.text.contains("Approved"))
    })
    .await;
    let m = fake.message_for("CAPPROVALS", &id).unwrap();
    assert_eq!(buttons(&m), ["open"], "no live buttons once closed");
    assert!(m.blocks.to_string().contains("user:bob@example.com"));
    assert_eq!(
        fake.messages()
            .iter()
            .filter(|m| m.thread_ts.is_none())
            .count(),
        1,
        "one message, updated in place"
    );
}

#[tokio::test]
async fn slack_click_votes_as_the_verified_principal_and_wakes_the_agent() {
    let (app, fake) = world().await;
    let (id, _, m) = pending_rollback(&app, &fake).await;
    let agent = app.as_("agent:deploy-bot");
    let path = format!("/v1/requests/{id}?wait=20s");
    let waiting = tokio::spawn(async move { agent.get(&path).await });
    assert_eq!(click(&app, "UBOB", "approve", &m).await.0, StatusCode::OK);
    assert_eq!(click(&app, "UERIN", "approve", &m).await.0, StatusCode::OK);
    let done = waiting.await.unwrap();
    assert_eq!(done.state(), "approved", "{:?}", done.body);
    let v = app.votes(&id).await;
    assert_eq!(v.len(), 2);
    assert!(v.iter().all(|v| v["channel"] == "slack"));
}

#[tokio::test]
async fn slack_forged_signature_is_refused_and_changes_nothing() {
    let (app, fake) = world().await;
    let (id, _, m) = pending_rollback(&app, &fake).await;
    let body = fake_slack::form(&fake_slack::click_payload("UBOB", "approve", &m));
    let (status, text) =
        fake_slack::send_signed(&app.url, &body, fake_slack::now(), "not-the-secret").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(text.contains("invalid_signature"), "{text}");
    let (status, text) = fake_slack::send_raw(&app.url, &body, "abc", "v0=00").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(app.votes(&id).await.is_empty());
    let refused: Vec<Value> = app
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e["event"] == "callback.refused")
        .map(|e| e["data"]["code"].clone())
        .collect();
    assert_eq!(
        refused,
        [json!("invalid_signature"), json!("missing_signature")],
        "both refusals are recorded"
    );
}

#[tokio::test]
async fn slack_stale_timestamp_is_refused_even_when_correctly_signed() {
    let (app, fake) = world().await;
    let (id, _, m) = pending_rollback(&app, &fake).await;
    let body = fake_slack::form(&fake_slack::click_payload("UBOB", "approve", &m));
    let (status, text) =
        fake_slack::send_signed(&app.url, &body, fake_slack::now() - 6 * 60, SIGNING_SECRET).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(text.contains("stale_request"), "{text}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(app.votes(&id).await.is_empty());
}

#[tokio::test]
async fn slack_replayed_click_is_counted_once() {
    let (app, fake) = world().await;
    let (id, _, m) = pending_rollback(&app, &fake).await;
    let body = fake_slack::form(&fake_slack::click_payload("UBOB", "approve", &m));
    let ts = fake_slack::now();
    for _ in 0..3 {
        let (status, _) = fake_slack::send_signed(&app.url, &body, ts, SIGNING_SECRET).await;
        assert_eq!(status, StatusCode::OK);
    }
    // A second, freshly signed click by the same person is a second vote attempt: refused.
    fake_slack::send_signed(&app.url, &body, ts + 1, SIGNING_SECRET).await;
    fake.wait_for("the already-voted explanation", |f| {
        f.ephemerals().iter().any(|(_, u, _)| u == "UBOB")
    })
    .await;
    let v = app.votes(&id).await;
    assert_eq!(v.len(), 1, "{v:?}");
}

#[tokio::test]
async fn slack_unknown_or_ineligible_clicker_is_told_and_the_attempt_audited() {
    let (app, fake) = world().await;
    let (id, _, m) = pending_rollback(&app, &fake).await;
    click(&app, "UMALLORY", "approve", &m).await;
    click(&app, "UFRANK", "approve", &m).await;
    fake.wait_for("two explanations", |f| f.ephemerals().len() >= 2)
        .await;
    let e = fake.ephemerals();
    let mallory = e.iter().find(|(_, u, _)| u == "UMALLORY").unwrap();
    assert!(
        mallory.2.contains("not a Countersign approver"),
        "{mallory:?}"
    );
    let frank = e.iter().find(|(_, u, _)| u == "UFRANK").unwrap();
    assert!(frank.2.contains("not counted"), "{frank:?}");
    assert!(app.votes(&id).await.is_empty());
    let audit = app.audit_events().await;
    let refused: Vec<&Value> = audit
        .iter()
        .filter(|e| e["event"] == "vote.refused")
        .collect();
    assert_eq!(refused.len(), 2, "{audit:?}");
    assert!(
        refused
            .iter()
            .any(|e| e["data"]["code"] == "unknown_principal")
    );
    assert!(
        refused
            .iter()
            .any(|e| e["data"]["code"] == "not_an_approver")
    );
}

#[tokio::test]
async fn slack_self_approval_is_refused() {
    let (app, fake) = world().await;
    // Alice (sre) asks herself, then clicks Approve on her own request in Slack.
    let alice = app.approver("alice");
    let (id, _, m) = reviewed(&alice, &fake, "infra.rollback", "k8s://prod/web", json!({})).await;
    click(&app, "UALICE", "approve", &m).await;
    fake.wait_for("the explanation", |f| !f.ephemerals().is_empty())
        .await;
    assert!(
        fake.ephemerals()[0].2.contains("own"),
        "{:?}",
        fake.ephemerals()
    );
    assert!(app.votes(&id).await.is_empty());
}

#[tokio::test]
async fn slack_deny_asks_for_a_reason_then_denies() {
    let (app, fake) = world().await;
    let (id, _, m) = pending_rollback(&app, &fake).await;
    click(&app, "UBOB", "deny", &m).await;
    fake.wait_for("the reason modal", |f| !f.views().is_empty())
        .await;
    let (_, view) = fake.views().remove(0);
    assert!(
        app.votes(&id).await.is_empty(),
        "a click on Deny alone decides nothing"
    );
    let body = fake_slack::form(&fake_slack::deny_submission(
        "UBOB",
        &view,
        "not during the freeze",
    ));
    let (status, text) =
        fake_slack::send_signed(&app.url, &body, fake_slack::now(), SIGNING_SECRET).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let r = app
        .as_("user:dana@example.com")
        .get(&format!("/v1/requests/{id}"))
        .await;
    assert_eq!(r.state(), "denied");
    assert_eq!(r.body["votes"][0]["comment"], "not during the freeze");
    fake.wait_for("the denied message", |f| {
        f.message_for("CAPPROVALS", &id)
            .is_some_and(|m| m.text.contains("Denied"))
    })
    .await;
}

#[tokio::test]
async fn slack_rate_limit_is_honoured_and_the_notification_still_arrives() {
    let fake = FakeSlack::start().await;
    fake.throttle("chat.postMessage", 2);
    let app = spawn_app_in(tempfile::tempdir().unwrap(), &fake_slack::config(&fake)).await;
    let agent = app.as_("agent:deploy-bot");
    let id = agent
        .submit("infra.rollback", "k8s://prod/api", json!({}))
        .await
        .id();
    fake.wait_for("the message after two 429s", |f| {
        f.message_for("CAPPROVALS", &id).is_some()
    })
    .await;
    assert_eq!(fake.calls("chat.postMessage"), 3);
}

#[tokio::test]
async fn slack_message_stays_true_across_a_gateway_restart() {
    let fake = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let app = spawn_app_in(dir, &fake_slack::config(&fake)).await;
    let (id, digest, first) = pending_rollback(&app, &fake).await;
    let keys = app.keys.clone();
    let TestApp {
        dir, mut _running, ..
    } = app;
    _running.stop().await.unwrap();
    drop(_running);
    let app = crate::support::app::restart_in(dir, keys).await;
    assert_eq!(app.dir.path(), path);
    let bob = app.as_("user:bob@example.com");
    assert_eq!(
        bob.vote(&id, "approve", &digest).await.status,
        StatusCode::OK
    );
    fake.wait_for("the same message updated", |f| {
        f.message_for("CAPPROVALS", &id)
            .is_some_and(|m| m.ts == first.ts && m.blocks.to_string().contains("1 of 2 approvals"))
    })
    .await;
    assert_eq!(
        fake.messages()
            .iter()
            .filter(|m| m.thread_ts.is_none())
            .count(),
        1
    );
}

#[tokio::test]
async fn slack_signature_matches_the_python_slack_sdk() {
    // Cross-check our signing with Slack's own SDK (installed by .ci/run).
    let body = fake_slack::form(&json!({"type": "block_actions", "user": {"id": "U1"}}));
    let ts = fake_slack::now().to_string();
    let sig = countersign_channels::slack::signature::sign(
        SIGNING_SECRET.as_bytes(),
        &ts,
        body.as_bytes(),
    );
    let script = "import sys\nfrom slack_sdk.signature import SignatureVerifier\n\
        v = SignatureVerifier(sys.argv[1])\n\
        ok = v.is_valid(body=sys.stdin.read(), timestamp=sys.argv[2], signature=sys.argv[3])\n\
        sys.exit(0 if ok else 1)\n";
    let check = |sig: &str| {
        let mut child = std::process::Command::new("python3")
            .args(["-c", script, SIGNING_SECRET, &ts, sig])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("python3 with slack_sdk (pip install slack-sdk)");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(body.as_bytes())
            .unwrap();
        child.wait().unwrap().success()
    };
    assert!(check(&sig), "slack_sdk rejects our signature");
    let forged = format!("v0={}", "0".repeat(64));
    assert!(
        !check(&forged),
        "slack_sdk accepts anything: the check is broken"
    );
    // And our verifier accepts what the fake (written independently) signs.
    assert_eq!(fake_slack::sign(SIGNING_SECRET, &ts, &body), sig);
}

impl TestApp {
    /// The audit log as JSON entries (via the CLI's data source: the database file).
    pub async fn audit_events(&self) -> Vec<Value> {
        let db = self.dir.path().join("countersign.db");
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", db.display()))
            .await
            .unwrap();
        let rows: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT bytes FROM audit ORDER BY seq")
            .fetch_all(&pool)
            .await
            .unwrap();
        rows.into_iter()
            .map(|(b,)| serde_json::from_slice(&b).unwrap())
            .collect()
    }
}

#[tokio::test]
async fn slack_socket_mode_acks_clicks_and_reconnects_after_the_socket_drops() {
    use crate::support::fake_slack::{FakeSocket, SocketCommand};
    let fake = FakeSlack::start().await;
    let socket = FakeSocket::start(&fake).await;
    let config = format!(
        "channels:\n  slack:\n    bot_token: {}\n    app_token: {}\n    api_base_url: {}\n    notify: [\"#approvals\"]\n",
        fake_slack::BOT_TOKEN,
        fake_slack::APP_TOKEN,
        fake.url
    );
    let app = spawn_app_in(tempfile::tempdir().unwrap(), &config).await;
    let wait_connections = |n: u32| {
        let socket = &socket;
        async move {
            for _ in 0..200 {
                if socket.connections() >= n {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("no Socket Mode connection #{n}");
        }
    };
    wait_connections(1).await;
    let (id, _, m) = pending_rollback(&app, &fake).await;
    let envelope = |eid: &str, user: &str| {
        json!({"envelope_id": eid, "type": "interactive", "accepts_response_payload": true,
            "payload": fake_slack::click_payload(user, "approve", &m)})
    };
    socket
        .push
        .send(SocketCommand::Send(envelope("e1", "UBOB")))
        .unwrap();
    fake.wait_for("ack e1", |_| socket.acked("e1").is_some())
        .await;
    // Slack redelivers an envelope it thinks was lost: counted once.
    socket
        .push
        .send(SocketCommand::Send(envelope("e1", "UBOB")))
        .unwrap();
    // The network drops; the gateway reconnects by itself.
    socket.push.send(SocketCommand::Drop).unwrap();
    wait_connections(2).await;
    socket
        .push
        .send(SocketCommand::Send(envelope("e2", "UERIN")))
        .unwrap();
    fake.wait_for("ack e2", |_| socket.acked("e2").is_some())
        .await;
    fake.wait_for("the approved message", |f| {
        f.message_for("CAPPROVALS", &id)
            .is_some_and(|m| m.text.contains("Approved"))
    })
    .await;
    assert_eq!(app.votes(&id).await.len(), 2);
    // Slack asks for a refresh: a new connection is opened.
    socket
        .push
        .send(SocketCommand::Send(
            json!({"type": "disconnect", "reason": "refresh_requested"}),
        ))
        .unwrap();
    wait_connections(3).await;
    assert!(fake.world.lock().unwrap().socket_opens >= 3);
}

#[tokio::test]
async fn slack_reminds_in_the_thread_escalates_then_stops_when_decided() {
    let (app, fake) = world().await;
    let (id, digest, first) =
        reviewed(&app.agent(), &fake, "test.remind", "svc://x", json!({})).await;
    fake.wait_for("a reminder in the thread", |f| {
        f.messages().iter().any(|m| {
            m.thread_ts.as_deref() == Some(first.ts.as_str()) && m.text.contains("Reminder")
        })
    })
    .await;
    fake.wait_for("the escalation", |f| f.message_for("CLEADS", &id).is_some())
        .await;
    let bob = app.approver("bob");
    assert_eq!(
        bob.vote(&id, "approve", &digest).await.status,
        StatusCode::OK
    );
    fake.wait_for("both messages closed", |f| {
        ["CAPPROVALS", "CLEADS"].iter().all(|c| {
            f.message_for(c, &id)
                .is_some_and(|m| m.text.contains("Approved"))
        })
    })
    .await;
    let reminders = |f: &FakeSlack| {
        f.messages()
            .iter()
            .filter(|m| m.thread_ts.is_some())
            .count()
    };
    let after_close = reminders(&fake);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(reminders(&fake), after_close, "no reminders once decided");
}

#[tokio::test]
async fn slack_mfa_rule_shows_a_link_not_buttons_and_a_click_cannot_decide() {
    let (app, fake) = world().await;
    let (id, digest, m) = reviewed(
        &app.agent(),
        &fake,
        "iam.grant",
        "iam://prod/admin",
        json!({}),
    )
    .await;
    assert_eq!(buttons(&m), ["open_mfa"]);
    assert!(m.blocks.to_string().contains("/console/requests/"));
    // A crafted click (the button does not exist) is still only a vote without MFA: refused.
    let mut payload = fake_slack::click_payload("UCAROL", "approve", &m);
    payload["actions"][0]["value"] = json!(format!("{id}|{digest}"));
    let body = fake_slack::form(&payload);
    fake_slack::send_signed(&app.url, &body, fake_slack::now(), SIGNING_SECRET).await;
    fake.wait_for("the explanation", |f| !f.ephemerals().is_empty())
        .await;
    assert!(fake.ephemerals()[0].2.contains("not counted"));
    assert!(app.votes(&id).await.is_empty());
}

#[tokio::test]
async fn slack_message_deleted_in_slack_is_posted_again_while_pending() {
    let (app, fake) = world().await;
    let (id, digest, first) = pending_rollback(&app, &fake).await;
    fake.delete(&first.channel, &first.ts);
    let bob = app.approver("bob");
    assert_eq!(
        bob.vote(&id, "approve", &digest).await.status,
        StatusCode::OK
    );
    fake.wait_for("a new message with the progress", |f| {
        f.message_for("CAPPROVALS", &id)
            .is_some_and(|m| m.ts != first.ts && m.blocks.to_string().contains("1 of 2 approvals"))
    })
    .await;
    // Later changes update the new message.
    let erin = app.approver("erin");
    assert_eq!(
        erin.vote(&id, "approve", &digest).await.status,
        StatusCode::OK
    );
    fake.wait_for("the new message closed", |f| {
        f.message_for("CAPPROVALS", &id)
            .is_some_and(|m| m.text.contains("Approved"))
    })
    .await;
    assert_eq!(
        fake.messages()
            .iter()
            .filter(|m| m.thread_ts.is_none())
            .count(),
        1
    );
}

#[tokio::test]
async fn slack_bad_interaction_input_gets_a_clear_4xx_and_changes_nothing() {
    let (app, fake) = world().await;
    let (id, _, _) = pending_rollback(&app, &fake).await;
    let now = fake_slack::now();
    // Correctly signed, but not Slack's form.
    let (status, text) = fake_slack::send_signed(&app.url, "hello", now, SIGNING_SECRET).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("invalid_payload"), "{text}");
    let (status, text) =
        fake_slack::send_signed(&app.url, "payload=%7Bnot-json", now, SIGNING_SECRET).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("invalid_payload"), "{text}");
    // No signature headers at all.
    let r = reqwest::Client::new()
        .post(format!("{}/v1/channels/slack/interactions", app.url))
        .body("payload=%7B%7D")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.text().await.unwrap().contains("missing_signature"));
    assert!(app.votes(&id).await.is_empty());

    // A gateway without Slack answers 404 with a machine code.
    let plain = crate::support::app::spawn_app().await;
    let (status, text) =
        fake_slack::send_signed(&plain.url, "payload=%7B%7D", now, SIGNING_SECRET).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(text.contains("not_configured"), "{text}");
}

/// Where the rule allows standing approvals, the message offers one ("Approve for 30m (up to
/// 3)": 30 minutes and 20 uses, or less when the rule allows less); the click forms it.
#[tokio::test]
async fn slack_offers_a_standing_approval_where_the_rule_allows_it() {
    let fake = FakeSlack::start().await;
    let app = crate::support::app::spawn_app_configured(
        &crate::standing::policy(),
        &fake_slack::config(&fake),
    )
    .await;
    let (id, _, m) = reviewed(
        &app.agent(),
        &fake,
        "deploy.rollout",
        "svc://api",
        json!({"version": 1}),
    )
    .await;
    assert_eq!(buttons(&m), ["approve", "approve_standing", "deny", "open"]);
    assert!(
        m.blocks.to_string().contains("Approve for 30m (up to 3)"),
        "{}",
        m.blocks
    );
    assert_eq!(
        click(&app, "UBOB", "approve_standing", &m).await.0,
        StatusCode::OK
    );
    let agent = app.agent();
    let done = agent.get(&format!("/v1/requests/{id}?wait=10s")).await;
    assert_eq!(done.state(), "approved", "{}", done.body);
    assert_eq!(done.body["standing"]["uses"], 3, "{}", done.body);
    assert_eq!(done.body["votes"][0]["channel"], "slack");
    let covered = agent
        .submit("deploy.rollout", "svc://api", json!({"version": 2}))
        .await;
    assert_eq!(covered.state(), "approved", "{}", covered.body);
    assert!(covered.body["covered_by"]["standing"].is_string());
}
