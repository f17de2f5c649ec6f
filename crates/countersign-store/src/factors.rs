//! What the store keeps about changes to a person's second factors: each enrolment (a TOTP app,
//! a passkey) and each operator reset, with how the change was proven. A change row is written
//! in the same transaction as the change and its audit entry (`mfa.enrolled`, `mfa.reset`), so
//! the console can tell the person about every change, and an auditor can see how each one
//! was authorised.
//!
//! Must not: decide whether a change is allowed (the gateway checks the current factor before
//! it calls the store), or verify a code or an assertion.

use countersign_core::{PrincipalId, Timestamp};

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorChangeKind {
    TotpEnrolled,
    PasskeyAdded,
    /// An operator removed every factor (`countersign mfa reset`).
    Reset,
}

impl FactorChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FactorChangeKind::TotpEnrolled => "totp_enrolled",
            FactorChangeKind::PasskeyAdded => "passkey_added",
            FactorChangeKind::Reset => "reset",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::TotpEnrolled, Self::PasskeyAdded, Self::Reset]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// How a change was authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorProof {
    /// The person had no factor: their first factor (API key or console session) was trusted
    /// on first use.
    FirstFactor,
    /// A current TOTP code, consumed like a vote's.
    Totp,
    /// A passkey assertion made for this change.
    Passkey,
    /// An operator with local access to the database and configuration.
    Operator,
}

impl FactorProof {
    pub fn as_str(self) -> &'static str {
        match self {
            FactorProof::FirstFactor => "first_factor",
            FactorProof::Totp => "totp",
            FactorProof::Passkey => "passkey",
            FactorProof::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::FirstFactor, Self::Totp, Self::Passkey, Self::Operator]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One change to a person's factors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactorChange {
    pub principal: PrincipalId,
    pub at: Timestamp,
    pub change: FactorChangeKind,
    pub proof: FactorProof,
    /// Who made it: the person, or `system` for an operator's reset.
    pub actor: String,
}

/// What a reset removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FactorsRemoved {
    pub totp: bool,
    pub passkeys: u64,
}

/// A stored change row back into a [`FactorChange`].
pub(crate) fn change_from_row(
    principal: &str,
    at: i64,
    change: &str,
    proof: &str,
    actor: String,
) -> Result<FactorChange, crate::StoreError> {
    let corrupt = |what: &str| crate::StoreError::Corrupt(format!("a factor change's {what}"));
    Ok(FactorChange {
        principal: PrincipalId::parse(principal).map_err(|_| corrupt("principal"))?,
        at: crate::columns::from_millis(at)?,
        change: FactorChangeKind::parse(change).ok_or_else(|| corrupt("kind"))?,
        proof: FactorProof::parse(proof).ok_or_else(|| corrupt("proof"))?,
        actor,
    })
}
