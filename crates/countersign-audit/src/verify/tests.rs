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

// --- the tree and signed checkpoints: what the chain alone cannot catch ---

use crate::checkpoint::Checkpoint;
use crate::merkle::Frontier;

fn checkpoint_at(entries: &[StoredEntry], size: usize) -> Checkpoint {
    let mut f = Frontier::new();
    for e in &entries[..size] {
        f.push(e.leaf, |_| {});
    }
    Checkpoint {
        origin: "test.example/log".into(),
        size: size as u64,
        root: f.root(),
        extensions: vec![],
    }
}

/// Recomputes leaf and chain hashes after an edit, as a careful forger with the database would.
fn reseal(entries: &mut [StoredEntry]) {
    let mut prev = [0u8; 32];
    for e in entries.iter_mut() {
        e.leaf = crate::entry::leaf_hash_of(&e.bytes);
        e.chain = chain_hash(&prev, &e.leaf);
        prev = e.chain;
    }
}

fn check(entries: &[StoredEntry], checkpoints: Vec<Checkpoint>) -> AuditReport {
    let mut v = Verifier::with_checkpoints(checkpoints);
    for e in entries {
        if !v.push(e) {
            break;
        }
    }
    v.finish()
}

fn check_lines(entries: &[StoredEntry], checkpoints: Vec<Checkpoint>) -> AuditReport {
    let mut v = Verifier::with_checkpoints(checkpoints);
    for e in entries {
        if !v.push_line(&e.bytes) {
            break;
        }
    }
    v.finish()
}

#[test]
fn an_intact_log_matches_its_checkpoints() {
    let entries = log(12);
    let cps = vec![
        checkpoint_at(&entries, 5),
        checkpoint_at(&entries, 12),
        checkpoint_at(&entries, 0),
    ];
    for report in [check(&entries, cps.clone()), check_lines(&entries, cps)] {
        assert!(report.is_intact(), "{:?}", report.first_bad);
        assert_eq!(report.checkpoints_matched, 3);
        assert_eq!(report.latest_checkpoint, Some(12));
    }
}

#[test]
fn a_resealed_edit_is_caught_by_the_checkpoint_and_placed_between_checkpoints() {
    let mut entries = log(12);
    let cps = vec![checkpoint_at(&entries, 4), checkpoint_at(&entries, 10)];
    let mut e: AuditEntry = serde_json::from_slice(&entries[6].bytes).unwrap();
    e.data = json!({"note": "forged"});
    entries[6].bytes = e.canonical_bytes();
    reseal(&mut entries);
    // The chain alone is fooled...
    assert!(verify(entries.clone()).is_intact());
    // ...the signed root is not.
    for report in [
        check(&entries, cps.clone()),
        check_lines(&entries, cps.clone()),
    ] {
        let fault = report.first_bad.expect("caught");
        assert_eq!(fault.seq, 4);
        assert!(fault.problem.contains("entries 4..=9"), "{}", fault.problem);
        assert!(
            fault.problem.contains("checkpoint at size 4 matched"),
            "{}",
            fault.problem
        );
    }
}

#[test]
fn truncation_is_caught_by_a_larger_checkpoint() {
    let entries = log(12);
    let cps = vec![checkpoint_at(&entries, 12)];
    for report in [
        check(&entries[..9], cps.clone()),
        check_lines(&entries[..9], cps.clone()),
    ] {
        let fault = report.first_bad.expect("caught");
        assert_eq!(fault.seq, 9);
        assert!(
            fault.problem.contains("entries 9..=11 are missing"),
            "{}",
            fault.problem
        );
    }
}

#[test]
fn export_lines_name_deleted_inserted_and_reordered_entries() {
    let entries = log(8);
    let mut deleted = entries.clone();
    deleted.remove(3);
    let f = check_lines(&deleted, vec![]).first_bad.unwrap();
    assert_eq!(
        (f.seq, f.problem.contains("entry 3 missing")),
        (3, true),
        "{}",
        f.problem
    );

    let mut reordered = entries.clone();
    reordered.swap(2, 5);
    let f = check_lines(&reordered, vec![]).first_bad.unwrap();
    assert_eq!(f.seq, 2, "{}", f.problem);

    let mut inserted = entries.clone();
    inserted.insert(4, entries[4].clone());
    let f = check_lines(&inserted, vec![checkpoint_at(&entries, 8)])
        .first_bad
        .unwrap();
    assert_eq!(f.seq, 5, "{}", f.problem);
    assert!(f.problem.contains("again"), "{}", f.problem);

    let mut garbled = entries.clone();
    garbled[1].bytes = b"{not json".to_vec();
    let f = check_lines(&garbled, vec![]).first_bad.unwrap();
    assert_eq!(f.seq, 1);
    assert!(f.problem.contains("line 2"), "{}", f.problem);
}

#[test]
fn a_swapped_checkpoint_does_not_match() {
    let entries = log(10);
    let other = log_of(&(0..10).map(|i| format!("other {i}")).collect::<Vec<_>>());
    let swapped = checkpoint_at(&other, 7);
    let f = check_lines(&entries, vec![swapped]).first_bad.unwrap();
    assert_eq!(f.seq, 0);
    assert!(f.problem.contains("checkpoint at size 7"), "{}", f.problem);
}
