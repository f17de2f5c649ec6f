//! Suite checks for who may act: API keys stored by hash, and TOTP steps that are accepted at
//! most once (invariant 7: the audit log names the principal, never a key or its hash).

use super::{Backend, at, audit_log, principal_id};
use crate::StoreError;
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
        .totp_enroll(&bob, b"twenty byte secret!!", at(0))
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
        .totp_enroll(&bob, b"another secret", at(1))
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
}
