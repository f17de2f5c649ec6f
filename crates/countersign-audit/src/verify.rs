//! Recomputing the record: the streaming check behind `countersign audit verify`. It trusts only
//! the stored bytes and recomputes every leaf and chain hash, so an edited, deleted, inserted or
//! reordered entry is reported with the sequence number where the record stops adding up.
//!
//! What the chain alone cannot show: entries cut off the end of the log, or well-formed entries
//! appended to it. Signed checkpoints (a later issue) close that gap by pinning the head; the
//! report's `head` is what a checkpoint will be compared with.

use crate::entry::{AuditEntry, StoredEntry, chain_hash, leaf_hash_of};

/// Where and why the record first stops adding up.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{problem}")]
pub struct AuditFault {
    /// The first sequence number that is missing or wrong.
    pub seq: u64,
    /// A sentence naming the entry and what is wrong with it.
    pub problem: String,
}

/// The outcome of a verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditReport {
    /// How many entries verified, from entry 0 up to the first fault (or the end).
    pub entries: u64,
    /// The chain hash of the last entry that verified.
    pub head: Option<[u8; 32]>,
    /// The first entry that does not verify; `None` when the whole record is intact.
    pub first_bad: Option<AuditFault>,
}

impl AuditReport {
    pub fn is_intact(&self) -> bool {
        self.first_bad.is_none()
    }

    /// The head as lowercase hex, for printing.
    pub fn head_hex(&self) -> Option<String> {
        self.head.map(hex::encode)
    }
}

/// Checks entries one at a time, in order, keeping only the previous chain hash, so a log of
/// any length verifies in constant memory. Feed it with [`Verifier::push`] until it returns
/// false (a fault was found: what follows cannot be trusted) or the entries run out, then call
/// [`Verifier::finish`].
#[derive(Debug)]
pub struct Verifier {
    next_seq: u64,
    prev: [u8; 32],
    head: Option<[u8; 32]>,
    fault: Option<AuditFault>,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Verifier {
    pub fn new() -> Self {
        Self {
            next_seq: 0,
            prev: [0; 32],
            head: None,
            fault: None,
        }
    }

    /// Checks the next entry. Returns false once a fault has been found.
    pub fn push(&mut self, stored: &StoredEntry) -> bool {
        if self.fault.is_some() || !self.in_sequence(stored.seq) {
            return false;
        }
        let seq = stored.seq;
        match check(stored, &self.prev) {
            Ok(()) => {
                self.prev = stored.chain;
                self.head = Some(stored.chain);
                self.next_seq += 1;
                true
            }
            Err(problem) => {
                self.fault = Some(AuditFault {
                    seq,
                    problem: format!("entry {seq}: {problem}"),
                });
                false
            }
        }
    }

    /// Records that the row holding entry `seq` could not even be read as an entry (a hash of
    /// the wrong length, a negative sequence number...). Storage calls this instead of `push`.
    pub fn push_unreadable(&mut self, seq: u64, problem: &str) -> bool {
        if self.fault.is_some() || !self.in_sequence(seq) {
            return false;
        }
        self.fault = Some(AuditFault {
            seq,
            problem: format!("entry {seq}: {problem}"),
        });
        false
    }

    /// True when a fault has been found; nothing pushed after it is checked.
    pub fn has_fault(&self) -> bool {
        self.fault.is_some()
    }

    pub fn finish(self) -> AuditReport {
        AuditReport {
            entries: self.next_seq,
            head: self.head,
            first_bad: self.fault,
        }
    }

    /// Checks that `seq` is the next number, recording a fault when it is not.
    fn in_sequence(&mut self, seq: u64) -> bool {
        let next = self.next_seq;
        if seq == next {
            return true;
        }
        let problem = if seq > next && next == 0 {
            format!("entry 0 missing: the log starts at entry {seq} (deleted?)")
        } else if seq > next {
            format!(
                "entry {next} missing: sequence jumps from {} to {seq} (deleted?)",
                next - 1
            )
        } else {
            format!(
                "entry {next}: found entry {seq} again after entry {} (duplicated or reordered?)",
                next - 1
            )
        };
        self.fault = Some(AuditFault { seq: next, problem });
        false
    }
}

/// The checks on one entry whose sequence number is already known to be right.
fn check(stored: &StoredEntry, prev: &[u8; 32]) -> Result<(), String> {
    if leaf_hash_of(&stored.bytes) != stored.leaf {
        return Err("stored bytes do not hash to the stored leaf (edited?)".into());
    }
    let entry: AuditEntry = serde_json::from_slice(&stored.bytes)
        .map_err(|e| format!("stored bytes are not an audit entry ({e})"))?;
    if entry.canonical_bytes() != stored.bytes {
        return Err("not canonical JSON".into());
    }
    if entry.seq != stored.seq {
        return Err(format!("seq field says {} (reordered?)", entry.seq));
    }
    if chain_hash(prev, &stored.leaf) != stored.chain {
        return Err(match stored.seq {
            0 => "chain hash does not start from zero".into(),
            s => format!("chain hash does not follow from entry {}", s - 1),
        });
    }
    Ok(())
}

/// Verifies a whole log, streaming: entries must come in stored order, starting at entry 0.
pub fn verify<I: IntoIterator<Item = StoredEntry>>(entries: I) -> AuditReport {
    let mut verifier = Verifier::new();
    for entry in entries {
        if !verifier.push(&entry) {
            break;
        }
    }
    verifier.finish()
}

#[cfg(test)]
mod tests;
