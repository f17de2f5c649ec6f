//! Access evaluation for policy enforcement points (AuthZEN Authorization API 1.0, issue 19):
//! a PEP asks whether one of its subjects may do an action; the answer is the policy's, and a
//! review is a recorded request people are asked about, which a later evaluation of the same
//! action by the same subject finds.
//!
//! **Invariant (once per approval):** an approved review permits exactly one evaluation: the
//! evaluation that finds it approved redeems its grant, with the digest of the action being
//! evaluated now (so an action a reviewer amended is never permitted as first asked), in the
//! write that records the redemption; the next evaluation of the same action is a new question.
//! A refusal (denied, expired, cancelled) is reported once the same way, then forgotten.
//! Evaluations park under the action's digest as MCP calls do (`Gateway::submit_parking`), so
//! concurrent identical evaluations make one request and one redemption.

use super::{Gateway, GatewayError};
use countersign_core::action::PEP_LABEL;
use countersign_core::{Action, Digest, Principal, PrincipalId, Refusal, Request, State};
use countersign_store::Submission;

/// How long a PEP is told to wait before asking again about a pending review.
pub const RETRY_AFTER_SECONDS: u64 = 5;

/// The gateway's answer to one evaluation.
#[derive(Debug)]
pub enum Access {
    /// The action may proceed: allowed at once (recorded and redeemed in one write), or
    /// approved and its grant redeemed by this evaluation.
    Permit(Request),
    /// People are being asked; evaluate again later.
    Pending(Request),
    /// The action may not proceed: `state` is the request's (`denied`, `expired`,
    /// `cancelled`) or `amended` (a reviewer changed what was asked), `reason` says why.
    Refused {
        request: Request,
        state: &'static str,
        reason: String,
    },
}

impl Gateway {
    /// Evaluates `action` for `subject` as asked by `pep` (see the module).
    pub async fn evaluate_access(
        &self,
        pep: &Principal,
        subject: &PrincipalId,
        mut action: Action,
    ) -> Result<Access, GatewayError> {
        if !self.directory.may_evaluate_for(&pep.id, subject) {
            return Err(GatewayError::Forbidden(
                "subject_not_allowed",
                format!(
                    "{} may not evaluate for {subject}: the configuration's `evaluates_for` \
                     of a policy enforcement point names whom it may ask for",
                    pep.id
                ),
            ));
        }
        let subject = self.directory.get(subject).cloned().ok_or_else(|| {
            GatewayError::Forbidden(
                "unknown_subject",
                format!("{subject} is not a configured principal"),
            )
        })?;
        super::once::refuse_reserved_labels(&action)?;
        if action.kind == countersign_core::plan::PLAN_KIND {
            return Err(GatewayError::BadInput(
                "reserved_kind",
                "a plan is sent to POST /v1/plans, not evaluated".into(),
            ));
        }
        action.validate()?;
        if self
            .executors
            .check(&action)
            .map_err(GatewayError::Exec)?
            .is_some()
        {
            return Err(GatewayError::BadInput(
                "executor_action",
                format!(
                    "`{}` is carried out by the gateway itself; submit it to POST \
                     /v1/actions?execute=true rather than evaluating it",
                    action.kind
                ),
            ));
        }
        action.labels.insert(PEP_LABEL.into(), pep.id.to_string());
        let key = Digest::of_action(&action, &subject.id);
        let (req, parked) = match self.submit_parking(&subject, action, &key, true).await? {
            Submission::New(req) => (req, false),
            Submission::Attached(req) | Submission::Replayed(req) | Submission::KeyReused(req) => {
                (req, true)
            }
        };
        let access = match req.state() {
            // A new pending request is parked by the write that recorded it.
            State::Pending => return Ok(Access::Pending(req)),
            // Allowed at once: redeemed in the write that recorded it.
            State::Executed if !parked => return Ok(Access::Permit(req)),
            State::Approved => match self.redeem_request(&subject, &req, key).await {
                Ok(redeemed) => Access::Permit(redeemed),
                Err(GatewayError::Refused(Refusal::DigestMismatch { .. })) => Access::Refused {
                    state: "amended",
                    reason: format!(
                        "a reviewer changed the action before approving it (request {}); \
                         the approval covers the changed action only",
                        req.id()
                    ),
                    request: req.clone(),
                },
                Err(GatewayError::Refused(Refusal::GrantExpired)) => Access::Refused {
                    state: "expired",
                    reason: format!("the approval of request {} expired unused", req.id()),
                    request: req.clone(),
                },
                // Another evaluation of the same action took it a moment earlier.
                Err(GatewayError::Refused(Refusal::GrantUsed)) => {
                    return Ok(Access::Refused {
                        state: "executed",
                        reason: format!(
                            "the approval of request {} was used by another evaluation; ask again",
                            req.id()
                        ),
                        request: req,
                    });
                }
                Err(e) => return Err(e),
            },
            _ => refused(req.clone()),
        };
        if parked {
            // Answered for good: the same action asked again is a new question.
            self.unpark_call(&subject, &key, req.id()).await?;
        }
        Ok(access)
    }
}

/// The answer about a request that may not proceed.
fn refused(req: Request) -> Access {
    let state = req.state();
    let reason = match state {
        State::Denied => {
            let why = req
                .outcome()
                .map(str::to_owned)
                .unwrap_or_else(|| req.decision().reason.clone());
            match &req.decision().rule {
                Some(rule) if req.votes().is_empty() => format!("denied by rule `{rule}`: {why}"),
                _ => format!("denied: {why}"),
            }
        }
        State::Expired => "nobody decided in time".to_string(),
        State::Cancelled => "the request was cancelled".to_string(),
        other => format!("the request is {}, not approved", other.as_str()),
    };
    Access::Refused {
        state: state.as_str(),
        reason,
        request: req,
    }
}
