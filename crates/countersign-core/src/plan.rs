//! Plans (issue 18): approve a plan instead of twenty steps. An agent submits its steps at once
//! (`POST /v1/plans`); the policy decides each step; a denied step denies the plan; the steps
//! that need review are reviewed together as one request (kind [`PLAN_KIND`], its params the
//! ordered steps with their digests, so its digest covers them) whose requirements are the
//! union of theirs ([`union_requirements`]). Once the plan is approved, a later action of the
//! same requester equal to a reviewed step (kind, resource and params, and in the plan's run if
//! it names one) that the policy still sends to the same rule has the step's [`step_key`],
//! and is approved at once with its own single-use grant bound to its own digest, naming the
//! plan and the step.
//!
//! **Invariant (a plan's approval covers each reviewed step once, and nothing else):** the key
//! binds the requester, the rule, the policy hash and the step's kind, resource and params
//! (and the covering checks the plan's run), so another
//! requester's action, a changed field, or a policy that decides it otherwise never finds it;
//! each step is used at most once, counted on the plan in the same transaction that records
//! the covered request (`Request::use_plan_step`); only while the plan is approved and its
//! grant has not expired; the plan's own grant cannot be redeemed.

use crate::standing::{ScopeField, keyed};
use crate::{Action, Clause, Decision, Digest, Effect, Escalation, PrincipalId, Requirements};
use serde::{Deserialize, Serialize};

/// The kind of a plan's request. Reserved: an action of this kind is refused at the edge.
pub const PLAN_KIND: &str = "countersign.plan";

/// The most steps one plan may have.
pub const MAX_PLAN_STEPS: usize = 50;

/// One step of a plan as the agent sends it (the plan's justification and run apply to all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StepInput {
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^[A-Za-z0-9_-]([A-Za-z0-9._-]{0,198}[A-Za-z0-9_-])?$")
    )]
    pub kind: String,
    #[cfg_attr(
        feature = "openapi",
        schema(
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]+$",
            max_length = 2048
        )
    )]
    pub resource: String,
    #[serde(default = "empty_object")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub params: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// One step as the plan's request records it: what the policy decided for it, and, for a
/// reviewed step, the key that finds it and which request used it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStep {
    pub kind: String,
    pub resource: String,
    /// The digest of the step as an action of the requester (with the plan's justification
    /// and run).
    pub digest: Digest,
    pub effect: Effect,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// [`step_key`]: present for a reviewed step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Digest>,
    /// The request this step's approval approved, once one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_by: Option<String>,
}

/// What the audit log records of a step's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepDecided {
    /// Numbered from 1.
    pub step: u32,
    pub kind: String,
    pub resource: String,
    pub digest: String,
    pub effect: Effect,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// What a plan's request keeps of its steps, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub steps: Vec<PlanStep>,
}

impl Plan {
    /// The reviewed steps' keys, once each (for parking when the plan is approved).
    pub fn keys(&self) -> Vec<Digest> {
        let mut keys: Vec<Digest> = vec![];
        for key in self.steps.iter().filter_map(|s| s.key) {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        keys
    }

    /// The index of the first reviewed step with `key` not used yet.
    pub fn unused_step(&self, key: &Digest) -> Option<usize> {
        self.steps
            .iter()
            .position(|s| s.used_by.is_none() && s.key.is_some_and(|k| k.ct_eq(key)))
    }
}

/// What a request approved by a plan records of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedBy {
    /// The plan's request id.
    pub plan: String,
    /// The step, numbered from 1.
    pub step: u32,
    pub approvers: Vec<PrincipalId>,
}

/// The key under which the approved plan of `requester` covers `action` decided by `rule`
/// under the policy `policy_hash`: the hash of those and of the action's kind, resource and
/// params in canonical JSON. Not its run: a plan that names a run covers only actions in it
/// (`Request::submit_planned` checks), one that names none covers its steps in any run (an
/// MCP session is a run the agent cannot name in advance).
pub fn step_key(requester: &PrincipalId, rule: &str, policy_hash: &str, action: &Action) -> Digest {
    keyed(
        "countersign plan step v1",
        requester,
        rule,
        policy_hash,
        action,
        &[ScopeField::Kind, ScopeField::Resource, ScopeField::Params],
    )
}

/// The key of `action` by `requester` decided by `decision`, if a plan may cover it: only an
/// action sent to review, and never a plan.
pub fn step_key_for(
    requester: &PrincipalId,
    action: &Action,
    decision: &Decision,
) -> Option<Digest> {
    if decision.effect != Effect::Review || action.kind == PLAN_KIND {
        return None;
    }
    Some(step_key(
        requester,
        decision.rule.as_deref().unwrap_or(""),
        &decision.policy_hash,
        action,
    ))
}

/// The action a step stands for: its kind, resource and params, with the plan's
/// justification, run and labels.
pub fn step_action(step: &StepInput, plan: &Action) -> Action {
    Action {
        kind: step.kind.clone(),
        resource: step.resource.clone(),
        params: step.params.clone(),
        justification: plan.justification.clone(),
        run: plan.run.clone(),
        labels: plan.labels.clone(),
    }
}

/// How the policy decided a plan: denied (naming the first denied step and its rule), allowed
/// (no step needs review), or reviewed with the union of the reviewed steps' requirements.
/// `decisions` are the steps' decisions, in order, all under `policy_hash`.
pub fn decide(decisions: &[(&Action, &Decision)], policy_hash: &str) -> Decision {
    let describe = |i: usize, a: &Action| format!("step {} ({} on {})", i + 1, a.kind, a.resource);
    if let Some((i, (action, d))) = decisions
        .iter()
        .enumerate()
        .find(|(_, (_, d))| d.effect == Effect::Deny)
    {
        let rule = d.rule.as_deref().unwrap_or("the policy's default");
        return Decision {
            effect: Effect::Deny,
            rule: d.rule.clone(),
            reason: format!("{} is denied by {rule}: {}", describe(i, action), d.reason),
            requirements: None,
            policy_hash: policy_hash.to_owned(),
            grant_ttl_seconds: d.grant_ttl_seconds,
        };
    }
    let reviewed: Vec<(usize, &Action, &Requirements, Option<&str>)> = decisions
        .iter()
        .enumerate()
        .filter_map(|(i, (a, d))| {
            (d.effect == Effect::Review)
                .then_some(())
                .and(d.requirements.as_ref())
                .map(|r| (i, *a, r, d.rule.as_deref()))
        })
        .collect();
    let ttl = decisions
        .iter()
        .map(|(_, d)| d.grant_ttl_seconds)
        .max()
        .unwrap_or(crate::decision::DEFAULT_GRANT_TTL_SECONDS);
    if reviewed.is_empty() {
        return Decision {
            effect: Effect::Allow,
            rule: None,
            reason: format!("every step of the plan ({}) is allowed", decisions.len()),
            requirements: None,
            policy_hash: policy_hash.to_owned(),
            grant_ttl_seconds: ttl,
        };
    }
    let mut rules: Vec<&str> = vec![];
    for rule in reviewed.iter().map(|(_, _, _, r)| r.unwrap_or("default")) {
        if !rules.contains(&rule) {
            rules.push(rule);
        }
    }
    let numbers: Vec<String> = reviewed.iter().map(|(i, ..)| (i + 1).to_string()).collect();
    let requirements = union_requirements(reviewed.iter().map(|(_, _, r, _)| *r));
    Decision {
        effect: Effect::Review,
        rule: Some(format!("plan: {}", rules.join(" + "))),
        reason: format!(
            "step{} {} of {} need{} review ({})",
            if numbers.len() == 1 { "" } else { "s" },
            numbers.join(", "),
            decisions.len(),
            if numbers.len() == 1 { "s" } else { "" },
            rules.join(", ")
        ),
        grant_ttl_seconds: requirements.grant_ttl_seconds,
        requirements: Some(requirements),
        policy_hash: policy_hash.to_owned(),
    }
}

/// The union of several reviews' requirements, so one approval satisfies each: every group's
/// slots at the largest count any asks, a second factor if any asks, the shortest timeout and
/// reminder, the longest minimum reading time, a comment if any asks, every audience; the
/// grant lasts as long as the longest (it bounds how long the steps may be submitted; each
/// step's own grant then lasts as its rule says). No amendments, no standing approvals.
pub fn union_requirements<'a>(all: impl Iterator<Item = &'a Requirements>) -> Requirements {
    let mut out: Option<Requirements> = None;
    for r in all {
        let Some(u) = out.as_mut() else {
            let mut first = r.clone();
            first.amend = false;
            first.standing = None;
            first.approvers = merge_clauses(&[], &r.approvers);
            out = Some(first);
            continue;
        };
        u.approvers = merge_clauses(&u.approvers, &r.approvers);
        u.mfa |= r.mfa;
        u.timeout_seconds = u.timeout_seconds.min(r.timeout_seconds);
        u.pause_run |= r.pause_run;
        u.grant_ttl_seconds = u.grant_ttl_seconds.max(r.grant_ttl_seconds);
        for target in &r.notify {
            if !u.notify.contains(target) {
                u.notify.push(target.clone());
            }
        }
        u.remind_seconds = match (u.remind_seconds, r.remind_seconds) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        u.escalate = match (u.escalate.take(), &r.escalate) {
            (Some(a), Some(b)) => {
                let mut notify = a.notify.clone();
                for t in &b.notify {
                    if !notify.contains(t) {
                        notify.push(t.clone());
                    }
                }
                Some(Escalation {
                    after_seconds: a.after_seconds.min(b.after_seconds),
                    notify,
                })
            }
            (a, b) => a.or_else(|| b.clone()),
        };
        u.require_comment |= r.require_comment;
        u.min_review_seconds = match (u.min_review_seconds, r.min_review_seconds) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    out.unwrap_or_else(|| Requirements {
        approvers: vec![],
        mfa: false,
        timeout_seconds: 3600,
        on_timeout: Default::default(),
        pause_run: false,
        grant_ttl_seconds: crate::decision::DEFAULT_GRANT_TTL_SECONDS,
        notify: vec![],
        remind_seconds: None,
        escalate: None,
        require_comment: false,
        min_review_seconds: None,
        amend: false,
        standing: None,
    })
}

/// `a` with each clause of `b`: a group already there keeps the larger count, a new group is
/// added (one clause per group, in first-seen order).
fn merge_clauses(a: &[Clause], b: &[Clause]) -> Vec<Clause> {
    let mut out: Vec<Clause> = vec![];
    for c in a.iter().chain(b) {
        match out.iter_mut().find(|o| o.group == c.group) {
            Some(o) => o.count = o.count.max(c.count),
            None => out.push(c.clone()),
        }
    }
    out
}

/// The params of a plan's request: the ordered steps, each with its digest, so the plan's
/// digest covers them.
pub fn plan_params(steps: &[StepInput], digests: &[Digest]) -> serde_json::Value {
    let steps: Vec<serde_json::Value> = steps
        .iter()
        .zip(digests)
        .map(|(s, d)| {
            serde_json::json!({
                "kind": s.kind,
                "resource": s.resource,
                "params": s.params,
                "digest": d.to_string(),
            })
        })
        .collect();
    serde_json::json!({ "steps": steps })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(approvers: &[(&str, u32)], mfa: bool, timeout: u64) -> Requirements {
        let mut r = union_requirements(std::iter::empty());
        r.approvers = approvers
            .iter()
            .map(|(g, c)| Clause {
                group: (*g).into(),
                count: *c,
            })
            .collect();
        r.mfa = mfa;
        r.timeout_seconds = timeout;
        r
    }

    #[test]
    fn a_plans_requirements_are_the_union_of_its_reviewed_steps() {
        let a = req(&[("sre", 1), ("security", 1)], false, 600);
        let b = req(&[("sre", 2)], true, 300);
        let mut c = req(&[("dba", 1)], false, 900);
        c.require_comment = true;
        c.notify = vec!["slack:#dba".into()];
        let u = union_requirements([&a, &b, &c].into_iter());
        let groups: Vec<(String, u32)> = u
            .approvers
            .iter()
            .map(|c| (c.group.clone(), c.count))
            .collect();
        assert_eq!(
            groups,
            vec![("sre".into(), 2), ("security".into(), 1), ("dba".into(), 1)]
        );
        assert!(u.mfa);
        assert!(u.require_comment);
        assert_eq!(u.timeout_seconds, 300);
        assert_eq!(u.notify, vec!["slack:#dba".to_string()]);
        assert!(!u.amend && u.standing.is_none());
    }

    #[test]
    fn a_step_key_binds_requester_rule_policy_kind_resource_and_params() {
        let agent = PrincipalId::parse("agent:a").unwrap();
        let other = PrincipalId::parse("agent:b").unwrap();
        let action = Action {
            kind: "db.export".into(),
            resource: "db:prod".into(),
            params: serde_json::json!({"table": "users"}),
            justification: Some("why".into()),
            run: Some("r1".into()),
            labels: Default::default(),
        };
        let key = step_key(&agent, "exports", "sha256:p", &action);
        // The justification is not part of it: the agent may say why again in its own words.
        let mut same = action.clone();
        same.justification = Some("another reason".into());
        assert_eq!(key, step_key(&agent, "exports", "sha256:p", &same));
        assert_ne!(key, step_key(&other, "exports", "sha256:p", &action));
        assert_ne!(key, step_key(&agent, "other", "sha256:p", &action));
        assert_ne!(key, step_key(&agent, "exports", "sha256:q", &action));
        // Nor the run (checked against the plan's when it is covered).
        let mut elsewhere = action.clone();
        elsewhere.run = Some("mcp:session".into());
        assert_eq!(key, step_key(&agent, "exports", "sha256:p", &elsewhere));
        for change in [
            |a: &mut Action| a.kind = "db.drop".into(),
            |a: &mut Action| a.resource = "db:staging".into(),
            |a: &mut Action| a.params = serde_json::json!({"table": "orders"}),
        ] {
            let mut changed = action.clone();
            change(&mut changed);
            assert_ne!(key, step_key(&agent, "exports", "sha256:p", &changed));
        }
        // Never the key of a standing approval for the same fields.
        let scope = [ScopeField::Kind, ScopeField::Resource, ScopeField::Params];
        assert_ne!(
            key,
            crate::standing::standing_key(&agent, "exports", "sha256:p", &action, &scope)
        );
    }
}
