//! Plans in the store (`countersign_core::plan`): the approval of a plan parks each reviewed
//! step's key; a submission equal to a step is stored approved and the step's use recorded on
//! the plan in the same write, once.

use super::{Backend, action, agent, at, audit_count, bob, events_about, review, submission, vote};
use crate::Submission;
use countersign_core::plan::{self, Plan, PlanStep, StepInput};
use countersign_core::{Action, Digest, Request, State, Transition, VoteDecision};

/// The plan's request of one reviewed step: [`action`] without a run.
fn plan_submit(id: &str) -> (crate::Submit, Digest) {
    let step = action(None);
    let decision = review(1, false);
    let key = plan::step_key_for(&agent().id, &step, &decision).expect("a reviewed step");
    let input = StepInput {
        kind: step.kind.clone(),
        resource: step.resource.clone(),
        params: step.params.clone(),
    };
    let digest = Digest::of_action(&step, &agent().id);
    let plan_action = Action {
        kind: plan::PLAN_KIND.into(),
        resource: "plan of 1 step".into(),
        params: plan::plan_params(&[input], &[digest]),
        ..step.clone()
    };
    let pairs = [(&step, &decision)];
    let plan_decision = plan::decide(&pairs, &decision.policy_hash);
    let steps = Plan {
        steps: vec![PlanStep {
            kind: step.kind.clone(),
            resource: step.resource.clone(),
            digest,
            effect: decision.effect,
            rule: decision.rule.clone(),
            key: Some(key),
            used_by: None,
        }],
    };
    let id = id.to_owned();
    let submit: crate::Submit = Box::new(move |gate| {
        Request::submit_plan(
            id,
            agent(),
            plan_action,
            plan_decision,
            steps,
            gate,
            60,
            at(0),
        )
    });
    (submit, key)
}

pub async fn plan_steps_are_used_in_the_submissions_transaction(b: &dyn Backend) {
    let store = b.open().await;
    let (submit, key) = plan_submit("req_plan1");
    let plan_req = store.submit(None, at(0), submit).await.unwrap();
    assert_eq!(plan_req.state(), State::Pending);
    let bot = agent().id;
    assert_eq!(
        store.parked_call(&bot, &key).await.unwrap(),
        None,
        "not yet"
    );
    let approved = store
        .update_request(
            "req_plan1",
            "user:bob@example.com",
            at(1),
            vote(bob(), plan_req.digest(), VoteDecision::Approve),
        )
        .await
        .unwrap()
        .unwrap()
        .request;
    assert_eq!(approved.state(), State::Approved);
    assert_eq!(
        store.parked_call(&bot, &key).await.unwrap().as_deref(),
        Some("req_plan1"),
        "the approval parked the step's key"
    );
    let coalesce = Digest::of_bytes(b"plan coalescing");
    let try_step = |id: &'static str| {
        let parking = crate::Parking {
            requester: &bot,
            key: &coalesce,
            attachable: |_| false,
            idempotency: None,
            covers: vec![crate::Cover {
                key: &key,
                counted: false,
                known: None,
                submit: Box::new(move |holder: &Request| {
                    let (request, events, step) = Request::submit_planned(
                        id.to_string(),
                        agent(),
                        action(None),
                        review(1, false),
                        holder,
                        at(2),
                    )?;
                    let by_request = request.id().to_owned();
                    Some(crate::Covering {
                        request,
                        events,
                        holder_change: Some(Transition::UsePlanStep { step, by_request }),
                    })
                }),
            }],
        };
        let plain = submission(
            &format!("{id}_plain"),
            action(None),
            review(1, false),
            at(2),
        );
        store.submit_parked(None, parking, at(2), plain)
    };
    let before = audit_count(&*store).await;
    let Submission::New(covered) = try_step("req_step1").await.unwrap() else {
        panic!("a new request")
    };
    assert_eq!(covered.state(), State::Approved);
    assert_eq!(covered.planned_by().unwrap().plan, "req_plan1");
    assert_eq!(
        audit_count(&*store).await,
        before + 4,
        "step used, created, covered, approved"
    );
    let plan_now = store.get_request("req_plan1").await.unwrap().unwrap();
    assert_eq!(
        plan_now.plan().unwrap().steps[0].used_by.as_deref(),
        Some("req_step1")
    );
    assert!(
        events_about(&*store, "req_plan1")
            .await
            .contains(&"plan.step_used".to_owned())
    );
    // Once: the next is made as usual.
    let Submission::New(again) = try_step("req_step2").await.unwrap() else {
        panic!("a new request")
    };
    assert_eq!(again.state(), State::Pending);
    assert!(again.planned_by().is_none());
    assert_eq!(store.verify_requests().await.unwrap(), vec![]);
}
