//! Suite checks for the channels' bookkeeping: every change of a reviewed request queues its
//! channel work in the same transaction, claims are leased so replicas share the queue, a
//! finished claim never hides a change made meanwhile, and message references are upserted.

use super::{Backend, allow, at, audit_count, bob, deny, principal_id, review, submit, vote};
use crate::{ChannelMessage, ConversationRef, NotifyClaim, Store, StoreError};
use countersign_core::{Refusal, RunState, Transition, VoteDecision};

/// Claims everything due at `now` for a minute, sorted by request id.
async fn claim_due(store: &dyn Store, now: i64) -> Vec<NotifyClaim> {
    let mut claims = store
        .claim_notifications(at(now), at(now + 60), 100)
        .await
        .expect("claim");
    claims.sort_by(|a, b| a.request_id.cmp(&b.request_id));
    claims
}

fn claim(request_id: &str, generation: i64) -> NotifyClaim {
    NotifyClaim {
        request_id: request_id.into(),
        generation,
    }
}

pub async fn a_submitted_review_is_queued_for_its_channels(b: &dyn Backend) {
    let store = b.open().await;
    // Without a run (prepared before the write) and in a run (prepared inside it).
    submit(&*store, "req_a", None, review(1, false), at(0)).await;
    submit(&*store, "req_b", Some("run-1"), review(1, false), at(0)).await;
    assert_eq!(claim_due(&*store, -1).await, [], "due when submitted");
    assert_eq!(
        claim_due(&*store, 0).await,
        [claim("req_a", 1), claim("req_b", 1)]
    );
}

pub async fn an_auto_decided_request_is_not_queued(b: &dyn Backend) {
    let store = b.open().await;
    submit(&*store, "req_allowed", None, allow(), at(0)).await;
    submit(&*store, "req_in_run", Some("run-1"), allow(), at(0)).await;
    submit(&*store, "req_denied", None, deny(), at(0)).await;
    assert_eq!(claim_due(&*store, 100).await, []);
}

pub async fn a_vote_requeues_a_claimed_review_at_once(b: &dyn Backend) {
    let store = b.open().await;
    let request = submit(&*store, "req_1", None, review(2, false), at(0)).await;
    assert_eq!(claim_due(&*store, 0).await, [claim("req_1", 1)]);
    assert_eq!(claim_due(&*store, 1).await, [], "leased");

    let change = vote(bob(), request.digest(), VoteDecision::Approve);
    store
        .update_request("req_1", "user:bob@example.com", at(2), change)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        claim_due(&*store, 2).await,
        [claim("req_1", 2)],
        "due at once despite the lease, with a new generation"
    );

    // A refused change and a change without events write nothing, so queue nothing.
    let again = vote(bob(), request.digest(), VoteDecision::Approve);
    let refused = store
        .update_request("req_1", "user:bob@example.com", at(3), again)
        .await
        .unwrap();
    assert_eq!(refused.unwrap_err(), Refusal::AlreadyVoted);
    store
        .update_request("req_1", "system", at(3), Transition::Expire)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claim_due(&*store, 3).await, []);
}

pub async fn run_changes_requeue_the_reviews_they_change(b: &dyn Backend) {
    let store = b.open().await;
    let pauser = submit(&*store, "req_p", Some("run-1"), review(1, true), at(0)).await;
    let held = submit(&*store, "req_h", Some("run-1"), review(1, false), at(1)).await;
    assert!(held.held());
    submit(&*store, "req_s", Some("run-2"), review(1, false), at(1)).await;
    assert_eq!(claim_due(&*store, 1).await.len(), 3);

    // Deciding the pausing review releases the held one: both changed, both queued.
    let change = vote(bob(), pauser.digest(), VoteDecision::Approve);
    let updated = store
        .update_request("req_p", "user:bob@example.com", at(2), change)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.also_changed.len(), 1);
    assert_eq!(
        claim_due(&*store, 2).await,
        [claim("req_h", 2), claim("req_p", 2)]
    );

    // Stopping a run denies its pending reviews: queued too.
    let alice = principal_id("user:alice@example.com");
    store
        .set_run_state("run-2", RunState::Stopped, &alice, at(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claim_due(&*store, 3).await, [claim("req_s", 2)]);
}

pub async fn a_claim_is_leased_until_it_ends(b: &dyn Backend) {
    let store = b.open().await;
    for i in 0..3 {
        submit(&*store, &format!("req_{i}"), None, review(1, false), at(i)).await;
    }
    let entries = audit_count(&*store).await;

    // The longest due first, at most `limit`.
    let first = store.claim_notifications(at(10), at(70), 2).await.unwrap();
    let mut ids: Vec<_> = first.iter().map(|c| c.request_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["req_0", "req_1"]);
    let second = store.claim_notifications(at(10), at(70), 2).await.unwrap();
    assert_eq!(second, [claim("req_2", 1)]);

    assert_eq!(
        claim_due(&*store, 69).await,
        [],
        "another gateway skips them"
    );
    assert_eq!(
        claim_due(&*store, 70).await,
        [claim("req_0", 1), claim("req_1", 1), claim("req_2", 1)],
        "a lease that ended (its gateway died) is claimed again"
    );
    assert_eq!(audit_count(&*store).await, entries, "claims record nothing");
}

pub async fn finishing_the_claimed_generation_removes_or_reschedules_it(b: &dyn Backend) {
    let store = b.open().await;
    submit(&*store, "req_done", None, review(1, false), at(0)).await;
    submit(&*store, "req_remind", None, review(1, false), at(0)).await;
    let entries = audit_count(&*store).await;
    assert_eq!(claim_due(&*store, 0).await.len(), 2);

    store
        .finish_notification("req_done", 1, None, at(1))
        .await
        .unwrap();
    store
        .finish_notification("req_remind", 1, Some(at(500)), at(1))
        .await
        .unwrap();
    assert_eq!(claim_due(&*store, 499).await, []);
    assert_eq!(claim_due(&*store, 500).await, [claim("req_remind", 1)]);

    // Finishing what is no longer queued is fine.
    store
        .finish_notification("req_done", 1, None, at(2))
        .await
        .unwrap();
    store
        .finish_notification("req_unknown", 1, Some(at(9)), at(2))
        .await
        .unwrap();
    assert_eq!(claim_due(&*store, 10_000).await, [claim("req_remind", 1)]);
    assert_eq!(
        audit_count(&*store).await,
        entries,
        "finishing records nothing"
    );
}

pub async fn finishing_a_stale_generation_leaves_it_due_now(b: &dyn Backend) {
    let store = b.open().await;
    let request = submit(&*store, "req_1", None, review(2, false), at(0)).await;
    assert_eq!(claim_due(&*store, 0).await, [claim("req_1", 1)]);
    // The request changes while a gateway works on generation 1...
    let change = vote(bob(), request.digest(), VoteDecision::Approve);
    store
        .update_request("req_1", "user:bob@example.com", at(5), change)
        .await
        .unwrap()
        .unwrap();
    // ...which then finishes as if nothing changed: neither removed nor put off.
    store
        .finish_notification("req_1", 1, None, at(10))
        .await
        .unwrap();
    store
        .finish_notification("req_1", 1, Some(at(900)), at(10))
        .await
        .unwrap();
    assert_eq!(claim_due(&*store, 10).await, [claim("req_1", 2)]);
    store
        .finish_notification("req_1", 2, None, at(11))
        .await
        .unwrap();
    assert_eq!(claim_due(&*store, 10_000).await, []);
}

pub async fn channel_messages_are_upserted_by_target(b: &dyn Backend) {
    let store = b.open().await;
    submit(&*store, "req_1", None, review(1, false), at(0)).await;
    submit(&*store, "req_2", None, review(1, false), at(0)).await;
    let entries = audit_count(&*store).await;
    assert_eq!(store.channel_messages("req_1").await.unwrap(), []);

    let message = |target: &str, rendered: &str| ChannelMessage {
        request_id: "req_1".into(),
        target: target.into(),
        conversation: "C0123456".into(),
        ts: "1795230000.000100".into(),
        rendered: rendered.into(),
        reminded_at: None,
    };
    let teams = message("teams:approvals", "h1");
    let slack = message("slack:#approvals", "h1");
    store.save_channel_message(&teams).await.unwrap();
    store.save_channel_message(&slack).await.unwrap();
    assert_eq!(
        store.channel_messages("req_1").await.unwrap(),
        [slack.clone(), teams.clone()],
        "by target"
    );

    let updated = ChannelMessage {
        reminded_at: Some(at(30)),
        ..message("slack:#approvals", "h2")
    };
    store.save_channel_message(&updated).await.unwrap();
    assert_eq!(
        store.channel_messages("req_1").await.unwrap(),
        [updated, teams]
    );
    assert_eq!(store.channel_messages("req_2").await.unwrap(), []);

    let orphan = ChannelMessage {
        request_id: "req_unknown".into(),
        ..slack
    };
    let err = store.save_channel_message(&orphan).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert_eq!(
        audit_count(&*store).await,
        entries,
        "messages record nothing"
    );
}

pub async fn a_queued_marker_survives_a_restart(b: &dyn Backend) {
    let store = b.open().await;
    submit(&*store, "req_1", None, review(1, false), at(0)).await;
    submit(&*store, "req_2", None, review(1, false), at(0)).await;
    store.claim_notifications(at(0), at(60), 1).await.unwrap();
    drop(store);

    let store = b.open().await;
    assert_eq!(
        claim_due(&*store, 1).await.len(),
        1,
        "the other one is leased"
    );
    assert_eq!(
        claim_due(&*store, 61).await,
        [claim("req_1", 1), claim("req_2", 1)],
        "and the lease taken before the restart ended when it said"
    );
}

pub async fn concurrent_claims_never_share_a_request(b: &dyn Backend) {
    // Several gateways polling at once: each queued request goes to exactly one of them.
    let store = b.open().await;
    for i in 0..20 {
        submit(
            &*store,
            &format!("req_{i:02}"),
            None,
            review(1, false),
            at(0),
        )
        .await;
    }
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let store = std::sync::Arc::clone(&store);
            tokio::spawn(async move { store.claim_notifications(at(1), at(60), 5).await })
        })
        .collect();
    let mut claimed = vec![];
    for task in tasks {
        claimed.extend(task.await.unwrap().unwrap());
    }
    let mut ids: Vec<_> = claimed.into_iter().map(|c| c.request_id).collect();
    ids.sort();
    let expected: Vec<_> = (0..20).map(|i| format!("req_{i:02}")).collect();
    assert_eq!(ids, expected);
}

pub async fn conversation_references_are_upserted_and_survive_a_restart(b: &dyn Backend) {
    let store = b.open().await;
    let entries = audit_count(&*store).await;
    assert_eq!(
        store
            .conversation("teams", "19:a@thread.tacv2")
            .await
            .unwrap(),
        None
    );
    let reference = |conversation: &str, service_url: &str, when: i64| ConversationRef {
        channel: "teams".into(),
        conversation: conversation.into(),
        service_url: service_url.into(),
        tenant: "tenant-1".into(),
        updated_at: at(when),
    };
    let first = reference(
        "19:a@thread.tacv2",
        "https://smba.trafficmanager.net/emea/",
        0,
    );
    store.save_conversation(&first).await.unwrap();
    store
        .save_conversation(&reference("19:b@thread.tacv2", "https://b.example/", 1))
        .await
        .unwrap();
    assert_eq!(
        store
            .conversation("teams", "19:a@thread.tacv2")
            .await
            .unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store
            .conversation("slack", "19:a@thread.tacv2")
            .await
            .unwrap(),
        None,
        "per channel"
    );
    // The service moved (a new region): the latest verified reference wins.
    let moved = reference(
        "19:a@thread.tacv2",
        "https://smba.trafficmanager.net/amer/",
        5,
    );
    store.save_conversation(&moved).await.unwrap();
    drop(store);
    let store = b.open().await;
    assert_eq!(
        store
            .conversation("teams", "19:a@thread.tacv2")
            .await
            .unwrap(),
        Some(moved)
    );
    assert_eq!(
        audit_count(&*store).await,
        entries,
        "references record nothing"
    );
}
