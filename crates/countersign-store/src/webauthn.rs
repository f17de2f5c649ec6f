//! What the store keeps for WebAuthn passkeys: the credentials people registered, and the
//! server-side state of a ceremony between its start and its finish. The state itself is
//! opaque JSON here (the server's WebAuthn library reads it); the store's part is that a
//! ceremony is finished once, before its expiry, for exactly what it was begun for.
//!
//! Must not: interpret a passkey or a ceremony's state, or verify anything cryptographic.

use countersign_core::{PrincipalId, Timestamp};

/// How long after its expiry a ceremony row is kept (so a late finish is told why).
pub const CEREMONY_RETENTION_MS: i64 = 3_600_000;

/// A registered passkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPasskey {
    pub principal: PrincipalId,
    /// base64url (no padding) of the credential id.
    pub credential_id: String,
    /// The WebAuthn library's passkey as JSON (public key, signature counter, ...).
    pub passkey: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

/// Which ceremony.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyKind {
    /// Registering a new passkey.
    Register,
    /// Asserting with a passkey to vote on one request.
    Authenticate,
}

impl CeremonyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CeremonyKind::Register => "register",
            CeremonyKind::Authenticate => "authenticate",
        }
    }
}

/// What a ceremony is for: who, which kind, and (for an authentication) the request, the
/// digest shown and the decision. Finishing must name the same binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CeremonyBinding {
    pub principal: PrincipalId,
    pub kind: CeremonyKind,
    pub request_id: Option<String>,
    pub digest: Option<String>,
    pub decision: Option<String>,
}

/// A ceremony begun.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ceremony {
    pub id: String,
    pub binding: CeremonyBinding,
    /// The WebAuthn library's ceremony state as JSON.
    pub state: String,
    pub expires_at: Timestamp,
}

/// Why a ceremony cannot be finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CeremonyRefusal {
    #[error("no such passkey ceremony")]
    Unknown,
    #[error("this passkey ceremony was already used")]
    Used,
    #[error("this passkey ceremony has expired")]
    Expired,
    #[error("this passkey ceremony was begun for another person, request, digest or decision")]
    Mismatch,
}

/// Classifies a ceremony the conditional update did not take: `row` is
/// (principal, kind, request_id, digest, decision, expires_at millis, used).
pub(crate) type CeremonyRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    bool,
);

pub(crate) fn refusal(
    row: Option<CeremonyRow>,
    binding: &CeremonyBinding,
    now_ms: i64,
) -> CeremonyRefusal {
    let Some((principal, kind, request_id, digest, decision, expires_at, used)) = row else {
        return CeremonyRefusal::Unknown;
    };
    if used {
        CeremonyRefusal::Used
    } else if principal != binding.principal.as_str()
        || kind != binding.kind.as_str()
        || request_id != binding.request_id
        || digest != binding.digest
        || decision != binding.decision
    {
        CeremonyRefusal::Mismatch
    } else if expires_at <= now_ms {
        CeremonyRefusal::Expired
    } else {
        // Taken between the update and this read by someone else.
        CeremonyRefusal::Used
    }
}
