//! Carrying out an approved action, and recording how it went: the gateway's execution
//! (`execute`, `finish`, `interrupt_if_due`), what the gateway saw of an action it forwarded
//! itself (`observe`), and the requester's report (`report`). Like every transition, each takes
//! `now` and returns the events or a `Refusal`, and changes nothing when it refuses.
//!
//! **Invariant (an outcome is recorded at most once):** every way to record one (`finish`,
//! `observe`, `report`) goes through `end`, and each refuses with `OutcomeRecorded` once the
//! request has an ended execution.

use super::{Refusal, Request, State};
use crate::execution::{ExecStatus, Execution, Outcome};
use crate::{Digest, Event, Principal, PrincipalId, Timestamp};

/// Carrying out an approved action, and recording how it went.
impl Request {
    /// **Invariant (an execution's output is read only by its requester and its approvers):**
    /// the copy of what an executed action answered (a body, an output, rows) may hold data
    /// nobody else asked to see, so only the requester, the person accountable for it, the
    /// people who voted on it and the members of the groups it asked to decide may read it.
    /// Everyone else who may read the request sees what ran and how it ended, not the output.
    pub fn may_read_output(&self, viewer: &Principal) -> bool {
        viewer.id == self.requester.id
            || self.requester.owner.as_ref() == Some(&viewer.id)
            || self.votes.iter().any(|v| v.approver == viewer.id)
            || self
                .decision
                .requirements
                .as_ref()
                .is_some_and(|r| r.is_eligible_group(&viewer.groups))
    }

    /// The execution as `viewer` may see it (see [`Request::may_read_output`]).
    pub fn execution_for(&self, viewer: &Principal) -> Option<Execution> {
        self.execution.as_ref().map(|e| {
            if self.may_read_output(viewer) {
                e.clone()
            } else {
                e.without_output()
            }
        })
    }

    /// The gateway starts carrying out this request's action with `executor`: the requester's
    /// grant is redeemed for `digest` (so it runs at most once) and the execution is running
    /// until [`Request::finish`], or until `deadline`, after which it counts as interrupted.
    pub fn execute(
        &mut self,
        by: &PrincipalId,
        digest: &Digest,
        executor: &str,
        deadline: Timestamp,
        now: Timestamp,
    ) -> Result<Vec<Event>, Refusal> {
        if *by != self.requester.id {
            return Err(Refusal::NotGrantHolder);
        }
        let mut events = self.redeem(digest, now)?;
        self.execution = Some(Execution {
            executor: Some(executor.to_owned()),
            started_at: now,
            deadline: Some(deadline),
            finished_at: None,
            reported: false,
            outcome: Outcome::with_status(ExecStatus::Running),
        });
        events.push(Event::ExecutionStarted {
            executor: executor.to_owned(),
            deadline,
        });
        Ok(events)
    }

    /// Records how the running execution ended. The request becomes `failed` unless it
    /// succeeded (see `end`).
    pub fn finish(&mut self, outcome: Outcome, now: Timestamp) -> Result<Vec<Event>, Refusal> {
        let Some(mut execution) = self.execution.take_if(|e| e.is_running()) else {
            return Err(Refusal::OutcomeRecorded);
        };
        execution.finished_at = Some(now);
        Ok(self.end(execution, outcome))
    }

    /// Closes an execution found running past its deadline as `unknown` ("interrupted; not
    /// retried"); changes nothing otherwise.
    pub fn interrupt_if_due(&mut self, now: Timestamp) -> Vec<Event> {
        if !self.is_interrupted(now) {
            return vec![];
        }
        self.finish(Outcome::interrupted(), now).unwrap_or_default()
    }

    /// The gateway records what it saw of an action it carried out itself after the grant was
    /// redeemed (an MCP request it forwarded, `executor` naming the upstream): once, never as a
    /// report (`reported` stays false), and only for a redeemed request without an outcome.
    /// `started_at`: when it was sent. No principal: only the gateway's own code asks for this,
    /// never a requester (their claims go through [`Request::report`]).
    pub fn observe(
        &mut self,
        executor: &str,
        started_at: Timestamp,
        outcome: Outcome,
        now: Timestamp,
    ) -> Result<Vec<Event>, Refusal> {
        if self.execution.is_some() {
            return Err(Refusal::OutcomeRecorded);
        }
        if self.state != State::Executed {
            return Err(Refusal::NotRedeemed(self.state));
        }
        let execution = Execution {
            executor: Some(executor.to_owned()),
            started_at,
            deadline: None,
            finished_at: Some(now),
            reported: false,
            outcome: Outcome::with_status(ExecStatus::Unknown),
        };
        Ok(self.end(execution, outcome))
    }

    /// The requester reports how the action they ran themselves, after redeeming the grant,
    /// went: once.
    pub fn report(
        &mut self,
        by: &PrincipalId,
        outcome: Outcome,
        now: Timestamp,
    ) -> Result<Vec<Event>, Refusal> {
        if *by != self.requester.id {
            return Err(Refusal::NotRequester);
        }
        if self.execution.is_some() {
            return Err(Refusal::OutcomeRecorded);
        }
        if self.state != State::Executed {
            return Err(Refusal::NotRedeemed(self.state));
        }
        let execution = Execution {
            executor: None,
            started_at: self.closed_at.unwrap_or(now),
            deadline: None,
            finished_at: Some(now),
            reported: true,
            outcome: Outcome::with_status(ExecStatus::Unknown),
        };
        Ok(self.end(execution, outcome))
    }

    /// The one end of every execution, run, observed or reported: `outcome` recorded (a `Running` one as
    /// `unknown`: an end must say how it ended), the request `failed` unless it succeeded.
    fn end(&mut self, mut execution: Execution, mut outcome: Outcome) -> Vec<Event> {
        if outcome.status == ExecStatus::Running {
            outcome.status = ExecStatus::Unknown;
        }
        execution.outcome = outcome;
        let event = Event::execution_finished(&execution);
        if execution.outcome.status != ExecStatus::Succeeded {
            self.state = State::Failed;
        }
        self.execution = Some(execution);
        vec![event]
    }
}
