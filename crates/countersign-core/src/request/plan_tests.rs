//! A plan's request at the level of the state machine: decided as one review, and each
//! reviewed step used once by the later action it covers (invariant in `crate::plan`).

use super::tests::{action, agent, ballot, ids, person, review, t0};
use super::*;
use crate::plan::{self, Plan, PlanStep, StepInput};
use serde_json::json;

fn step(kind: &str, params: serde_json::Value) -> StepInput {
    StepInput {
        kind: kind.into(),
        resource: "postgres://prod/customers".into(),
        params,
    }
}

fn allow() -> Decision {
    Decision {
        effect: Effect::Allow,
        rule: Some("reads".into()),
        reason: "reads are fine".into(),
        requirements: None,
        policy_hash: "sha256:00".into(),
        grant_ttl_seconds: 300,
    }
}

/// A plan of three steps (review, allow, review) by the sample agent, as the gateway records
/// it: each step decided, the plan decided by `plan::decide`.
fn planned() -> (Request, Vec<Action>, Vec<Decision>) {
    let shell = action();
    let inputs = [
        step("db.export", json!({"rows": 10})),
        step("db.read", json!({})),
        step("db.export", json!({"rows": 20})),
    ];
    let actions: Vec<Action> = inputs
        .iter()
        .map(|s| plan::step_action(s, &shell))
        .collect();
    let decisions = vec![
        review(&[("sre", 1)], false),
        allow(),
        review(&[("security", 1)], false),
    ];
    let pairs: Vec<_> = actions.iter().zip(&decisions).collect();
    let decision = plan::decide(&pairs, "sha256:00");
    let digests: Vec<Digest> = actions
        .iter()
        .map(|a| Digest::of_action(a, &agent().id))
        .collect();
    let steps = actions
        .iter()
        .zip(&decisions)
        .zip(&digests)
        .map(|((a, d), digest)| PlanStep {
            kind: a.kind.clone(),
            resource: a.resource.clone(),
            digest: *digest,
            effect: d.effect,
            rule: d.rule.clone(),
            key: plan::step_key_for(&agent().id, a, d),
            used_by: None,
        })
        .collect();
    let plan_action = Action {
        kind: plan::PLAN_KIND.into(),
        resource: "plan of 3 steps".into(),
        params: plan::plan_params(&inputs, &digests),
        ..shell
    };
    let (req, events) = Request::submit_plan(
        ids(50),
        agent(),
        plan_action,
        decision,
        Plan { steps },
        RunGate::Open,
        60,
        t0(),
    );
    assert!(matches!(events[1], Event::PlanRecorded { ref steps } if steps.len() == 3));
    (req, actions, decisions)
}

fn approve(plan: &mut Request) {
    for who in [
        person("user:bob@example.com", &["sre"]),
        person("user:carol@example.com", &["security"]),
    ] {
        plan.vote(&ballot(&who, &plan.clone(), VoteDecision::Approve), t0())
            .unwrap();
    }
}

#[test]
fn a_plan_is_reviewed_once_with_the_union_of_its_steps_requirements() {
    let (mut plan, ..) = planned();
    assert_eq!(plan.state(), State::Pending);
    assert_eq!(plan.decision().effect, Effect::Review);
    let clauses = &plan.decision().requirements.as_ref().unwrap().approvers;
    assert_eq!(clauses.len(), 2, "sre for step 1, security for step 3");
    let bob = person("user:bob@example.com", &["sre"]);
    plan.vote(&ballot(&bob, &plan.clone(), VoteDecision::Approve), t0())
        .unwrap();
    assert_eq!(plan.state(), State::Pending, "security must approve too");
    let carol = person("user:carol@example.com", &["security"]);
    plan.vote(&ballot(&carol, &plan.clone(), VoteDecision::Approve), t0())
        .unwrap();
    assert_eq!(plan.state(), State::Approved);
    assert_eq!(plan.plan_status(t0()), "active");
    // The plan's own grant is not an action: it cannot be redeemed.
    let digest = plan.digest();
    assert_eq!(plan.redeem(&digest, t0()), Err(Refusal::PlanNotRedeemable));
}

#[test]
fn a_denied_step_denies_the_plan_naming_the_step_and_rule() {
    let shell = action();
    let actions: Vec<Action> = [step("db.export", json!({})), step("db.drop", json!({}))]
        .iter()
        .map(|s| plan::step_action(s, &shell))
        .collect();
    let deny = Decision {
        effect: Effect::Deny,
        rule: Some("no-drops".into()),
        reason: "never drop".into(),
        requirements: None,
        policy_hash: "sha256:00".into(),
        grant_ttl_seconds: 300,
    };
    let decisions = [review(&[("sre", 1)], false), deny];
    let pairs: Vec<_> = actions.iter().zip(&decisions).collect();
    let d = plan::decide(&pairs, "sha256:00");
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(d.rule.as_deref(), Some("no-drops"));
    assert!(d.reason.contains("step 2 (db.drop on"), "{}", d.reason);
    assert!(d.reason.contains("no-drops: never drop"), "{}", d.reason);
}

#[test]
fn a_plans_approval_covers_each_reviewed_step_once_and_nothing_else() {
    let (mut plan, actions, decisions) = planned();
    let cover = |plan: &Request, a: &Action, d: &Decision, who: Principal, id: u32| {
        Request::submit_planned(ids(id), who, a.clone(), d.clone(), plan, t0())
    };
    // Not yet approved: covers nothing.
    assert!(cover(&plan, &actions[0], &decisions[0], agent(), 60).is_none());
    approve(&mut plan);
    // Step 1: approved at once, its own grant bound to its own digest, naming the plan.
    let (req, events, number) =
        cover(&plan, &actions[0], &decisions[0], agent(), 61).expect("covered");
    assert_eq!(number, 1);
    assert_eq!(req.state(), State::Approved);
    assert_eq!(req.grant().unwrap().digest, req.digest());
    assert_ne!(req.digest(), plan.digest());
    assert_eq!(req.planned_by().unwrap().plan, plan.id());
    assert_eq!(req.planned_by().unwrap().approvers.len(), 2);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::PlanCovered { step: 1, .. }))
    );
    plan.use_plan_step(1, req.id(), t0()).unwrap();
    assert_eq!(
        plan.use_plan_step(1, "req_again", t0()),
        Err(Refusal::PlanInactive("used")),
        "each step once"
    );
    assert!(
        cover(&plan, &actions[0], &decisions[0], agent(), 62).is_none(),
        "a used step covers nothing"
    );
    // The allowed step is not the plan's to cover (the policy allows it as usual).
    assert!(cover(&plan, &actions[1], &decisions[1], agent(), 63).is_none());
    // Another requester, a changed field, another rule or policy: nothing.
    let mut stranger = agent();
    stranger.id = PrincipalId::parse("agent:other").unwrap();
    assert!(cover(&plan, &actions[2], &decisions[2], stranger, 64).is_none());
    let mut changed = actions[2].clone();
    changed.params = json!({"rows": 21});
    assert!(cover(&plan, &changed, &decisions[2], agent(), 65).is_none());
    let mut other_run = actions[2].clone();
    other_run.run = Some("run-2".into());
    assert!(cover(&plan, &other_run, &decisions[2], agent(), 66).is_none());
    let mut other_rule = decisions[2].clone();
    other_rule.rule = Some("another-rule".into());
    assert!(cover(&plan, &actions[2], &other_rule, agent(), 67).is_none());
    let mut other_policy = decisions[2].clone();
    other_policy.policy_hash = "sha256:01".into();
    assert!(cover(&plan, &actions[2], &other_policy, agent(), 68).is_none());
    // Its own words for why are its own: the step is still the step.
    let mut reworded = actions[2].clone();
    reworded.justification = Some("step 3 of the migration".into());
    let (last, _, number) = cover(&plan, &reworded, &decisions[2], agent(), 69).expect("step 3");
    assert_eq!(number, 3);
    plan.use_plan_step(3, last.id(), t0()).unwrap();
    assert_eq!(plan.plan_status(t0()), "done");
    assert!(cover(&plan, &actions[2], &decisions[2], agent(), 70).is_none());
}

#[test]
fn a_plan_covers_nothing_once_its_grant_expired() {
    let (mut plan, actions, decisions) = planned();
    approve(&mut plan);
    let later = plan.grant().unwrap().expires_at;
    assert_eq!(plan.plan_status(later), "expired");
    assert!(
        Request::submit_planned(
            ids(71),
            agent(),
            actions[0].clone(),
            decisions[0].clone(),
            &plan,
            later
        )
        .is_none()
    );
    assert_eq!(
        plan.use_plan_step(1, "req_x", later),
        Err(Refusal::PlanInactive("expired"))
    );
}
