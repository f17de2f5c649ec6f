//! Plans (issue 18, `countersign_core::plan`): an agent's steps decided at once and, where they
//! need people, reviewed together as one request.

use super::once::{Asked, idempotency_digest};
use super::{AtOnce, Decided, Gateway, GatewayError};
use countersign_core::plan::{
    self, MAX_PLAN_STEPS, PLAN_KIND, Plan, PlanStep, StepInput, step_action,
};
use countersign_core::{Action, Digest, Effect, Principal};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A plan as the agent sends it (`POST /v1/plans`).
#[derive(Debug, Clone)]
pub struct PlanInput {
    pub steps: Vec<StepInput>,
    pub justification: Option<String>,
    pub run: Option<String>,
    pub labels: BTreeMap<String, String>,
}

impl Gateway {
    /// Decides each step of `input` with the current policy and records the plan's request
    /// (once: an `Idempotency-Key` and identical pending plans are answered as
    /// [`Gateway::submit_once`] answers actions). A denied step denies the plan (its outcome
    /// names the step and the rule); steps that need review are reviewed together, with the
    /// union of their requirements; once approved, each reviewed step is approved at once
    /// when the agent submits it as an action.
    pub async fn submit_plan(
        self: &Arc<Self>,
        requester: &Principal,
        input: PlanInput,
        idempotency_key: Option<&str>,
    ) -> Result<Asked, GatewayError> {
        let idempotency = idempotency_key.map(idempotency_digest).transpose()?;
        let n = input.steps.len();
        if n == 0 || n > MAX_PLAN_STEPS {
            return Err(GatewayError::BadInput(
                "invalid_plan",
                format!("a plan has 1-{MAX_PLAN_STEPS} steps (got {n})"),
            ));
        }
        let shell = Action {
            kind: PLAN_KIND.into(),
            resource: format!("plan of {n} step{}", if n == 1 { "" } else { "s" }),
            params: serde_json::json!({}),
            justification: input.justification,
            run: input.run,
            labels: input.labels,
        };
        shell.validate()?;
        super::once::refuse_reserved_labels(&shell)?;
        let mut actions = Vec::with_capacity(n);
        for (i, step) in input.steps.iter().enumerate() {
            let action = step_action(step, &shell);
            let at = |e: String| {
                GatewayError::BadInput("invalid_action", format!("step {}: {e}", i + 1))
            };
            if action.kind == PLAN_KIND {
                return Err(at(format!("a plan cannot contain a plan (`{PLAN_KIND}`)")));
            }
            action.validate().map_err(|e| at(e.to_string()))?;
            self.executors
                .check(&action)
                .map_err(|e| at(e.to_string()))?;
            actions.push(action);
        }
        let now = self.clock.now();
        let policy = self.policy.current();
        let mut decisions = Vec::with_capacity(n);
        for action in &actions {
            decisions.push(
                self.evaluator
                    .evaluate(&policy, requester, action, now)
                    .await,
            );
        }
        let pairs: Vec<_> = actions.iter().zip(&decisions).collect();
        let decision = plan::decide(&pairs, policy.hash());
        let digests: Vec<Digest> = actions
            .iter()
            .map(|a| Digest::of_action(a, &requester.id))
            .collect();
        let steps = actions
            .iter()
            .zip(&decisions)
            .zip(&digests)
            .map(|((action, d), digest)| PlanStep {
                kind: action.kind.clone(),
                resource: action.resource.clone(),
                digest: *digest,
                effect: d.effect,
                rule: d.rule.clone(),
                key: (d.effect == Effect::Review)
                    .then(|| plan::step_key_for(&requester.id, action, d))
                    .flatten(),
                used_by: None,
            })
            .collect();
        let action = Action {
            params: plan::plan_params(&input.steps, &digests),
            ..shell
        };
        let decided = Decided {
            decision,
            plan: Some(Plan { steps }),
            hold_timeout: policy.default_review_timeout_seconds(),
        };
        self.ask_once(
            requester,
            action,
            Some(&decided),
            idempotency,
            AtOnce::Record,
        )
        .await
    }
}
