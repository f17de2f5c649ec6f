//! Where the Merkle tree lives in the audit table, backend-neutral. Each audit row keeps, in
//! `nodes`, the hashes of the perfect subtrees its leaf completed (levels 1, 2, … in order), so
//! subtree (level k, index j) is in the row of its last leaf, `(j + 1)·2^k − 1`: at offset
//! `(k − 1)·32` of `nodes`, or the row's `leaf` itself for k = 0. Appending adds nothing but that
//! blob to the insert; any proof is one read of O(log n) rows.
//!
//! Also the little text format of a request's audit seqs (`5,6,9,`).

use crate::StoreError;
use countersign_audit::merkle::{Frontier, Hash, NodeId};
use std::collections::HashMap;

/// The seq of the row that holds subtree `id`.
pub(crate) fn row_of(id: NodeId) -> u64 {
    id.last_leaf()
}

/// The hash of subtree `id` from the row (`leaf`, `nodes`) of its last leaf.
pub(crate) fn pick(id: NodeId, leaf: &[u8], nodes: Option<&[u8]>) -> Result<Hash, StoreError> {
    let bytes = match id.level {
        0 => leaf,
        k => {
            let nodes = nodes.ok_or_else(|| {
                StoreError::Corrupt(format!("audit entry {} has no tree nodes yet", row_of(id)))
            })?;
            let at = (usize::from(k) - 1) * 32;
            nodes.get(at..at + 32).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "audit entry {} lacks the tree node of level {k}",
                    row_of(id)
                ))
            })?
        }
    };
    <Hash>::try_from(bytes).map_err(|_| {
        StoreError::Corrupt(format!(
            "audit entry {}: a tree hash is not 32 bytes",
            row_of(id)
        ))
    })
}

/// The rows (seq, leaf, nodes) read for a set of subtrees, turned into their hashes, in the
/// order of `ids`. A missing row means the subtree lies beyond the log: [`StoreError::NotFound`].
pub(crate) fn hashes_from_rows(
    ids: &[NodeId],
    rows: Vec<(u64, Vec<u8>, Option<Vec<u8>>)>,
) -> Result<Vec<Hash>, StoreError> {
    let by_seq: HashMap<u64, (Vec<u8>, Option<Vec<u8>>)> = rows
        .into_iter()
        .map(|(seq, leaf, nodes)| (seq, (leaf, nodes)))
        .collect();
    ids.iter()
        .map(|id| {
            let (leaf, nodes) = by_seq.get(&row_of(*id)).ok_or(StoreError::NotFound)?;
            pick(*id, leaf, nodes.as_deref())
        })
        .collect()
}

/// Appends `leaf` to `tree` and returns the `nodes` blob of its row.
pub(crate) fn grow(tree: &mut Frontier, seq: u64, leaf: &Hash) -> Result<Vec<u8>, StoreError> {
    let mut nodes = Vec::new();
    grow_into(tree, seq, leaf, &mut nodes)?;
    Ok(nodes)
}

/// [`grow`] into a buffer the caller reuses (cleared first), so a writer appending many
/// entries allocates once per group, not once per entry.
pub(crate) fn grow_into(
    tree: &mut Frontier,
    seq: u64,
    leaf: &Hash,
    nodes: &mut Vec<u8>,
) -> Result<(), StoreError> {
    if seq != tree.size() {
        return Err(StoreError::Corrupt(format!(
            "audit entry {seq} would be leaf {} of the tree",
            tree.size()
        )));
    }
    nodes.clear();
    tree.push(*leaf, |h| nodes.extend_from_slice(h));
    Ok(())
}

/// `first..end` as stored in `requests.audit_seqs`.
pub(crate) fn seq_list(seqs: std::ops::Range<u64>) -> String {
    // Digits by hand: this runs for every request write, and `fmt` costs more than the rest.
    let mut s = String::with_capacity(8 * seqs.clone().count());
    let mut digits = [0u8; 20];
    for mut seq in seqs {
        let mut at = digits.len();
        loop {
            at -= 1;
            // `seq % 10` is below 10, so the cast keeps it whole.
            digits[at] = b'0' + (seq % 10) as u8;
            seq /= 10;
            if seq == 0 {
                break;
            }
        }
        s.extend(digits[at..].iter().map(|&d| char::from(d)));
        s.push(',');
    }
    s
}

/// The seqs stored in `requests.audit_seqs`.
pub(crate) fn parse_seq_list(text: &str) -> Result<Vec<u64>, StoreError> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| StoreError::Corrupt(format!("audit seqs of a request: `{s}`")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subtree_is_found_in_the_row_of_its_last_leaf() {
        let mut tree = Frontier::new();
        let mut rows = Vec::new();
        let leaves: Vec<Hash> = (0..37u8)
            .map(|i| countersign_audit::merkle::leaf_hash(&[i]))
            .collect();
        for (i, leaf) in leaves.iter().enumerate() {
            let nodes = grow(&mut tree, i as u64, leaf).unwrap();
            rows.push((i as u64, leaf.to_vec(), Some(nodes)));
        }
        let ids = Frontier::subtrees(37);
        let frontier = hashes_from_rows(&ids, rows.clone()).unwrap();
        assert_eq!(countersign_audit::merkle::fold(&frontier), tree.root());
        let beyond = [NodeId::new(6, 0)];
        assert!(matches!(
            hashes_from_rows(&beyond, rows),
            Err(StoreError::NotFound)
        ));
        assert!(grow(&mut tree, 99, &leaves[0]).is_err());
    }

    #[test]
    fn seq_lists_round_trip() {
        assert_eq!(seq_list(5..8), "5,6,7,");
        assert_eq!(seq_list(0..1), "0,");
        assert_eq!(seq_list(9..11), "9,10,");
        assert_eq!(
            seq_list(u64::MAX - 1..u64::MAX),
            format!("{},", u64::MAX - 1)
        );
        assert_eq!(parse_seq_list("5,6,7,9,").unwrap(), vec![5, 6, 7, 9]);
        assert_eq!(parse_seq_list("").unwrap(), Vec::<u64>::new());
        assert!(parse_seq_list("5,x,").is_err());
    }
}
