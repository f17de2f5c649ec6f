//! Suite checks for who may act: API keys stored by hash, and TOTP steps that are accepted at
//! most once (invariant 7: the audit log names the principal, never a key or its hash).

use super::{Backend, at, audit_log, principal_id};
use crate::{FactorChangeKind, FactorProof, StoreError};
use std::sync::Arc;

pub async fn keys_map_hashes_to_principals(b: &dyn Backend) {
    let store = b.open().await;
    let bot = principal_id("agent:deploy-bot");
    let hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    assert_eq!(store.count_keys().await.unwrap(), 0);
    assert_eq!(store.principal_for_key(hash).await.unwrap(), None);
    store.create_key(hash, &bot, at(0)).await.unwrap();
    assert_eq!(
        store.principal_for_key(hash).await.unwrap(),
        Some(bot.clone())
    );
    assert_eq!(store.count_keys().await.unwrap(), 1);

    let again = store.create_key(hash, &bot, at(1)).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(store.count_keys().await.unwrap(), 1);

    let log = audit_log(&*store).await;
    assert_eq!(log.len(), 1, "the refused duplicate is not recorded");
    assert_eq!(log[0].event, "key.created");
    assert_eq!(log[0].data["principal"], "agent:deploy-bot");
    let text = serde_json::to_string(&log[0]).unwrap();
    assert!(!text.contains(hash), "the key hash never reaches the log");
}

pub async fn totp_use_step_refuses_reuse(b: &dyn Backend) {
    let store = b.open().await;
    let bob = principal_id("user:bob@example.com");
    assert_eq!(store.totp_get(&bob).await.unwrap(), None);
    assert!(matches!(
        store.totp_use_step(&bob, 1).await,
        Err(StoreError::NotFound)
    ));

    store
        .totp_enroll(
            &bob,
            b"twenty byte secret!!",
            FactorProof::FirstFactor,
            at(0),
        )
        .await
        .unwrap();
    let state = store.totp_get(&bob).await.unwrap().unwrap();
    assert_eq!(state.secret, b"twenty byte secret!!");
    assert_eq!(state.last_step, None);
    assert!(
        !format!("{state:?}").contains("twenty"),
        "Debug hides the secret"
    );

    assert!(store.totp_use_step(&bob, 100).await.unwrap());
    assert!(
        !store.totp_use_step(&bob, 100).await.unwrap(),
        "same step twice"
    );
    assert!(
        !store.totp_use_step(&bob, 99).await.unwrap(),
        "an earlier step"
    );
    assert!(store.totp_use_step(&bob, 101).await.unwrap());
    assert_eq!(
        store.totp_get(&bob).await.unwrap().unwrap().last_step,
        Some(101)
    );

    // Twenty tries of the same code at once: exactly one gets through.
    let tries: Vec<_> = (0..20)
        .map(|_| {
            let (store, bob) = (Arc::clone(&store), bob.clone());
            tokio::spawn(async move { store.totp_use_step(&bob, 200).await.unwrap() })
        })
        .collect();
    let mut accepted = 0;
    for t in tries {
        accepted += usize::from(t.await.unwrap());
    }
    assert_eq!(accepted, 1);

    // Re-enrolling replaces the secret and forgets the last step.
    store
        .totp_enroll(&bob, b"another secret", FactorProof::Totp, at(1))
        .await
        .unwrap();
    let state = store.totp_get(&bob).await.unwrap().unwrap();
    assert_eq!(
        (state.secret.as_slice(), state.last_step),
        (&b"another secret"[..], None)
    );
    assert!(store.totp_use_step(&bob, 50).await.unwrap());

    let log = audit_log(&*store).await;
    let enrolments: Vec<_> = log.iter().filter(|e| e.event == "mfa.enrolled").collect();
    assert_eq!(enrolments.len(), 2);
    assert_eq!(enrolments[0].actor, "user:bob@example.com");
    assert_eq!(enrolments[0].data["proof"], "first_factor");
    assert_eq!(enrolments[1].data["proof"], "totp");
    assert_eq!(enrolments[1].data["factor"], "totp");
}

/// Every change to a person's factors leaves a change row (for the console's banner) and an
/// audit entry; a reset removes every factor and its ceremonies, and the person can enrol anew.
pub async fn factor_changes_are_recorded_and_a_reset_removes_every_factor(b: &dyn Backend) {
    let store = b.open().await;
    let bob = principal_id("user:bob@example.com");
    let carol = principal_id("user:carol@example.com");
    store
        .totp_enroll(&bob, b"seed", FactorProof::FirstFactor, at(10))
        .await
        .unwrap();
    let key = crate::StoredPasskey {
        principal: bob.clone(),
        credential_id: "cred-bob".into(),
        passkey: "{}".into(),
        created_at: at(20),
        last_used_at: None,
    };
    store.passkey_enroll(&key, FactorProof::Totp).await.unwrap();
    store
        .totp_enroll(&carol, b"seed", FactorProof::FirstFactor, at(30))
        .await
        .unwrap();
    let ceremony = crate::Ceremony {
        id: "c-bob".into(),
        binding: crate::CeremonyBinding {
            principal: bob.clone(),
            kind: crate::CeremonyKind::Register,
            request_id: None,
            digest: None,
            decision: None,
        },
        state: "{}".into(),
        expires_at: at(1000),
    };
    store.ceremony_begin(&ceremony).await.unwrap();

    let changes = store.factor_changes(&bob, at(0)).await.unwrap();
    let kinds: Vec<_> = changes.iter().map(|c| (c.change, c.proof)).collect();
    assert_eq!(
        kinds,
        vec![
            (FactorChangeKind::TotpEnrolled, FactorProof::FirstFactor),
            (FactorChangeKind::PasskeyAdded, FactorProof::Totp)
        ]
    );
    assert_eq!(store.factor_changes(&bob, at(15)).await.unwrap().len(), 1);

    let removed = store.mfa_reset(&bob, "system", at(40)).await.unwrap();
    assert_eq!((removed.totp, removed.passkeys), (true, 1));
    assert_eq!(store.totp_get(&bob).await.unwrap(), None);
    assert!(store.passkeys(&bob).await.unwrap().is_empty());
    let taken = store
        .ceremony_take("c-bob", &ceremony.binding, at(50))
        .await
        .unwrap();
    assert!(taken.is_err(), "a ceremony begun before the reset is gone");
    assert!(store.totp_get(&carol).await.unwrap().is_some(), "only bob");

    let again = store.mfa_reset(&bob, "system", at(41)).await.unwrap();
    assert_eq!((again.totp, again.passkeys), (false, 0));
    store
        .totp_enroll(&bob, b"new seed", FactorProof::FirstFactor, at(60))
        .await
        .unwrap();
    let last = store.factor_changes(&bob, at(40)).await.unwrap();
    let kinds: Vec<_> = last.iter().map(|c| (c.change, c.actor.as_str())).collect();
    assert_eq!(
        kinds,
        vec![
            (FactorChangeKind::Reset, "system"),
            (FactorChangeKind::Reset, "system"),
            (FactorChangeKind::TotpEnrolled, "user:bob@example.com")
        ]
    );

    let log = audit_log(&*store).await;
    let resets: Vec<_> = log.iter().filter(|e| e.event == "mfa.reset").collect();
    assert_eq!(resets.len(), 2);
    assert_eq!(resets[0].actor, "system");
    assert_eq!(resets[0].data["principal"], "user:bob@example.com");
    assert_eq!(resets[0].data["totp"], true);
    assert_eq!(resets[0].data["passkeys"], 1);
}
