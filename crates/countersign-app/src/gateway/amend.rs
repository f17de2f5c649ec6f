//! Edit, then approve (issue 18; the rule is `countersign_core::request::amend`): an approver
//! answers with amended params. The amended action is checked as a new action would be (valid,
//! an executor's params whole) and must be one the same rule sends to review; then the store
//! applies the amendment and the amender's approval in one transaction.

use super::{CastVote, Gateway, GatewayError};
use countersign_core::{Channel, Effect, Principal, Refusal, Request, State, Transition};

impl Gateway {
    /// `voter` amends request `id` to `params` and approves the result, having been shown
    /// `body.digest` (with `body.comment`, and `body.otp` when the rule needs a second factor).
    pub async fn amend(
        &self,
        voter: &Principal,
        id: &str,
        body: CastVote,
        params: serde_json::Value,
        channel: Channel,
    ) -> Result<Request, GatewayError> {
        let current = self
            .store
            .get_request(id)
            .await?
            .ok_or(GatewayError::NotFound("request"))?;
        let mut amended = current.action().clone();
        amended.params = params.clone();
        amended.validate()?;
        self.executors.check(&amended).map_err(GatewayError::Exec)?;
        let now = self.clock.now();
        let policy = self.policy.current();
        let decision = self
            .evaluator
            .evaluate(&policy, current.requester(), &amended, now)
            .await;
        if decision.effect != Effect::Review || decision.rule != current.decision().rule {
            return Err(GatewayError::BadInput(
                "amend_changes_decision",
                format!(
                    "the policy would decide the amended action with {} ({}), not with the rule \
                     that asked for this review: deny this request, and let the agent ask for \
                     the amended action itself",
                    decision.rule.as_deref().unwrap_or("its default"),
                    decision.effect.as_str()
                ),
            ));
        }
        let mfa = match &body.otp {
            Some(code) if current.state() == State::Pending => {
                self.verify_otp(&voter.id, code).await?;
                Some(countersign_core::MfaMethod::Totp)
            }
            _ => None,
        };
        let change = Transition::Amend {
            voter: voter.clone(),
            digest: body.digest,
            channel,
            mfa,
            comment: body.comment.clone(),
            params,
        };
        match self
            .store
            .update_request(id, voter.id.as_str(), now, change)
            .await?
        {
            Ok(updated) => {
                self.after_update(&updated, Some(&current));
                tracing::info!(request = %id, digest = %updated.request.digest(), principal = %voter.id,
                    channel = channel.as_str(), state = updated.request.state().as_str(), "amended and approved");
                Ok(updated.request)
            }
            Err(Refusal::RequestExpired) => {
                self.expire(id).await?;
                Err(Refusal::RequestExpired.into())
            }
            Err(refusal) => Err(refusal.into()),
        }
    }
}
