//! Invariant 10 on every backend: a request row edited behind the store's back is refused by
//! the next change that loads it (nothing is written), and `verify_requests` names it; rows
//! nobody touched change and verify as usual.

use super::{Backend, allow, at, audit_count, person, review, submit, vote};
use crate::StoreError;
use countersign_core::{State, Transition, VoteDecision};

fn redeem(digest: countersign_core::Digest) -> Transition {
    Transition::Redeem { digest }
}

pub async fn stored_state_matches_the_log_or_nothing_is_acted_on(b: &dyn Backend) {
    let store = b.open().await;
    // An allowed request, its grant given ten uses behind the store's back.
    let wider = submit(&*store, "req_1", None, allow(), at(0)).await;
    let mut edited = serde_json::to_value(&wider).expect("a body");
    edited["grant"]["max_uses"] = serde_json::json!(10);
    b.overwrite_request("req_1", &edited.to_string(), "approved")
        .await;
    // A pending review turned approved, with a grant it was never handed.
    let pending = submit(&*store, "req_2", None, review(1, false), at(0)).await;
    let mut forged = serde_json::to_value(&pending).expect("a body");
    let mut grant = wider.grant().cloned().expect("a grant");
    grant.id = pending.grant_id();
    grant.digest = pending.digest();
    forged["state"] = serde_json::json!(State::Approved);
    forged["grant"] = serde_json::json!(grant);
    b.overwrite_request("req_2", &forged.to_string(), "approved")
        .await;
    // Untouched: approved by one SRE.
    let fine = submit(&*store, "req_3", None, review(1, false), at(0)).await;
    let voter = person("user:bob@example.com", &["sre"]);
    let approved = store
        .update_request(
            "req_3",
            "user:bob@example.com",
            at(1),
            vote(voter.clone(), fine.digest(), VoteDecision::Approve),
        )
        .await
        .expect("stored")
        .expect("counted");
    assert_eq!(approved.request.state(), State::Approved);

    let before = audit_count(&*store).await;
    for (id, digest) in [("req_1", wider.digest()), ("req_2", pending.digest())] {
        let outcome = store
            .update_request(id, "agent:deploy-bot", at(2), redeem(digest))
            .await;
        assert!(
            matches!(&outcome, Err(StoreError::Integrity(why)) if why.contains(id)),
            "{id}: {outcome:?}"
        );
    }
    let vote_on_forged = store
        .update_request(
            "req_2",
            "user:bob@example.com",
            at(2),
            vote(voter, pending.digest(), VoteDecision::Approve),
        )
        .await;
    assert!(matches!(vote_on_forged, Err(StoreError::Integrity(_))));
    assert_eq!(audit_count(&*store).await, before, "nothing was written");
    assert_eq!(
        store.get_request("req_2").await.unwrap(),
        Some(serde_json::from_value(forged).expect("a request"))
    );

    let found = store.verify_requests().await.expect("verified");
    let named: Vec<&str> = found.iter().map(|m| m.request.as_str()).collect();
    assert_eq!(named, ["req_1", "req_2"], "{found:?}");
    assert!(
        found[1]
            .problems
            .iter()
            .any(|p| p.contains("state is approved, the log says pending")),
        "{found:?}"
    );

    let redeemed = store
        .update_request("req_3", "agent:deploy-bot", at(2), redeem(fine.digest()))
        .await
        .expect("stored")
        .expect("redeemed");
    assert_eq!(redeemed.request.state(), State::Executed);
    let found = store.verify_requests().await.expect("verified");
    assert_eq!(
        found.len(),
        2,
        "the untouched request still matches: {found:?}"
    );
}
