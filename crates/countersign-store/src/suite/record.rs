//! Suite checks for what must outlive the process and what must show tampering: invariant 4
//! (an acknowledged request survives a restart and can still be decided and redeemed) and
//! invariant 5 (the audit log verifies, and an edited or deleted entry is named).

use super::{
    Backend, POLICY_HASH, allow, at, audit_count, audit_log, bob, principal_id, review, submit,
    vote,
};
use countersign_core::{Event, State, Transition, VoteDecision};

pub async fn pending_request_survives_restart(b: &dyn Backend) {
    let store = b.open().await;
    let pending = submit(&*store, "req_1", Some("run-1"), review(1, true), at(0)).await;
    submit(&*store, "req_2", Some("run-1"), allow(), at(1)).await;
    let alice = principal_id("user:alice@example.com");
    store.create_key("ab12", &alice, at(1)).await.unwrap();
    let entries = audit_count(&*store).await;
    drop(store);

    let store = b.open().await;
    assert_eq!(
        store.get_request("req_1").await.unwrap(),
        Some(pending.clone())
    );
    assert_eq!(store.principal_for_key("ab12").await.unwrap(), Some(alice));
    assert_eq!(audit_count(&*store).await, entries);

    // Still decidable, still redeemable, and the log goes on from where it was.
    let change = vote(bob(), pending.digest(), VoteDecision::Approve);
    let updated = store
        .update_request("req_1", "user:bob@example.com", at(2), change)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.request.state(), State::Approved);
    assert_eq!(updated.also_changed[0].id(), "req_2");
    let digest = pending.digest();
    let redeem = Transition::Redeem { digest };
    let redeemed = store
        .update_request("req_1", "agent:deploy-bot", at(3), redeem)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(redeemed.request.state(), State::Executed);
    assert!(audit_count(&*store).await > entries);
    drop(store);

    let store = b.open().await;
    let executed = store.get_request("req_1").await.unwrap().unwrap();
    assert_eq!(executed.state(), State::Executed);
    audit_count(&*store).await;
}

/// Some history: requests, a vote, a run change, a policy load.
async fn history(b: &dyn Backend) -> std::sync::Arc<dyn crate::Store> {
    let store = b.open().await;
    let pending = submit(&*store, "req_1", None, review(1, false), at(0)).await;
    submit(&*store, "req_2", None, allow(), at(1)).await;
    let change = vote(bob(), pending.digest(), VoteDecision::Approve);
    store
        .update_request("req_1", "user:bob@example.com", at(2), change)
        .await
        .unwrap()
        .unwrap();
    let alice = principal_id("user:alice@example.com");
    store
        .set_run_state("run-1", countersign_core::RunState::Paused, &alice, at(3))
        .await
        .unwrap()
        .unwrap();
    let loaded = Event::PolicyLoaded {
        hash: POLICY_HASH.into(),
    };
    store
        .append_event("system", loaded, Some(POLICY_HASH), at(4))
        .await
        .unwrap();
    store
}

pub async fn audit_chain_verifies_and_pages(b: &dyn Backend) {
    let store = history(b).await;
    let all = store.audit_entries(0, 1000).await.unwrap();
    assert_eq!(all.len(), 7);
    let events: Vec<_> = audit_log(&*store)
        .await
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(
        events,
        [
            "request.created",
            "request.created",
            "request.approved",
            "vote.cast",
            "request.approved",
            "run.changed",
            "policy.loaded",
        ]
    );
    let page = store.audit_entries(3, 2).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);
    assert_eq!(page[0], all[3]);
    assert!(store.audit_entries(7, 10).await.unwrap().is_empty());

    let report = store.verify_audit().await.unwrap();
    assert!(report.is_intact(), "{:?}", report.first_bad);
    assert_eq!(report.entries, 7);
    assert_eq!(report.head, Some(all[6].chain));
}

pub async fn edited_audit_row_is_detected(b: &dyn Backend) {
    let store = history(b).await;
    let entry = &store.audit_entries(3, 1).await.unwrap()[0];
    let edited = String::from_utf8(entry.bytes.clone())
        .unwrap()
        .replace("approve", "deny")
        .into_bytes();
    assert_ne!(edited, entry.bytes, "the edit changes something");
    b.overwrite_audit_bytes(3, edited).await;

    let report = store.verify_audit().await.unwrap();
    let fault = report.first_bad.expect("the edit is found");
    assert_eq!(fault.seq, 3);
    assert!(fault.problem.contains("edited"), "{}", fault.problem);
    assert_eq!(report.entries, 3, "entries before the edit verified");

    // The store keeps appending after the damage; the damage stays visible.
    submit(&*store, "req_9", None, allow(), at(9)).await;
    assert_eq!(
        store.verify_audit().await.unwrap().first_bad.unwrap().seq,
        3
    );
}

pub async fn deleted_audit_row_is_detected(b: &dyn Backend) {
    let store = history(b).await;
    b.delete_audit_entry(5).await;
    let fault = store
        .verify_audit()
        .await
        .unwrap()
        .first_bad
        .expect("found");
    assert_eq!(fault.seq, 5);
    assert!(fault.problem.contains("missing"), "{}", fault.problem);

    b.delete_audit_entry(0).await;
    let fault = store
        .verify_audit()
        .await
        .unwrap()
        .first_bad
        .expect("found");
    assert_eq!(fault.seq, 0);
}

pub async fn append_event_returns_its_seq(b: &dyn Backend) {
    let store = b.open().await;
    let loaded = || Event::PolicyLoaded {
        hash: POLICY_HASH.into(),
    };
    let first = store.append_event("system", loaded(), Some(POLICY_HASH), at(0));
    assert_eq!(first.await.unwrap(), 0);
    submit(&*store, "req_1", None, allow(), at(1)).await;
    let second = store.append_event("user:alice@example.com", loaded(), None, at(2));
    assert_eq!(second.await.unwrap(), 3);
    let log = audit_log(&*store).await;
    assert_eq!(log[0].event, "policy.loaded");
    assert_eq!(log[0].policy.as_deref(), Some(POLICY_HASH));
    assert_eq!(log[0].request, None);
    assert_eq!(log[0].data["hash"], POLICY_HASH);
    assert_eq!(log[3].actor, "user:alice@example.com");
    assert_eq!(log[3].policy, None);
    assert_eq!(audit_count(&*store).await, 4);
}
