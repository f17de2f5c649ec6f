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
    let mut edited = wider.clone();
    if let Some(g) = edited.grant.as_mut() {
        g.max_uses = 10;
    }
    let body = serde_json::to_string(&edited).expect("a body");
    b.overwrite_request("req_1", &body, "approved").await;
    // A pending review turned approved, with a grant it was never handed.
    let pending = submit(&*store, "req_2", None, review(1, false), at(0)).await;
    let mut forged = pending.clone();
    forged.state = State::Approved;
    forged.grant = wider.grant.clone().map(|mut g| {
        g.id = forged.grant_id();
        g.digest = forged.digest;
        g
    });
    let body = serde_json::to_string(&forged).expect("a body");
    b.overwrite_request("req_2", &body, "approved").await;
    // Untouched: approved by one SRE.
    let fine = submit(&*store, "req_3", None, review(1, false), at(0)).await;
    let voter = person("user:bob@example.com", &["sre"]);
    let approved = store
        .update_request(
            "req_3",
            "user:bob@example.com",
            at(1),
            vote(voter.clone(), fine.digest, VoteDecision::Approve),
        )
        .await
        .expect("stored")
        .expect("counted");
    assert_eq!(approved.request.state, State::Approved);

    let before = audit_count(&*store).await;
    for (id, digest) in [("req_1", wider.digest), ("req_2", pending.digest)] {
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
            vote(voter, pending.digest, VoteDecision::Approve),
        )
        .await;
    assert!(matches!(vote_on_forged, Err(StoreError::Integrity(_))));
    assert_eq!(audit_count(&*store).await, before, "nothing was written");
    assert_eq!(store.get_request("req_2").await.unwrap(), Some(forged));

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
        .update_request("req_3", "agent:deploy-bot", at(2), redeem(fine.digest))
        .await
        .expect("stored")
        .expect("redeemed");
    assert_eq!(redeemed.request.state, State::Executed);
    let found = store.verify_requests().await.expect("verified");
    assert_eq!(
        found.len(),
        2,
        "the untouched request still matches: {found:?}"
    );
}
