//! Why a transition was refused, each with its stable machine code.

use super::State;
use crate::Digest;

/// Why a transition was refused. Each maps to one stable machine code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("you asked for this action (or own the agent that did); someone else must decide it")]
    SelfApproval,
    #[error("agents cannot vote; only people can approve or deny")]
    AgentCannotVote,
    #[error("you are not in any group this request needs ({needed})")]
    NotAnApprover { needed: String },
    #[error(
        "the digest you voted on ({given}) is not this request's digest ({expected}); re-read the request and vote on what it shows"
    )]
    DigestMismatch { given: Digest, expected: Digest },
    #[error("you have already voted on this request")]
    AlreadyVoted,
    #[error("the request is already {0} and cannot change")]
    RequestClosed(State),
    #[error("the request expired before it was decided")]
    RequestExpired,
    #[error("this rule requires multi-factor verification with the vote (send `otp`)")]
    MfaRequired,
    #[error("this rule requires a comment with an approval: say what you checked")]
    CommentRequired,
    #[error(
        "approved {elapsed_seconds} s after the request was created; this rule asks approvers to take at least {min_seconds} s to read it"
    )]
    TooFast {
        elapsed_seconds: u64,
        min_seconds: u64,
    },
    #[error("only the requester can cancel a request")]
    NotRequester,
    #[error("only the requester can redeem this request's grant")]
    NotGrantHolder,
    #[error("the grant has already been used")]
    GrantUsed,
    #[error("the grant expired; ask again")]
    GrantExpired,
    #[error("the request has no grant to redeem (state {0})")]
    NoGrant(State),
    #[error("this request's outcome is already recorded")]
    OutcomeRecorded,
    #[error("the grant has not been redeemed (state {0}); redeem it, run the action, then report")]
    NotRedeemed(State),
    #[error("{0}")]
    StandingNotAllowed(String),
    #[error("this request has no standing approval in force (it is {0})")]
    StandingInactive(&'static str),
    #[error("this rule does not let approvers amend the action (`review.amend: true` would)")]
    AmendNotAllowed,
    #[error("the amended params are the params already shown: approve instead")]
    AmendUnchanged,
    #[error("a plan's grant is not redeemed: submit each step as an action, and redeem its grant")]
    PlanNotRedeemable,
    #[error("this plan does not cover that action now (it is {0})")]
    PlanInactive(&'static str),
}

impl Refusal {
    /// The stable machine-readable code for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::SelfApproval => "self_approval",
            Refusal::AgentCannotVote => "agent_cannot_vote",
            Refusal::NotAnApprover { .. } => "not_an_approver",
            Refusal::DigestMismatch { .. } => "digest_mismatch",
            Refusal::AlreadyVoted => "already_voted",
            Refusal::RequestClosed(_) => "request_closed",
            Refusal::RequestExpired => "request_expired",
            Refusal::MfaRequired => "mfa_required",
            Refusal::CommentRequired => "comment_required",
            Refusal::TooFast { .. } => "too_fast",
            Refusal::NotRequester | Refusal::NotGrantHolder => "not_requester",
            Refusal::GrantUsed => "grant_used",
            Refusal::GrantExpired => "grant_expired",
            Refusal::NoGrant(_) => "no_grant",
            Refusal::OutcomeRecorded => "outcome_recorded",
            Refusal::NotRedeemed(_) => "not_redeemed",
            Refusal::StandingNotAllowed(_) => "standing_not_allowed",
            Refusal::StandingInactive(_) => "standing_inactive",
            Refusal::AmendNotAllowed => "amend_not_allowed",
            Refusal::AmendUnchanged => "amend_unchanged",
            Refusal::PlanNotRedeemable => "plan_not_redeemable",
            Refusal::PlanInactive(_) => "plan_inactive",
        }
    }
}
