//! Votes: the one vote path (`Gateway::vote_verified`, which every channel's vote goes
//! through) and the second-factor checks it makes (a TOTP code here; a passkey assertion is
//! verified by its caller first), with the per-person limit on wrong codes. Decides nothing
//! itself: the core's state machine counts the vote.

use super::*;

/// A vote as the Gateway takes it, parsed by the edge that received it ([`CastVote::parse`]).
#[derive(Debug, Clone)]
pub struct CastVote {
    pub decision: countersign_core::VoteDecision,
    /// The digest the approver was shown; must equal the request's.
    pub digest: Digest,
    pub comment: Option<String>,
    /// A TOTP code, when the rule requires MFA.
    pub otp: Option<String>,
    /// A standing approval asked for with an approval ([`CastVote::standing`]).
    pub standing: Option<countersign_core::standing::StandingAsk>,
}

impl CastVote {
    /// What every edge calls with what it received: refuses a digest that is not one
    /// (`invalid_digest`) and a comment over 4096 characters (`invalid_body`).
    pub fn parse(
        decision: countersign_core::VoteDecision,
        digest: &str,
        comment: Option<String>,
        otp: Option<String>,
    ) -> Result<CastVote, GatewayError> {
        let digest: Digest =
            digest
                .parse()
                .map_err(|e: countersign_core::digest::InvalidDigest| {
                    GatewayError::BadInput("invalid_digest", e.to_string())
                })?;
        if comment.as_ref().is_some_and(|c| c.chars().count() > 4096) {
            return Err(GatewayError::BadInput(
                "invalid_body",
                "`comment` is longer than 4096 characters".into(),
            ));
        }
        Ok(CastVote {
            decision,
            digest,
            comment,
            otp,
            standing: None,
        })
    }

    /// Asks, with this approval, for a standing approval of `for_` (a duration as people write
    /// it: `30m`, `8h`) and `uses` uses; the rule bounds both (`standing_not_allowed`).
    pub fn standing(mut self, for_: &str, uses: u32) -> Result<CastVote, GatewayError> {
        let seconds = humantime::parse_duration(for_)
            .map_err(|e| {
                GatewayError::BadInput(
                    "invalid_standing",
                    format!("`standing.for` is `{for_}`, not a duration like 30m or 8h: {e}"),
                )
            })?
            .as_secs();
        self.standing = Some(countersign_core::standing::StandingAsk { seconds, uses });
        Ok(self)
    }
}

impl Gateway {
    /// Steps 5-6: one vote, through the core state machine, in one store transaction.
    pub async fn vote(
        &self,
        voter: &Principal,
        id: &str,
        body: CastVote,
        channel: Channel,
    ) -> Result<Request, GatewayError> {
        Ok(self.vote_recorded(voter, id, body, channel).await?.request)
    }

    /// [`Gateway::vote`], also saying which audit entries recorded the vote (for a receipt).
    pub async fn vote_recorded(
        &self,
        voter: &Principal,
        id: &str,
        body: CastVote,
        channel: Channel,
    ) -> Result<Recorded, GatewayError> {
        self.vote_verified(voter, id, body, channel, None).await
    }

    /// The one vote path. `verified`: a second factor the caller already verified for this
    /// very vote (a passkey assertion bound to this request, digest and decision); otherwise
    /// a TOTP code in `body.otp` is verified here.
    pub(crate) async fn vote_verified(
        &self,
        voter: &Principal,
        id: &str,
        body: CastVote,
        channel: Channel,
        verified: Option<countersign_core::MfaMethod>,
    ) -> Result<Recorded, GatewayError> {
        let digest = body.digest;
        let current = self
            .store
            .get_request(id)
            .await?
            .ok_or(GatewayError::NotFound("request"))?;
        let mfa = match &body.otp {
            _ if verified.is_some() => verified,
            Some(code) if current.state() == State::Pending => {
                self.verify_otp(&voter.id, code).await?;
                Some(countersign_core::MfaMethod::Totp)
            }
            _ => None,
        };
        let now = self.clock.now();
        let change = Transition::Vote {
            voter: voter.clone(),
            decision: body.decision,
            digest,
            channel,
            mfa,
            comment: body.comment.clone(),
            standing: body.standing,
        };
        match self
            .store
            .update_request(id, voter.id.as_str(), now, change)
            .await?
        {
            Ok(updated) => {
                self.metrics
                    .votes
                    .get_or_create(&VoteLabel {
                        decision: format!("{:?}", body.decision).to_lowercase(),
                        channel: channel.as_str().to_string(),
                    })
                    .inc();
                let waited =
                    (now - updated.request.created_at()).num_milliseconds() as f64 / 1000.0;
                self.metrics.vote_timed(
                    updated
                        .request
                        .decision()
                        .rule
                        .as_deref()
                        .unwrap_or("default"),
                    channel.as_str(),
                    body.decision == countersign_core::VoteDecision::Approve,
                    waited.max(0.0),
                );
                self.after_update(&updated, Some(&current));
                tracing::info!(request = %id, digest = %updated.request.digest(), principal = %voter.id,
                    channel = channel.as_str(), state = updated.request.state().as_str(), "vote accepted");
                Ok(Recorded {
                    request: updated.request,
                    audit_entries: updated.audit_entries,
                })
            }
            Err(Refusal::RequestExpired) => {
                self.expire(id).await?;
                Err(Refusal::RequestExpired.into())
            }
            Err(refusal) => Err(refusal.into()),
        }
    }

    /// Refuses a second-factor try from `who` after too many recent failures (TOTP codes and
    /// passkey assertions count together).
    pub(crate) fn mfa_not_limited(&self, who: &PrincipalId) -> Result<(), GatewayError> {
        let mut failures = self.mfa_failures.lock().unwrap_or_else(|e| e.into_inner());
        let list = failures.entry(who.clone()).or_default();
        list.retain(|t| t.elapsed() < MFA_WINDOW);
        if list.len() >= MFA_MAX_FAILURES {
            return Err(GatewayError::Mfa(MfaFailure::RateLimited));
        }
        Ok(())
    }

    /// Counts a failed second-factor try of `who`.
    pub(crate) fn mfa_failed(&self, who: &PrincipalId) {
        self.mfa_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(who.clone())
            .or_default()
            .push(Instant::now());
    }

    pub(crate) async fn verify_otp(
        &self,
        who: &PrincipalId,
        code: &str,
    ) -> Result<(), GatewayError> {
        self.mfa_not_limited(who)?;
        let state = self
            .store
            .totp_get(who)
            .await?
            .ok_or(GatewayError::Mfa(MfaFailure::NotEnrolled))?;
        let secret = self
            .at_rest
            .open(who.as_str(), &state.secret)
            .map_err(|e| StoreError::Corrupt(format!("the TOTP secret of {who}: {e}")))?;
        let unix = u64::try_from(self.clock.now().timestamp()).unwrap_or(0);
        let failure = match mfa::verify(&secret, code, unix, state.last_step) {
            Ok(step) => {
                if self.store.totp_use_step(who, step).await? {
                    return Ok(());
                }
                MfaFailure::Reused
            }
            Err(mfa::TotpError::Reused) => MfaFailure::Reused,
            Err(mfa::TotpError::Invalid) => MfaFailure::Invalid,
        };
        self.mfa_failed(who);
        Err(GatewayError::Mfa(failure))
    }
}
