//! Invariant: a second factor is replaced or added only with a current one. Someone holding a
//! person's API key or console session, but not their factor, cannot re-enrol TOTP or add a
//! passkey, whichever way they come in (API, CLI, console form, console passkey registration),
//! with no code, a wrong one, a reused one or one of a replaced secret; the person with a
//! current code can. Every change is audited and announced (console banner, Slack DM), and an
//! operator's local `countersign mfa reset` lets the person start again.

use crate::cli::BIN;
use crate::requests::{code, totp_secret};
use crate::support::app::{TestApp, spawn_app, spawn_app_in};
use crate::support::console::{Browser, signed_in};
use crate::support::fake_slack::{self, FakeSlack};
use countersign_store::Store;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::process::{Command, Output};

/// The audit entries of `event` (their data), read from the database file.
async fn audited(app: &TestApp, event: &str) -> Vec<(String, Value)> {
    let store = countersign_store::SqliteStore::open_read_only(&app.db_path())
        .await
        .unwrap();
    store
        .audit_entries(0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|e| serde_json::from_slice::<countersign_audit::AuditEntry>(&e.bytes).unwrap())
        .filter(|e| e.event == event)
        .map(|e| (e.actor, e.data))
        .collect()
}

fn secret_of(r: &crate::support::app::Resp) -> Vec<u8> {
    totp_secret(r.body["otpauth_uri"].as_str().expect("an otpauth URI"))
}

/// The otpauth URI on a console page that just enrolled.
fn page_secret(body: &str) -> Vec<u8> {
    let at = body.find("data-otpauth=\"").expect("the URI is shown") + "data-otpauth=\"".len();
    let rest = &body[at..];
    totp_secret(&rest[..rest.find('"').unwrap()].replace("&amp;", "&"))
}

#[tokio::test]
async fn factors_are_replaced_only_with_a_current_factor_over_the_api() {
    let app = spawn_app().await;
    let carol = app.approver("carol");
    // Trust on first use: no factor yet, the API key alone enrols the first one, with an
    // empty body as before.
    let first = app
        .http
        .post(format!("{}/v1/mfa/totp", app.url))
        .bearer_auth(&app.keys["user:carol@example.com"])
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let old = totp_secret(first["otpauth_uri"].as_str().unwrap());

    // Without a code, with a blank one, a wrong one, a malformed one: refused, nothing changes.
    for (body, want) in [
        (json!({}), "factor_required"),
        (json!({"otp": "  "}), "factor_required"),
        (json!({"otp": "000000"}), "mfa_invalid"),
        (json!({"otp": "12345x"}), "mfa_invalid"),
    ] {
        let r = carol.post("/v1/mfa/totp", body.clone()).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::FORBIDDEN, want),
            "{body}"
        );
    }
    let unknown = carol.post("/v1/mfa/totp", json!({"code": "1"})).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(audited(&app, "mfa.enrolled").await.len(), 1);

    // A code already used for a vote is not accepted again to replace the factor.
    let r = app
        .agent()
        .submit("iam.grant", "iam://prod/role/admin", json!({}))
        .await;
    let used = code(&old, 0);
    let vote = carol
        .post(
            &format!("/v1/requests/{}/votes", r.id()),
            json!({"decision": "approve", "digest": r.digest(), "otp": used}),
        )
        .await;
    assert_eq!(vote.status, StatusCode::OK, "{}", vote.body);
    let reused = carol.post("/v1/mfa/totp", json!({"otp": used})).await;
    assert_eq!(
        (reused.status, reused.code()),
        (StatusCode::FORBIDDEN, "mfa_reused")
    );

    // A current code replaces it; the old secret's codes are then worth nothing.
    let replaced = carol
        .post("/v1/mfa/totp", json!({"otp": code(&old, 1)}))
        .await;
    assert_eq!(replaced.status, StatusCode::CREATED, "{}", replaced.body);
    let new = secret_of(&replaced);
    assert_ne!(new, old);
    let stale = carol
        .post("/v1/mfa/totp", json!({"otp": code(&old, -1)}))
        .await;
    assert_eq!(stale.code(), "mfa_invalid");

    // Wrong codes on this path count toward the same limit as votes: after five, even a
    // current code waits.
    let wrong = carol.post("/v1/mfa/totp", json!({"otp": "999999"})).await;
    assert_eq!(wrong.code(), "mfa_invalid");
    let limited = carol
        .post("/v1/mfa/totp", json!({"otp": code(&new, 0)}))
        .await;
    assert_eq!(
        (limited.status, limited.code()),
        (StatusCode::TOO_MANY_REQUESTS, "mfa_rate_limited")
    );

    // Agents have no second factor to change.
    let agent = app.agent().post("/v1/mfa/totp", json!({})).await;
    assert_eq!(agent.code(), "people_only");

    let enrolled = audited(&app, "mfa.enrolled").await;
    let proofs: Vec<_> = enrolled
        .iter()
        .map(|(actor, d)| (actor.as_str(), d["factor"].clone(), d["proof"].clone()))
        .collect();
    assert_eq!(
        proofs,
        vec![
            (
                "user:carol@example.com",
                json!("totp"),
                json!("first_factor")
            ),
            ("user:carol@example.com", json!("totp"), json!("totp")),
        ],
        "each enrolment is audited with how it was proven; refusals are not"
    );
}

#[tokio::test]
async fn factors_are_replaced_only_with_a_current_factor_on_the_console_totp_form() {
    let app = spawn_app().await;
    let carol = signed_in(&app, "carol").await;
    let page = carol.get("/console/mfa").await;
    assert!(!page.body.contains("data-factor-changes"), "no change yet");
    assert!(
        !page.body.contains("name=\"otp\""),
        "no factor to confirm with"
    );
    let csrf = page.field("csrf");
    let first = carol.post("/console/mfa/totp", &[("csrf", &csrf)]).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let old = page_secret(&first.body);

    let page = carol.get("/console/mfa").await;
    assert!(page.body.contains("name=\"otp\""), "{}", page.body);
    for form in [
        vec![("csrf", csrf.as_str())],
        vec![("csrf", csrf.as_str()), ("otp", "")],
        vec![("csrf", csrf.as_str()), ("otp", "000000")],
        // A passkey ceremony that does not exist proves nothing either.
        vec![
            ("csrf", csrf.as_str()),
            ("ceremony", "made-up"),
            ("credential", "{}"),
        ],
    ] {
        let r = carol.post("/console/mfa/totp", &form).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{form:?}: {}", r.body);
        assert!(
            ["factor_required", "mfa_invalid", "webauthn_mismatch"].contains(&r.error_code()),
            "{form:?}: {}",
            r.error_code()
        );
        assert!(!r.body.contains("data-otpauth"), "no secret shown");
    }
    let r = carol.post("/console/mfa/totp", &[("csrf", &csrf)]).await;
    assert_eq!(r.error_code(), "factor_required");
    assert!(r.body.contains("confirm this change"), "{}", r.body);

    let good = code(&old, 0);
    let replaced = carol
        .post("/console/mfa/totp", &[("csrf", &csrf), ("otp", &good)])
        .await;
    assert_eq!(replaced.status, StatusCode::CREATED, "{}", replaced.body);
    assert_ne!(page_secret(&replaced.body), old);
    let again = carol
        .post("/console/mfa/totp", &[("csrf", &csrf), ("otp", &good)])
        .await;
    assert!(
        ["mfa_invalid", "mfa_reused"].contains(&again.error_code()),
        "{}",
        again.error_code()
    );

    // The person sees both changes on every page; someone else sees nothing of them.
    let inbox = carol.get("/console/").await;
    assert!(inbox.body.contains("data-factor-changes"), "{}", inbox.body);
    assert_eq!(
        inbox
            .body
            .matches("data-factor-change=\"totp_enrolled\"")
            .count(),
        2
    );
    let bob = signed_in(&app, "bob").await;
    assert!(
        !bob.get("/console/")
            .await
            .body
            .contains("data-factor-changes")
    );
    assert_eq!(audited(&app, "mfa.enrolled").await.len(), 2);
}

#[tokio::test]
async fn factors_are_replaced_only_with_a_current_factor_when_adding_a_passkey() {
    let app = spawn_app().await;
    // Bob has no factor: a passkey registration may begin on his session alone.
    let bob = signed_in(&app, "bob").await;
    let bob_csrf = bob.get("/console/mfa").await.field("csrf");
    let begun = bob
        .post("/console/mfa/passkeys/begin", &[("csrf", &bob_csrf)])
        .await;
    assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
    let ceremony = serde_json::from_str::<Value>(&begun.body).unwrap()["ceremony"]
        .as_str()
        .unwrap()
        .to_string();
    // ... but once he has enrolled another factor meanwhile, that first-factor ceremony cannot
    // add a passkey without proof.
    let totp = app.approver("bob").post("/v1/mfa/totp", json!({})).await;
    assert_eq!(totp.status, StatusCode::CREATED);
    let junk = json!({"id": "AAAA", "rawId": "AAAA", "type": "public-key", "extensions": {},
        "response": {"attestationObject": "AAAA", "clientDataJSON": "AAAA"}})
    .to_string();
    let late = bob
        .post(
            "/console/mfa/passkeys/finish",
            &[
                ("csrf", &bob_csrf),
                ("ceremony", &ceremony),
                ("credential", &junk),
            ],
        )
        .await;
    assert_eq!(
        (late.status, late.error_code()),
        (StatusCode::FORBIDDEN, "factor_required"),
        "{}",
        late.body
    );

    // Carol has a TOTP app: adding a passkey needs a current code from it.
    let carol_key = app.approver("carol");
    let secret = secret_of(&carol_key.post("/v1/mfa/totp", json!({})).await);
    let carol: Browser = signed_in(&app, "carol").await;
    let page = carol.get("/console/mfa").await;
    let csrf = page.field("csrf");
    assert!(page.body.contains("id=\"passkey-otp\""), "{}", page.body);
    for (form, want) in [
        (vec![("csrf", csrf.as_str())], "factor_required"),
        (
            vec![("csrf", csrf.as_str()), ("otp", "000000")],
            "mfa_invalid",
        ),
        (
            vec![
                ("csrf", csrf.as_str()),
                ("ceremony", "made-up"),
                ("credential", "{}"),
            ],
            "webauthn_mismatch",
        ),
    ] {
        let r = carol.post("/console/mfa/passkeys/begin", &form).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{form:?}: {}", r.body);
        assert_eq!(r.error_code(), want, "{form:?}");
    }
    // She has no passkey to confirm with.
    let confirm = carol.post("/console/mfa/confirm", &[("csrf", &csrf)]).await;
    assert_eq!(confirm.error_code(), "webauthn_not_enrolled");
    let ok = carol
        .post(
            "/console/mfa/passkeys/begin",
            &[("csrf", &csrf), ("otp", &code(&secret, 0))],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let options: Value = serde_json::from_str(&ok.body).unwrap();
    assert_eq!(options["options"]["publicKey"]["rp"]["id"], "localhost");
}

fn run(mut c: Command) -> Output {
    c.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `countersign mfa …` as `who` against `app`.
fn mfa(app: &TestApp, who: &str, args: &[&str]) -> Output {
    let mut c = Command::new(BIN);
    c.arg("mfa")
        .args(args)
        .env("COUNTERSIGN_URL", &app.url)
        .env("COUNTERSIGN_TOKEN", &app.keys[who]);
    run(c)
}

/// `countersign mfa reset PRINCIPAL --config` on `app`'s own configuration (local).
fn reset(app: &TestApp, principal: &str) -> Output {
    let mut c = Command::new(BIN);
    c.args(["mfa", "reset", principal, "--config"])
        .arg(app.dir.path().join("countersign.yaml"))
        .env_remove("COUNTERSIGN_CONFIG")
        .env("COUNTERSIGN_LOG", "warn");
    run(c)
}

// The binary runs blocking; the gateway (and the fake Slack) go on serving on other threads.
#[tokio::test(flavor = "multi_thread")]
async fn factors_are_replaced_only_with_a_current_factor_through_the_cli_and_reset_locally() {
    let app = spawn_app().await;
    let dana = "user:dana@example.com";
    let first = mfa(&app, dana, &["enroll"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let uri = text(&first.stdout);
    let secret = totp_secret(uri.trim());

    let again = mfa(&app, dana, &["enroll"]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("confirm this change"),
        "{}",
        text(&again.stderr)
    );
    let wrong = mfa(&app, dana, &["enroll", "--otp", "000000"]);
    assert!(!wrong.status.success());
    assert!(
        text(&wrong.stderr).contains("not valid"),
        "{}",
        text(&wrong.stderr)
    );
    let good = mfa(&app, dana, &["enroll", "--otp", &code(&secret, 0)]);
    assert!(good.status.success(), "{}", text(&good.stderr));
    assert!(text(&good.stdout).starts_with("otpauth://"));

    // The operator's reset: ids that are not a person, not canonical or unknown are refused
    // with a clear message and change nothing (ids are canonical: `user:Dana@…` is dana, so a
    // look-alike stands for the non-canonical one).
    for bad in [
        "nobody@example.com",
        "user:",
        "agent:deploy-bot",
        "user:d\u{212A}na@example.com",
        "user:nobody@example.com",
    ] {
        let r = reset(&app, bad);
        assert_eq!(r.status.code(), Some(2), "{bad}: {}", text(&r.stderr));
        assert!(!text(&r.stderr).trim().is_empty(), "{bad}: says why");
    }
    assert!(audited(&app, "mfa.reset").await.is_empty());

    let done = reset(&app, dana);
    assert!(done.status.success(), "{}", text(&done.stderr));
    assert!(
        text(&done.stdout).contains("reset the second factors of user:dana@example.com"),
        "{}",
        text(&done.stdout)
    );
    let resets = audited(&app, "mfa.reset").await;
    assert_eq!(resets.len(), 1);
    assert_eq!(resets[0].0, "system");
    assert_eq!(resets[0].1["principal"], dana);
    assert_eq!(resets[0].1["totp"], true);

    // After the reset the person enrols anew with their first factor alone.
    let anew = mfa(&app, dana, &["enroll"]);
    assert!(anew.status.success(), "{}", text(&anew.stderr));
    let proofs: Vec<_> = audited(&app, "mfa.enrolled")
        .await
        .into_iter()
        .map(|(_, d)| d["proof"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(proofs, ["first_factor", "totp", "first_factor"]);
}

// The binary runs blocking; the gateway (and the fake Slack) go on serving on other threads.
#[tokio::test(flavor = "multi_thread")]
async fn factor_changes_are_announced_to_the_person_on_slack() {
    let fake = FakeSlack::start().await;
    let config = format!(
        "channels:\n  slack:\n    bot_token: {}\n    signing_secret: {}\n    api_base_url: {}\n    notify: [\"#approvals\"]\n",
        fake_slack::BOT_TOKEN,
        fake_slack::SIGNING_SECRET,
        fake.url
    );
    let app = spawn_app_in(tempfile::tempdir().unwrap(), &config).await;
    let enrolled = app.approver("carol").post("/v1/mfa/totp", json!({})).await;
    assert_eq!(enrolled.status, StatusCode::CREATED);
    let dm = |f: &FakeSlack, needle: &str| {
        f.messages()
            .iter()
            .any(|m| m.channel == "DUCAROL" && m.text.contains(needle))
    };
    fake.wait_for("the enrolment DM", |f| {
        dm(f, "an authenticator app (one-time codes) was enrolled")
    })
    .await;
    assert!(
        fake.messages()
            .iter()
            .filter(|m| m.channel.starts_with('D'))
            .all(|m| m.channel == "DUCAROL"),
        "only the person is told"
    );

    let done = reset(&app, "user:carol@example.com");
    assert!(done.status.success(), "{}", text(&done.stderr));
    fake.wait_for("the reset DM", |f| {
        dm(f, "an operator removed all your second factors")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn factors_are_replaced_only_with_a_current_factor_when_the_current_one_is_a_passkey() {
    // Erin has only a passkey (stored here directly: a real one needs an authenticator, see
    // browser.rs). A code proves nothing for her, and no ceremony she did not begin does.
    let app = spawn_app().await;
    let erin = countersign_core::PrincipalId::parse("user:erin@example.com").unwrap();
    {
        let store = countersign_store::SqliteStore::open(&app.db_path())
            .await
            .unwrap();
        let passkey = countersign_store::StoredPasskey {
            principal: erin.clone(),
            credential_id: "cred-erin".into(),
            passkey: "{}".into(),
            created_at: chrono::Utc::now(),
            last_used_at: None,
        };
        store
            .passkey_enroll(&passkey, countersign_store::FactorProof::FirstFactor)
            .await
            .unwrap();
    }
    let api = app.approver("erin");
    for body in [json!({}), json!({"otp": "123456"})] {
        let r = api.post("/v1/mfa/totp", body.clone()).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::FORBIDDEN, "factor_required"),
            "{body}"
        );
    }
    let console = signed_in(&app, "erin").await;
    let page = console.get("/console/mfa").await;
    assert!(
        page.body
            .contains("data-confirm-begin=\"/console/mfa/confirm\""),
        "the page offers to confirm with a passkey: {}",
        page.body
    );
    let csrf = page.field("csrf");
    let forged = [
        ("csrf", csrf.as_str()),
        ("ceremony", "not-begun"),
        ("credential", "{}"),
    ];
    for path in ["/console/mfa/totp", "/console/mfa/passkeys/begin"] {
        let r = console.post(path, &forged).await;
        assert_eq!(
            (r.status, r.error_code()),
            (StatusCode::FORBIDDEN, "webauthn_mismatch"),
            "{path}"
        );
        let r = console.post(path, &[("csrf", &csrf)]).await;
        assert_eq!(r.error_code(), "factor_required", "{path}");
    }
    assert!(api.get("/v1/whoami").await.status.is_success());
    assert_eq!(
        audited(&app, "mfa.enrolled").await.len(),
        1,
        "only the stored passkey"
    );
}
