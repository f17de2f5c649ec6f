//! The writes about people rather than requests: API keys (created, revoked with the console
//! sessions), and second factors (TOTP and passkey enrolments, resets), each with its audit
//! entry and, for factors, its change row.

use super::WriteTx;
use crate::audit_log::{Subject, at_of};
use crate::{FactorChange, FactorChangeKind, FactorProof, FactorsRemoved, StoreError};
use countersign_core::{Event, PrincipalId, Timestamp};

pub(crate) async fn create_key<T: WriteTx>(
    tx: &mut T,
    key_hash: &str,
    principal: PrincipalId,
    now: Timestamp,
) -> Result<(), StoreError> {
    tx.insert_key(key_hash, &principal, now).await?;
    let event = Event::KeyCreated { principal };
    let no_subject = Subject::None { policy: None };
    tx.journal()
        .append(&at_of(now), "system", &event, no_subject);
    Ok(())
}

/// Revokes every key of `principal` and ends their console sessions, recorded together.
pub(crate) async fn revoke_keys<T: WriteTx>(
    tx: &mut T,
    principal: PrincipalId,
    actor: &str,
    now: Timestamp,
) -> Result<(u64, u64), StoreError> {
    let keys = tx.delete_keys(&principal).await?;
    let sessions = tx.delete_sessions(&principal).await?;
    let event = Event::KeyRevoked {
        principal,
        keys,
        sessions,
    };
    let no_subject = Subject::None { policy: None };
    tx.journal().append(&at_of(now), actor, &event, no_subject);
    Ok((keys, sessions))
}

pub(crate) async fn totp_enroll<T: WriteTx>(
    tx: &mut T,
    principal: PrincipalId,
    secret: &[u8],
    proof: FactorProof,
    now: Timestamp,
) -> Result<(), StoreError> {
    tx.savepoint().await?;
    tx.upsert_totp(&principal, secret, now).await?;
    factor_changed(tx, principal, FactorChangeKind::TotpEnrolled, proof, now).await
}

pub(crate) async fn passkey_enroll<T: WriteTx>(
    tx: &mut T,
    passkey: &crate::StoredPasskey,
    proof: FactorProof,
) -> Result<(), StoreError> {
    tx.savepoint().await?;
    tx.insert_passkey(passkey).await?;
    let principal = passkey.principal.clone();
    let kind = FactorChangeKind::PasskeyAdded;
    factor_changed(tx, principal, kind, proof, passkey.created_at).await
}

pub(crate) async fn mfa_reset<T: WriteTx>(
    tx: &mut T,
    principal: PrincipalId,
    actor: &str,
    now: Timestamp,
) -> Result<FactorsRemoved, StoreError> {
    tx.savepoint().await?;
    let removed = tx.delete_factors(&principal).await?;
    let change = FactorChange {
        principal: principal.clone(),
        at: now,
        change: FactorChangeKind::Reset,
        proof: FactorProof::Operator,
        actor: actor.to_string(),
    };
    tx.insert_factor_change(&change).await?;
    let event = Event::MfaReset {
        principal,
        totp: removed.totp,
        passkeys: removed.passkeys,
    };
    let no_subject = Subject::None { policy: None };
    tx.journal().append(&at_of(now), actor, &event, no_subject);
    Ok(removed)
}

/// Records an enrolment by the person themselves: the change row and `mfa.enrolled`.
async fn factor_changed<T: WriteTx>(
    tx: &mut T,
    principal: PrincipalId,
    change: FactorChangeKind,
    proof: FactorProof,
    now: Timestamp,
) -> Result<(), StoreError> {
    let actor = principal.to_string();
    let row = FactorChange {
        principal: principal.clone(),
        at: now,
        change,
        proof,
        actor: actor.clone(),
    };
    tx.insert_factor_change(&row).await?;
    let factor = match change {
        FactorChangeKind::PasskeyAdded => "passkey",
        _ => "totp",
    };
    let event = Event::MfaEnrolled {
        principal,
        factor: factor.into(),
        proof: proof.as_str().into(),
    };
    let no_subject = Subject::None { policy: None };
    tx.journal().append(&at_of(now), &actor, &event, no_subject);
    Ok(())
}
