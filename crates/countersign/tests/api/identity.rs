//! One person, one identity; sessions are revocable. Person ids have one canonical form
//! (ASCII, lower case) whatever way a person signs in — config, API key, the identity
//! provider, the command line — so an owner cannot approve their own agent by signing in
//! another way and one person never fills two quorum slots; an address that is not plain ASCII
//! or not verified signs no one in. A console session ends for good when its person signs out
//! (every copy of the cookie) or their keys are revoked, and survives a restart otherwise.

use crate::console_oidc::{Idp, oidc_sign_in, start_idp};
use crate::support::app::{TestApp, free_port, restart_in, spawn_app, spawn_app_editing};
use crate::support::console::{Browser, Page, signed_in};
use reqwest::StatusCode;
use serde_json::json;

/// The test world, with alice (agent:deploy-bot's owner) and bob written in other cases, and
/// kim (an sre) added: the config's spelling must not matter.
fn mixed_case(text: String) -> String {
    text.replace(
        "owner: user:alice@example.com",
        "owner: User:Alice@Example.COM",
    )
    .replace("{id: user:alice@example.com", "{id: USER:alice@EXAMPLE.com")
    .replace(
        "{id: user:bob@example.com",
        "{id: user:kim@example.com, groups: [sre]}\n  - {id: user:Bob@Example.com",
    )
}

/// The mixed-case world on `port`, its console signing in through `idp` (as
/// `console_oidc::spawn_with_idp`), with `extra` console settings.
async fn mixed_case_with_idp(port: u16, idp: &Idp, extra: &str) -> TestApp {
    let issuer = idp.issuer.clone();
    let extra = extra.to_string();
    spawn_app_editing(move |text| {
        format!(
            "{}\npublic_url: http://127.0.0.1:{port}\nconsole:\n{extra}  oidc:\n    issuer: {issuer}\n    client_id: countersign\n    client_secret: test-client-secret\n",
            mixed_case(text).replace("listen: 127.0.0.1:0", &format!("listen: 127.0.0.1:{port}"))
        )
    })
    .await
}

/// A request of agent:deploy-bot that two distinct sre people must approve.
async fn rollback(app: &TestApp) -> (String, String) {
    let r = app
        .agent()
        .submit("infra.rollback", "k8s://prod/api", json!({"to": "v41"}))
        .await;
    assert_eq!(r.state(), "pending", "{:?}", r.body);
    (r.id(), r.digest())
}

async fn decide(b: &Browser, id: &str, digest: &str) -> Page {
    let csrf = b
        .get(&format!("/console/requests/{id}"))
        .await
        .field("csrf");
    b.post(
        &format!("/console/requests/{id}/decide"),
        &[("csrf", &csrf), ("digest", digest), ("decision", "approve")],
    )
    .await
}

async fn state_of(app: &TestApp, id: &str) -> serde_json::Value {
    app.approver("carol")
        .get(&format!("/v1/requests/{id}"))
        .await
        .body
}

#[tokio::test]
async fn owner_cannot_approve_own_agent_by_signing_in_another_way() {
    let port = free_port();
    let idp = start_idp(port, "{}").await;
    let app = mixed_case_with_idp(port, &idp, "  key_sign_in: true\n").await;
    let (id, digest) = rollback(&app).await;
    // The owner's key: its id is the canonical one, whatever the config wrote.
    assert!(app.keys.contains_key("user:alice@example.com"));
    let r = app.approver("alice").vote(&id, "approve", &digest).await;
    assert_eq!(r.code(), "self_approval", "{:?}", r.body);
    // The owner through the identity provider, in any case.
    for login in [
        "alice@example.com",
        "ALICE@example.com",
        "Alice@Example.COM",
    ] {
        let b = Browser::new(&app);
        let signed = oidc_sign_in(&b, &idp, login).await;
        assert_eq!(
            signed.status,
            StatusCode::SEE_OTHER,
            "{login}: {}",
            signed.body
        );
        let who = b.get("/console/").await;
        assert!(who.body.contains("user:alice@example.com"), "{login}");
        let r = decide(&b, &id, &digest).await;
        assert_eq!(r.error_code(), "self_approval", "{login}: {}", r.body);
    }
    // The owner through the key form too.
    let b = Browser::new(&app);
    let signed = b.sign_in(&app.keys["user:alice@example.com"]).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    assert_eq!(decide(&b, &id, &digest).await.error_code(), "self_approval");
    let v = state_of(&app, &id).await;
    assert_eq!(v["state"], "pending");
    assert_eq!(v["votes"].as_array().unwrap().len(), 0, "{v}");
}

#[tokio::test]
async fn one_person_fills_one_quorum_slot_whatever_the_case() {
    let port = free_port();
    let idp = start_idp(port, "{}").await;
    let app = mixed_case_with_idp(port, &idp, "").await;
    let (id, digest) = rollback(&app).await;
    // bob approves with his key (the config wrote him `user:Bob@Example.com`).
    let r = app.approver("bob").vote(&id, "approve", &digest).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // bob again, signed in through the provider under other spellings: not a second person.
    for login in ["bob@example.com", "BOB@EXAMPLE.COM", "Bob@example.com"] {
        let b = Browser::new(&app);
        assert_eq!(
            oidc_sign_in(&b, &idp, login).await.status,
            StatusCode::SEE_OTHER
        );
        let r = decide(&b, &id, &digest).await;
        assert_eq!(r.error_code(), "already_voted", "{login}: {}", r.body);
    }
    let v = state_of(&app, &id).await;
    assert_eq!(v["state"], "pending", "one person, one slot: {v}");
    assert_eq!(v["votes"].as_array().unwrap().len(), 1);
    // A second, distinct sre completes it; the vote is recorded under the canonical id.
    let kim = Browser::new(&app);
    assert_eq!(
        oidc_sign_in(&kim, &idp, "Kim@Example.com").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        decide(&kim, &id, &digest).await.status,
        StatusCode::SEE_OTHER
    );
    let v = state_of(&app, &id).await;
    assert_eq!(v["state"], "approved", "{v}");
    assert_eq!(v["votes"][0]["approver"], "user:bob@example.com");
    assert_eq!(v["votes"][1]["approver"], "user:kim@example.com");
}

#[tokio::test]
async fn person_ids_are_canonical_and_look_alike_or_unverified_emails_sign_no_one_in() {
    let port = free_port();
    let idp = start_idp(port, "{}").await;
    let app = mixed_case_with_idp(port, &idp, "").await;
    // Each of these would lower-case (Unicode rules) to, or look like, a configured person.
    for (login, code) in [
        ("\u{212A}im@example.com", "oidc_email_not_ascii"), // Kelvin sign K
        ("k\u{130}m@example.com", "oidc_email_not_ascii"),  // dotted capital I
        ("\u{FF4B}im@example.com", "oidc_email_not_ascii"), // fullwidth k
        ("kim@\u{FF45}xample.com", "oidc_email_not_ascii"), // fullwidth e
        ("ki\u{DF}@example.com", "oidc_email_not_ascii"),   // sharp s
        ("unverified-kim@example.com", "oidc_email_unverified"),
        ("noverified-kim@example.com", "oidc_email_unverified"),
        // `"true"` as a string is not a boolean: the token itself does not parse.
        ("stringverified-kim@example.com", "oidc_refused"),
    ] {
        let b = Browser::new(&app);
        let r = oidc_sign_in(&b, &idp, login).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{login}: {}", r.body);
        assert_eq!(r.error_code(), code, "{login}");
        assert!(
            r.set_cookie("countersign_session").is_none(),
            "{login}: nothing is set"
        );
        assert_eq!(b.get("/console/").await.status, StatusCode::SEE_OTHER);
    }
}

#[tokio::test]
async fn person_ids_are_canonical_at_every_entry_and_duplicates_are_refused_at_load() {
    let app = spawn_app_editing(mixed_case).await;
    // The owner written `User:Alice@Example.COM` is the person `USER:alice@EXAMPLE.com`.
    let (id, digest) = rollback(&app).await;
    let r = app.approver("alice").vote(&id, "approve", &digest).await;
    assert_eq!(r.code(), "self_approval", "{:?}", r.body);
    let who = app.approver("bob").get("/v1/whoami").await;
    assert_eq!(who.body["principal"]["id"], "user:bob@example.com");
    // The command line takes any spelling of an id and stores the canonical one.
    let config = app.dir.path().join("countersign.yaml");
    let out = std::process::Command::new(crate::cli::BIN)
        .args(["key", "create", "USER:Kim@Example.com", "--config"])
        .arg(&config)
        .current_dir(app.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let kim = app
        .http
        .get(format!("{}/v1/whoami", app.url))
        .bearer_auth(&key);
    let kim: serde_json::Value = kim.send().await.unwrap().json().await.unwrap();
    assert_eq!(kim["principal"]["id"], "user:kim@example.com", "{kim}");
    // A filter naming a requester in another case finds its requests.
    let bob = signed_in(&app, "bob").await;
    let all = bob
        .get("/console/?agent=Agent%3ADeploy-Bot&state=all")
        .await;
    let all = &all.body[all.body.find("All requests").unwrap()..];
    assert!(all.contains(&id), "{all}");
    // Two spellings of one person in the config are refused at load, naming both.
    for (a, b) in [
        ("user:bob@example.com", "user:BOB@example.com"),
        ("agent:deploy-bot", "Agent:Deploy-Bot"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(
            &path,
            format!("database: c.db\nprincipals:\n  - {{id: '{a}'}}\n  - {{id: '{b}'}}\n"),
        )
        .unwrap();
        let Err(e) = countersign_server::Config::load(Some(&path)) else {
            panic!("{a} and {b} were accepted together");
        };
        let e = e.to_string();
        assert!(e.contains(a) && e.contains(b), "{e}");
    }
}

#[tokio::test]
async fn sessions_are_revocable_a_copied_cookie_stops_working_after_sign_out() {
    let app = spawn_app().await;
    let bob = signed_in(&app, "bob").await;
    let laptop = signed_in(&app, "bob").await;
    // Someone copies the cookie of bob's first browser.
    let thief = Browser::new(&app);
    *thief.jar.lock().unwrap() = bob.jar.lock().unwrap().clone();
    assert_eq!(thief.get("/console/").await.status, StatusCode::OK);
    let csrf = bob.get("/console/").await.field("csrf");
    let out = bob.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
    // The copy no longer opens a page, a stream, or a form (with the old CSRF token).
    let page = thief.get("/console/").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(page.location().starts_with("/console/sign-in"));
    assert_eq!(
        thief.get("/console/events").await.status,
        StatusCode::UNAUTHORIZED
    );
    let (id, digest) = rollback(&app).await;
    let r = thief
        .post(
            &format!("/console/requests/{id}/decide"),
            &[
                ("csrf", &csrf),
                ("digest", &digest),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(r.error_code(), "no_session");
    assert_eq!(
        state_of(&app, &id).await["votes"].as_array().unwrap().len(),
        0
    );
    // bob's other browser goes on: one sign-out ends one session.
    assert_eq!(laptop.get("/console/").await.status, StatusCode::OK);
    assert_eq!(
        decide(&laptop, &id, &digest).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn sessions_are_revocable_by_revoking_the_persons_keys_and_survive_a_restart() {
    let app = spawn_app().await;
    let bob = signed_in(&app, "bob").await;
    let bob_too = signed_in(&app, "bob").await;
    let carol = signed_in(&app, "carol").await;
    let bob_key = app.keys["user:bob@example.com"].clone();
    // A restart keeps every session.
    let keys = app.keys.clone();
    let TestApp {
        dir, mut _running, ..
    } = app;
    _running.stop().await.unwrap();
    drop(_running);
    let app = restart_in(dir, keys).await;
    let moved = |b: &Browser| {
        let n = Browser::new(&app);
        *n.jar.lock().unwrap() = b.jar.lock().unwrap().clone();
        n
    };
    let (bob, bob_too, carol) = (moved(&bob), moved(&bob_too), moved(&carol));
    for b in [&bob, &bob_too, &carol] {
        assert_eq!(b.get("/console/").await.status, StatusCode::OK);
    }
    // An operator revokes bob's keys (any spelling of his id), from another process.
    let out = std::process::Command::new(crate::cli::BIN)
        .args(["key", "revoke", "user:BOB@example.com", "--config"])
        .arg(app.dir.path().join("countersign.yaml"))
        .current_dir(app.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("revoked 1 key(s) of user:bob@example.com"),
        "{said}"
    );
    assert!(said.contains("ended 2 console session(s)"), "{said}");
    // Every session of bob ends at once; carol's goes on.
    for b in [&bob, &bob_too] {
        let page = b.get("/console/").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert!(page.location().starts_with("/console/sign-in"));
    }
    assert_eq!(carol.get("/console/").await.status, StatusCode::OK);
    // The revoked key signs no one in again.
    let again = Browser::new(&app).sign_in(&bob_key).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED, "{}", again.body);
    assert_eq!(again.error_code(), "invalid_key");
    // The revocation is in the audit log.
    let log = app
        .http
        .get(format!("{}/v1/audit/entries?from=0&limit=1000", app.url))
        .bearer_auth(&app.keys["user:carol@example.com"])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(log.contains("key.revoked"), "{log}");
}

#[tokio::test]
async fn sessions_are_revocable_and_a_live_stream_ends_at_sign_out() {
    let app = spawn_app().await;
    let bob = signed_in(&app, "bob").await;
    let cookies = bob
        .jar
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let mut stream = app
        .http
        .get(format!("{}/console/events", app.url))
        .header(reqwest::header::COOKIE, cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let csrf = bob.get("/console/").await.field("csrf");
    let out = bob.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    // Something changes: the stream of the ended session says nothing more and ends.
    rollback(&app).await;
    let mut heard = String::new();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Some(chunk) = stream.chunk().await.unwrap() {
            heard.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream went on: {heard}");
    assert!(!heard.contains("event: change"), "{heard}");
}
