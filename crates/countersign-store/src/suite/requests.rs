//! Suite checks for submitting, changing, finding and listing requests, including the
//! concurrency invariant: votes are counted exactly once and the first decision wins.

use super::{
    Backend, POLICY_HASH, allow, at, audit_count, audit_log, bob, deny, events_about, person,
    review, submission, submit, vote,
};
use crate::{RequestQuery, StoreError};
use countersign_core::{Refusal, State, Transition, VoteDecision};
use std::sync::Arc;

pub async fn submit_allowed_is_approved_and_recorded(b: &dyn Backend) {
    let store = b.open().await;
    let request = submit(&*store, "req_1", None, allow(), at(0)).await;
    assert_eq!(request.state(), State::Approved);
    assert!(request.grant().is_some());
    assert_eq!(
        store.get_request("req_1").await.unwrap(),
        Some(request.clone())
    );

    let log = audit_log(&*store).await;
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].event, "request.created");
    assert_eq!(log[1].event, "request.approved");
    for (seq, entry) in log.iter().enumerate() {
        assert_eq!(entry.seq, seq as u64);
        assert_eq!(entry.at, "2026-11-23T03:00:00.000Z");
        assert_eq!(entry.actor, "agent:deploy-bot");
        assert_eq!(entry.request.as_deref(), Some("req_1"));
        assert_eq!(entry.digest, Some(request.digest().to_string()));
        assert_eq!(entry.policy.as_deref(), Some(POLICY_HASH));
    }
    assert_eq!(log[0].data["kind"], "db.export");
    assert_eq!(audit_count(&*store).await, 2);
}

pub async fn submit_denied_by_policy_is_recorded(b: &dyn Backend) {
    let store = b.open().await;
    let request = submit(&*store, "req_1", None, deny(), at(0)).await;
    assert_eq!(request.state(), State::Denied);
    assert_eq!(request.outcome_code(), Some("policy_denied"));
    assert_eq!(
        events_about(&*store, "req_1").await,
        ["request.created", "request.denied"]
    );
}

pub async fn duplicate_request_ids_fail_alone(b: &dyn Backend) {
    // Submitted together, so a group-committing store puts them in one transaction: the
    // duplicates must fail without taking the others with them.
    let store = b.open().await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = Arc::clone(&store);
            let id = format!("req_{}", i % 40);
            tokio::spawn(async move {
                let now = at(i);
                store
                    .submit(
                        None,
                        now,
                        submission(&id, super::action(None), allow(), now),
                    )
                    .await
            })
        })
        .collect();
    let (mut ok, mut conflicts) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Conflict(_)) => conflicts += 1,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!((ok, conflicts), (40, 10));
    assert_eq!(audit_count(&*store).await, 80);
    let all = store.list_requests(&RequestQuery::default()).await.unwrap();
    assert_eq!(all.len(), 40);
}

pub async fn submit_for_the_wrong_run_is_refused(b: &dyn Backend) {
    let store = b.open().await;
    let now = at(0);
    let result = store
        .submit(
            Some(crate::RunOf {
                run: "run-2",
                requester: &super::agent().id,
            }),
            now,
            submission("req_1", super::action(Some("run-1")), allow(), now),
        )
        .await;
    assert!(matches!(result, Err(StoreError::Invalid(_))), "{result:?}");
    assert_eq!(store.get_request("req_1").await.unwrap(), None);
    assert_eq!(audit_count(&*store).await, 0);
}

pub async fn a_panicking_closure_fails_alone(b: &dyn Backend) {
    let store = b.open().await;
    let result = store
        .submit(None, at(0), Box::new(|_| panic!("a bug in the caller")))
        .await;
    assert!(matches!(result, Err(StoreError::Invalid(_))), "{result:?}");
    // The store still works afterwards.
    submit(&*store, "req_1", None, allow(), at(1)).await;
    assert_eq!(audit_count(&*store).await, 2);
}

pub async fn update_refusal_writes_nothing(b: &dyn Backend) {
    let store = b.open().await;
    let pending = submit(&*store, "req_1", None, review(1, false), at(0)).await;
    let before = audit_count(&*store).await;

    // alice owns the requesting agent: a self-approval.
    let alice = person("user:alice@example.com", &["sre"]);
    let change = vote(alice, pending.digest(), VoteDecision::Approve);
    let outcome = store.update_request("req_1", "user:alice@example.com", at(1), change);
    assert_eq!(outcome.await.unwrap(), Err(Refusal::SelfApproval));

    // Another transition's refusal (a cancel by someone other than the requester) leaves no
    // trace either.
    let cancel = Transition::Cancel {
        by: bob().id,
        why: None,
    };
    let outcome = store.update_request("req_1", "user:bob@example.com", at(2), cancel);
    assert_eq!(outcome.await.unwrap(), Err(Refusal::NotRequester));

    assert_eq!(store.get_request("req_1").await.unwrap(), Some(pending));
    assert_eq!(audit_count(&*store).await, before);
}

pub async fn update_without_events_writes_nothing(b: &dyn Backend) {
    let store = b.open().await;
    let pending = submit(&*store, "req_1", None, review(1, false), at(0)).await;
    let before = audit_count(&*store).await;
    let not_yet = Transition::Expire;
    let updated = store
        .update_request("req_1", "system", at(10), not_yet)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.request, pending);
    assert!(updated.also_changed.is_empty());
    assert_eq!(audit_count(&*store).await, before);
}

pub async fn update_of_an_unknown_request_is_not_found(b: &dyn Backend) {
    let store = b.open().await;
    let change = Transition::Expire;
    let outcome = store
        .update_request("req_nope", "system", at(0), change)
        .await;
    assert!(matches!(outcome, Err(StoreError::NotFound)), "{outcome:?}");
    assert_eq!(store.get_request("req_nope").await.unwrap(), None);
}

/// Invariant 3: hundreds of votes in parallel on one request are each counted exactly once,
/// and the request is decided exactly once.
pub async fn concurrent_votes_counted_once(b: &dyn Backend) {
    const VOTERS: u32 = 300;
    const QUORUM: u32 = 250;
    let store = b.open().await;
    let pending = submit(&*store, "req_1", None, review(QUORUM, false), at(0)).await;
    let tasks: Vec<_> = (0..VOTERS)
        .map(|i| {
            let store = Arc::clone(&store);
            let digest = pending.digest();
            tokio::spawn(async move {
                let id = format!("user:sre{i}@example.com");
                let voter = person(&id, &["sre"]);
                let change = vote(voter, digest, VoteDecision::Approve);
                store.update_request("req_1", &id, at(1), change).await
            })
        })
        .collect();
    let (mut counted, mut closed) = (0, 0);
    for task in tasks {
        match task.await.unwrap().unwrap() {
            Ok(_) => counted += 1,
            Err(Refusal::RequestClosed(State::Approved)) => closed += 1,
            Err(other) => panic!("unexpected refusal {other:?}"),
        }
    }
    assert_eq!((counted, closed), (QUORUM, VOTERS - QUORUM));
    let request = store.get_request("req_1").await.unwrap().unwrap();
    assert_eq!(request.state(), State::Approved);
    assert_eq!(request.votes().len(), QUORUM as usize);
    let mut voters: Vec<_> = request.votes().iter().map(|v| v.approver.clone()).collect();
    voters.sort();
    voters.dedup();
    assert_eq!(voters.len(), QUORUM as usize, "each vote once");
    let events = events_about(&*store, "req_1").await;
    let count = |name: &str| events.iter().filter(|e| *e == name).count();
    assert_eq!(count("vote.cast"), QUORUM as usize);
    assert_eq!(count("request.approved"), 1);
    assert_eq!(count("request.denied"), 0);
}

/// Invariant 3: an approval and a denial racing on the same request: one wins, the other is
/// refused, and the stored outcome is the winner's.
pub async fn first_decision_wins(b: &dyn Backend) {
    let store = b.open().await;
    for n in 0..20 {
        let id = format!("req_{n}");
        let digest = submit(&*store, &id, None, review(1, false), at(n))
            .await
            .digest();
        let race: Vec<_> = [
            ("user:bob@example.com", VoteDecision::Approve),
            ("user:dave@example.com", VoteDecision::Deny),
        ]
        .into_iter()
        .map(|(who, decision)| {
            let (store, id) = (Arc::clone(&store), id.clone());
            tokio::spawn(async move {
                let change = vote(person(who, &["sre"]), digest, decision);
                (
                    decision,
                    store.update_request(&id, who, at(n), change).await,
                )
            })
        })
        .collect();
        let mut winners = vec![];
        for task in race {
            let (decision, outcome) = task.await.unwrap();
            match outcome.unwrap() {
                Ok(updated) => winners.push((decision, updated.request.state())),
                Err(Refusal::RequestClosed(_)) => {}
                Err(other) => panic!("unexpected refusal {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "{id}: exactly one decision");
        let (decision, state) = winners[0];
        let expected = match decision {
            VoteDecision::Approve => State::Approved,
            VoteDecision::Deny => State::Denied,
        };
        assert_eq!(state, expected);
        let stored = store.get_request(&id).await.unwrap().unwrap();
        assert_eq!(stored.state(), expected);
        assert_eq!(stored.votes().len(), 1);
    }
    audit_count(&*store).await;
}

pub async fn grant_redeems_once(b: &dyn Backend) {
    let store = b.open().await;
    let approved = submit(&*store, "req_1", None, allow(), at(0)).await;
    let digest = approved.digest();
    let redeem = move || Transition::Redeem { digest };
    let first = store.update_request("req_1", "agent:deploy-bot", at(5), redeem());
    assert_eq!(
        first.await.unwrap().unwrap().request.state(),
        State::Executed
    );
    let again = store.update_request("req_1", "agent:deploy-bot", at(6), redeem());
    assert_eq!(again.await.unwrap(), Err(Refusal::GrantUsed));
    assert_eq!(
        events_about(&*store, "req_1").await,
        ["request.created", "request.approved", "grant.redeemed"]
    );
}

pub async fn due_requests_lists_expired_pending_oldest_first(b: &dyn Backend) {
    let store = b.open().await;
    // Reviews time out 900 s after they are created.
    submit(&*store, "req_late", None, review(1, false), at(0)).await;
    submit(&*store, "req_early", None, review(1, false), at(-100)).await;
    submit(&*store, "req_allowed", None, allow(), at(-200)).await;
    submit(&*store, "req_future", None, review(1, false), at(500)).await;
    assert!(store.due_requests(at(799), 10).await.unwrap().is_empty());
    assert_eq!(
        store.due_requests(at(800), 10).await.unwrap(),
        ["req_early"]
    );
    assert_eq!(
        store.due_requests(at(900), 10).await.unwrap(),
        ["req_early", "req_late"]
    );
    assert_eq!(store.due_requests(at(900), 1).await.unwrap(), ["req_early"]);

    let expire = Transition::Expire;
    let expired = store.update_request("req_early", "system", at(900), expire);
    assert_eq!(
        expired.await.unwrap().unwrap().request.state(),
        State::Expired
    );
    assert_eq!(store.due_requests(at(900), 10).await.unwrap(), ["req_late"]);
}

pub async fn list_requests_filters_and_pages(b: &dyn Backend) {
    let store = b.open().await;
    // req_0 .. req_6, one second apart; even ones allowed in run-a, odd ones pending in run-b.
    for i in 0..7 {
        let (run, decision) = match i % 2 {
            0 => ("run-a", allow()),
            _ => ("run-b", review(1, false)),
        };
        submit(&*store, &format!("req_{i}"), Some(run), decision, at(i)).await;
    }
    let ids = |requests: Vec<countersign_core::Request>| -> Vec<String> {
        requests.into_iter().map(|r| r.id().to_owned()).collect()
    };
    let all = store.list_requests(&RequestQuery::default()).await.unwrap();
    assert_eq!(
        ids(all),
        [
            "req_6", "req_5", "req_4", "req_3", "req_2", "req_1", "req_0"
        ]
    );

    let mut q = RequestQuery {
        limit: 3,
        ..Default::default()
    };
    let mut pages = vec![];
    loop {
        let page = ids(store.list_requests(&q).await.unwrap());
        let Some(last) = page.last().cloned() else {
            break;
        };
        pages.push(page);
        q.before = Some(last);
    }
    assert_eq!(
        pages,
        [
            vec!["req_6", "req_5", "req_4"],
            vec!["req_3", "req_2", "req_1"],
            vec!["req_0"]
        ]
    );

    let pending = RequestQuery {
        state: Some(State::Pending),
        ..Default::default()
    };
    assert_eq!(
        ids(store.list_requests(&pending).await.unwrap()),
        ["req_5", "req_3", "req_1"]
    );
    let run_a = RequestQuery {
        run: Some("run-a".into()),
        before: Some("req_4".into()),
        ..Default::default()
    };
    assert_eq!(
        ids(store.list_requests(&run_a).await.unwrap()),
        ["req_2", "req_0"]
    );
    let by_agent = RequestQuery {
        requester: Some("agent:deploy-bot".into()),
        state: Some(State::Approved),
        limit: 1,
        ..Default::default()
    };
    assert_eq!(
        ids(store.list_requests(&by_agent).await.unwrap()),
        ["req_6"]
    );
    let nobody = RequestQuery {
        requester: Some("agent:nobody".into()),
        ..Default::default()
    };
    assert!(store.list_requests(&nobody).await.unwrap().is_empty());
    let unknown_cursor = RequestQuery {
        before: Some("req_nope".into()),
        ..Default::default()
    };
    assert!(matches!(
        store.list_requests(&unknown_cursor).await,
        Err(StoreError::NotFound)
    ));
}
