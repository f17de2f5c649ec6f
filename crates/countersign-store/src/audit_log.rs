//! How events become audit entries, backend-neutral: the head of the chain (the next sequence
//! number and the last chain hash), sealing an event after it, and reading stored rows back.
//!
//! A backend keeps the head in memory only while it alone appends (SQLite's single writer) and
//! must reload it whenever a transaction it advanced the head in fails to commit.

use countersign_audit::{AuditEntry, StoredEntry, format_at};
use countersign_core::{Event, Request};

/// Where the next audit entry goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AuditHead {
    pub next_seq: u64,
    /// The chain hash of the last entry (32 zero bytes before the first).
    pub prev: [u8; 32],
}

/// What an event is about, beyond the event itself.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Subject<'a> {
    /// A request: its id, digest and deciding policy are recorded with the event.
    Request(&'a Request),
    /// Nothing in particular, optionally under a policy (`policy.loaded`).
    None { policy: Option<&'a str> },
}

impl AuditHead {
    pub fn empty() -> Self {
        AuditHead {
            next_seq: 0,
            prev: [0; 32],
        }
    }

    /// The head after a stored last entry, read back from the database.
    pub fn after_row(seq: i64, chain: &[u8]) -> Result<Self, String> {
        let seq = u64::try_from(seq).map_err(|_| format!("audit entry has seq {seq}"))?;
        let prev = hash32(chain).map_err(|e| format!("audit entry {seq}: chain {e}"))?;
        Ok(AuditHead {
            next_seq: seq + 1,
            prev,
        })
    }

    /// Builds the next entry for `event` and advances the head past it. `at` is already
    /// formatted (see [`at_of`]).
    pub fn seal(
        &mut self,
        at: &str,
        actor: &str,
        event: &Event,
        subject: Subject<'_>,
    ) -> StoredEntry {
        let (request, digest, policy) = match subject {
            Subject::Request(r) => (
                Some(r.id.clone()),
                Some(r.digest.to_string()),
                Some(r.decision.policy_hash.clone()),
            ),
            Subject::None { policy } => (None, None, policy.map(str::to_owned)),
        };
        let entry = AuditEntry {
            seq: self.next_seq,
            at: at.to_owned(),
            actor: actor.to_owned(),
            event: event.name().to_owned(),
            request,
            digest,
            policy,
            data: event.data(),
        };
        let stored = StoredEntry::seal(&entry, &self.prev);
        self.next_seq += 1;
        self.prev = stored.chain;
        stored
    }
}

/// The `at` of entries written at `now`.
pub(crate) fn at_of(now: countersign_core::Timestamp) -> String {
    format_at(now)
}

fn hash32(bytes: &[u8]) -> Result<[u8; 32], String> {
    <[u8; 32]>::try_from(bytes).map_err(|_| format!("is {} bytes, not 32", bytes.len()))
}

/// A stored audit row as an entry, or a sentence saying why it is not one.
pub(crate) fn entry_from_row(
    seq: i64,
    bytes: Vec<u8>,
    leaf: &[u8],
    chain: &[u8],
) -> Result<StoredEntry, (Option<u64>, String)> {
    let seq = u64::try_from(seq).map_err(|_| (None, format!("a row has seq {seq}")))?;
    let leaf = hash32(leaf).map_err(|e| (Some(seq), format!("stored leaf {e}")))?;
    let chain = hash32(chain).map_err(|e| (Some(seq), format!("stored chain {e}")))?;
    Ok(StoredEntry {
        seq,
        bytes,
        leaf,
        chain,
    })
}
