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

/// The fields of an entry except `seq`, borrowed, for serializing an [`UnsequencedEntry`].
#[derive(Serialize)]
struct WithoutSeq<'a> {
    at: &'a str,
    actor: &'a str,
    event: &'a str,
    request: &'a Option<String>,
    digest: &'a Option<String>,
    policy: &'a Option<String>,
    data: &'a serde_json::Value,
}

/// Integers up to 2^53 print in canonical JSON as plain decimals; larger ones do not.
const MAX_PLAIN_SEQ: u64 = (1 << 53) - 1;

/// An entry whose place in the log is not known yet: everything but `seq`, already in
/// canonical form. Preparing one is the expensive part of appending (canonical JSON), and it
/// can happen anywhere, in parallel; [`UnsequencedEntry::seal`] then only splices in the
/// sequence number and hashes, which is what a single writer has to do in order.
///
/// This works because `seq` sorts last among the entry's keys, so the canonical bytes of the
/// whole entry are the canonical bytes without it, with `,"seq":N` spliced in before the
/// closing brace.
#[derive(Clone, Debug, PartialEq)]
pub struct UnsequencedEntry {
    /// `{"actor":...,"request":...,"seq":` — everything before the number.
    prefix: Vec<u8>,
    /// The entry itself, for the rare slow path (a seq too large to splice).
    entry: AuditEntry,
}

impl AuditEntry {
    /// This entry without its `seq`, prepared for sealing at any position.
    pub fn unsequenced(self) -> UnsequencedEntry {
        let mut prefix = canonical::to_vec(&WithoutSeq {
            at: &self.at,
            actor: &self.actor,
            event: &self.event,
            request: &self.request,
            digest: &self.digest,
            policy: &self.policy,
            data: &self.data,
        });
        // Canonical JSON of a struct is an object: it ends with `}`.
        prefix.pop();
        prefix.extend_from_slice(br#","seq":"#);
        UnsequencedEntry {
            prefix,
            entry: self,
        }
    }
}

impl UnsequencedEntry {
    /// The request the entry is about, if any.
    pub fn request(&self) -> Option<&str> {
        self.entry.request.as_deref()
    }

    /// Fixes the entry in the record as entry `seq`, after the entry whose chain hash is
    /// `prev`. Gives exactly what [`StoredEntry::seal`] gives for the same entry.
    pub fn seal(&self, seq: u64, prev: &[u8; 32]) -> StoredEntry {
        if seq > MAX_PLAIN_SEQ {
            let entry = AuditEntry {
                seq,
                ..self.entry.clone()
            };
            return StoredEntry::seal(&entry, prev);
        }
        let mut bytes = Vec::with_capacity(self.prefix.len() + 21);
        bytes.extend_from_slice(&self.prefix);
        bytes.extend_from_slice(seq.to_string().as_bytes());
        bytes.push(b'}');
        let leaf = leaf_hash_of(&bytes);
        StoredEntry {
            seq,
            chain: chain_hash(prev, &leaf),
            bytes,
            leaf,
        }
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
    fn unsequenced_entries_seal_like_whole_ones() {
        let e = entry();
        let prepared = e.clone().unsequenced();
        for seq in [0, 7, 1 << 40, MAX_PLAIN_SEQ, MAX_PLAIN_SEQ + 1, u64::MAX] {
            let whole = AuditEntry { seq, ..e.clone() };
            assert_eq!(
                prepared.seal(seq, &[3; 32]),
                StoredEntry::seal(&whole, &[3; 32])
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_unsequenced_entry_seals_like_the_whole(
            actor in ".{0,12}",
            event in "[a-z.]{1,16}",
            request in proptest::option::of(".{0,12}"),
            policy in proptest::option::of(".{0,12}"),
            key in ".{0,8}",
            value in proptest::prelude::any::<i32>(),
            note in ".{0,16}",
            seq in 0u64..(1 << 53),
        ) {
            let e = AuditEntry {
                seq,
                at: "2026-11-23T03:00:00.000Z".into(),
                actor,
                event,
                request,
                digest: None,
                policy,
                data: json!({ key: value, "note": note, "z": [1.5, null, true] }),
            };
            proptest::prop_assert_eq!(
                e.clone().unsequenced().seal(seq, &[1; 32]),
                StoredEntry::seal(&e, &[1; 32])
            );
        }
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
