//! Recomputing the record: the streaming check behind `countersign audit verify`. It trusts only
//! the stored bytes and recomputes every leaf and chain hash, so an edited, deleted, inserted or
//! reordered entry is reported with the sequence number where the record stops adding up.
//!
//! The same pass builds the RFC 9162 Merkle tree over the leaves and compares its root with every
//! signed checkpoint it is given, at the checkpoint's size. That catches what the chain alone
//! cannot: entries cut off the end (a checkpoint is larger than the log), and a history rewritten
//! with recomputed hashes (a root no longer matches what was signed). Entries come either as
//! stored rows (bytes, leaf and chain: [`Verifier::push`]) or as the lines of an export (bytes
//! only: [`Verifier::push_line`]).

use crate::checkpoint::Checkpoint;
use crate::entry::{AuditEntry, StoredEntry, chain_hash, leaf_hash_of};
use crate::merkle::{EMPTY_ROOT, Frontier, Hash};

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
    /// The Merkle tree root over the entries that verified.
    pub root: Hash,
    /// How many signed checkpoints the tree was compared with (and matched).
    pub checkpoints_matched: usize,
    /// The size of the largest checkpoint that matched.
    pub latest_checkpoint: Option<u64>,
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
    tree: Frontier,
    /// Checkpoints still to compare with, smallest size last (popped as the tree grows).
    checkpoints: Vec<Checkpoint>,
    matched: usize,
    latest_matched: Option<u64>,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Verifier {
    pub fn new() -> Self {
        Self::with_checkpoints(Vec::new())
    }

    /// A verifier that also compares the tree with each of `checkpoints` (already opened with
    /// a trusted key) when it reaches the checkpoint's size.
    pub fn with_checkpoints(mut checkpoints: Vec<Checkpoint>) -> Self {
        checkpoints.sort_by_key(|c| std::cmp::Reverse(c.size));
        let mut v = Self {
            next_seq: 0,
            prev: [0; 32],
            head: None,
            fault: None,
            tree: Frontier::new(),
            checkpoints,
            matched: 0,
            latest_matched: None,
        };
        v.compare_checkpoints();
        v
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
                self.grow(stored.leaf)
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

    /// Checks the next line of an export: exactly the bytes of entry number `line` (from 0).
    /// There is no stored leaf or chain to compare with: the tree and the signed checkpoints
    /// vouch for the bytes (any edit changes a leaf, hence every later root). So only the
    /// entry's number is read from the line, from its canonical tail `,"seq":N}` (`seq` sorts
    /// last), which keeps this at hashing speed; the rest is left to the roots.
    pub fn push_line(&mut self, bytes: &[u8]) -> bool {
        if self.fault.is_some() {
            return false;
        }
        let expected = self.next_seq;
        let Some(seq) = seq_of_line(bytes) else {
            self.fault = Some(AuditFault {
                seq: expected,
                problem: format!(
                    "entry {expected} (line {}): not a canonical audit entry (edited?)",
                    expected + 1
                ),
            });
            return false;
        };
        if !self.in_sequence(seq) {
            return false;
        }
        self.next_seq += 1;
        self.grow(leaf_hash_of(bytes))
    }

    /// Adds a verified leaf to the tree and compares any checkpoint of the new size.
    fn grow(&mut self, leaf: Hash) -> bool {
        self.tree.push(leaf, |_| {});
        self.compare_checkpoints();
        self.fault.is_none()
    }

    /// Compares every pending checkpoint whose size the tree has reached.
    fn compare_checkpoints(&mut self) {
        let size = self.tree.size();
        while let Some(cp) = self.checkpoints.last() {
            if cp.size > size || self.fault.is_some() {
                return;
            }
            let cp = self.checkpoints.pop().expect("just looked at it");
            if cp.size < size {
                // Two checkpoints of one size: the smaller-sized was compared already.
                continue;
            }
            let root = self.tree.root();
            if root == cp.root {
                self.matched += 1;
                self.latest_matched = Some(cp.size);
                continue;
            }
            let since = self.latest_matched.unwrap_or(0);
            let last = size.saturating_sub(1);
            let problem = match self.latest_matched {
                Some(m) => format!(
                    "entries {since}..={last} do not hash to the root signed in the checkpoint \
                     at size {size} (the checkpoint at size {m} matched): one of them was \
                     edited, inserted, removed or reordered, or the checkpoint was swapped"
                ),
                None => format!(
                    "entries 0..={last} do not hash to the root signed in the checkpoint at \
                     size {size}: one of them was edited, inserted, removed or reordered, or \
                     the checkpoint was swapped"
                ),
            };
            self.fault = Some(AuditFault {
                seq: since,
                problem,
            });
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

    /// The entries verified so far.
    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// The tree root over the entries verified so far.
    pub fn root(&self) -> Hash {
        self.tree.root()
    }

    pub fn finish(mut self) -> AuditReport {
        if self.fault.is_none()
            && let Some(largest) = self.checkpoints.first()
        {
            let (n, m) = (self.next_seq, largest.size);
            self.fault = Some(AuditFault {
                seq: n,
                problem: format!(
                    "the log ends after {n} entries but a checkpoint was signed at size {m}: \
                     entries {n}..={} are missing (truncated?)",
                    m - 1
                ),
            });
        }
        let root = match self.tree.size() {
            0 => EMPTY_ROOT,
            _ => self.tree.root(),
        };
        AuditReport {
            entries: self.next_seq,
            head: self.head,
            first_bad: self.fault,
            root,
            checkpoints_matched: self.matched,
            latest_checkpoint: self.latest_matched,
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
    let entry = parse_canonical(&stored.bytes)?;
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

/// The `seq` of a canonical entry, read from its tail: `{"actor":…,"seq":N}`.
fn seq_of_line(bytes: &[u8]) -> Option<u64> {
    if !bytes.starts_with(br#"{"actor":"#) {
        return None;
    }
    let body = bytes.strip_suffix(b"}")?;
    let digits = body.len() - body.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let number = &body[digits..];
    if !body[..digits].ends_with(br#","seq":"#) || number.is_empty() {
        return None;
    }
    if number.len() > 1 && number[0] == b'0' {
        return None;
    }
    std::str::from_utf8(number).ok()?.parse().ok()
}

/// The entry these bytes are, when they are its canonical JSON.
fn parse_canonical(bytes: &[u8]) -> Result<AuditEntry, String> {
    let entry: AuditEntry = serde_json::from_slice(bytes)
        .map_err(|e| format!("the bytes are not an audit entry ({e})"))?;
    if entry.canonical_bytes() != bytes {
        return Err("not canonical JSON".into());
    }
    Ok(entry)
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
