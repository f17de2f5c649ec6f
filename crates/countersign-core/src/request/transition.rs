//! The closed set of changes the store may make to a stored request: each names one method of
//! the state machine and owns what that method needs, so it can cross into the store's
//! transaction (and its writer thread) and be logged.

use super::{Ballot, Cancellation, Channel, MfaMethod, Refusal, Request, VoteDecision};
use crate::execution::Outcome;
use crate::{Digest, Event, Principal, PrincipalId, Timestamp};

/// One change to a request, applied by [`Request::apply`] inside the store's transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// A person's vote ([`Request::vote`]).
    Vote {
        voter: Principal,
        decision: VoteDecision,
        /// The digest the voter was shown.
        digest: Digest,
        channel: Channel,
        /// The second factor the voter proved with this vote, if any.
        mfa: Option<MfaMethod>,
        comment: Option<String>,
        /// A standing approval asked for with an approval.
        standing: Option<crate::standing::StandingAsk>,
    },
    /// The requester cancels, saying why when their client gave up or left
    /// ([`Request::cancel_for`]).
    Cancel {
        by: PrincipalId,
        why: Option<(Cancellation, String)>,
    },
    /// The requester redeems the grant for `digest` ([`Request::redeem`]).
    Redeem { digest: Digest },
    /// Expires the request if its deadline has passed, else changes nothing
    /// ([`Request::expire_if_due`]).
    Expire,
    /// The requester's grant is redeemed and the gateway starts carrying out the action with
    /// `executor` ([`Request::execute`]).
    Execute {
        by: PrincipalId,
        digest: Digest,
        executor: String,
        deadline: Timestamp,
    },
    /// The running execution ended with `outcome` ([`Request::finish`]).
    Finish { outcome: Box<Outcome> },
    /// The gateway records what it saw of an action it forwarded itself, after the grant was
    /// redeemed ([`Request::observe`]). Made only by the gateway's own code (the MCP gateway),
    /// never from a requester's input.
    Observe {
        executor: String,
        started_at: Timestamp,
        outcome: Box<Outcome>,
    },
    /// The requester reports how the action they ran went ([`Request::report`]).
    Report {
        by: PrincipalId,
        outcome: Box<Outcome>,
    },
    /// Closes an execution found running past its deadline, else changes nothing
    /// ([`Request::interrupt_if_due`]).
    Interrupt,
    /// An approver's amended params and approval of them ([`Request::amend`]).
    Amend {
        voter: Principal,
        /// The digest the voter was shown (before the amendment).
        digest: Digest,
        channel: Channel,
        mfa: Option<MfaMethod>,
        comment: Option<String>,
        params: serde_json::Value,
    },
    /// A person revokes this request's standing approval ([`Request::revoke_standing`]).
    RevokeStanding { by: Principal },
    /// Step `step` of this plan approved the new request `by_request`, recorded in the write
    /// that stores it ([`Request::use_plan_step`]).
    UsePlanStep { step: u32, by_request: String },
}

impl Request {
    /// Applies `transition` at `now`: the events to record (none when nothing changed), or the
    /// refusal, and then the request is untouched.
    pub fn apply(
        &mut self,
        transition: &Transition,
        now: Timestamp,
    ) -> Result<Vec<Event>, Refusal> {
        match transition {
            Transition::Vote {
                voter,
                decision,
                digest,
                channel,
                mfa,
                comment,
                standing,
            } => {
                let ballot = Ballot {
                    voter,
                    decision: *decision,
                    digest: *digest,
                    channel: *channel,
                    mfa: *mfa,
                    comment: comment.clone(),
                    standing: *standing,
                };
                self.vote(&ballot, now)
            }
            Transition::Cancel { by, why } => {
                self.cancel_for(by, now, why.as_ref().map(|(w, text)| (*w, text.as_str())))
            }
            Transition::Redeem { digest } => self.redeem(digest, now),
            Transition::Expire => Ok(self.expire_if_due(now)),
            Transition::Execute {
                by,
                digest,
                executor,
                deadline,
            } => self.execute(by, digest, executor, *deadline, now),
            Transition::Finish { outcome } => self.finish((**outcome).clone(), now),
            Transition::Observe {
                executor,
                started_at,
                outcome,
            } => self.observe(executor, *started_at, (**outcome).clone(), now),
            Transition::Report { by, outcome } => self.report(by, (**outcome).clone(), now),
            Transition::Interrupt => Ok(self.interrupt_if_due(now)),
            Transition::Amend {
                voter,
                digest,
                channel,
                mfa,
                comment,
                params,
            } => {
                let ballot = Ballot {
                    voter,
                    decision: VoteDecision::Approve,
                    digest: *digest,
                    channel: *channel,
                    mfa: *mfa,
                    comment: comment.clone(),
                    standing: None,
                };
                self.amend(&ballot, params.clone(), now)
            }
            Transition::RevokeStanding { by } => self.revoke_standing(by, now),
            Transition::UsePlanStep { step, by_request } => {
                self.use_plan_step(*step, by_request, now)
            }
        }
    }
}
