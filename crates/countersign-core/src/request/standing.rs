//! A request's standing approval (see `crate::standing`): asked for by approving votes, formed
//! when they approve the request, used by later actions it covers, revoked by people.

use super::{Refusal, Request, State, VoteDecision};
use crate::standing::{CoveredBy, Standing, StandingAsk, standing_key};
use crate::{Action, Decision, Digest, Effect, Event, Principal, Requirements, Timestamp};

/// Refuses an ask the rule does not allow: on a denial, on a rule with `mfa: true`, on a rule
/// without `standing`, or beyond the rule's bounds.
pub(super) fn check_ask(
    decision: VoteDecision,
    requirements: &Requirements,
    ask: &StandingAsk,
) -> Result<(), Refusal> {
    let refuse = |why: &str| Err(Refusal::StandingNotAllowed(why.to_owned()));
    if decision != VoteDecision::Approve {
        return refuse("only an approval may ask for a standing approval");
    }
    if requirements.mfa {
        return refuse(
            "this rule requires a second factor for every action: it allows no standing approvals",
        );
    }
    let Some(rule) = &requirements.standing else {
        return refuse("this rule allows no standing approvals");
    };
    match rule.refuse(ask) {
        Some(why) => refuse(&why),
        None => Ok(()),
    }
}

impl Request {
    /// The standing approval this request's approval formed, if any.
    pub fn standing(&self) -> Option<&Standing> {
        self.standing.as_ref()
    }

    /// The standing approval that approved this request at once, if one did.
    pub fn covered_by(&self) -> Option<&CoveredBy> {
        self.covered_by.as_ref()
    }

    /// The key under which a standing approval would cover `action` of `requester` decided by
    /// `decision`: `None` unless the decision sends it to a review whose rule allows standing
    /// approvals (and does not require a second factor).
    pub fn standing_key_for(
        requester: &Principal,
        action: &Action,
        decision: &Decision,
    ) -> Option<Digest> {
        let rule = standing_rule_of(decision)?;
        Some(standing_key(
            &requester.id,
            decision.rule.as_deref().unwrap_or(""),
            &decision.policy_hash,
            action,
            &rule.scope,
        ))
    }

    /// On approval: forms the standing approval every approving vote asked for (the smallest
    /// duration and uses win), if they all asked.
    pub(super) fn form_standing(&mut self, now: Timestamp) -> Vec<Event> {
        let approvals: Vec<_> = self
            .votes
            .iter()
            .filter(|v| v.decision == VoteDecision::Approve)
            .collect();
        if approvals.is_empty() || approvals.iter().any(|v| v.standing.is_none()) {
            return vec![];
        }
        let Some(key) = Request::standing_key_for(&self.requester, &self.action, &self.decision)
        else {
            return vec![];
        };
        let Some(rule) = self
            .decision
            .requirements
            .as_ref()
            .and_then(|r| r.standing.as_ref())
        else {
            return vec![];
        };
        let asks = approvals.iter().filter_map(|v| v.standing);
        let seconds = asks.clone().map(|a| a.seconds).min().unwrap_or(0);
        let uses = asks.map(|a| a.uses).min().unwrap_or(0);
        let standing = Standing {
            key,
            scope: rule.scope.clone(),
            until: now + super::seconds(seconds),
            uses,
            used: 0,
            approvers: approvals.iter().map(|v| v.approver.clone()).collect(),
            revoked_by: None,
            revoked_at: None,
        };
        let event = Event::StandingGranted {
            until: standing.until,
            uses,
            scope: standing.scope.clone(),
            approvers: standing.approvers.clone(),
        };
        self.standing = Some(standing);
        vec![event]
    }

    /// Records how many uses this request's standing approval has left, as the store counts
    /// them (beside the pair that finds it, in the transaction of each covered action): its
    /// `used` is the uses allowed less those left. Never lowers `used`.
    pub fn count_standing_uses(&mut self, left: u32) {
        if let Some(s) = self.standing.as_mut() {
            s.used = s.used.max(s.uses.saturating_sub(left));
        }
    }

    /// Revokes this request's standing approval: by a person who may decide the request (in
    /// one of its groups) or the owner of the requesting agent. The next action is asked about
    /// again.
    pub fn revoke_standing(
        &mut self,
        by: &Principal,
        now: Timestamp,
    ) -> Result<Vec<Event>, Refusal> {
        let eligible = by.is_person()
            && (self.requester.owner.as_ref() == Some(&by.id)
                || self
                    .decision
                    .requirements
                    .as_ref()
                    .is_some_and(|r| r.is_eligible_group(&by.groups)));
        if !eligible {
            return Err(Refusal::NotAnApprover {
                needed: "an approver of this request's rule, or the owner of its agent".into(),
            });
        }
        let standing = self
            .standing
            .as_mut()
            .ok_or(Refusal::StandingInactive("absent"))?;
        if !standing.is_active(now) {
            return Err(Refusal::StandingInactive(standing.status(now)));
        }
        standing.revoked_by = Some(by.id.clone());
        standing.revoked_at = Some(now);
        Ok(vec![Event::StandingRevoked {
            by: by.id.clone(),
            used: standing.used,
        }])
    }

    /// A new request for `action`, sent to review by `decision`, approved at once by the
    /// standing approval of `source`: its own single-use grant, bound to its own digest. The
    /// store inserts it only in a write that took one use of the approval (beside the pair that
    /// names `source`). `None` when `source` has no standing approval for this action's key, or
    /// it was revoked or has expired.
    pub fn submit_covered(
        id: String,
        requester: Principal,
        action: Action,
        decision: Decision,
        source: &Request,
        now: Timestamp,
    ) -> Option<(Request, Vec<Event>)> {
        let key = Request::standing_key_for(&requester, &action, &decision)?;
        Request::submit_covered_under(&key, id, requester, action, decision, source, now)
    }

    /// [`Request::submit_covered`] for a caller that has computed `key` already, with
    /// [`Request::standing_key_for`] of the same requester, action and decision (hashing it
    /// again would cost a covered action a second canonical serialisation). What needs no hash
    /// is checked again: the decision still allows a standing approval (a review, never with a
    /// second factor).
    pub fn submit_covered_under(
        key: &Digest,
        id: String,
        requester: Principal,
        action: Action,
        decision: Decision,
        source: &Request,
        now: Timestamp,
    ) -> Option<(Request, Vec<Event>)> {
        debug_assert_eq!(
            Some(*key),
            Request::standing_key_for(&requester, &action, &decision),
            "the key is the action's"
        );
        standing_rule_of(&decision)?;
        let standing = source.standing.as_ref()?;
        if !key.ct_eq(&standing.key) || source.requester.id != requester.id {
            return None;
        }
        if standing.revoked_at.is_some() || now >= standing.until {
            return None;
        }
        let (mut req, mut events) = Request::submit(
            id,
            requester,
            action,
            decision,
            super::RunGate::Open,
            0,
            now,
        );
        if req.state != State::Pending {
            return None;
        }
        let covered = CoveredBy {
            standing: source.id.clone(),
            approvers: standing.approvers.clone(),
        };
        // Said in the creation's own entry.
        if let Some(Event::RequestCreated { standing: said, .. }) = events.first_mut() {
            *said = Some(crate::event::StandingUse {
                standing: covered.standing.clone(),
                approvers: covered.approvers.clone(),
                uses: standing.uses,
            });
        }
        req.covered_by = Some(covered);
        events.extend(req.approve(now));
        Some((req, events))
    }
}

/// The standing approvals `decision`'s rule allows: only for a review, never with a second
/// factor.
fn standing_rule_of(decision: &Decision) -> Option<&crate::standing::StandingRule> {
    let requirements = decision.requirements.as_ref()?;
    let rule = requirements.standing.as_ref()?;
    (decision.effect == Effect::Review && !requirements.mfa).then_some(rule)
}
