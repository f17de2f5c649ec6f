//! The closed set of changes the store may make to a stored request: each names one method of
//! the state machine and owns what that method needs, so it can cross into the store's
//! transaction (and its writer thread) and be logged.

use super::{Ballot, Cancellation, Channel, MfaMethod, Refusal, Request, VoteDecision};
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
            } => {
                let ballot = Ballot {
                    voter,
                    decision: *decision,
                    digest: *digest,
                    channel: *channel,
                    mfa: *mfa,
                    comment: comment.clone(),
                };
                self.vote(&ballot, now)
            }
            Transition::Cancel { by, why } => {
                self.cancel_for(by, now, why.as_ref().map(|(w, text)| (*w, text.as_str())))
            }
            Transition::Redeem { digest } => self.redeem(digest, now),
            Transition::Expire => Ok(self.expire_if_due(now)),
        }
    }
}
