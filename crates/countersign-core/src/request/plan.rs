//! A plan's request (see `crate::plan`): recorded with its steps' decisions, approved as one
//! review, then used step by step by the later actions it covers.

use super::{Refusal, Request, RunGate, State, VoteDecision};
use crate::plan::{Plan, PlannedBy, StepDecided, step_key_for};
use crate::{Action, Decision, Event, Principal, PrincipalId, Timestamp};

impl Request {
    /// The steps of this plan, if it is a plan's request.
    pub fn plan(&self) -> Option<&Plan> {
        self.plan.as_ref()
    }

    /// The plan whose approval approved this request at once, if one did.
    pub fn planned_by(&self) -> Option<&PlannedBy> {
        self.planned_by.as_ref()
    }

    /// True when an earlier approval (a standing approval or a plan) approved this request at
    /// once: nobody is asked about it.
    pub fn is_covered(&self) -> bool {
        self.covered_by.is_some() || self.planned_by.is_some()
    }

    /// A new plan's request: [`Request::submit`] of the plan's action (kind
    /// [`crate::plan::PLAN_KIND`]) decided by [`crate::plan::decide`], keeping `plan`; the
    /// audit log records each step's decision.
    #[allow(clippy::too_many_arguments)]
    pub fn submit_plan(
        id: String,
        requester: Principal,
        action: Action,
        decision: Decision,
        plan: Plan,
        gate: RunGate,
        hold_timeout_seconds: u64,
        now: Timestamp,
    ) -> (Request, Vec<Event>) {
        let (mut req, mut events) = Request::submit(
            id,
            requester,
            action,
            decision,
            gate,
            hold_timeout_seconds,
            now,
        );
        let steps = plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| StepDecided {
                step: step_number(i),
                kind: s.kind.clone(),
                resource: s.resource.clone(),
                digest: s.digest.to_string(),
                effect: s.effect,
                rule: s.rule.clone(),
            })
            .collect();
        events.insert(1, Event::PlanRecorded { steps });
        req.plan = Some(plan);
        (req, events)
    }

    /// Whether this plan covers steps at `now`: `pending` (not decided yet), `active`
    /// (approved, its grant in force, a reviewed step left), `done` (every reviewed step used),
    /// `expired` (its grant expired), or the request's state when it was refused.
    pub fn plan_status(&self, now: Timestamp) -> &'static str {
        let Some(plan) = &self.plan else {
            return "none";
        };
        match self.state {
            State::Approved => {
                if plan
                    .steps
                    .iter()
                    .all(|s| s.key.is_none() || s.used_by.is_some())
                {
                    "done"
                } else if self.grant.as_ref().is_none_or(|g| g.is_expired(now)) {
                    "expired"
                } else {
                    "active"
                }
            }
            state => state.as_str(),
        }
    }

    /// A new request for `action`, sent to review by `decision`, approved at once by an unused
    /// reviewed step of the approved plan `plan` (whose use the caller records in the same
    /// write, [`Request::use_plan_step`]): its own single-use grant bound to its own digest.
    /// Returns it with the step's number; `None` when the plan does not cover it now.
    pub fn submit_planned(
        id: String,
        requester: Principal,
        action: Action,
        decision: Decision,
        plan: &Request,
        now: Timestamp,
    ) -> Option<(Request, Vec<Event>, u32)> {
        let steps = plan.plan.as_ref()?;
        if plan.plan_status(now) != "active" || plan.requester.id != requester.id {
            return None;
        }
        // A plan that names a run covers its steps in that run only.
        if plan.action.run.is_some() && plan.action.run != action.run {
            return None;
        }
        let key = step_key_for(&requester.id, &action, &decision)?;
        let step = step_number(steps.unused_step(&key)?);
        let (mut req, mut events) =
            Request::submit(id, requester, action, decision, RunGate::Open, 0, now);
        if req.state != State::Pending {
            return None;
        }
        let planned = PlannedBy {
            plan: plan.id.clone(),
            step,
            approvers: plan.approvers(),
        };
        events.push(Event::PlanCovered {
            plan: planned.plan.clone(),
            step,
            approvers: planned.approvers.clone(),
        });
        req.planned_by = Some(planned);
        events.extend(req.approve(now));
        Some((req, events, step))
    }

    /// Records that step `step` (from 1) of this plan approved request `by_request`; refused
    /// unless the plan is in force and the step is a reviewed one not used yet.
    pub fn use_plan_step(
        &mut self,
        step: u32,
        by_request: &str,
        now: Timestamp,
    ) -> Result<Vec<Event>, Refusal> {
        let status = self.plan_status(now);
        if status != "active" {
            return Err(Refusal::PlanInactive(status));
        }
        let index = usize::try_from(step.saturating_sub(1)).unwrap_or(usize::MAX);
        let entry = self
            .plan
            .as_mut()
            .and_then(|p| p.steps.get_mut(index))
            .filter(|s| step > 0 && s.key.is_some() && s.used_by.is_none())
            .ok_or(Refusal::PlanInactive("used"))?;
        entry.used_by = Some(by_request.to_owned());
        Ok(vec![Event::PlanStepUsed {
            step,
            by_request: by_request.to_owned(),
        }])
    }

    /// The people whose approvals count on this request.
    fn approvers(&self) -> Vec<PrincipalId> {
        self.votes
            .iter()
            .filter(|v| v.decision == VoteDecision::Approve)
            .map(|v| v.approver.clone())
            .collect()
    }
}

fn step_number(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}
