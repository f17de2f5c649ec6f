//! One audit entry, the canonical bytes it is hashed over, and the two hashes that fix it in the
//! record: the leaf hash SHA-256(0x00 ‖ bytes) of RFC 9162, and the chain hash
//! SHA-256(previous chain ‖ leaf) that makes removing or reordering entries visible.
//!
//! This module must not decide what gets recorded or when; storage builds entries from the
//! domain's events and this module only fixes their form.

use countersign_core::{Timestamp, canonical};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The domain-separation byte RFC 9162 puts before a leaf's data (interior nodes use 0x01).
pub const LEAF_PREFIX: u8 = 0x00;

/// What one entry of the audit log says. Its canonical JSON (RFC 8785) is what gets hashed and
/// stored, byte for byte.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// Position in the log, from 0 without gaps.
    pub seq: u64,
    /// When it happened: RFC 3339, UTC, millisecond precision, `Z` (see [`format_at`]).
    pub at: String,
    /// The principal id that acted, or `system`.
    pub actor: String,
    /// The dotted event name, e.g. `request.created`.
    pub event: String,
    /// The request id, when the event concerns one.
    pub request: Option<String>,
    /// The request's digest (`sha256:<hex>`), when the event concerns one.
    pub digest: Option<String>,
    /// The content hash of the policy that decided, when one did.
    pub policy: Option<String>,
    /// The event's own fields.
    pub data: serde_json::Value,
}

impl AuditEntry {
    /// The RFC 8785 canonical JSON of this entry: exactly the bytes that are hashed and stored.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        canonical::to_vec(self)
    }

    /// SHA-256(0x00 ‖ canonical bytes), the RFC 9162 leaf hash.
    pub fn leaf_hash(&self) -> [u8; 32] {
        leaf_hash_of(&self.canonical_bytes())
    }
}

/// The leaf hash of already-canonical bytes.
pub(crate) fn leaf_hash_of(bytes: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX]);
    h.update(bytes);
    h.finalize().into()
}

/// SHA-256(prev ‖ leaf). The `prev` of entry 0 is 32 zero bytes.
pub fn chain_hash(prev: &[u8; 32], leaf: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(leaf);
    h.finalize().into()
}

/// Formats a time the way audit entries carry it: `2026-11-23T03:00:00.000Z`.
pub fn format_at(at: Timestamp) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An entry as storage keeps it: its position, the exact bytes that were hashed, the leaf hash
/// and the chain hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEntry {
    pub seq: u64,
    /// Exactly what was hashed: the canonical JSON of an [`AuditEntry`].
    pub bytes: Vec<u8>,
    pub leaf: [u8; 32],
    pub chain: [u8; 32],
}

impl StoredEntry {
    /// Fixes `entry` in the record after the entry whose chain hash is `prev` (32 zero bytes
    /// for the first entry).
    pub fn seal(entry: &AuditEntry, prev: &[u8; 32]) -> StoredEntry {
        let bytes = entry.canonical_bytes();
        let leaf = leaf_hash_of(&bytes);
        StoredEntry {
            seq: entry.seq,
            chain: chain_hash(prev, &leaf),
            bytes,
            leaf,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn entry() -> AuditEntry {
        AuditEntry {
            seq: 0,
            at: "2026-11-23T03:00:00.000Z".into(),
            actor: "agent:deploy-bot".into(),
            event: "request.created".into(),
            request: Some("req_1".into()),
            digest: Some(format!("sha256:{}", "ab".repeat(32))),
            policy: None,
            data: json!({"kind": "db.export", "held": false}),
        }
    }

    #[test]
    fn canonical_bytes_sort_keys_and_keep_nulls() {
        let bytes = String::from_utf8(entry().canonical_bytes()).unwrap();
        assert!(
            bytes.starts_with(r#"{"actor":"agent:deploy-bot","at":"2026-11-23T03:00:00.000Z","data":{"held":false,"kind":"db.export"},"digest":"sha256:abab"#),
            "{bytes}"
        );
        assert!(
            bytes
                .ends_with(r#""event":"request.created","policy":null,"request":"req_1","seq":0}"#)
        );
    }

    #[test]
    fn leaf_hash_is_rfc9162_leaf() {
        let e = entry();
        let mut h = Sha256::new();
        h.update([0u8]);
        h.update(e.canonical_bytes());
        let expected: [u8; 32] = h.finalize().into();
        assert_eq!(e.leaf_hash(), expected);
        // Known answer for the empty leaf: SHA-256(0x00).
        assert_eq!(
            hex::encode(leaf_hash_of(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    #[test]
    fn chain_hash_links_previous_and_leaf() {
        let e = entry();
        let sealed = StoredEntry::seal(&e, &[0; 32]);
        assert_eq!(sealed.leaf, e.leaf_hash());
        assert_eq!(sealed.chain, chain_hash(&[0; 32], &sealed.leaf));
        assert_ne!(sealed.chain, chain_hash(&[1; 32], &sealed.leaf));
    }

    #[test]
    fn at_has_millisecond_precision_and_z() {
        let t = chrono::Utc
            .with_ymd_and_hms(2026, 11, 23, 3, 0, 0)
            .unwrap()
            .checked_add_signed(chrono::Duration::nanoseconds(1_234_567))
            .unwrap();
        assert_eq!(format_at(t), "2026-11-23T03:00:00.001Z");
    }
}
