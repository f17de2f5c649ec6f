//! Changes to a person's second factors, and the one rule they obey: a second factor is
//! replaced or added only with a current one. [`Gateway::authorize_factor_change`] is the only
//! maker of an [`Authorized`], and the two ways to add or replace a factor
//! ([`Gateway::enroll_totp`], and `Gateway::passkey_register_begin` whose ceremony alone can
//! store a passkey) each take one, so every entry (HTTP API, CLI, console form, console
//! passkey registration) passes the same check.
//!
//! The proof is a current TOTP code (checked and consumed exactly like a vote's, under the same
//! rate limit) or a passkey assertion begun for this purpose (`change_factor`). A person with
//! no factor at all enrols their first one with their first factor alone (their API key or
//! console session): trust on first use. An operator who suspects a factor was enrolled by
//! someone else resets them all locally (`countersign mfa reset`, [`reset`]); the person then
//! enrols anew, first factor first.
//!
//! Every change is recorded (`mfa.enrolled` with `factor` and `proof`, `mfa.reset`) and
//! announced to the person: the console shows a banner on every page for
//! [`NOTICE_PERIOD`] (not dismissible: whoever holds the session could dismiss it), and Slack,
//! when configured, sends them a direct message (`countersign_channels::slack::factors`). Teams would need a
//! proactive 1:1 conversation, which is not built.
//!
//! Must not: store a factor without an [`Authorized`], or tell anyone but the person.

use crate::gateway::{Gateway, GatewayError, MfaFailure};
use countersign_core::{Principal, PrincipalId, Timestamp, mfa};
use countersign_store::{
    CeremonyBinding, CeremonyKind, FactorChange, FactorChangeKind, FactorProof, FactorsRemoved,
    Store,
};

/// How long the console shows a change to a person's factors.
pub const NOTICE_PERIOD: chrono::Duration = chrono::Duration::days(7);

/// What a person presents as their current factor when they change their factors.
pub enum CurrentFactor {
    /// A one-time code from their TOTP app.
    Totp(String),
    /// A passkey assertion (browser JSON) for a ceremony begun by
    /// `Gateway::passkey_confirm_begin`.
    Passkey {
        ceremony: String,
        credential: String,
    },
}

impl CurrentFactor {
    /// The factor a form or body presents: a non-empty code, or a ceremony with its answer.
    pub fn from_fields(
        otp: Option<String>,
        ceremony: Option<String>,
        credential: Option<String>,
    ) -> Option<CurrentFactor> {
        let present = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        match (present(otp), present(ceremony), credential) {
            (_, Some(ceremony), Some(credential)) => Some(CurrentFactor::Passkey {
                ceremony,
                credential,
            }),
            (Some(code), _, _) => Some(CurrentFactor::Totp(code)),
            _ => None,
        }
    }
}

/// Leave to change one person's factors, proven as `proof`. Only
/// [`Gateway::authorize_factor_change`] makes one.
pub struct Authorized {
    principal: PrincipalId,
    proof: FactorProof,
}

impl Authorized {
    pub fn proof(&self) -> FactorProof {
        self.proof
    }
}

/// The refusal when a person who has a factor presents none.
pub fn factor_required() -> GatewayError {
    GatewayError::Forbidden(
        "factor_required",
        "you already have a second factor: confirm this change with it (a current one-time code, or one of your passkeys on the console's second-factor page); nothing was changed. If you lost it, ask an operator to run `countersign mfa reset`".into(),
    )
}

impl Gateway {
    /// True when `who` has a TOTP app or a passkey enrolled.
    pub async fn has_factor(&self, who: &PrincipalId) -> Result<bool, GatewayError> {
        Ok(
            self.store.totp_get(who).await?.is_some()
                || !self.store.passkeys(who).await?.is_empty(),
        )
    }

    /// The one check before a second factor is added or replaced: a person without factors
    /// passes on their first factor alone; a person with one must present it, and it is
    /// verified (a code is consumed, an assertion's ceremony used up, failures rate-limited).
    pub async fn authorize_factor_change(
        &self,
        who: &Principal,
        presented: Option<CurrentFactor>,
    ) -> Result<Authorized, GatewayError> {
        if !who.is_person() {
            return Err(GatewayError::Forbidden(
                "people_only",
                "only people enroll a second factor".into(),
            ));
        }
        let has_totp = self.store.totp_get(&who.id).await?.is_some();
        let has_passkey = !self.store.passkeys(&who.id).await?.is_empty();
        let proof = match presented {
            None if !has_totp && !has_passkey => FactorProof::FirstFactor,
            None => return Err(factor_required()),
            Some(CurrentFactor::Totp(_)) if !has_totp => {
                // A code cannot prove anything for someone with no TOTP app; if they have only
                // passkeys, they must use one.
                return Err(match has_passkey {
                    true => factor_required(),
                    false => GatewayError::Mfa(MfaFailure::NotEnrolled),
                });
            }
            Some(CurrentFactor::Totp(code)) => {
                self.verify_otp(&who.id, &code).await?;
                FactorProof::Totp
            }
            Some(CurrentFactor::Passkey {
                ceremony,
                credential,
            }) => {
                let binding = factor_change_binding(who);
                self.verify_assertion(who, &binding, &ceremony, &credential)
                    .await?;
                FactorProof::Passkey
            }
        };
        Ok(Authorized {
            principal: who.id.clone(),
            proof,
        })
    }

    /// Enrols (or re-enrols) the caller's TOTP second factor, once `presented` proves a
    /// current factor (or they have none), and returns its otpauth URI.
    pub async fn enroll_totp(
        &self,
        who: &Principal,
        presented: Option<CurrentFactor>,
    ) -> Result<String, GatewayError> {
        let authorized = self.authorize_factor_change(who, presented).await?;
        let secret: [u8; 20] = rand::random();
        let sealed = self.at_rest.seal(who.id.as_str(), &secret);
        let now = self.clock.now();
        self.store
            .totp_enroll(&authorized.principal, &sealed, authorized.proof, now)
            .await?;
        self.factor_changed(
            &who.id,
            FactorChangeKind::TotpEnrolled,
            authorized.proof,
            now,
        );
        let account = who.id.as_str().trim_start_matches("user:");
        Ok(mfa::otpauth_uri("Countersign", account, &secret))
    }

    /// After a committed change: tells whoever announces changes (the Slack announcer).
    pub(crate) fn factor_changed(
        &self,
        who: &PrincipalId,
        change: FactorChangeKind,
        proof: FactorProof,
        at: Timestamp,
    ) {
        tracing::info!(principal = %who, change = change.as_str(), proof = proof.as_str(), "second factor changed");
        // No announcer listening (no chat channel) is not an error.
        let _ = self.factor_news.send(FactorChange {
            principal: who.clone(),
            at,
            change,
            proof,
            actor: who.to_string(),
        });
    }

    /// The changes to `who`'s factors the console should still show.
    pub async fn factor_notices(
        &self,
        who: &PrincipalId,
    ) -> Result<Vec<FactorChange>, GatewayError> {
        let since = self.clock.now() - NOTICE_PERIOD;
        Ok(self.store.factor_changes(who, since).await?)
    }
}

/// Why a reset was refused.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error("{0} is not a person's id (people are `user:<email>`); nothing was changed")]
    NotAPerson(PrincipalId),
    #[error(
        "{0} is neither a configured principal nor has any second factor; nothing was changed (check the spelling)"
    )]
    Unknown(PrincipalId),
    #[error("storage failed: {0}")]
    Store(#[from] countersign_store::StoreError),
}

/// An operator's reset of every second factor of `who`, recorded as `mfa.reset` by `system`.
/// `known`: whether the configuration names `who`; a person it does not name may still have
/// factors (signed in with OpenID Connect), and an id that is neither is refused as a typo.
pub async fn reset(
    store: &dyn Store,
    who: &PrincipalId,
    known: bool,
    now: Timestamp,
) -> Result<FactorsRemoved, ResetError> {
    if who.kind() != countersign_core::PrincipalKind::User {
        return Err(ResetError::NotAPerson(who.clone()));
    }
    let has = store.totp_get(who).await?.is_some() || !store.passkeys(who).await?.is_empty();
    if !known && !has {
        return Err(ResetError::Unknown(who.clone()));
    }
    Ok(store.mfa_reset(who, "system", now).await?)
}

impl Gateway {
    /// Whether `who` has enrolled an authenticator app (one-time codes).
    pub async fn totp_enrolled(&self, who: &PrincipalId) -> Result<bool, GatewayError> {
        Ok(self.store.totp_get(who).await?.is_some())
    }

    /// `who`'s passkeys.
    pub async fn passkeys(
        &self,
        who: &PrincipalId,
    ) -> Result<Vec<countersign_store::StoredPasskey>, GatewayError> {
        Ok(self.store.passkeys(who).await?)
    }
}

/// The sentence that tells a person about a change to their factors.
pub fn announcement(change: &FactorChange) -> String {
    let what = match change.change {
        FactorChangeKind::TotpEnrolled => "an authenticator app (one-time codes) was enrolled",
        FactorChangeKind::PasskeyAdded => "a passkey was added",
        FactorChangeKind::Reset => "an operator removed all your second factors",
    };
    let how = match change.proof {
        FactorProof::FirstFactor => " as your first second factor",
        FactorProof::Totp => ", confirmed with a one-time code",
        FactorProof::Passkey => ", confirmed with a passkey",
        FactorProof::Operator => "",
    };
    let next = match change.change {
        FactorChangeKind::Reset => {
            "enrol a new one before your next vote that needs it".to_string()
        }
        _ => format!(
            "if this was not you, ask an operator to run `countersign mfa reset {}` and revoke your API keys",
            change.principal
        ),
    };
    format!(
        "Countersign: on {} {what}{how} for {}; {next}.",
        change.at.format("%Y-%m-%d %H:%M UTC"),
        change.principal
    )
}

/// What an assertion proving a current factor for a change of factors is bound to: the
/// person, and the purpose `change_factor` (no request, digest or decision), so an assertion
/// begun for a vote cannot serve, nor this one for a vote.
pub(crate) fn factor_change_binding(who: &Principal) -> CeremonyBinding {
    CeremonyBinding {
        principal: who.id.clone(),
        kind: CeremonyKind::Authenticate,
        request_id: None,
        digest: None,
        decision: Some("change_factor".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_presented_factor_is_a_code_or_a_ceremony_with_its_answer() {
        let s = |v: &str| Some(v.to_string());
        assert!(CurrentFactor::from_fields(None, None, None).is_none());
        assert!(CurrentFactor::from_fields(s("  "), s(""), None).is_none());
        assert!(matches!(
            CurrentFactor::from_fields(s(" 123456 "), None, None),
            Some(CurrentFactor::Totp(c)) if c == "123456"
        ));
        assert!(matches!(
            CurrentFactor::from_fields(s(""), s("c1"), s("{}")),
            Some(CurrentFactor::Passkey { ceremony, .. }) if ceremony == "c1"
        ));
        // A ceremony without its answer is not a passkey proof.
        assert!(CurrentFactor::from_fields(None, s("c1"), None).is_none());
    }

    #[test]
    fn announcements_name_the_change_and_the_way_back() {
        let change = FactorChange {
            principal: PrincipalId::parse("user:bob@example.com").unwrap(),
            at: chrono::DateTime::from_timestamp(0, 0).unwrap(),
            change: FactorChangeKind::TotpEnrolled,
            proof: FactorProof::Totp,
            actor: "user:bob@example.com".into(),
        };
        let text = announcement(&change);
        assert!(text.contains("authenticator app"), "{text}");
        assert!(text.contains("confirmed with a one-time code"), "{text}");
        assert!(
            text.contains("countersign mfa reset user:bob@example.com"),
            "{text}"
        );
    }
}
