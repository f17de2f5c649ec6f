//! Edit, then approve (issue 18): with `review.amend: true`, an approver answers with amended
//! params instead of denying and waiting for a retry. The request then carries the amended
//! action, its new digest, the amender's approval of it, and the RFC 6902 patch from the
//! params before; earlier votes were for the old digest and no longer count.
//!
//! **Invariant (an approval covers exactly the action shown):** after an amendment the only
//! action that can be approved, redeemed or executed is the amended one, under its own digest;
//! the amender may not be the requester or its owner, and must be one who could approve.

use super::{Ballot, Refusal, Request, State, VoteDecision};
use crate::{Digest, Event, Principal, PrincipalId, Timestamp};
use serde::{Deserialize, Serialize};

/// One amendment, as the request records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Amendment {
    pub by: PrincipalId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub from_digest: Digest,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub to_digest: Digest,
    /// RFC 6902: from the params before to the params after.
    pub patch: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl Request {
    /// The amendments made to this request, oldest first.
    pub fn amendments(&self) -> &[Amendment] {
        &self.amendments
    }

    /// `ballot.voter` replaces the params with `params` and approves the result (see the
    /// module). The ballot is checked as an approval of the action shown (`ballot.digest`, the
    /// second factor, the comment and reading time the rule asks), and the amended action's
    /// digest is the grant's.
    pub fn amend(
        &mut self,
        ballot: &Ballot<'_>,
        params: serde_json::Value,
        now: Timestamp,
    ) -> Result<Vec<Event>, Refusal> {
        if !self.decision.requirements.as_ref().is_some_and(|r| r.amend) {
            return Err(Refusal::AmendNotAllowed);
        }
        if ballot.decision != VoteDecision::Approve || ballot.standing.is_some() {
            return Err(Refusal::AmendNotAllowed);
        }
        // Everything a vote checks, on a copy: who may vote, the digest shown, the factor.
        let mut probe = self.clone();
        probe.vote(ballot, now)?;
        if params == self.action.params {
            return Err(Refusal::AmendUnchanged);
        }
        let voter: &Principal = ballot.voter;
        let from_digest = self.digest;
        let patch = serde_json::to_value(json_patch::diff(&self.action.params, &params))
            .unwrap_or_default();
        self.action.params = params;
        self.digest = Digest::of_action(&self.action, &self.requester.id);
        self.votes.clear();
        let amendment = Amendment {
            by: voter.id.clone(),
            at: now,
            from_digest,
            to_digest: self.digest,
            patch: patch.clone(),
            comment: ballot.comment.clone(),
        };
        self.amendments.push(amendment);
        let mut events = vec![Event::RequestAmended {
            by: voter.id.clone(),
            from_digest: from_digest.to_string(),
            to_digest: self.digest.to_string(),
            patch,
        }];
        let approval = Ballot {
            digest: self.digest,
            ..ballot.clone()
        };
        events.extend(self.vote(&approval, now)?);
        debug_assert!(matches!(self.state, State::Pending | State::Approved));
        Ok(events)
    }
}
