//! One action under review and its state machine.
//!
//! ```text
//! pending ─┬─> approved ──> executed | failed
//!          ├─> denied
//!          ├─> expired
//!          └─> cancelled          (approved ──> cancelled too, voiding the unused grant)
//! ```
//! Every transition is a method that takes `now` and returns the events to record, or a
//! `Refusal` and leaves the request untouched. Terminal states never change. Handlers never
//! re-check these rules: they call these methods inside a store transaction.

use crate::execution::Execution;
use crate::plan::{Plan, PlannedBy};
use crate::quorum::{self, Approver};
use crate::standing::{CoveredBy, Standing, StandingAsk};
use crate::{
    Action, Clause, Decision, Digest, Effect, Event, Grant, Principal, PrincipalId, RunState,
    Timestamp,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum State {
    Pending,
    Approved,
    Denied,
    Expired,
    Cancelled,
    Executed,
    Failed,
}

impl State {
    /// Terminal states never change.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            State::Denied | State::Expired | State::Cancelled | State::Executed | State::Failed
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Denied => "denied",
            State::Expired => "expired",
            State::Cancelled => "cancelled",
            State::Executed => "executed",
            State::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        [
            State::Pending,
            State::Approved,
            State::Denied,
            State::Expired,
            State::Cancelled,
            State::Executed,
            State::Failed,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum VoteDecision {
    Approve,
    Deny,
}

/// Where a vote or a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Api,
    Cli,
    Slack,
    Teams,
    Console,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Api => "api",
            Channel::Cli => "cli",
            Channel::Slack => "slack",
            Channel::Teams => "teams",
            Channel::Console => "console",
        }
    }
}

/// How a voter proved their second factor with a vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum MfaMethod {
    /// A one-time code (RFC 6238).
    Totp,
    /// A passkey or security key (WebAuthn assertion).
    Webauthn,
}

impl MfaMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            MfaMethod::Totp => "totp",
            MfaMethod::Webauthn => "webauthn",
        }
    }
}

/// One person's recorded vote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Vote {
    pub approver: PrincipalId,
    /// The approver's groups when they voted: quorum is decided on this snapshot.
    pub groups: Vec<String>,
    pub decision: VoteDecision,
    pub channel: Channel,
    pub mfa: bool,
    /// Which second factor verified the vote (absent on votes without one, and on votes
    /// recorded before methods were).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa_method: Option<MfaMethod>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The standing approval this approval asked for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standing: Option<StandingAsk>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
}

/// A vote as cast, before the state machine accepts it.
#[derive(Debug, Clone)]
pub struct Ballot<'a> {
    pub voter: &'a Principal,
    pub decision: VoteDecision,
    /// The digest the voter was shown. Must equal the request's.
    pub digest: Digest,
    pub channel: Channel,
    /// The second factor the voter proved with this vote, if any.
    pub mfa: Option<MfaMethod>,
    pub comment: Option<String>,
    /// A standing approval asked for with an approval (see `crate::standing`).
    pub standing: Option<StandingAsk>,
}

/// Why a new request is held or refused because of its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunGate {
    /// The run is active: decide as the policy says.
    Open,
    /// The run is paused (by a person, or by a pending `pause_run` request): hold the request.
    Paused,
    /// The run is stopped: deny with `run_stopped`.
    Stopped,
}

impl RunGate {
    /// The gate a new request of a run meets, given the run's stored state (none when the run
    /// has never been paused or stopped) and whether another request of the run pauses it
    /// ([`Request::pauses_run`]).
    pub fn of(stored: Option<RunState>, paused_by_request: bool) -> RunGate {
        match stored {
            Some(RunState::Stopped) => RunGate::Stopped,
            Some(RunState::Paused) => RunGate::Paused,
            _ if paused_by_request => RunGate::Paused,
            _ => RunGate::Open,
        }
    }
}

/// A request under review. Its fields are private: it is made by [`Request::submit`], changed
/// only by the state machine's methods (the store applies a [`Transition`]), read through the
/// getters below, and decoded from its stored JSON body by serde.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    id: String,
    requester: Principal,
    action: Action,
    digest: Digest,
    decision: Decision,
    state: State,
    /// True while the request waits for its paused run; it cannot be approved meanwhile.
    held: bool,
    votes: Vec<Vote>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    grant: Option<Grant>,
    created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    closed_at: Option<Timestamp>,
    /// Who closed it and why, in a sentence (for denied, cancelled, expired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outcome: Option<String>,
    /// Machine code for the outcome of a refused action (`policy_denied`, `run_stopped`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outcome_code: Option<String>,
    /// How the approved action was carried out, once it was (see `crate::execution`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    execution: Option<Execution>,
    /// The standing approval this request's approval formed (see `crate::standing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    standing: Option<Standing>,
    /// The standing approval that approved this request at once, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    covered_by: Option<CoveredBy>,
    /// Amendments by approvers (see `request::amend`), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    amendments: Vec<Amendment>,
    /// The steps of a plan, on a plan's request (see `crate::plan`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plan: Option<Plan>,
    /// The plan whose approval approved this request at once, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    planned_by: Option<PlannedBy>,
    /// The W3C `traceparent` the agent's call carried (outside the action: it is not part of
    /// what is approved), recorded on every audit entry about the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trace: Option<crate::trace::TraceParent>,
}

/// Reading a request. Its fields are private: only the state machine's methods change them.
impl Request {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn requester(&self) -> &Principal {
        &self.requester
    }

    pub fn action(&self) -> &Action {
        &self.action
    }

    pub fn digest(&self) -> Digest {
        self.digest
    }

    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// True while the request waits for its paused run; it cannot be approved meanwhile.
    pub fn held(&self) -> bool {
        self.held
    }

    pub fn votes(&self) -> &[Vote] {
        &self.votes
    }

    pub fn grant(&self) -> Option<&Grant> {
        self.grant.as_ref()
    }

    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }

    pub fn expires_at(&self) -> Option<Timestamp> {
        self.expires_at
    }

    pub fn closed_at(&self) -> Option<Timestamp> {
        self.closed_at
    }

    /// The W3C `traceparent` the agent's call carried, if it carried a valid one.
    pub fn trace(&self) -> Option<&crate::trace::TraceParent> {
        self.trace.as_ref()
    }

    /// Records the `traceparent` of the call that made this request (before it is stored: the
    /// gateway sets it on a request it has just built).
    pub fn set_trace(&mut self, trace: Option<crate::trace::TraceParent>) {
        self.trace = trace;
    }

    /// Who closed it and why, in a sentence (for denied, cancelled, expired).
    pub fn outcome(&self) -> Option<&str> {
        self.outcome.as_deref()
    }

    /// Machine code for the outcome of a refused action (`policy_denied`, `run_stopped`, ...).
    pub fn outcome_code(&self) -> Option<&str> {
        self.outcome_code.as_deref()
    }

    /// How the approved action was carried out, once it was, with the copy of its output:
    /// show it only to a viewer [`Request::may_read_output`] admits, and
    /// [`Execution::without_output`] to the others.
    pub fn execution(&self) -> Option<&Execution> {
        self.execution.as_ref()
    }

    /// True while an execution runs and its deadline has passed: the gateway that ran it died.
    pub fn is_interrupted(&self, now: Timestamp) -> bool {
        self.execution
            .as_ref()
            .is_some_and(|e| e.is_running() && e.deadline.is_some_and(|d| now >= d))
    }
}

fn seconds(s: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000))
}

/// Why a requester's client stopped a request (see [`Request::cancel_for`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancellation {
    /// The client asked to cancel.
    Asked,
    /// The client left before it was answered (timed out, crashed, disconnected).
    Abandoned,
}

impl Request {
    /// A new request for `action` by `requester`, decided by `decision`, gated by its run.
    /// `hold_timeout_seconds` bounds how long an allowed action may wait for a paused run.
    pub fn submit(
        id: String,
        requester: Principal,
        action: Action,
        decision: Decision,
        gate: RunGate,
        hold_timeout_seconds: u64,
        now: Timestamp,
    ) -> (Request, Vec<Event>) {
        let digest = Digest::of_action(&action, &requester.id);
        let mut req = Request {
            id,
            requester,
            action,
            digest,
            decision,
            state: State::Pending,
            held: false,
            votes: vec![],
            grant: None,
            created_at: now,
            expires_at: None,
            closed_at: None,
            outcome: None,
            outcome_code: None,
            execution: None,
            standing: None,
            covered_by: None,
            amendments: vec![],
            plan: None,
            planned_by: None,
            trace: None,
        };
        let mut events = vec![];
        match (gate, req.decision.effect) {
            (_, Effect::Deny) => {
                req.close(
                    State::Denied,
                    now,
                    req.decision.reason.clone(),
                    "policy_denied",
                );
            }
            (RunGate::Stopped, _) => {
                let run = req.action.run.clone().unwrap_or_default();
                req.close(
                    State::Denied,
                    now,
                    format!("run {run} is stopped; no new actions are accepted"),
                    "run_stopped",
                );
            }
            (RunGate::Paused, effect) => {
                req.held = true;
                let timeout = match (effect, &req.decision.requirements) {
                    (Effect::Review, Some(r)) => r.timeout_seconds,
                    _ => hold_timeout_seconds,
                };
                req.expires_at = Some(now + seconds(timeout));
            }
            (RunGate::Open, Effect::Allow) => {
                events.extend(req.approve(now));
            }
            (RunGate::Open, Effect::Review) => {
                let timeout = req
                    .decision
                    .requirements
                    .as_ref()
                    .map_or(hold_timeout_seconds, |r| r.timeout_seconds);
                req.expires_at = Some(now + seconds(timeout));
            }
        }
        let created = Event::RequestCreated {
            kind: req.action.kind.clone(),
            resource: req.action.resource.clone(),
            state: req.state,
            effect: req.decision.effect,
            rule: req.decision.rule.clone(),
            held: req.held,
            standing: None,
        };
        events.insert(0, created);
        if req.state == State::Denied {
            events.push(Event::RequestDenied {
                by: None,
                reason: req.outcome.clone().unwrap_or_default(),
            });
        }
        (req, events)
    }

    fn close(&mut self, state: State, now: Timestamp, outcome: String, code: &str) {
        self.state = state;
        self.closed_at = Some(now);
        self.outcome = Some(outcome);
        self.outcome_code = Some(code.to_string());
    }

    /// The id of this request's grant: `grt_` and the request id's unique part. A grant is
    /// useless without the requester's credentials and the digest, so the id need not be secret.
    pub fn grant_id(&self) -> String {
        grant_id_for(&self.id)
    }

    fn approve(&mut self, now: Timestamp) -> Vec<Event> {
        let grant_id = self.grant_id();
        let ttl = self
            .decision
            .requirements
            .as_ref()
            .map_or(self.decision.grant_ttl_seconds, |r| r.grant_ttl_seconds);
        let grant = Grant::single_use(grant_id, self.digest, now, ttl);
        let event = Event::RequestApproved {
            grant: grant.id.clone(),
            grant_expires_at: grant.expires_at,
        };
        self.state = State::Approved;
        self.grant = Some(grant);
        self.held = false;
        self.expires_at = None;
        let mut events = vec![event];
        events.extend(self.form_standing(now));
        events
    }

    /// True when the request is pending and its deadline has passed.
    pub fn is_due(&self, now: Timestamp) -> bool {
        self.state == State::Pending && self.expires_at.is_some_and(|t| now >= t)
    }

    /// Expires a pending request whose deadline has passed. Returns the events, or none when
    /// nothing is due.
    pub fn expire_if_due(&mut self, now: Timestamp) -> Vec<Event> {
        if !self.is_due(now) {
            return vec![];
        }
        self.close(
            State::Expired,
            now,
            "no decision before the review timed out".into(),
            "request_expired",
        );
        self.held = false;
        vec![Event::RequestExpired]
    }

    /// The approvals that count, as quorum input.
    fn approvals(&self) -> Vec<Approver<'_>> {
        self.votes
            .iter()
            .filter(|v| v.decision == VoteDecision::Approve)
            .map(|v| Approver {
                id: v.approver.as_str(),
                groups: &v.groups,
            })
            .collect()
    }

    /// What is still needed before the request is approved.
    pub fn remaining(&self) -> Vec<Clause> {
        match &self.decision.requirements {
            Some(r) if self.state == State::Pending => {
                quorum::remaining(&r.approvers, &self.approvals())
            }
            _ => vec![],
        }
    }

    /// Casts one vote. On success returns the events (the vote, and the decision if it closed
    /// the request); on refusal nothing changed.
    pub fn vote(&mut self, ballot: &Ballot<'_>, now: Timestamp) -> Result<Vec<Event>, Refusal> {
        if self.is_due(now) {
            return Err(Refusal::RequestExpired);
        }
        if self.state != State::Pending {
            return Err(Refusal::RequestClosed(self.state));
        }
        let voter = ballot.voter;
        if !voter.is_person() {
            return Err(Refusal::AgentCannotVote);
        }
        if voter.id == self.requester.id || self.requester.owner.as_ref() == Some(&voter.id) {
            return Err(Refusal::SelfApproval);
        }
        let requirements = match &self.decision.requirements {
            Some(r) if r.is_eligible_group(&voter.groups) => r,
            Some(r) => {
                return Err(Refusal::NotAnApprover {
                    needed: r.summary(),
                });
            }
            None => {
                return Err(Refusal::NotAnApprover {
                    needed: "no approvers: this action was not sent for review".into(),
                });
            }
        };
        if !ballot.digest.ct_eq(&self.digest) {
            return Err(Refusal::DigestMismatch {
                given: ballot.digest,
                expected: self.digest,
            });
        }
        if self.votes.iter().any(|v| v.approver == voter.id) {
            return Err(Refusal::AlreadyVoted);
        }
        if let Some(ask) = &ballot.standing {
            standing::check_ask(ballot.decision, requirements, ask)?;
        }
        if requirements.mfa && ballot.mfa.is_none() {
            return Err(Refusal::MfaRequired);
        }
        if ballot.decision == VoteDecision::Approve {
            requirements.check_approval(ballot.comment.as_deref(), now - self.created_at)?;
        }
        self.votes.push(Vote {
            approver: voter.id.clone(),
            groups: voter.groups.clone(),
            decision: ballot.decision,
            channel: ballot.channel,
            mfa: ballot.mfa.is_some(),
            mfa_method: ballot.mfa,
            comment: ballot.comment.clone(),
            standing: ballot.standing,
            at: now,
        });
        let mut events = vec![Event::VoteCast {
            approver: voter.id.clone(),
            decision: ballot.decision,
            channel: ballot.channel.as_str().to_string(),
            mfa: ballot.mfa.is_some(),
            mfa_method: ballot.mfa,
        }];
        match ballot.decision {
            VoteDecision::Deny => {
                let reason = match &ballot.comment {
                    Some(c) => format!("denied by {}: {c}", voter.id),
                    None => format!("denied by {}", voter.id),
                };
                self.close(State::Denied, now, reason.clone(), "approver_denied");
                self.held = false;
                events.push(Event::RequestDenied {
                    by: Some(voter.id.clone()),
                    reason,
                });
            }
            VoteDecision::Approve => {
                if !self.held && quorum::is_met(&requirements.approvers, &self.approvals()) {
                    events.extend(self.approve(now));
                }
            }
        }
        Ok(events)
    }

    /// Releases a request that was held for its paused run: it now proceeds as its policy
    /// decision says (approved at once if allowed, or if its review is already complete).
    pub fn release(&mut self, now: Timestamp) -> Vec<Event> {
        if !self.held || self.state != State::Pending {
            return vec![];
        }
        self.held = false;
        let mut events = vec![Event::RequestReleased];
        match (&self.decision.effect, &self.decision.requirements) {
            (Effect::Allow, _) => events.extend(self.approve(now)),
            (Effect::Review, Some(r)) if quorum::is_met(&r.approvers, &self.approvals()) => {
                events.extend(self.approve(now));
            }
            _ => {}
        }
        events
    }

    /// Frees a request held for its run once the run frees up: it expires if its deadline
    /// passed while it waited (a timeout never lets an action through), and is released
    /// otherwise.
    pub fn free_held(&mut self, now: Timestamp) -> Vec<Event> {
        if self.is_due(now) {
            self.expire_if_due(now)
        } else {
            self.release(now)
        }
    }

    /// True while this request holds up the rest of its run: pending, not itself held, and its
    /// review asks for the run to pause.
    pub fn pauses_run(&self) -> bool {
        self.state == State::Pending
            && !self.held
            && self
                .decision
                .requirements
                .as_ref()
                .is_some_and(|req| req.pause_run)
    }

    /// Denies a held request because its run was stopped.
    pub fn stop_with_run(&mut self, now: Timestamp) -> Vec<Event> {
        if self.state != State::Pending {
            return vec![];
        }
        let run = self.action.run.clone().unwrap_or_default();
        let reason = format!("run {run} was stopped");
        self.close(State::Denied, now, reason.clone(), "run_stopped");
        self.held = false;
        vec![Event::RequestDenied { by: None, reason }]
    }

    /// Cancels the request (only its requester may). Pending requests and approved ones whose
    /// grant is unused can be cancelled.
    pub fn cancel(&mut self, by: &PrincipalId, now: Timestamp) -> Result<Vec<Event>, Refusal> {
        self.cancel_for(by, now, None)
    }

    /// Cancels the request because its requester's client gave up or left, recording `why`:
    /// [`Cancellation::Abandoned`] closes it with the outcome code `abandoned` (the client was
    /// gone, so nothing may be executed for it), [`Cancellation::Asked`] with `cancelled`.
    pub fn cancel_for(
        &mut self,
        by: &PrincipalId,
        now: Timestamp,
        why: Option<(Cancellation, &str)>,
    ) -> Result<Vec<Event>, Refusal> {
        if *by != self.requester.id {
            return Err(Refusal::NotRequester);
        }
        if self.is_due(now) {
            return Err(Refusal::RequestExpired);
        }
        match self.state {
            State::Pending | State::Approved => {
                let (code, outcome) = match why {
                    None => ("cancelled", format!("cancelled by {by}")),
                    Some((Cancellation::Asked, reason)) => {
                        ("cancelled", format!("cancelled by {by}: {reason}"))
                    }
                    Some((Cancellation::Abandoned, reason)) => {
                        ("abandoned", format!("abandoned by {by}: {reason}"))
                    }
                };
                self.close(State::Cancelled, now, outcome, code);
                self.held = false;
                Ok(vec![Event::RequestCancelled {
                    by: by.clone(),
                    reason: why.map(|(_, reason)| reason.to_owned()),
                }])
            }
            s => Err(Refusal::RequestClosed(s)),
        }
    }

    /// Redeems the grant for `digest`: at most `max_uses` times, never after it expires.
    pub fn redeem(&mut self, digest: &Digest, now: Timestamp) -> Result<Vec<Event>, Refusal> {
        if self.plan.is_some() {
            return Err(Refusal::PlanNotRedeemable);
        }
        let state = self.state;
        let grant = match (&mut self.grant, state) {
            (Some(g), State::Approved | State::Executed) => g,
            (_, s) => return Err(Refusal::NoGrant(s)),
        };
        if !digest.ct_eq(&grant.digest) {
            return Err(Refusal::DigestMismatch {
                given: *digest,
                expected: grant.digest,
            });
        }
        if grant.uses_left() == 0 {
            return Err(Refusal::GrantUsed);
        }
        if grant.is_expired(now) {
            return Err(Refusal::GrantExpired);
        }
        grant.uses += 1;
        let event = Event::GrantRedeemed {
            grant: grant.id.clone(),
            uses: grant.uses,
        };
        if self.state == State::Approved {
            self.state = State::Executed;
            self.closed_at = Some(now);
        }
        Ok(vec![event])
    }
}

/// The grant id for a request id (`req_X` → `grt_X`).
pub fn grant_id_for(request_id: &str) -> String {
    format!(
        "grt_{}",
        request_id.strip_prefix("req_").unwrap_or(request_id)
    )
}

/// The request id for a grant id (`grt_X` → `req_X`), if it is one.
pub fn request_id_for_grant(grant_id: &str) -> Option<String> {
    grant_id
        .strip_prefix("grt_")
        .map(|rest| format!("req_{rest}"))
}

mod amend;
mod execution;
mod plan;
mod refusal;
mod standing;
mod transition;

pub use amend::Amendment;
pub use refusal::Refusal;

pub use transition::Transition;

#[cfg(test)]
mod plan_tests;
#[cfg(test)]
mod tests;
