//! Suite checks for revocable console sessions (invariant: sessions are revocable): a session
//! is one row, ended by its own sign-out without touching the person's other sessions, ended
//! with every other session of the person when their keys are revoked (recorded once), and
//! kept across a restart.

use super::{Backend, at, audit_log, principal_id};
use crate::{ConsoleSession, StoreError};

fn session(id_hash: &str, who: &str, via: &str, from: i64, until: i64) -> ConsoleSession {
    ConsoleSession {
        id_hash: id_hash.into(),
        principal: principal_id(who),
        via: via.into(),
        created_at: at(from),
        expires_at: at(until),
    }
}

pub async fn sessions_are_revocable_one_by_one_and_with_the_keys(b: &dyn Backend) {
    let store = b.open().await;
    let bob_key = session("h-bob-key", "user:bob@example.com", "key", 0, 100);
    let bob_oidc = session("h-bob-oidc", "user:bob@example.com", "oidc", 1, 100);
    let bob_laptop = session("h-bob-laptop", "user:bob@example.com", "key", 2, 100);
    let carol = session("h-carol", "user:carol@example.com", "oidc", 3, 100);
    for s in [&bob_key, &bob_oidc, &bob_laptop, &carol] {
        store.session_start(s).await.unwrap();
    }
    let again = store.session_start(&bob_key).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(
        store.session_get("h-bob-key").await.unwrap(),
        Some(bob_key.clone())
    );
    assert_eq!(store.session_get("unknown").await.unwrap(), None);

    // One sign-out ends that session only.
    assert!(store.session_end("h-bob-key").await.unwrap());
    assert!(!store.session_end("h-bob-key").await.unwrap(), "once");
    assert_eq!(store.session_get("h-bob-key").await.unwrap(), None);
    assert_eq!(
        store.session_get("h-bob-oidc").await.unwrap(),
        Some(bob_oidc.clone())
    );

    // Sessions outlive a restart.
    drop(store);
    let store = b.open().await;
    assert_eq!(
        store.session_get("h-bob-laptop").await.unwrap(),
        Some(bob_laptop.clone())
    );

    // Revoking bob's keys ends all his sessions, however he signed in, and nobody else's.
    let bob = principal_id("user:bob@example.com");
    let carol_id = principal_id("user:carol@example.com");
    store.create_key("k-bob-1", &bob, at(4)).await.unwrap();
    store.create_key("k-bob-2", &bob, at(5)).await.unwrap();
    store.create_key("k-carol", &carol_id, at(6)).await.unwrap();
    let before = audit_log(&*store).await.len();
    assert_eq!(
        store.revoke_keys(&bob, "system", at(7)).await.unwrap(),
        (2, 2)
    );
    assert_eq!(store.principal_for_key("k-bob-1").await.unwrap(), None);
    assert_eq!(store.principal_for_key("k-bob-2").await.unwrap(), None);
    assert_eq!(
        store.principal_for_key("k-carol").await.unwrap(),
        Some(carol_id.clone())
    );
    assert_eq!(store.session_get("h-bob-oidc").await.unwrap(), None);
    assert_eq!(store.session_get("h-bob-laptop").await.unwrap(), None);
    assert_eq!(store.session_get("h-carol").await.unwrap(), Some(carol));
    let log = audit_log(&*store).await;
    assert_eq!(log.len(), before + 1, "one entry records the revocation");
    let last = log.last().unwrap();
    assert_eq!(last.event, "key.revoked");
    assert_eq!(last.data["principal"], "user:bob@example.com");
    assert_eq!(last.data["keys"], 2);
    assert_eq!(last.data["sessions"], 2);
    // Revoking again finds nothing and says so.
    assert_eq!(
        store.revoke_keys(&bob, "system", at(8)).await.unwrap(),
        (0, 0)
    );

    // Sessions that expired are forgotten when another one starts.
    store
        .session_start(&session("h-late", "user:dana@example.com", "key", 500, 600))
        .await
        .unwrap();
    assert_eq!(store.session_get("h-carol").await.unwrap(), None);
    assert!(store.session_get("h-late").await.unwrap().is_some());
}
