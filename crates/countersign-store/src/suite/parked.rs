//! Suite checks for parked tool calls: a retry by the same requester of the action with the
//! same digest finds the request its call was parked on, after a restart too; a later park of
//! the pair replaces it; only the request the pair still names unparks it; pairs are per
//! requester; pairs parked longer than the retention are forgotten by a later park; and
//! parking records no audit entry.

use super::{Backend, at, audit_count, events_about, principal_id};
use countersign_core::{Digest, PrincipalId, Timestamp};

const DAY: i64 = 24 * 3600;

fn digest(of: &str) -> Digest {
    Digest::of_bytes(of.as_bytes())
}

pub async fn parked_calls_are_found_replaced_and_kept_across_a_restart(b: &dyn Backend) {
    let store = b.open().await;
    let bot = principal_id("agent:deploy-bot");
    let export = digest("db.export customers");
    assert_eq!(store.parked_call(&bot, &export).await.unwrap(), None);

    store
        .park_call(&bot, &export, "req_1", at(0))
        .await
        .unwrap();
    assert_eq!(
        store.parked_call(&bot, &export).await.unwrap().as_deref(),
        Some("req_1")
    );

    // A second park of the pair replaces the request it names.
    store
        .park_call(&bot, &export, "req_2", at(60))
        .await
        .unwrap();
    assert_eq!(
        store.parked_call(&bot, &export).await.unwrap().as_deref(),
        Some("req_2")
    );

    // Parking is not a decision: nothing is recorded.
    assert_eq!(audit_count(&*store).await, 0);

    // Any replica, and this one after a restart, finds it.
    drop(store);
    let store = b.open().await;
    assert_eq!(
        store.parked_call(&bot, &export).await.unwrap().as_deref(),
        Some("req_2")
    );
}

pub async fn parked_calls_are_unparked_only_by_the_request_they_name(b: &dyn Backend) {
    let store = b.open().await;
    let bot = principal_id("agent:deploy-bot");
    let export = digest("db.export customers");
    store
        .park_call(&bot, &export, "req_1", at(0))
        .await
        .unwrap();
    store
        .park_call(&bot, &export, "req_2", at(1))
        .await
        .unwrap();

    // A retry that attached to the replaced request leaves the pair alone.
    assert!(
        !store.unpark_call(&bot, &export, "req_1").await.unwrap(),
        "a stale request id unparks nothing"
    );
    assert_eq!(
        store.parked_call(&bot, &export).await.unwrap().as_deref(),
        Some("req_2")
    );

    assert!(store.unpark_call(&bot, &export, "req_2").await.unwrap());
    assert_eq!(store.parked_call(&bot, &export).await.unwrap(), None);
    assert!(
        !store.unpark_call(&bot, &export, "req_2").await.unwrap(),
        "once"
    );
    assert_eq!(audit_count(&*store).await, 0);
}

pub async fn parked_calls_are_per_requester_and_digest(b: &dyn Backend) {
    let store = b.open().await;
    let bot = principal_id("agent:deploy-bot");
    let other = principal_id("agent:report-bot");
    let export = digest("db.export customers");
    let drop_table = digest("db.drop customers");
    store
        .park_call(&bot, &export, "req_1", at(0))
        .await
        .unwrap();

    assert_eq!(store.parked_call(&other, &export).await.unwrap(), None);
    assert_eq!(store.parked_call(&bot, &drop_table).await.unwrap(), None);
    assert!(
        !store.unpark_call(&other, &export, "req_1").await.unwrap(),
        "another requester cannot unpark it"
    );

    // Each requester's pair names its own request.
    store
        .park_call(&other, &export, "req_9", at(1))
        .await
        .unwrap();
    assert_eq!(
        store.parked_call(&bot, &export).await.unwrap().as_deref(),
        Some("req_1")
    );
    assert_eq!(
        store.parked_call(&other, &export).await.unwrap().as_deref(),
        Some("req_9")
    );
}

pub async fn parked_calls_are_forgotten_after_the_retention(b: &dyn Backend) {
    let store = b.open().await;
    let bot = principal_id("agent:deploy-bot");
    let (old, edge, recent, new) = (
        digest("old"),
        digest("edge"),
        digest("recent"),
        digest("new"),
    );
    let days = |n: i64| -> Timestamp { at(n * DAY) };
    store
        .park_call(&bot, &old, "req_old", days(0))
        .await
        .unwrap();
    store
        .park_call(&bot, &edge, "req_edge", days(1))
        .await
        .unwrap();
    store
        .park_call(&bot, &recent, "req_recent", days(6))
        .await
        .unwrap();
    // Nothing is forgotten until a park comes along.
    assert!(store.parked_call(&bot, &old).await.unwrap().is_some());

    // 8 days on, a park forgets what was parked more than 7 days before it, and keeps the rest
    // (a pair parked exactly 7 days before is kept).
    assert_eq!(crate::PARKED_RETENTION_MS, 7 * DAY * 1000);
    store
        .park_call(&bot, &new, "req_new", days(8))
        .await
        .unwrap();
    assert_eq!(store.parked_call(&bot, &old).await.unwrap(), None);
    assert_eq!(
        store.parked_call(&bot, &edge).await.unwrap().as_deref(),
        Some("req_edge")
    );
    assert_eq!(
        store.parked_call(&bot, &recent).await.unwrap().as_deref(),
        Some("req_recent")
    );
    assert_eq!(
        store.parked_call(&bot, &new).await.unwrap().as_deref(),
        Some("req_new")
    );

    // Parking a pair again renews it.
    store
        .park_call(&bot, &edge, "req_edge", days(8))
        .await
        .unwrap();
    store
        .park_call(&bot, &new, "req_new", days(14))
        .await
        .unwrap();
    assert_eq!(store.parked_call(&bot, &recent).await.unwrap(), None);
    assert!(store.parked_call(&bot, &edge).await.unwrap().is_some());
}

/// `submit_parked` in one transaction: a pending submission is parked under its key; the same
/// key again attaches to it and writes nothing; a parked request the caller's rule refuses is
/// forgotten and the submission made; a submission that is not pending is not parked; with a
/// run (its gate read inside the writer) the same holds.
pub async fn parked_calls_attach_a_submission_in_its_transaction(b: &dyn Backend) {
    use super::{action, allow, review, submission};
    use crate::{Parking, RunOf, Submission};
    let store = b.open().await;
    let bot = principal_id("agent:deploy-bot");
    let key = digest("a held call");
    let parking = |attachable: fn(&countersign_core::Request) -> bool| Parking {
        requester: &bot,
        key: &key,
        attachable,
        idempotency: None,
        covers: vec![],
    };
    let any: fn(&countersign_core::Request) -> bool = |_| true;
    let none: fn(&countersign_core::Request) -> bool = |_| false;

    let first = store
        .submit_parked(
            None,
            parking(any),
            at(0),
            submission("req_a", action(None), review(1, false), at(0)),
        )
        .await
        .unwrap();
    let Submission::New(first) = first else {
        panic!("expected a new request: {first:?}")
    };
    assert_eq!(first.state(), countersign_core::State::Pending);
    assert_eq!(
        store.parked_call(&bot, &key).await.unwrap().as_deref(),
        Some("req_a")
    );
    let entries = audit_count(&*store).await;

    let again = store
        .submit_parked(
            None,
            parking(any),
            at(5),
            submission("req_b", action(None), review(1, false), at(5)),
        )
        .await
        .unwrap();
    assert!(
        matches!(&again, Submission::Attached(r) if r.id() == "req_a"),
        "{again:?}"
    );
    assert_eq!(store.get_request("req_b").await.unwrap(), None);
    assert_eq!(
        audit_count(&*store).await,
        entries,
        "attaching writes nothing"
    );

    // Refused by the caller's rule: forgotten, and the new submission (allowed: not pending)
    // is not parked.
    let fresh = store
        .submit_parked(
            None,
            parking(none),
            at(10),
            submission("req_c", action(None), allow(), at(10)),
        )
        .await
        .unwrap();
    assert!(
        matches!(&fresh, Submission::New(r) if r.id() == "req_c"),
        "{fresh:?}"
    );
    assert_eq!(store.parked_call(&bot, &key).await.unwrap(), None);

    // With a run, the gate is read in the writer: parked the same way.
    let run = store
        .submit_parked(
            Some(RunOf {
                run: "run-1",
                requester: &bot,
            }),
            parking(any),
            at(20),
            submission("req_d", action(Some("run-1")), review(1, false), at(20)),
        )
        .await
        .unwrap();
    assert!(
        matches!(&run, Submission::New(r) if r.id() == "req_d"),
        "{run:?}"
    );
    assert_eq!(
        store.parked_call(&bot, &key).await.unwrap().as_deref(),
        Some("req_d")
    );
}

/// An idempotency key, in the submission's transaction: the first submission under it is
/// remembered; the same key with the same action is that request (`Replayed`, nothing
/// written), with another action `KeyReused` (nothing written); a submission that attaches to
/// a parked request remembers the key for that request.
pub async fn idempotency_keys_name_the_first_request(b: &dyn Backend) {
    use super::{action, agent, allow, review, submission};
    use crate::{Idempotency, Parking, Submission};
    let store = b.open().await;
    let bot = principal_id("agent:deploy-bot");
    let coalesce = digest("coalescing key");
    let key = digest("idempotency key 1");
    let same = countersign_core::Digest::of_action(&action(None), &agent().id);
    let other = digest("another action");
    fn parking<'a>(
        bot: &'a PrincipalId,
        coalesce: &'a Digest,
        key: &'a Digest,
        action: &'a Digest,
    ) -> Parking<'a> {
        Parking {
            requester: bot,
            key: coalesce,
            attachable: |_| true,
            idempotency: Some(Idempotency { key, action }),
            covers: vec![],
        }
    }
    let (key, same, other) = (&key, &same, &other);
    let first = store
        .submit_parked(
            None,
            parking(&bot, &coalesce, key, same),
            at(0),
            submission("req_k1", action(None), allow(), at(0)),
        )
        .await
        .unwrap();
    assert!(
        matches!(&first, Submission::New(r) if r.id() == "req_k1"),
        "{first:?}"
    );
    let entries = audit_count(&*store).await;
    let replay = store
        .submit_parked(
            None,
            parking(&bot, &coalesce, key, same),
            at(1),
            submission("req_k2", action(None), allow(), at(1)),
        )
        .await
        .unwrap();
    assert!(
        matches!(&replay, Submission::Replayed(r) if r.id() == "req_k1"),
        "{replay:?}"
    );
    let reused = store
        .submit_parked(
            None,
            parking(&bot, &coalesce, key, other),
            at(2),
            submission("req_k3", action(None), allow(), at(2)),
        )
        .await
        .unwrap();
    assert!(
        matches!(&reused, Submission::KeyReused(r) if r.id() == "req_k1"),
        "{reused:?}"
    );
    assert_eq!(audit_count(&*store).await, entries, "nothing written");
    assert_eq!(store.get_request("req_k2").await.unwrap(), None);

    // A pending request parked under the coalescing key; a later submission with a new key
    // attaches to it, and that key then names it.
    let pending = store
        .submit_parked(
            None,
            Parking {
                idempotency: None,
                ..parking(&bot, &coalesce, key, same)
            },
            at(3),
            submission("req_k4", action(None), review(1, false), at(3)),
        )
        .await
        .unwrap();
    assert!(matches!(&pending, Submission::New(_)), "{pending:?}");
    let key2 = &digest("idempotency key 2");
    let attached = store
        .submit_parked(
            None,
            parking(&bot, &coalesce, key2, same),
            at(4),
            submission("req_k5", action(None), review(1, false), at(4)),
        )
        .await
        .unwrap();
    assert!(
        matches!(&attached, Submission::Attached(r) if r.id() == "req_k4"),
        "{attached:?}"
    );
    let replay = store
        .submit_parked(
            None,
            parking(&bot, &coalesce, key2, same),
            at(5),
            submission("req_k6", action(None), review(1, false), at(5)),
        )
        .await
        .unwrap();
    assert!(
        matches!(&replay, Submission::Replayed(r) if r.id() == "req_k4"),
        "{replay:?}"
    );
}

/// A standing approval, in the submission's transaction (`countersign_core::standing`): the
/// approval that forms it parks its key; a submission covered by it is stored approved and
/// its use counted on the holder in the same write; an approval used up, or one whose holder
/// does not cover the submission, covers nothing and the submission is made as usual. With
/// and without a run.
pub async fn standing_uses_are_counted_in_the_submissions_transaction(b: &dyn Backend) {
    use super::{action, agent, bob, review, submission, vote};
    use crate::Submission;
    use countersign_core::standing::{ScopeField, StandingAsk, StandingRule};
    use countersign_core::{Request, State, Transition};
    let store = b.open().await;
    for (n, run) in [(1, None), (2, Some("run-standing"))] {
        let mut decision = review(1, false);
        if let Some(r) = decision.requirements.as_mut() {
            r.standing = Some(StandingRule {
                max_seconds: 3600,
                max_uses: 5,
                scope: ScopeField::ALL.to_vec(),
            });
        }
        let holder_id = format!("req_h{n}");
        let bot = agent().id;
        let run_of = run.map(|run| crate::RunOf {
            run,
            requester: &bot,
        });
        let holder = store
            .submit(
                run_of,
                at(0),
                submission(&holder_id, action(run), decision.clone(), at(0)),
            )
            .await
            .unwrap();
        let Transition::Vote {
            voter,
            decision: d,
            digest: shown,
            channel,
            mfa,
            comment,
            ..
        } = vote(
            bob(),
            holder.digest(),
            countersign_core::VoteDecision::Approve,
        )
        else {
            unreachable!()
        };
        let ask = Transition::Vote {
            voter,
            decision: d,
            digest: shown,
            channel,
            mfa,
            comment,
            standing: Some(StandingAsk {
                seconds: 600,
                uses: 2,
            }),
        };
        let approved = store
            .update_request(&holder_id, "user:bob@example.com", at(1), ask)
            .await
            .unwrap()
            .unwrap()
            .request;
        let key = approved.standing().expect("formed").key;
        assert_eq!(
            store.parked_call(&bot, &key).await.unwrap().as_deref(),
            Some(holder_id.as_str()),
            "the approval that formed it parked its key"
        );
        let coalesce = digest(&format!("coalescing {n}"));
        // `covers`: whether the cover's closure builds a covered request from the holder (as
        // the store hands it over, with the use it took counted).
        // `known`: the holder the caller offers as last seen (a prebuilt cover when it is the
        // one the pair names and the submission has no run).
        let submit_with = |id: &str, covers: bool, known: Option<Request>| {
            let (id, decision) = (id.to_owned(), decision.clone());
            let plain = submission(&format!("{id}_plain"), action(run), decision.clone(), at(2));
            let build = move |holder: &Request| {
                if !covers {
                    return None;
                }
                let (id, decision) = (id.clone(), decision.clone());
                Request::submit_covered(id, agent(), action(run), decision, holder, at(2))
            };
            let known = known.map(std::sync::Arc::new);
            covered_submission(&*store, run, &coalesce, &key, known, Box::new(build), plain)
        };
        let submit_again = |id: String, known: Option<Request>| submit_with(&id, true, known);
        let submit_with = |id: &str, covers: bool, known: Option<Request>| {
            let submitted = submit_with(id, covers, known);
            async move { submitted.await.expect("the submission") }
        };
        let left = || store.standing_uses_left(&bot, &key, &holder_id);
        assert_eq!(
            left().await.unwrap(),
            Some(2),
            "the count starts at the uses"
        );
        // A cover whose holder does not cover it: the submission as usual, the use given back.
        let stranger = submit_with(&format!("req_x{n}"), false, None).await;
        assert!(
            matches!(&stranger, Submission::New(r) if r.state() == State::Pending && r.covered_by().is_none()),
            "{stranger:?}"
        );
        assert_eq!(left().await.unwrap(), Some(2), "given back");
        // Covered: stored approved, the use taken in the same write, the holder untouched.
        let before = audit_count(&*store).await;
        let holder_events = events_about(&*store, &holder_id).await;
        // The holder known as it is (built ahead when there is no run).
        let covered = submit_with(&format!("req_c{n}"), true, Some(approved.clone())).await;
        let Submission::New(covered) = covered else {
            panic!("{covered:?}")
        };
        assert_eq!(covered.state(), State::Approved);
        assert_eq!(covered.covered_by().unwrap().standing, holder_id);
        assert_eq!(
            audit_count(&*store).await,
            before + 2,
            "created (naming the approval), approved: no more than an allowed action"
        );
        assert_eq!(events_about(&*store, &holder_id).await, holder_events);
        assert_eq!(left().await.unwrap(), Some(1));
        // Built ahead, but its insert fails (its id is taken): the submission fails, the use
        // it took is given back, nothing else is written.
        let before = audit_count(&*store).await;
        let clash = submit_again(format!("req_c{n}"), Some(approved.clone())).await;
        assert!(clash.is_err(), "{clash:?}");
        assert_eq!(left().await.unwrap(), Some(1), "the use given back");
        assert_eq!(audit_count(&*store).await, before);
        // A known holder the pair does not name is not used: the holder is loaded instead.
        let stale = submit_with(
            &format!("req_s{n}"),
            true,
            Some(stranger_request(&stranger)),
        )
        .await;
        let Submission::New(stale) = stale else {
            panic!("{stale:?}")
        };
        assert_eq!(stale.state(), State::Approved);
        assert_eq!(stale.covered_by().unwrap().standing, holder_id);
        assert_eq!(left().await.unwrap(), Some(0));
        // Used up: the next is made as usual, and nothing is counted.
        let after = submit_with(&format!("req_d{n}"), true, Some(approved.clone())).await;
        assert!(
            matches!(&after, Submission::New(r) if r.state() == State::Pending),
            "{after:?}"
        );
        assert_eq!(left().await.unwrap(), Some(0));
    }
    assert_eq!(store.verify_requests().await.unwrap(), vec![]);
}

/// The request a submission made.
fn stranger_request(submitted: &crate::Submission) -> countersign_core::Request {
    match submitted {
        crate::Submission::New(r)
        | crate::Submission::Attached(r)
        | crate::Submission::Replayed(r)
        | crate::Submission::KeyReused(r) => r.clone(),
    }
}

/// Builds a covered request from the holder, as the gateway's closure does.
type BuildCovered = Box<
    dyn Fn(
            &countersign_core::Request,
        ) -> Option<(countersign_core::Request, Vec<countersign_core::Event>)>
        + Send,
>;

/// Submits `plain` by the sample agent (in `run`), offering what `build` makes of the holder of
/// the standing approval under `key` as approved by it.
async fn covered_submission(
    store: &dyn crate::Store,
    run: Option<&str>,
    coalesce: &Digest,
    key: &Digest,
    known: Option<std::sync::Arc<countersign_core::Request>>,
    build: BuildCovered,
    plain: crate::Submit,
) -> Result<crate::Submission, crate::StoreError> {
    let bot = super::agent().id;
    let parking = crate::Parking {
        requester: &bot,
        key: coalesce,
        attachable: |_| false,
        idempotency: None,
        covers: vec![crate::Cover {
            key,
            counted: true,
            known,
            submit: Box::new(move |holder| {
                build(holder).map(|(request, events)| crate::Covering {
                    holder_change: None,
                    request,
                    events,
                })
            }),
        }],
    };
    let run_of = run.map(|run| crate::RunOf {
        run,
        requester: &bot,
    });
    store.submit_parked(run_of, parking, at(2), plain).await
}
