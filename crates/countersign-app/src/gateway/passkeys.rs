//! WebAuthn passkeys as a second factor: registering a passkey for a signed-in person (begun
//! only with a `factors::Authorized`: a current factor proven, or none yet), an assertion that
//! verifies one vote, and an assertion that proves a current factor for a change of factors.
//! Every ceremony's state is kept server-side by the store, expires after [`CEREMONY_TTL`] and
//! is taken once; an authentication ceremony for a vote is bound to one request, the digest
//! shown and the decision (one for a change of factors to that purpose only), so an assertion
//! made to approve one action cannot approve another, deny instead, or be replayed. A verified
//! assertion becomes a vote through the one vote path (`Gateway::vote_verified`) with
//! `MfaMethod::Webauthn`.
//!
//! The relying party id and origin come from `public_url`: its host and origin; a loopback IP
//! address (the default `http://127.0.0.1:…`) maps to `localhost` on the same port, because
//! browsers accept no IP address as a relying party id.
//!
//! Must not: trust anything the browser says about the ceremony (its binding is read from the
//! store), or decide the vote itself.

use crate::gateway::{Gateway, GatewayError};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use countersign_core::{Channel, MfaMethod, Principal, Request};
use countersign_store::{
    Ceremony, CeremonyBinding, CeremonyKind, CeremonyRefusal, FactorChangeKind, FactorProof,
    StoreError, StoredPasskey,
};
use sha2::Digest as _;
use std::time::Duration;
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};

/// How long a begun ceremony may be finished.
pub const CEREMONY_TTL: Duration = Duration::from_secs(300);

/// This gateway as a WebAuthn relying party.
pub struct RelyingParty {
    webauthn: Webauthn,
    /// The relying party id (a host name).
    pub id: String,
    /// The only origin assertions are accepted from.
    pub origin: String,
}

impl RelyingParty {
    /// The relying party `public_url` names, or `None` when it names none (an IP address other
    /// than loopback, or no host).
    pub fn new(public_url: &str) -> Option<RelyingParty> {
        let mut origin = Url::parse(public_url).ok()?;
        let host = origin.host_str()?.trim_matches(['[', ']']);
        let loopback = host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
        if loopback {
            origin.set_host(Some("localhost")).ok()?;
        }
        origin.set_path("");
        let id = origin.domain()?.to_string();
        let webauthn = WebauthnBuilder::new(&id, &origin)
            .ok()?
            .rp_name("Countersign")
            .timeout(CEREMONY_TTL)
            .build()
            .ok()?;
        let origin = origin.as_str().trim_end_matches('/').to_string();
        Some(RelyingParty {
            webauthn,
            id,
            origin,
        })
    }
}

/// Why a passkey step was refused. Each has a stable code (`countersign_http::error` maps them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasskeyFailure {
    /// `public_url` names no relying party.
    Unavailable,
    NotEnrolled,
    /// The browser's answer does not verify (signature, challenge, origin, counter, format).
    Invalid,
    /// The ceremony was begun for another person, request, digest or decision (or is unknown).
    Mismatch,
    Replayed,
    Expired,
    /// The authenticator's credential is registered already.
    Duplicate,
}

impl PasskeyFailure {
    pub fn code(self) -> &'static str {
        match self {
            PasskeyFailure::Unavailable => "passkeys_unavailable",
            PasskeyFailure::NotEnrolled => "webauthn_not_enrolled",
            PasskeyFailure::Invalid => "webauthn_invalid",
            PasskeyFailure::Mismatch => "webauthn_mismatch",
            PasskeyFailure::Replayed => "webauthn_replayed",
            PasskeyFailure::Expired => "webauthn_expired",
            PasskeyFailure::Duplicate => "webauthn_duplicate",
        }
    }
}

impl std::fmt::Display for PasskeyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PasskeyFailure::Unavailable => {
                "passkeys need `public_url` to name a host (https://countersign.example.com, or http://localhost:… locally); nothing was changed"
            }
            PasskeyFailure::NotEnrolled => {
                "you have no passkey; add one on the second-factor page first"
            }
            PasskeyFailure::Invalid => {
                "the passkey's answer did not verify; nothing was changed, try again"
            }
            PasskeyFailure::Mismatch => {
                "this passkey confirmation was made for another request, digest or decision (or is unknown); nothing was changed, start again from the request page"
            }
            PasskeyFailure::Replayed => {
                "this passkey confirmation was already used; nothing was changed, start again"
            }
            PasskeyFailure::Expired => {
                "this passkey confirmation took longer than 5 minutes and expired; nothing was changed, start again"
            }
            PasskeyFailure::Duplicate => "this passkey is registered already",
        })
    }
}

fn fail(f: PasskeyFailure) -> GatewayError {
    GatewayError::Passkey(f)
}

impl From<CeremonyRefusal> for PasskeyFailure {
    fn from(r: CeremonyRefusal) -> Self {
        match r {
            CeremonyRefusal::Unknown | CeremonyRefusal::Mismatch => PasskeyFailure::Mismatch,
            CeremonyRefusal::Used => PasskeyFailure::Replayed,
            CeremonyRefusal::Expired => PasskeyFailure::Expired,
        }
    }
}

/// A ceremony begun: its id (to send back when finishing) and the options for
/// `navigator.credentials.create/get`, as JSON with base64url binary fields.
pub struct Begun {
    pub ceremony: String,
    pub options: serde_json::Value,
}

fn user_handle(who: &Principal) -> Uuid {
    let h = sha2::Sha256::digest(who.id.as_str().as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    Uuid::from_bytes(b)
}

fn decision_str(d: countersign_core::VoteDecision) -> &'static str {
    match d {
        countersign_core::VoteDecision::Approve => "approve",
        countersign_core::VoteDecision::Deny => "deny",
    }
}

impl Gateway {
    fn relying_party(&self) -> Result<&RelyingParty, GatewayError> {
        self.passkeys
            .as_ref()
            .ok_or(fail(PasskeyFailure::Unavailable))
    }

    fn people_only(who: &Principal) -> Result<(), GatewayError> {
        match who.is_person() {
            true => Ok(()),
            false => Err(GatewayError::Forbidden(
                "people_only",
                "only people enroll a second factor".into(),
            )),
        }
    }

    async fn stored_passkeys(&self, who: &Principal) -> Result<Vec<Passkey>, GatewayError> {
        let stored = self.store.passkeys(&who.id).await?;
        stored
            .iter()
            .map(|p| {
                serde_json::from_str(&p.passkey)
                    .map_err(|e| GatewayError::Store(StoreError::Corrupt(e.to_string())))
            })
            .collect()
    }

    async fn begin(
        &self,
        binding: CeremonyBinding,
        state: String,
        options: serde_json::Value,
    ) -> Result<Begun, GatewayError> {
        let ttl = chrono::Duration::from_std(CEREMONY_TTL).unwrap_or_default();
        let ceremony = Ceremony {
            id: crate::tokens::random_token(),
            binding,
            state,
            expires_at: self.clock.now() + ttl,
        };
        self.store.ceremony_begin(&ceremony).await?;
        Ok(Begun {
            ceremony: ceremony.id,
            options,
        })
    }

    /// Begins registering a passkey for `who` (their existing ones are excluded), once
    /// `authorized` shows a current factor was proven for it (or that they had none). How it
    /// was authorised is kept with the ceremony's server-side state.
    pub(crate) async fn passkey_register_begin(
        &self,
        who: &Principal,
        authorized: crate::gateway::factors::Authorized,
    ) -> Result<Begun, GatewayError> {
        Self::people_only(who)?;
        let rp = self.relying_party()?;
        let existing: Vec<_> = self
            .stored_passkeys(who)
            .await?
            .iter()
            .map(|p| p.cred_id().clone())
            .collect();
        let name = who.id.as_str().trim_start_matches("user:");
        let (options, state) = rp
            .webauthn
            .start_passkey_registration(user_handle(who), name, name, Some(existing))
            .map_err(|_| fail(PasskeyFailure::Invalid))?;
        let binding = CeremonyBinding {
            principal: who.id.clone(),
            kind: CeremonyKind::Register,
            request_id: None,
            digest: None,
            decision: None,
        };
        let state = serde_json::to_value(&state).map_err(|_| fail(PasskeyFailure::Invalid))?;
        let state =
            serde_json::json!({"proof": authorized.proof().as_str(), "registration": state});
        let options = serde_json::to_value(&options).map_err(|_| fail(PasskeyFailure::Invalid))?;
        self.begin(binding, state.to_string(), options).await
    }

    /// Finishes a registration: verifies the browser's `credential` (JSON) against the stored
    /// ceremony and stores the passkey (recording `mfa.enrolled`).
    pub async fn passkey_register_finish(
        &self,
        who: &Principal,
        ceremony: &str,
        credential: &str,
    ) -> Result<(), GatewayError> {
        Self::people_only(who)?;
        let rp = self.relying_party()?;
        let credential: RegisterPublicKeyCredential =
            serde_json::from_str(credential).map_err(|_| fail(PasskeyFailure::Invalid))?;
        let binding = CeremonyBinding {
            principal: who.id.clone(),
            kind: CeremonyKind::Register,
            request_id: None,
            digest: None,
            decision: None,
        };
        let now = self.clock.now();
        let state = self
            .store
            .ceremony_take(ceremony, &binding, now)
            .await?
            .map_err(|r| fail(r.into()))?;
        let corrupt =
            |e: serde_json::Error| GatewayError::Store(StoreError::Corrupt(e.to_string()));
        let mut state: serde_json::Value = serde_json::from_str(&state).map_err(corrupt)?;
        let proof = state["proof"]
            .as_str()
            .and_then(FactorProof::parse)
            .unwrap_or(FactorProof::FirstFactor);
        // Begun as a first factor, the person may have enrolled another since: then this one
        // is not first any more and needs the proof the begin did not ask for.
        if proof == FactorProof::FirstFactor && self.has_factor(&who.id).await? {
            return Err(crate::gateway::factors::factor_required());
        }
        let state: PasskeyRegistration =
            serde_json::from_value(state["registration"].take()).map_err(corrupt)?;
        let passkey = rp
            .webauthn
            .finish_passkey_registration(&credential, &state)
            .map_err(|_| fail(PasskeyFailure::Invalid))?;
        let stored = StoredPasskey {
            principal: who.id.clone(),
            credential_id: B64.encode(passkey.cred_id().as_slice()),
            passkey: serde_json::to_string(&passkey).map_err(|_| fail(PasskeyFailure::Invalid))?,
            created_at: now,
            last_used_at: None,
        };
        match self.store.passkey_enroll(&stored, proof).await {
            Err(StoreError::Conflict(_)) => Err(fail(PasskeyFailure::Duplicate)),
            r => {
                r?;
                self.factor_changed(&who.id, FactorChangeKind::PasskeyAdded, proof, now);
                Ok(())
            }
        }
    }

    /// Begins an assertion that will verify `who`'s `decision` on request `id` as shown with
    /// `digest`; the ceremony is bound to exactly these.
    pub async fn passkey_vote_begin(
        &self,
        who: &Principal,
        id: &str,
        digest: &str,
        decision: countersign_core::VoteDecision,
    ) -> Result<Begun, GatewayError> {
        Self::people_only(who)?;
        let rp = self.relying_party()?;
        let passkeys = self.stored_passkeys(who).await?;
        if passkeys.is_empty() {
            return Err(fail(PasskeyFailure::NotEnrolled));
        }
        // The request must exist and be readable by this person.
        self.get(who, id).await?;
        let (options, state) = rp
            .webauthn
            .start_passkey_authentication(&passkeys)
            .map_err(|_| fail(PasskeyFailure::Invalid))?;
        let binding = CeremonyBinding {
            principal: who.id.clone(),
            kind: CeremonyKind::Authenticate,
            request_id: Some(id.to_string()),
            digest: Some(digest.to_string()),
            decision: Some(decision_str(decision).to_string()),
        };
        let state: String =
            serde_json::to_string(&state).map_err(|_| fail(PasskeyFailure::Invalid))?;
        let options = serde_json::to_value(&options).map_err(|_| fail(PasskeyFailure::Invalid))?;
        self.begin(binding, state, options).await
    }

    /// Votes `body` on request `id` once `credential` (the browser's assertion, JSON) verifies
    /// against ceremony `ceremony`, which must have been begun for this person, this request,
    /// `body.digest` and `body.decision`. The ceremony is used up whatever happens next.
    pub async fn vote_with_passkey(
        &self,
        who: &Principal,
        id: &str,
        body: super::CastVote,
        channel: Channel,
        ceremony: &str,
        credential: &str,
    ) -> Result<Request, GatewayError> {
        let binding = CeremonyBinding {
            principal: who.id.clone(),
            kind: CeremonyKind::Authenticate,
            request_id: Some(id.to_string()),
            digest: Some(body.digest.to_string()),
            decision: Some(decision_str(body.decision).to_string()),
        };
        self.verify_assertion(who, &binding, ceremony, credential)
            .await?;
        let recorded = self
            .vote_verified(who, id, body, channel, Some(MfaMethod::Webauthn))
            .await?;
        Ok(recorded.request)
    }

    /// Begins registering a passkey for `who` once `presented` proves a current factor.
    pub async fn passkey_register(
        &self,
        who: &Principal,
        presented: Option<crate::gateway::factors::CurrentFactor>,
    ) -> Result<Begun, GatewayError> {
        let authorized = self.authorize_factor_change(who, presented).await?;
        self.passkey_register_begin(who, authorized).await
    }

    /// Begins an assertion that will prove `who` holds one of their passkeys for one change
    /// of their factors (`factors`); the ceremony is bound to that purpose only.
    pub async fn passkey_confirm_begin(&self, who: &Principal) -> Result<Begun, GatewayError> {
        Self::people_only(who)?;
        let rp = self.relying_party()?;
        let passkeys = self.stored_passkeys(who).await?;
        if passkeys.is_empty() {
            return Err(fail(PasskeyFailure::NotEnrolled));
        }
        let (options, state) = rp
            .webauthn
            .start_passkey_authentication(&passkeys)
            .map_err(|_| fail(PasskeyFailure::Invalid))?;
        let state: String =
            serde_json::to_string(&state).map_err(|_| fail(PasskeyFailure::Invalid))?;
        let options = serde_json::to_value(&options).map_err(|_| fail(PasskeyFailure::Invalid))?;
        self.begin(
            crate::gateway::factors::factor_change_binding(who),
            state,
            options,
        )
        .await
    }

    /// Verifies `credential` (an assertion, JSON) against ceremony `ceremony`, which must be
    /// bound to exactly `binding`; on success the passkey's counter moves. The ceremony is used
    /// up whatever happens; a failed assertion counts toward the second-factor rate limit.
    pub(crate) async fn verify_assertion(
        &self,
        who: &Principal,
        binding: &CeremonyBinding,
        ceremony: &str,
        credential: &str,
    ) -> Result<(), GatewayError> {
        let rp = self.relying_party()?;
        self.mfa_not_limited(&who.id)?;
        let credential: Result<PublicKeyCredential, _> = serde_json::from_str(credential);
        let now = self.clock.now();
        let state = self
            .store
            .ceremony_take(ceremony, binding, now)
            .await?
            .map_err(|r| fail(r.into()))?;
        let credential = credential.map_err(|_| fail(PasskeyFailure::Invalid))?;
        let state: PasskeyAuthentication = serde_json::from_str(&state)
            .map_err(|e| GatewayError::Store(StoreError::Corrupt(e.to_string())))?;
        let result = match rp
            .webauthn
            .finish_passkey_authentication(&credential, &state)
        {
            Ok(r) => r,
            Err(_) => {
                self.mfa_failed(&who.id);
                return Err(fail(PasskeyFailure::Invalid));
            }
        };
        let mut passkeys = self.stored_passkeys(who).await?;
        let Some(used) = passkeys
            .iter_mut()
            .find(|p| p.cred_id() == result.cred_id())
        else {
            return Err(fail(PasskeyFailure::Invalid));
        };
        used.update_credential(&result);
        let json = serde_json::to_string(used).map_err(|_| fail(PasskeyFailure::Invalid))?;
        self.store
            .passkey_used(
                &who.id,
                &B64.encode(result.cred_id().as_slice()),
                &json,
                now,
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relying_party_comes_from_the_public_url() {
        let rp = RelyingParty::new("https://cs.example.com").unwrap();
        assert_eq!(
            (rp.id.as_str(), rp.origin.as_str()),
            ("cs.example.com", "https://cs.example.com")
        );
        let rp = RelyingParty::new("http://127.0.0.1:8750").unwrap();
        assert_eq!(
            (rp.id.as_str(), rp.origin.as_str()),
            ("localhost", "http://localhost:8750")
        );
        assert!(RelyingParty::new("http://10.0.0.1:8750").is_none());
        assert!(RelyingParty::new("not a url").is_none());
    }

    #[test]
    fn ceremony_refusals_have_their_own_codes() {
        assert_eq!(
            PasskeyFailure::from(CeremonyRefusal::Used).code(),
            "webauthn_replayed"
        );
        assert_eq!(
            PasskeyFailure::from(CeremonyRefusal::Expired).code(),
            "webauthn_expired"
        );
        assert_eq!(
            PasskeyFailure::from(CeremonyRefusal::Mismatch).code(),
            "webauthn_mismatch"
        );
    }
}
