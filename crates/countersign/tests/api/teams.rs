//! Microsoft Teams, end to end: the real gateway talking to a fake Bot Connector over the Bot
//! Framework protocol, activities arriving signed as the Bot Connector signs them.

use crate::support::app::{As, TestApp, spawn_app_in};
use crate::support::fake_teams::{
    self, APP_PASSWORD, APPROVALS, FakeTeams, OTHER_CHANNEL, OTHER_TENANT, TEAM, TENANT,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A gateway with Teams, and the fake Bot Connector, without the bot installed anywhere.
async fn uninstalled() -> (TestApp, FakeTeams) {
    let fake = FakeTeams::start().await;
    let app = spawn_app_in(
        tempfile::tempdir().unwrap(),
        &fake_teams::config(&fake, APP_PASSWORD),
    )
    .await;
    (app, fake)
}

/// A gateway with Teams, the bot installed in the approvals channel's team.
async fn world() -> (TestApp, FakeTeams) {
    let (app, fake) = uninstalled().await;
    let (status, body) = fake.deliver(&app.url, &fake.installed(APPROVALS)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (app, fake)
}

/// `who` submits an action that needs review; waits for its card in the approvals channel.
async fn reviewed(
    who: &As,
    fake: &FakeTeams,
    kind: &str,
    resource: &str,
    params: Value,
) -> (String, String, fake_teams::Sent) {
    let r = who.submit(kind, resource, params).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let (id, digest) = (r.id(), r.digest());
    let card = fake.posted(APPROVALS, &id).await;
    (id, digest, card)
}

/// An action needing two SRE approvals, with a secret in its params; and its card.
async fn pending_rollback(app: &TestApp, fake: &FakeTeams) -> (String, String, fake_teams::Sent) {
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

async fn request(app: &TestApp, id: &str) -> Value {
    app.as_("user:dana@example.com")
        .get(&format!("/v1/requests/{id}"))
        .await
        .body
}

/// The card an invoke response carries for the clicker.
fn answered_card(status: StatusCode, body: &Value) -> Value {
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["statusCode"], 200, "{body}");
    assert_eq!(
        body["type"], "application/vnd.microsoft.card.adaptive",
        "{body}"
    );
    body["value"].clone()
}

/// The conversations the gateway keeps references of: (conversation, service URL, tenant).
async fn stored_conversations(app: &TestApp) -> Vec<(String, String, String)> {
    let db = app.db_path();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", db.display()))
        .await
        .unwrap();
    sqlx::query_as(
        "SELECT conversation, service_url, tenant FROM channel_conversations \
         WHERE channel = 'teams' ORDER BY conversation",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
}

fn execute_verbs(card: &Value) -> Vec<String> {
    fake_teams::actions(card)
        .into_iter()
        .filter(|(t, _)| t == "Action.Execute")
        .map(|(_, v)| v)
        .collect()
}

#[tokio::test]
async fn teams_card_shows_the_request_masks_secrets_and_has_execute_buttons() {
    let (app, fake) = world().await;
    let (id, digest, sent) = pending_rollback(&app, &fake).await;
    let card = sent.card();
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.5");
    let text = card.to_string();
    assert!(text.contains("agent:deploy-bot"), "{text}");
    assert!(
        text.contains("user:alice@example.com"),
        "owner shown: {text}"
    );
    assert!(text.contains("infra.rollback") && text.contains("k8s://prod/api"));
    assert!(text.contains("rollback-needs-two-sre") && text.contains("2 of sre"));
    assert!(text.contains("Expires"), "{text}");
    assert!(text.contains("v41"), "params shown");
    assert!(!text.contains("secretvalue"), "secret masked: {text}");
    assert_eq!(
        sent.actions(),
        [
            ("Action.Execute".to_string(), "approve".to_string()),
            ("Action.Execute".to_string(), "deny".to_string()),
            ("Action.OpenUrl".to_string(), "Open".to_string()),
        ]
    );
    let approve = &card["actions"][0]["data"];
    assert_eq!(approve["request"], id.as_str());
    assert_eq!(
        approve["digest"],
        digest.as_str(),
        "the buttons carry the digest shown"
    );
    assert_eq!(
        card["actions"][2]["url"],
        request(&app, &id).await["review_url"],
        "Open goes to the console"
    );
    assert!(
        sent.activity["summary"]
            .as_str()
            .unwrap()
            .contains("infra.rollback")
    );
    // The app token came from the token endpoint with the bot's credentials and scope.
    let world = fake.world.lock().unwrap();
    assert_eq!(world.tokens.len(), 1);
    assert_eq!(world.token_refusals, 0);
}

#[tokio::test]
async fn teams_click_approves_updates_the_card_for_everyone_and_wakes_the_agent() {
    let (app, fake) = world().await;
    let (id, _, sent) = pending_rollback(&app, &fake).await;
    let agent = app.agent();
    let path = format!("/v1/requests/{id}?wait=20s");
    let waiting = tokio::spawn(async move { agent.get(&path).await });

    let (status, body) = fake
        .deliver(&app.url, &fake.click("bob", "approve", sent.card(), None))
        .await;
    let card = answered_card(status, &body);
    assert!(card.to_string().contains("1 of 2 approvals"), "{card}");
    assert!(
        card.to_string()
            .contains("user:bob@example.com approved via teams")
    );
    assert_eq!(execute_verbs(&card), ["approve", "deny"], "still open");

    let (status, body) = fake
        .deliver(&app.url, &fake.click("erin", "approve", sent.card(), None))
        .await;
    let card = answered_card(status, &body);
    assert!(card.to_string().contains("Approved"), "{card}");
    assert!(
        execute_verbs(&card).is_empty(),
        "no live buttons once closed"
    );

    let done = waiting.await.unwrap();
    assert_eq!(done.state(), "approved", "{:?}", done.body);
    let v = app.votes(&id).await;
    assert_eq!(v.len(), 2);
    assert!(v.iter().all(|v| v["channel"] == "teams"), "{v:?}");
    // Everyone's card: the activity was replaced in the conversation.
    fake.wait_for("the card replaced with the final state", |f| {
        f.card_for(APPROVALS, &id)
            .is_some_and(|s| s.card().to_string().contains("Approved"))
    })
    .await;
    let now = fake.card_for(APPROVALS, &id).unwrap();
    assert_eq!(now.id, sent.id, "the same activity, updated in place");
    assert!(now.versions >= 2);
    assert_eq!(
        now.actions(),
        [("Action.OpenUrl".to_string(), "Open".to_string())]
    );
    assert!(now.card().to_string().contains("user:erin@example.com"));
    assert_eq!(
        fake.sent().iter().filter(|s| s.reply_to.is_none()).count(),
        1,
        "one card"
    );
    let world = fake.world.lock().unwrap();
    assert_eq!(world.tokens.len(), 1, "the app token is cached");
    assert!(world.member_lookups >= 2, "clickers were looked up");
}

#[tokio::test]
async fn teams_vote_through_the_api_updates_the_card() {
    let (app, fake) = world().await;
    let (id, digest, sent) = pending_rollback(&app, &fake).await;
    let bob = app.approver("bob");
    assert_eq!(
        bob.vote(&id, "approve", &digest).await.status,
        StatusCode::OK
    );
    fake.wait_for("progress 1 of 2", |f| {
        f.card_for(APPROVALS, &id).is_some_and(|s| {
            let t = s.card().to_string();
            t.contains("1 of 2 approvals") && t.contains("approved via api")
        })
    })
    .await;
    let erin = app.approver("erin");
    assert_eq!(erin.vote(&id, "deny", &digest).await.status, StatusCode::OK);
    fake.wait_for("the denied card", |f| {
        f.card_for(APPROVALS, &id)
            .is_some_and(|s| s.card().to_string().contains("Denied") && s.actions().len() == 1)
    })
    .await;
    assert_eq!(fake.card_for(APPROVALS, &id).unwrap().id, sent.id);
}

#[tokio::test]
async fn teams_deny_with_a_comment_denies_and_shows_it() {
    let (app, fake) = world().await;
    let (id, _, sent) = pending_rollback(&app, &fake).await;
    let click = fake.click("bob", "deny", sent.card(), Some("not during the freeze"));
    let (status, body) = fake.deliver(&app.url, &click).await;
    let card = answered_card(status, &body);
    assert!(card.to_string().contains("not during the freeze"), "{card}");
    let r = request(&app, &id).await;
    assert_eq!(r["state"], "denied");
    assert_eq!(r["votes"][0]["comment"], "not during the freeze");
}

#[tokio::test]
async fn teams_self_approval_is_refused() {
    let (app, fake) = world().await;
    // Alice (sre) asks, then clicks Approve on her own request in Teams.
    let alice = app.approver("alice");
    let (id, _, sent) =
        reviewed(&alice, &fake, "infra.rollback", "k8s://prod/web", json!({})).await;
    let (status, body) = fake
        .deliver(&app.url, &fake.click("alice", "approve", sent.card(), None))
        .await;
    let card = answered_card(status, &body);
    let text = card.to_string();
    assert!(
        text.contains("not counted") && text.contains("own"),
        "{text}"
    );
    assert_eq!(
        execute_verbs(&card),
        ["approve", "deny"],
        "others may still decide"
    );
    assert!(app.votes(&id).await.is_empty());
    let audit = app.audit_events().await;
    let refused: Vec<&Value> = audit
        .iter()
        .filter(|e| e["event"] == "vote.refused")
        .collect();
    assert_eq!(refused.len(), 1, "{audit:?}");
    assert_eq!(refused[0]["data"]["channel"], "teams");
    assert_eq!(refused[0]["data"]["code"], "self_approval");
    assert_eq!(refused[0]["data"]["principal"], "user:alice@example.com");
}

#[tokio::test]
async fn teams_unknown_or_ineligible_clicker_is_told_and_the_attempt_audited() {
    let (app, fake) = world().await;
    let (id, _, sent) = pending_rollback(&app, &fake).await;
    let (s, mallory) = fake
        .deliver(
            &app.url,
            &fake.click("mallory", "approve", sent.card(), None),
        )
        .await;
    let mallory = answered_card(s, &mallory).to_string();
    assert!(mallory.contains("not a Countersign approver"), "{mallory}");
    let (s, frank) = fake
        .deliver(&app.url, &fake.click("frank", "approve", sent.card(), None))
        .await;
    let frank = answered_card(s, &frank).to_string();
    assert!(frank.contains("not counted"), "{frank}");
    assert!(app.votes(&id).await.is_empty());
    let codes: Vec<Value> = app
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e["event"] == "vote.refused")
        .map(|e| e["data"]["code"].clone())
        .collect();
    assert_eq!(
        codes,
        [json!("unknown_principal"), json!("not_an_approver")]
    );
}

#[tokio::test]
async fn teams_retried_click_is_counted_once() {
    let (app, fake) = world().await;
    let (id, _, sent) = pending_rollback(&app, &fake).await;
    let click = fake.click("bob", "approve", sent.card(), None);
    for _ in 0..3 {
        let (status, body) = fake.deliver(&app.url, &click).await;
        answered_card(status, &body);
    }
    assert_eq!(app.votes(&id).await.len(), 1);
    let audit = app.audit_events().await;
    assert!(
        !audit.iter().any(|e| e["event"] == "vote.refused"),
        "{audit:?}"
    );
}

#[tokio::test]
async fn teams_mfa_card_has_no_live_decide_buttons_and_a_crafted_click_cannot_decide() {
    let (app, fake) = world().await;
    let (id, digest, sent) = reviewed(
        &app.agent(),
        &fake,
        "iam.grant",
        "iam://prod/admin",
        json!({}),
    )
    .await;
    assert_eq!(
        sent.actions(),
        [("Action.OpenUrl".to_string(), "Approve with MFA".to_string())]
    );
    assert_eq!(
        sent.card()["actions"][0]["url"],
        request(&app, &id).await["review_url"]
    );
    assert!(sent.card().to_string().contains("second factor"));
    // A crafted click (there is no such button) is only a vote without MFA: refused.
    let click = fake.click_with(
        "carol",
        "approve",
        json!({"request": id, "digest": digest}),
        None,
    );
    let (status, body) = fake.deliver(&app.url, &click).await;
    let card = answered_card(status, &body);
    assert!(card.to_string().contains("not counted"), "{card}");
    assert!(app.votes(&id).await.is_empty());
}

#[tokio::test]
async fn teams_conversation_update_stores_the_reference_and_cards_go_there() {
    let (app, fake) = uninstalled().await;
    let id = app
        .agent()
        .submit("infra.rollback", "k8s://prod/api", json!({}))
        .await
        .id();
    assert!(stored_conversations(&app).await.is_empty());
    assert!(
        fake.card_for(APPROVALS, &id).is_none(),
        "nowhere to post yet"
    );
    let (status, body) = fake.deliver(&app.url, &fake.installed(APPROVALS)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stored = stored_conversations(&app).await;
    let svc = fake.service_url.clone();
    assert_eq!(
        stored,
        [
            (APPROVALS.to_string(), svc.clone(), TENANT.to_string()),
            (TEAM.to_string(), svc, TENANT.to_string()),
        ]
    );
    // The pending request's card goes out once the conversation is known.
    fake.posted(APPROVALS, &id).await;
}

#[tokio::test]
async fn teams_card_stays_true_across_a_gateway_restart() {
    let (app, fake) = world().await;
    let (id, digest, first) = pending_rollback(&app, &fake).await;
    let keys = app.keys.clone();
    let TestApp {
        dir, mut _running, ..
    } = app;
    _running.stop().await.unwrap();
    drop(_running);
    let app = crate::support::app::restart_in(dir, keys).await;
    let bob = app.approver("bob");
    assert_eq!(
        bob.vote(&id, "approve", &digest).await.status,
        StatusCode::OK
    );
    fake.wait_for("the same card updated", |f| {
        f.card_for(APPROVALS, &id)
            .is_some_and(|s| s.id == first.id && s.card().to_string().contains("1 of 2 approvals"))
    })
    .await;
    assert_eq!(fake.sent().len(), 1);
}

#[tokio::test]
async fn teams_card_deleted_in_teams_is_posted_again_while_pending() {
    let (app, fake) = world().await;
    let (id, digest, first) = pending_rollback(&app, &fake).await;
    fake.delete(APPROVALS, &first.id);
    let bob = app.approver("bob");
    assert_eq!(
        bob.vote(&id, "approve", &digest).await.status,
        StatusCode::OK
    );
    fake.wait_for("a new card with the progress", |f| {
        f.card_for(APPROVALS, &id)
            .is_some_and(|s| s.id != first.id && s.card().to_string().contains("1 of 2 approvals"))
    })
    .await;
}

/// Sends bob's Approve click from a channel the gateway has not seen, with the token and
/// activity as `forge` makes them; checks it is refused with `status` and `code`, recorded,
/// and that nothing changed.
async fn refused(
    forge: impl FnOnce(&FakeTeams, &mut Value) -> Option<String>,
    status: StatusCode,
    code: &str,
) -> (TestApp, FakeTeams) {
    let (app, fake) = world().await;
    let (id, _, sent) = pending_rollback(&app, &fake).await;
    let before = stored_conversations(&app).await;
    let mut click = fake.click("bob", "approve", sent.card(), None);
    click["conversation"]["id"] = json!(OTHER_CHANNEL);
    click["channelData"]["channel"]["id"] = json!(OTHER_CHANNEL);
    let token = forge(&fake, &mut click);
    let (got, body) = fake_teams::send_to(&app.url, token.as_deref(), &click.to_string()).await;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert!(app.votes(&id).await.is_empty(), "no vote");
    assert_eq!(request(&app, &id).await["state"], "pending");
    assert_eq!(
        stored_conversations(&app).await,
        before,
        "no reference learnt"
    );
    let audit = app.audit_events().await;
    let recorded: Vec<&Value> = audit
        .iter()
        .filter(|e| e["event"] == "callback.refused")
        .collect();
    assert_eq!(recorded.len(), 1, "{audit:?}");
    assert_eq!(recorded[0]["data"]["channel"], "teams");
    assert_eq!(recorded[0]["data"]["code"], code);
    assert!(!audit.iter().any(|e| e["event"] == "vote.refused"));
    (app, fake)
}

/// A token with `edit` applied to the Bot Connector's claims.
fn token_with(fake: &FakeTeams, edit: impl FnOnce(&mut Value)) -> Option<String> {
    let mut claims = fake.claims();
    edit(&mut claims);
    Some(fake_teams::sign(
        fake_teams::KID,
        fake_teams::CONNECTOR_PEM,
        &claims,
    ))
}

#[tokio::test]
async fn teams_wrong_issuer_is_refused_and_changes_nothing() {
    refused(
        |f, _| token_with(f, |c| c["iss"] = json!("https://sts.windows.net/evil/")),
        StatusCode::UNAUTHORIZED,
        "wrong_issuer",
    )
    .await;
}

#[tokio::test]
async fn teams_wrong_audience_is_refused_and_changes_nothing() {
    refused(
        |f, _| token_with(f, |c| c["aud"] = json!("another-bot-app-id")),
        StatusCode::UNAUTHORIZED,
        "wrong_audience",
    )
    .await;
}

#[tokio::test]
async fn teams_expired_token_is_refused_and_changes_nothing() {
    // Expired six minutes ago: beyond the five minutes of skew.
    refused(
        |f, _| {
            token_with(f, |c| {
                c["nbf"] = json!(fake_teams::now() - 3600);
                c["exp"] = json!(fake_teams::now() - 360);
            })
        },
        StatusCode::UNAUTHORIZED,
        "token_expired",
    )
    .await;
}

#[tokio::test]
async fn teams_unknown_key_is_refused_after_fetching_the_keys_again() {
    let (_, fake) = refused(
        |f, _| {
            Some(fake_teams::sign(
                "never-published",
                fake_teams::CONNECTOR_PEM,
                &f.claims(),
            ))
        },
        StatusCode::UNAUTHORIZED,
        "unknown_key",
    )
    .await;
    assert_eq!(
        fake.world.lock().unwrap().key_fetches,
        2,
        "fetched at first use, and again for the unknown key"
    );
}

#[tokio::test]
async fn teams_forged_signature_is_refused_and_changes_nothing() {
    // The published key id, but signed by someone else's key.
    refused(
        |f, _| {
            Some(fake_teams::sign(
                fake_teams::KID,
                fake_teams::INTRUDER_PEM,
                &f.claims(),
            ))
        },
        StatusCode::UNAUTHORIZED,
        "invalid_signature",
    )
    .await;
}

#[tokio::test]
async fn teams_key_without_the_channels_endorsement_is_refused() {
    refused(
        |f, _| {
            f.publish("skype-only", fake_teams::CONNECTOR_PUB, &["skype"]);
            Some(fake_teams::sign(
                "skype-only",
                fake_teams::CONNECTOR_PEM,
                &f.claims(),
            ))
        },
        StatusCode::UNAUTHORIZED,
        "missing_endorsement",
    )
    .await;
}

#[tokio::test]
async fn teams_service_url_mismatch_is_refused_and_the_token_never_goes_there() {
    // The activity points the bot at another service (where its app token would be sent).
    let (_, fake) = refused(
        |f, a| {
            a["serviceUrl"] = json!("https://attacker.example/api/");
            Some(f.token())
        },
        StatusCode::UNAUTHORIZED,
        "service_url_mismatch",
    )
    .await;
    drop(fake);
    // And a token issued for another service does not vouch for this one.
    let (app, fake) = world().await;
    let mut claims = fake.claims();
    claims["serviceurl"] = json!("https://smba.trafficmanager.net/other/");
    let token = fake_teams::sign(fake_teams::KID, fake_teams::CONNECTOR_PEM, &claims);
    let (status, body) = fake_teams::send_to(
        &app.url,
        Some(&token),
        &fake.installed(OTHER_CHANNEL).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "service_url_mismatch");
}

#[tokio::test]
async fn teams_unlisted_tenant_is_refused_and_changes_nothing() {
    let (app, _) = refused(
        |f, a| {
            a["conversation"]["tenantId"] = json!(OTHER_TENANT);
            a["channelData"]["tenant"]["id"] = json!(OTHER_TENANT);
            Some(f.token())
        },
        StatusCode::FORBIDDEN,
        "tenant_not_allowed",
    )
    .await;
    let audit = app.audit_events().await;
    let e = audit
        .iter()
        .find(|e| e["event"] == "callback.refused")
        .unwrap();
    assert_eq!(
        e["data"]["tenants"],
        json!([OTHER_TENANT]),
        "the tenant is recorded"
    );
    assert_eq!(e["data"]["count"], 1);
}

#[tokio::test]
async fn teams_missing_token_is_refused_and_changes_nothing() {
    refused(|_, _| None, StatusCode::UNAUTHORIZED, "missing_token").await;
}

#[tokio::test]
async fn teams_rolled_over_key_is_fetched_and_a_skewed_token_is_accepted() {
    let (app, fake) = world().await;
    // The Bot Connector starts signing with a new key: the gateway fetches it on first sight.
    fake.publish("connector-key-2", fake_teams::INTRUDER_PUB, &["msteams"]);
    let mut claims = fake.claims();
    // Within the five minutes of skew on both ends.
    claims["nbf"] = json!(fake_teams::now() + 120);
    claims["exp"] = json!(fake_teams::now() - 120);
    let token = fake_teams::sign("connector-key-2", fake_teams::INTRUDER_PEM, &claims);
    let (status, body) = fake_teams::send_to(
        &app.url,
        Some(&token),
        &fake.installed(OTHER_CHANNEL).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        stored_conversations(&app)
            .await
            .iter()
            .any(|(c, _, _)| c == OTHER_CHANNEL)
    );
}

#[tokio::test]
async fn teams_bad_input_gets_a_clear_4xx_and_changes_nothing() {
    let (app, fake) = world().await;
    let (id, _, sent) = pending_rollback(&app, &fake).await;
    let token = fake.token();
    // Authenticated, but not an activity.
    let (status, body) = fake_teams::send_to(&app.url, Some(&token), "hello").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_activity", "{body}");
    let (status, body) = fake_teams::send_to(&app.url, Some(&token), "[1, 2]").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_activity", "{body}");
    // An activity this bot does not handle.
    let typing = fake.activity("typing", OTHER_CHANNEL, "bob");
    let (status, body) = fake.deliver(&app.url, &typing).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "unsupported_activity", "{body}");
    let mut other_invoke = fake.activity("invoke", OTHER_CHANNEL, "bob");
    other_invoke["name"] = json!("task/fetch");
    let (status, body) = fake.deliver(&app.url, &other_invoke).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "unsupported_activity", "{body}");
    // A click with an unknown verb, or without the request and digest: Universal Actions'
    // error answer.
    let mut odd = fake.click("bob", "approve", sent.card(), None);
    odd["value"]["action"]["verb"] = json!("refresh");
    odd["conversation"]["id"] = json!(OTHER_CHANNEL);
    let (status, body) = fake.deliver(&app.url, &odd).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["type"], "application/vnd.microsoft.error", "{body}");
    assert_eq!(body["value"]["code"], "unknown_verb");
    let empty = fake.click_with("bob", "approve", json!({}), None);
    let (status, body) = fake.deliver(&app.url, &empty).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["value"]["code"], "invalid_action_data", "{body}");
    // A token that is not a JWT.
    let (status, body) = fake_teams::send_to(&app.url, Some("not-a-jwt"), "{}").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "invalid_token", "{body}");
    assert!(app.votes(&id).await.is_empty());
    assert!(
        !stored_conversations(&app)
            .await
            .iter()
            .any(|(c, _, _)| c == OTHER_CHANNEL),
        "refused input taught nothing"
    );

    // A gateway without Teams answers 404 with a machine code.
    let plain = crate::support::app::spawn_app().await;
    let (status, body) = fake_teams::send_to(&plain.url, Some(&token), "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_configured", "{body}");
}

#[tokio::test]
async fn teams_wrong_app_password_gets_no_token_and_posts_nothing() {
    let fake = FakeTeams::start().await;
    let app = spawn_app_in(
        tempfile::tempdir().unwrap(),
        &fake_teams::config(&fake, "not-the-password"),
    )
    .await;
    let (status, _) = fake.deliver(&app.url, &fake.installed(APPROVALS)).await;
    assert_eq!(status, StatusCode::OK);
    app.agent()
        .submit("infra.rollback", "k8s://prod/api", json!({}))
        .await;
    fake.wait_for("a refused token request", |f| {
        f.world.lock().unwrap().token_refusals >= 1
    })
    .await;
    let world = fake.world.lock().unwrap();
    assert!(world.tokens.is_empty());
    assert!(world.calls.is_empty(), "nothing sent without a token");
}

/// Where the rule allows standing approvals, the card offers one; the click forms it; a
/// crafted click naming more than the rule allows is refused.
#[tokio::test]
async fn teams_offers_a_standing_approval_where_the_rule_allows_it() {
    let fake = FakeTeams::start().await;
    let app = crate::support::app::spawn_app_configured(
        &crate::standing::policy(),
        &fake_teams::config(&fake, APP_PASSWORD),
    )
    .await;
    let (status, body) = fake.deliver(&app.url, &fake.installed(APPROVALS)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (id, digest, sent) = reviewed(
        &app.agent(),
        &fake,
        "deploy.rollout",
        "svc://api",
        json!({"version": 1}),
    )
    .await;
    assert_eq!(
        execute_verbs(sent.card()),
        ["approve", "approve_standing", "deny"]
    );
    let crafted = fake.click_with(
        "bob",
        "approve_standing",
        json!({"request": id, "digest": digest, "standing": {"for": "1h", "uses": 50}}),
        None,
    );
    let (_, body) = fake.deliver(&app.url, &crafted).await;
    let refusal = body.to_string();
    assert!(
        refusal.contains("not counted") && refusal.contains("at most 3 uses"),
        "{refusal}"
    );
    let (status, body) = fake
        .deliver(
            &app.url,
            &fake.click("bob", "approve_standing", sent.card(), None),
        )
        .await;
    let card = answered_card(status, &body);
    assert!(card.to_string().contains("Approved"), "{card}");
    let done = request(&app, &id).await;
    assert_eq!(done["standing"]["uses"], 3, "{done}");
    let covered = app
        .agent()
        .submit("deploy.rollout", "svc://api", json!({"version": 2}))
        .await;
    assert_eq!(covered.state(), "approved", "{}", covered.body);
}
