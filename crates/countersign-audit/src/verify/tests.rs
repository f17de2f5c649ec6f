//! Tampering tests: every kind of edit to a stored log is found, and the first bad entry is the
//! one named.

use super::*;
use proptest::prelude::*;
use serde_json::json;

fn entry(seq: u64, note: &str) -> AuditEntry {
    AuditEntry {
        seq,
        at: format!("2026-11-23T03:00:{:02}.000Z", seq % 60),
        actor: if seq.is_multiple_of(3) {
            "system".into()
        } else {
            "user:alice@example.com".into()
        },
        event: "vote.cast".into(),
        request: Some(format!("req_{}", seq / 2)),
        digest: None,
        policy: Some("sha256:00".into()),
        data: json!({"note": note, "n": seq, "ok": seq.is_multiple_of(2)}),
    }
}

fn log_of(notes: &[String]) -> Vec<StoredEntry> {
    let mut prev = [0u8; 32];
    notes
        .iter()
        .enumerate()
        .map(|(i, note)| {
            let sealed = StoredEntry::seal(&entry(i as u64, note), &prev);
            prev = sealed.chain;
            sealed
        })
        .collect()
}

fn log(n: usize) -> Vec<StoredEntry> {
    log_of(&(0..n).map(|i| format!("entry {i}")).collect::<Vec<_>>())
}

fn first_bad(entries: Vec<StoredEntry>) -> Option<u64> {
    verify(entries).first_bad.map(|f| f.seq)
}

#[test]
fn an_intact_log_verifies_to_its_head() {
    let entries = log(5);
    let head = entries[4].chain;
    let report = verify(entries);
    assert_eq!(report.entries, 5);
    assert_eq!(report.head, Some(head));
    assert!(report.is_intact());
}

#[test]
fn an_empty_log_verifies() {
    let report = verify(Vec::new());
    assert_eq!(report.entries, 0);
    assert_eq!(report.head, None);
    assert!(report.is_intact());
}

#[test]
fn an_edited_entry_is_named() {
    let mut entries = log(5);
    let text = String::from_utf8(entries[2].bytes.clone()).unwrap();
    entries[2].bytes = text.replace("entry 2", "entry X").into_bytes();
    let fault = verify(entries).first_bad.unwrap();
    assert_eq!(fault.seq, 2);
    assert_eq!(
        fault.problem,
        "entry 2: stored bytes do not hash to the stored leaf (edited?)"
    );
}

#[test]
fn an_edit_with_recomputed_leaf_breaks_the_chain() {
    let mut entries = log(5);
    let sealed = StoredEntry::seal(&entry(2, "forged"), &[9; 32]);
    entries[2].bytes = sealed.bytes;
    entries[2].leaf = sealed.leaf;
    let fault = verify(entries).first_bad.unwrap();
    assert_eq!(fault.seq, 2);
    assert_eq!(
        fault.problem,
        "entry 2: chain hash does not follow from entry 1"
    );
}

#[test]
fn a_deleted_entry_is_named() {
    let mut entries = log(5);
    entries.remove(3);
    let fault = verify(entries).first_bad.unwrap();
    assert_eq!(fault.seq, 3);
    assert_eq!(
        fault.problem,
        "entry 3 missing: sequence jumps from 2 to 4 (deleted?)"
    );
    let mut entries = log(3);
    entries.remove(0);
    assert_eq!(
        verify(entries).first_bad.unwrap().problem,
        "entry 0 missing: the log starts at entry 1 (deleted?)"
    );
}

#[test]
fn non_canonical_bytes_are_named_even_with_a_matching_leaf() {
    let mut entries = log(3);
    let mut text = String::from_utf8(entries[1].bytes.clone()).unwrap();
    text.push(' ');
    entries[1].bytes = text.into_bytes();
    entries[1].leaf = leaf_hash_of(&entries[1].bytes);
    let fault = verify(entries).first_bad.unwrap();
    assert_eq!(fault.problem, "entry 1: not canonical JSON");
}

#[test]
fn renumbered_rows_are_named() {
    // Entries 1 and 2 trade places but keep their positions' sequence numbers.
    let mut entries = log(4);
    let (a, b) = (entries[1].clone(), entries[2].clone());
    entries[1] = StoredEntry { seq: 1, ..b };
    entries[2] = StoredEntry { seq: 2, ..a };
    let fault = verify(entries).first_bad.unwrap();
    assert_eq!(fault.seq, 1);
    assert_eq!(fault.problem, "entry 1: seq field says 2 (reordered?)");
}

#[test]
fn unreadable_rows_are_named_after_gaps() {
    let entries = log(3);
    let mut v = Verifier::new();
    assert!(v.push(&entries[0]));
    assert!(!v.push_unreadable(2, "leaf is 31 bytes"));
    let fault = v.finish().first_bad.unwrap();
    assert_eq!(fault.seq, 1, "the gap comes first");

    let mut v = Verifier::new();
    assert!(v.push(&entries[0]));
    assert!(!v.push_unreadable(1, "leaf is 31 bytes"));
    assert_eq!(
        v.finish().first_bad.unwrap().problem,
        "entry 1: leaf is 31 bytes"
    );
}

/// One way of tampering with a stored log.
#[derive(Debug, Clone)]
enum Tamper {
    /// XOR one byte of an entry's stored bytes, leaf or chain with a non-zero mask.
    Flip {
        entry: usize,
        part: u8,
        at: usize,
        mask: u8,
    },
    /// Remove an entry that is not the last.
    Delete { entry: usize },
    /// Insert a copy of one entry before another, keeping stored sequence numbers.
    InsertCopy { copy: usize, before: usize },
    /// Insert a well-formed, correctly chained forgery and renumber what follows.
    InsertForged { before: usize },
    /// Swap two rows whole.
    Swap { a: usize, b: usize },
    /// Swap two rows' contents but keep each position's sequence number.
    SwapRenumbered { a: usize, b: usize },
}

/// Applies `t` and returns the sequence number that must be named first.
fn apply(entries: &mut Vec<StoredEntry>, t: &Tamper) -> u64 {
    let n = entries.len();
    match *t {
        Tamper::Flip {
            entry,
            part,
            at,
            mask,
        } => {
            let e = &mut entries[entry % n];
            match part % 3 {
                0 => {
                    let len = e.bytes.len();
                    e.bytes[at % len] ^= mask;
                }
                1 => e.leaf[at % 32] ^= mask,
                _ => e.chain[at % 32] ^= mask,
            }
            (entry % n) as u64
        }
        Tamper::Delete { entry } => {
            let i = entry % (n - 1);
            entries.remove(i);
            i as u64
        }
        Tamper::InsertCopy { copy, before } => {
            let (c, i) = (copy % n, before % n);
            let dup = entries[c].clone();
            entries.insert(i, dup);
            // Inserting entry c before position i: if c == i the copy is in place and the
            // original that follows is the duplicate.
            if c == i { i as u64 + 1 } else { i as u64 }
        }
        Tamper::InsertForged { before } => {
            let i = before % n;
            let prev = if i == 0 {
                [0; 32]
            } else {
                entries[i - 1].chain
            };
            let forged = StoredEntry::seal(&entry(i as u64, "forged"), &prev);
            entries.insert(i, forged);
            for (k, e) in entries.iter_mut().enumerate().skip(i + 1) {
                e.seq = k as u64;
            }
            // The forgery itself is indistinguishable from a real entry without a signed
            // checkpoint; the entry it displaced no longer fits.
            i as u64 + 1
        }
        Tamper::Swap { a, b } => {
            let (a, b) = (a % n, b % n);
            entries.swap(a, b);
            a.min(b) as u64
        }
        Tamper::SwapRenumbered { a, b } => {
            let (a, b) = (a % n, b % n);
            entries.swap(a, b);
            entries[a].seq = a as u64;
            entries[b].seq = b as u64;
            a.min(b) as u64
        }
    }
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        (any::<usize>(), any::<u8>(), any::<usize>(), 1u8..=255).prop_map(
            |(entry, part, at, mask)| Tamper::Flip {
                entry,
                part,
                at,
                mask
            }
        ),
        any::<usize>().prop_map(|entry| Tamper::Delete { entry }),
        (any::<usize>(), any::<usize>())
            .prop_map(|(copy, before)| Tamper::InsertCopy { copy, before }),
        any::<usize>().prop_map(|before| Tamper::InsertForged { before }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Tamper::Swap { a, b }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Tamper::SwapRenumbered { a, b }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_tampering_is_found_at_the_first_bad_entry(
        notes in prop::collection::vec(".{0,24}", 2..16),
        t in tamper(),
    ) {
        let mut entries = log_of(&notes);
        let n = entries.len();
        // Swaps of a row with itself change nothing; skip them.
        if let Tamper::Swap { a, b } | Tamper::SwapRenumbered { a, b } = t {
            prop_assume!(a % n != b % n);
        }
        let expected = apply(&mut entries, &t);
        prop_assert_eq!(first_bad(entries), Some(expected), "{:?}", t);
    }

    #[test]
    fn untouched_logs_always_verify(notes in prop::collection::vec(".{0,24}", 0..16)) {
        let entries = log_of(&notes);
        let report = verify(entries);
        prop_assert!(report.is_intact());
        prop_assert_eq!(report.entries, notes.len() as u64);
    }
}
