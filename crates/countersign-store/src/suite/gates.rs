//! Suite checks for runs: a paused run holds new requests, a pending `pause_run` review holds
//! the rest of its run and releases it when decided, and a stopped run denies everything.

use super::{
    Backend, allow, at, audit_count, audit_log, bob, events_about, principal_id, review, submit,
    vote,
};
use crate::RunRefusal;
use countersign_core::{RunState, State, VoteDecision};

pub async fn paused_run_holds_new_requests_until_resumed(b: &dyn Backend) {
    let store = b.open().await;
    let alice = principal_id("user:alice@example.com");
    let paused = store
        .set_run_state("run-1", RunState::Paused, &alice, at(0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(paused.run.state, RunState::Paused);
    assert!(paused.changed.is_empty());
    assert_eq!(store.get_run("run-1").await.unwrap(), Some(paused.run));
    assert_eq!(store.get_run("run-9").await.unwrap(), None);

    let held = submit(&*store, "req_1", Some("run-1"), allow(), at(1)).await;
    assert_eq!((held.state(), held.held()), (State::Pending, true));
    let elsewhere = submit(&*store, "req_2", Some("run-2"), allow(), at(1)).await;
    assert_eq!(elsewhere.state(), State::Approved);

    let resumed = store
        .set_run_state("run-1", RunState::Active, &alice, at(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resumed.changed.len(), 1);
    assert_eq!(resumed.changed[0].id(), "req_1");
    assert_eq!(resumed.changed[0].state(), State::Approved);
    assert_eq!(
        store.get_request("req_1").await.unwrap(),
        Some(resumed.changed[0].clone())
    );

    let log = audit_log(&*store).await;
    let run_changes: Vec<_> = log.iter().filter(|e| e.event == "run.changed").collect();
    assert_eq!(run_changes.len(), 2);
    assert!(
        run_changes
            .iter()
            .all(|e| e.actor == "user:alice@example.com")
    );
    assert_eq!(run_changes[0].data["state"], "paused");
    let released = log.iter().find(|e| e.event == "request.released").unwrap();
    assert_eq!(
        (released.actor.as_str(), released.request.as_deref()),
        ("system", Some("req_1"))
    );
}

pub async fn pausing_request_holds_later_ones_and_releases_them_when_decided(b: &dyn Backend) {
    let store = b.open().await;
    let pauser = submit(&*store, "req_p", Some("run-1"), review(1, true), at(0)).await;
    assert_eq!((pauser.state(), pauser.held()), (State::Pending, false));
    let held = submit(&*store, "req_h", Some("run-1"), allow(), at(1)).await;
    assert_eq!((held.state(), held.held()), (State::Pending, true));
    let other_run = submit(&*store, "req_o", Some("run-2"), allow(), at(1)).await;
    assert_eq!(other_run.state(), State::Approved);
    let no_run = submit(&*store, "req_n", None, allow(), at(1)).await;
    assert_eq!(no_run.state(), State::Approved);

    let change = vote(bob(), pauser.digest(), VoteDecision::Approve);
    let updated = store
        .update_request("req_p", "user:bob@example.com", at(2), change)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.request.state(), State::Approved);
    assert_eq!(updated.also_changed.len(), 1);
    assert_eq!(updated.also_changed[0].id(), "req_h");
    assert_eq!(updated.also_changed[0].state(), State::Approved);
    assert_eq!(
        events_about(&*store, "req_h").await,
        ["request.created", "request.released", "request.approved"]
    );
    // The run is free again.
    let after = submit(&*store, "req_a", Some("run-1"), allow(), at(3)).await;
    assert_eq!(after.state(), State::Approved);
}

pub async fn release_stops_at_the_next_pausing_request(b: &dyn Backend) {
    let store = b.open().await;
    let first = submit(&*store, "req_1", Some("run-1"), review(1, true), at(0)).await;
    let second = submit(&*store, "req_2", Some("run-1"), review(1, true), at(1)).await;
    let third = submit(&*store, "req_3", Some("run-1"), allow(), at(2)).await;
    assert!(second.held() && third.held());

    // Denying the first releases the second, which now pauses the run itself.
    let change = vote(bob(), first.digest(), VoteDecision::Deny);
    let updated = store
        .update_request("req_1", "user:bob@example.com", at(3), change)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.request.state(), State::Denied);
    let released: Vec<_> = updated.also_changed.iter().map(|r| r.id()).collect();
    assert_eq!(released, ["req_2"]);
    assert_eq!(
        (
            updated.also_changed[0].state(),
            updated.also_changed[0].held()
        ),
        (State::Pending, false)
    );
    let third_now = store.get_request("req_3").await.unwrap().unwrap();
    assert!(third_now.held());

    let change = vote(bob(), second.digest(), VoteDecision::Approve);
    let updated = store
        .update_request("req_2", "user:bob@example.com", at(4), change)
        .await
        .unwrap()
        .unwrap();
    let released: Vec<_> = updated.also_changed.iter().map(|r| r.id()).collect();
    assert_eq!(released, ["req_3"]);
    assert_eq!(updated.also_changed[0].state(), State::Approved);
}

pub async fn a_held_request_past_its_deadline_expires_instead_of_being_released(b: &dyn Backend) {
    let store = b.open().await;
    let pauser = submit(&*store, "req_p", Some("run-1"), review(1, true), at(0)).await;
    let held = submit(&*store, "req_h", Some("run-1"), allow(), at(0)).await;
    assert!(held.held());
    // The held action may wait HOLD_SECONDS (60 s); the review is decided after 120 s.
    let change = vote(bob(), pauser.digest(), VoteDecision::Approve);
    let updated = store
        .update_request("req_p", "user:bob@example.com", at(120), change)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.also_changed.len(), 1);
    assert_eq!(updated.also_changed[0].state(), State::Expired);
    assert_eq!(
        events_about(&*store, "req_h").await,
        ["request.created", "request.expired"]
    );
}

pub async fn a_run_paused_by_a_person_stays_paused_when_the_pausing_request_is_decided(
    b: &dyn Backend,
) {
    let store = b.open().await;
    let alice = principal_id("user:alice@example.com");
    let pauser = submit(&*store, "req_p", Some("run-1"), review(1, true), at(0)).await;
    submit(&*store, "req_h", Some("run-1"), allow(), at(1)).await;
    store
        .set_run_state("run-1", RunState::Paused, &alice, at(2))
        .await
        .unwrap()
        .unwrap();
    let change = vote(bob(), pauser.digest(), VoteDecision::Approve);
    let updated = store
        .update_request("req_p", "user:bob@example.com", at(3), change)
        .await
        .unwrap()
        .unwrap();
    assert!(updated.also_changed.is_empty());
    assert!(store.get_request("req_h").await.unwrap().unwrap().held());

    let resumed = store
        .set_run_state("run-1", RunState::Active, &alice, at(4))
        .await
        .unwrap()
        .unwrap();
    let released: Vec<_> = resumed.changed.iter().map(|r| r.id()).collect();
    assert_eq!(released, ["req_h"]);
    assert_eq!(resumed.changed[0].state(), State::Approved);
}

pub async fn stopped_run_denies_pending_and_new_requests(b: &dyn Backend) {
    let store = b.open().await;
    let alice = principal_id("user:alice@example.com");
    submit(&*store, "req_p", Some("run-1"), review(1, true), at(0)).await;
    submit(&*store, "req_h", Some("run-1"), allow(), at(1)).await;
    submit(&*store, "req_o", Some("run-2"), review(1, false), at(1)).await;

    let stopped = store
        .set_run_state("run-1", RunState::Stopped, &alice, at(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stopped.run.state, RunState::Stopped);
    let denied: Vec<_> = stopped.changed.iter().map(|r| r.id()).collect();
    assert_eq!(denied, ["req_p", "req_h"]);
    for r in &stopped.changed {
        assert_eq!(r.state(), State::Denied);
        assert_eq!(r.outcome_code(), Some("run_stopped"));
        assert_eq!(store.get_request(r.id()).await.unwrap().as_ref(), Some(r));
    }
    let untouched = store.get_request("req_o").await.unwrap().unwrap();
    assert_eq!(untouched.state(), State::Pending);

    let late = submit(&*store, "req_late", Some("run-1"), allow(), at(3)).await;
    assert_eq!(late.state(), State::Denied);
    assert_eq!(late.outcome_code(), Some("run_stopped"));

    let before = audit_count(&*store).await;
    let resume = store
        .set_run_state("run-1", RunState::Active, &alice, at(4))
        .await
        .unwrap();
    assert_eq!(resume, Err(RunRefusal::Stopped));
    assert_eq!(audit_count(&*store).await, before);
    let run = store.get_run("run-1").await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Stopped);
}

/// Many submissions at once across many runs (a store may prepare them side by side): each
/// still meets its own run's gate.
pub async fn concurrent_submissions_meet_their_runs_gates(b: &dyn Backend) {
    let store = b.open().await;
    let alice = principal_id("user:alice@example.com");
    for r in 0..60 {
        let run = format!("run-{r}");
        match r % 3 {
            0 => drop(
                store
                    .set_run_state(&run, RunState::Paused, &alice, at(0))
                    .await
                    .unwrap()
                    .unwrap(),
            ),
            1 => drop(
                submit(
                    &*store,
                    &format!("req_p{r}"),
                    Some(&run),
                    review(1, true),
                    at(0),
                )
                .await,
            ),
            _ => {}
        }
    }
    let tasks: Vec<_> = (0..120)
        .map(|i| {
            let store = std::sync::Arc::clone(&store);
            tokio::spawn(async move {
                let run = format!("run-{}", i % 60);
                let id = format!("req_{i}");
                let now = at(1);
                let action = super::action(Some(&run));
                let submission = super::submission(&id, action, allow(), now);
                (
                    i % 60,
                    store
                        .submit(
                            Some(crate::RunOf {
                                run: &run,
                                requester: &super::agent().id,
                            }),
                            now,
                            submission,
                        )
                        .await
                        .unwrap(),
                )
            })
        })
        .collect();
    for task in tasks {
        let (r, request) = task.await.unwrap();
        match r % 3 {
            2 => assert_eq!(request.state(), State::Approved, "run-{r} is free"),
            _ => assert!(
                request.state() == State::Pending && request.held(),
                "run-{r} is paused: {request:?}"
            ),
        }
    }
    audit_count(&*store).await;
}
