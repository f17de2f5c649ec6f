//! Suite checks for WebAuthn passkeys: credentials are stored per person and unique, and a
//! ceremony's server-side state is taken at most once, before it expires, and only for the
//! request, digest and decision it was begun for.

use super::{Backend, at, audit_log, principal_id};
use crate::{Ceremony, CeremonyBinding, CeremonyKind, CeremonyRefusal, StoreError, StoredPasskey};
use std::sync::Arc;

fn passkey(who: &str, id: &str, secs: i64) -> StoredPasskey {
    StoredPasskey {
        principal: principal_id(who),
        credential_id: id.into(),
        passkey: format!("{{\"cred\":\"{id}\",\"counter\":0}}"),
        created_at: at(secs),
        last_used_at: None,
    }
}

pub async fn passkeys_are_stored_per_person_and_unique(b: &dyn Backend) {
    let store = b.open().await;
    let bob = principal_id("user:bob@example.com");
    assert!(store.passkeys(&bob).await.unwrap().is_empty());
    store
        .passkey_enroll(
            &passkey("user:bob@example.com", "cred-a", 1),
            crate::FactorProof::FirstFactor,
        )
        .await
        .unwrap();
    store
        .passkey_enroll(
            &passkey("user:bob@example.com", "cred-b", 2),
            crate::FactorProof::FirstFactor,
        )
        .await
        .unwrap();
    store
        .passkey_enroll(
            &passkey("user:carol@example.com", "cred-c", 3),
            crate::FactorProof::FirstFactor,
        )
        .await
        .unwrap();
    let again = store
        .passkey_enroll(
            &passkey("user:carol@example.com", "cred-a", 4),
            crate::FactorProof::FirstFactor,
        )
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let mine = store.passkeys(&bob).await.unwrap();
    assert_eq!(
        mine,
        vec![
            passkey("user:bob@example.com", "cred-a", 1),
            passkey("user:bob@example.com", "cred-b", 2)
        ]
    );

    store
        .passkey_used(&bob, "cred-a", "{\"counter\":7}", at(10))
        .await
        .unwrap();
    let used = &store.passkeys(&bob).await.unwrap()[0];
    assert_eq!(used.passkey, "{\"counter\":7}");
    assert_eq!(used.last_used_at, Some(at(10)));
    // Someone else's credential is not found for bob.
    let theirs = store.passkey_used(&bob, "cred-c", "{}", at(11)).await;
    assert!(matches!(theirs, Err(StoreError::NotFound)), "{theirs:?}");

    let log = audit_log(&*store).await;
    assert_eq!(
        log.len(),
        3,
        "each enrolment is recorded, the refused one is not"
    );
    assert!(log.iter().all(|e| e.event == "mfa.enrolled"));
    assert_eq!(log[0].actor, "user:bob@example.com");
}

fn binding(who: &str, request: &str, digest: &str, decision: &str) -> CeremonyBinding {
    CeremonyBinding {
        principal: principal_id(who),
        kind: CeremonyKind::Authenticate,
        request_id: Some(request.into()),
        digest: Some(digest.into()),
        decision: Some(decision.into()),
    }
}

pub async fn a_ceremony_is_taken_once_for_what_it_was_begun_for(b: &dyn Backend) {
    let store = b.open().await;
    let bound = binding("user:bob@example.com", "req_1", "sha256:aa", "approve");
    store
        .ceremony_begin(&Ceremony {
            id: "c1".into(),
            binding: bound.clone(),
            state: "{\"challenge\":\"x\"}".into(),
            expires_at: at(300),
        })
        .await
        .unwrap();
    let refused = |b: CeremonyBinding| {
        let store = store.clone();
        async move { store.ceremony_take("c1", &b, at(10)).await.unwrap() }
    };
    // Bound to this request, this digest, this decision, this person: anything else is refused
    // and leaves it usable.
    for other in [
        binding("user:bob@example.com", "req_2", "sha256:aa", "approve"),
        binding("user:bob@example.com", "req_1", "sha256:bb", "approve"),
        binding("user:bob@example.com", "req_1", "sha256:aa", "deny"),
        binding("user:carol@example.com", "req_1", "sha256:aa", "approve"),
        CeremonyBinding {
            kind: CeremonyKind::Register,
            ..bound.clone()
        },
    ] {
        assert_eq!(refused(other).await, Err(CeremonyRefusal::Mismatch));
    }
    assert_eq!(
        store.ceremony_take("nope", &bound, at(10)).await.unwrap(),
        Err(CeremonyRefusal::Unknown)
    );
    assert_eq!(
        store.ceremony_take("c1", &bound, at(10)).await.unwrap(),
        Ok("{\"challenge\":\"x\"}".to_string())
    );
    assert_eq!(
        store.ceremony_take("c1", &bound, at(11)).await.unwrap(),
        Err(CeremonyRefusal::Used),
        "single use"
    );

    // Expired: refused, whoever asks.
    store
        .ceremony_begin(&Ceremony {
            id: "c2".into(),
            binding: bound.clone(),
            state: "{}".into(),
            expires_at: at(300),
        })
        .await
        .unwrap();
    assert_eq!(
        store.ceremony_take("c2", &bound, at(300)).await.unwrap(),
        Err(CeremonyRefusal::Expired)
    );

    // A registration ceremony has no request binding.
    let reg = CeremonyBinding {
        principal: principal_id("user:bob@example.com"),
        kind: CeremonyKind::Register,
        request_id: None,
        digest: None,
        decision: None,
    };
    store
        .ceremony_begin(&Ceremony {
            id: "c3".into(),
            binding: reg.clone(),
            state: "{}".into(),
            expires_at: at(300),
        })
        .await
        .unwrap();
    assert_eq!(
        store.ceremony_take("c3", &bound, at(1)).await.unwrap(),
        Err(CeremonyRefusal::Mismatch)
    );
    assert_eq!(
        store.ceremony_take("c3", &reg, at(1)).await.unwrap(),
        Ok("{}".into())
    );
    assert!(
        audit_log(&*store).await.is_empty(),
        "ceremonies record nothing"
    );

    // Ceremonies long expired are forgotten when a new one begins; recent ones are kept.
    store
        .ceremony_begin(&Ceremony {
            id: "later".into(),
            binding: reg.clone(),
            state: "{}".into(),
            expires_at: at(300 + 3600),
        })
        .await
        .unwrap();
    assert_eq!(
        store.ceremony_take("c2", &bound, at(301)).await.unwrap(),
        Err(CeremonyRefusal::Expired),
        "expired an hour ago at most: still known"
    );
    store
        .ceremony_begin(&Ceremony {
            id: "much-later".into(),
            binding: reg.clone(),
            state: "{}".into(),
            expires_at: at(301 + 3600),
        })
        .await
        .unwrap();
    assert_eq!(
        store.ceremony_take("c1", &bound, at(302)).await.unwrap(),
        Err(CeremonyRefusal::Unknown),
        "expired more than an hour before: forgotten"
    );
}

pub async fn concurrent_finishes_take_a_ceremony_once(b: &dyn Backend) {
    let store = b.open().await;
    let bound = binding("user:bob@example.com", "req_1", "sha256:aa", "approve");
    store
        .ceremony_begin(&Ceremony {
            id: "race".into(),
            binding: bound.clone(),
            state: "{}".into(),
            expires_at: at(300),
        })
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store: Arc<dyn crate::Store> = store.clone();
            let bound = bound.clone();
            tokio::spawn(async move { store.ceremony_take("race", &bound, at(1)).await.unwrap() })
        })
        .collect();
    let mut taken = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            taken += 1;
        }
    }
    assert_eq!(taken, 1);
}
