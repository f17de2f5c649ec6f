//! Passkeys over HTTP, as far as no authenticator is needed: a ceremony begins with options
//! for this gateway as relying party, is bound to the person who began it, is used once
//! (a bad answer uses it up), and a passkey vote with an unknown or foreign ceremony is
//! refused with its code and changes nothing. The full ceremony with a real authenticator
//! (enrol, then approve an `mfa: true` request) runs in Chromium (`browser.rs`); binding to
//! request, digest and decision, single use and expiry are also checked on both stores by the
//! store suite.

use crate::support::app::spawn_app;
use crate::support::console::signed_in;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn a_passkey_registration_ceremony_is_bound_to_its_person_and_used_once() {
    let app = spawn_app().await;
    let carol = signed_in(&app, "carol").await;
    let page = carol.get("/console/mfa").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("data-passkey=\"register\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("You have no passkey yet."));
    let csrf = page.field("csrf");

    // Without the CSRF token nothing begins.
    let r = carol.post("/console/mfa/passkeys/begin", &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.error_code(), "csrf_invalid");

    let r = carol
        .post("/console/mfa/passkeys/begin", &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let begun: Value = serde_json::from_str(&r.body).unwrap();
    let ceremony = begun["ceremony"].as_str().unwrap().to_string();
    let pk = &begun["options"]["publicKey"];
    assert_eq!(
        pk["rp"]["id"], "localhost",
        "a loopback public_url is `localhost`"
    );
    assert!(pk["challenge"].as_str().unwrap().len() >= 43, "{pk}");
    assert_eq!(pk["user"]["name"], "carol@example.com");
    assert_eq!(pk["authenticatorSelection"]["userVerification"], "required");

    // Someone else cannot finish carol's ceremony; it stays hers.
    let bob = signed_in(&app, "bob").await;
    let bob_csrf = bob.get("/console/mfa").await.field("csrf");
    let junk = json!({"id": "AAAA", "rawId": "AAAA", "type": "public-key", "extensions": {},
        "response": {"attestationObject": "AAAA", "clientDataJSON": "AAAA"}})
    .to_string();
    let r = bob
        .post(
            "/console/mfa/passkeys/finish",
            &[
                ("csrf", &bob_csrf),
                ("ceremony", &ceremony),
                ("credential", &junk),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.error_code(), "webauthn_mismatch");

    // An answer that does not verify is refused, and uses the ceremony up.
    let finish = [
        ("csrf", csrf.as_str()),
        ("ceremony", &ceremony),
        ("credential", &junk),
    ];
    let r = carol.post("/console/mfa/passkeys/finish", &finish).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.error_code(), "webauthn_invalid");
    let r = carol.post("/console/mfa/passkeys/finish", &finish).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.error_code(), "webauthn_replayed");
    assert!(r.body.contains("already used"), "{}", r.body);

    let page = carol.get("/console/mfa").await;
    assert!(
        page.body.contains("You have no passkey yet."),
        "nothing was stored"
    );
}

#[tokio::test]
async fn a_passkey_vote_needs_a_passkey_and_its_own_ceremony_and_changes_nothing_otherwise() {
    let app = spawn_app().await;
    let r = app
        .agent()
        .submit("iam.grant", "iam://prod/roles/admin", json!({"user": "x"}))
        .await;
    let (id, digest) = (r.id(), r.digest());
    let carol = signed_in(&app, "carol").await;
    let page = carol.get(&format!("/console/requests/{id}")).await;
    assert!(
        !page.body.contains("Approve with passkey"),
        "no passkey, no passkey button"
    );
    let csrf = page.field("csrf");

    let r = carol
        .post(
            &format!("/console/requests/{id}/passkey"),
            &[
                ("csrf", &csrf),
                ("digest", &digest),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.error_code(), "webauthn_not_enrolled");

    // A forged or foreign ceremony id is refused before any signature is looked at.
    let path = format!("/console/requests/{id}/decide");
    let r = carol
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("digest", &digest),
                ("decision", "approve"),
                ("ceremony", "not-a-ceremony"),
                ("credential", "{}"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.error_code(), "webauthn_mismatch");
    assert!(r.body.contains("data-error-code=\"webauthn_mismatch\""));

    // A registration ceremony cannot stand in for a vote's.
    let begun = carol
        .post("/console/mfa/passkeys/begin", &[("csrf", &csrf)])
        .await;
    let ceremony = serde_json::from_str::<Value>(&begun.body).unwrap()["ceremony"]
        .as_str()
        .unwrap()
        .to_string();
    let r = carol
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("digest", &digest),
                ("decision", "approve"),
                ("ceremony", &ceremony),
                ("credential", "{}"),
            ],
        )
        .await;
    assert_eq!(r.error_code(), "webauthn_mismatch", "{}", r.body);
    let r = carol
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("digest", &digest),
                ("decision", "approve"),
                ("ceremony", &ceremony),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "half a passkey answer");
    assert_eq!(r.error_code(), "invalid_form");

    let v = app.approver("bob").get(&format!("/v1/requests/{id}")).await;
    assert_eq!(v.state(), "pending");
    assert!(
        v.body["votes"].as_array().unwrap().is_empty(),
        "{:?}",
        v.body
    );
}
