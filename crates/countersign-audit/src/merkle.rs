//! The Merkle tree of RFC 9162 §2.1 over the audit log's leaf hashes: node hashing, the compact
//! frontier that appends a leaf in O(log n) without ever rebuilding the tree, and inclusion and
//! consistency proofs (RFC 9162 §2.1.3 and §2.1.4), generated and verified.
//!
//! Proofs are generated from *perfect subtrees* ([`NodeId`]): every hash a proof needs is the
//! root of one aligned perfect subtree, or the right-fold of a few of them. [`inclusion_plan`]
//! and [`consistency_plan`] say which subtrees a proof needs, so storage can fetch them all in
//! one read, and [`assemble`] folds them into the proof. This module does no I/O.

use sha2::{Digest as _, Sha256};

/// A SHA-256 hash: a leaf, an interior node or a tree root.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of nothing (RFC 9162 §2.1.1).
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// The domain-separation byte RFC 9162 puts before two child hashes.
pub const NODE_PREFIX: u8 = 0x01;

/// SHA-256(0x01 ‖ left ‖ right), an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([NODE_PREFIX]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// SHA-256(0x00 ‖ data), a leaf.
pub fn leaf_hash(data: &[u8]) -> Hash {
    crate::entry::leaf_hash_of(data)
}

/// Why a tree operation or a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("entry {index} is not in a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("no consistency proof from size {from} to the smaller size {to}")]
    SizesReversed { from: u64, to: u64 },
    #[error("the proof has {got} hashes; one from size {from} to {to} has {want}")]
    WrongLength {
        got: usize,
        want: usize,
        from: u64,
        to: u64,
    },
    #[error("the proof does not lead to the expected root")]
    RootMismatch,
    #[error("a frontier of size {size} has {want} hashes, not {got}")]
    BadFrontier { size: u64, want: u32, got: usize },
    #[error("the hash of subtree {0:?} is missing")]
    MissingNode(NodeId),
}

/// A perfect subtree: the 2^`level` leaves from `index` × 2^`level` on. Level 0 is a leaf.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

impl NodeId {
    pub fn new(level: u8, index: u64) -> Self {
        NodeId { level, index }
    }

    /// The first leaf under this subtree.
    pub fn first_leaf(&self) -> u64 {
        self.index << self.level
    }

    /// The last leaf under this subtree: the leaf whose append completed it.
    pub fn last_leaf(&self) -> u64 {
        ((self.index + 1) << self.level) - 1
    }
}

/// The perfect subtrees that make up leaves `[start, end)`, left to right, each as large as
/// alignment allows. For a range the RFC's recursion produces (its start a multiple of a power
/// of two at least as large as its length) this is exactly the range's own decomposition, so the
/// right-fold of their hashes is MTH of the range.
pub fn range_nodes(mut start: u64, end: u64) -> Vec<NodeId> {
    let mut out = Vec::new();
    while start < end {
        let fits = 63 - (end - start).leading_zeros();
        let aligned = if start == 0 {
            63
        } else {
            start.trailing_zeros()
        };
        let level = fits.min(aligned) as u8;
        out.push(NodeId::new(level, start >> level));
        start += 1 << level;
    }
    out
}

/// The right-fold of subtree hashes: MTH of the range they cover (RFC 9162 §2.1.1).
pub fn fold(hashes: &[Hash]) -> Hash {
    match hashes.split_last() {
        None => EMPTY_ROOT,
        Some((last, rest)) => rest.iter().rev().fold(*last, |r, h| node_hash(h, &r)),
    }
}

/// The largest power of two strictly smaller than `n` (n ≥ 2).
fn split_point(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// The compact frontier of a tree: the roots of the perfect subtrees that cover leaves
/// `[0, size)`, largest first (one per set bit of `size`). Enough to append and to compute the
/// root; never more than 64 hashes.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    pub fn new() -> Self {
        Frontier {
            size: 0,
            hashes: Vec::with_capacity(64),
        }
    }

    /// The frontier of a tree of `size` leaves from its subtree hashes, in the order of
    /// [`Frontier::subtrees`].
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Result<Self, TreeError> {
        if hashes.len() != size.count_ones() as usize {
            return Err(TreeError::BadFrontier {
                size,
                want: size.count_ones(),
                got: hashes.len(),
            });
        }
        Ok(Frontier { size, hashes })
    }

    /// The subtrees whose hashes make up the frontier of a tree of `size` leaves.
    pub fn subtrees(size: u64) -> Vec<NodeId> {
        range_nodes(0, size)
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Appends a leaf hash. `completed` sees the hash of every perfect subtree of level 1 or
    /// more that this leaf completes, lowest level first (storage keeps them for proofs).
    pub fn push(&mut self, leaf: Hash, mut completed: impl FnMut(&Hash)) {
        let mut h = leaf;
        let mut s = self.size;
        while s & 1 == 1 {
            // One hash per set bit of `size`, so a set low bit always has its subtree.
            let Some(left) = self.hashes.pop() else { break };
            h = node_hash(&left, &h);
            completed(&h);
            s >>= 1;
        }
        self.hashes.push(h);
        self.size += 1;
    }

    /// The tree's root, MTH(D[size]).
    pub fn root(&self) -> Hash {
        fold(&self.hashes)
    }

    /// The frontier as bytes (its hashes, concatenated), for storage.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.hashes.concat()
    }

    /// The frontier stored by [`Frontier::to_bytes`] for a tree of `size` leaves.
    pub fn from_bytes(size: u64, bytes: &[u8]) -> Result<Self, TreeError> {
        if !bytes.len().is_multiple_of(32) {
            return Err(TreeError::BadFrontier {
                size,
                want: size.count_ones(),
                got: bytes.len() / 32,
            });
        }
        let hashes = bytes
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0; 32];
                h.copy_from_slice(c);
                h
            })
            .collect();
        Self::from_parts(size, hashes)
    }
}

/// Which subtrees each hash of a proof folds: one list per proof hash, in proof order.
pub type Plan = Vec<Vec<NodeId>>;

/// The subtrees behind the inclusion proof of leaf `index` in the tree of `size` leaves
/// (RFC 9162 §2.1.3.1, PATH(m, D[n])).
pub fn inclusion_plan(index: u64, size: u64) -> Result<Plan, TreeError> {
    if index >= size {
        return Err(TreeError::IndexOutOfRange { index, size });
    }
    let mut out = Vec::new();
    path(index, 0, size, &mut out);
    Ok(out)
}

/// PATH(m, D[start : start + n]), leaf-most hash first.
fn path(m: u64, start: u64, n: u64, out: &mut Plan) {
    if n <= 1 {
        return;
    }
    let k = split_point(n);
    if m < k {
        path(m, start, k, out);
        out.push(range_nodes(start + k, start + n));
    } else {
        path(m - k, start + k, n - k, out);
        out.push(range_nodes(start, start + k));
    }
}

/// The subtrees behind the consistency proof from size `from` to size `to` (RFC 9162
/// §2.1.4.1, PROOF(m, D[n])). Empty when `from` is 0 or equals `to`.
pub fn consistency_plan(from: u64, to: u64) -> Result<Plan, TreeError> {
    if from > to {
        return Err(TreeError::SizesReversed { from, to });
    }
    let mut out = Vec::new();
    if from > 0 && from < to {
        subproof(from, 0, to, true, &mut out);
    }
    Ok(out)
}

/// SUBPROOF(m, D[start : start + n], b).
fn subproof(m: u64, start: u64, n: u64, whole: bool, out: &mut Plan) {
    if m == n {
        if !whole {
            out.push(range_nodes(start, start + n));
        }
        return;
    }
    let k = split_point(n);
    if m <= k {
        subproof(m, start, k, whole, out);
        out.push(range_nodes(start + k, start + n));
    } else {
        subproof(m - k, start + k, n - k, false, out);
        out.push(range_nodes(start, start + k));
    }
}

/// Every subtree a plan needs, each once, sorted.
pub fn plan_nodes(plan: &Plan) -> Vec<NodeId> {
    let mut ids: Vec<NodeId> = plan.iter().flatten().copied().collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Folds a plan into its proof hashes, looking each subtree up with `node`.
pub fn assemble(
    plan: &Plan,
    mut node: impl FnMut(NodeId) -> Option<Hash>,
) -> Result<Vec<Hash>, TreeError> {
    plan.iter()
        .map(|ids| {
            let hashes = ids
                .iter()
                .map(|id| node(*id).ok_or(TreeError::MissingNode(*id)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(fold(&hashes))
        })
        .collect()
}

/// The root an inclusion proof leads to (RFC 9162 §2.1.3.2).
pub fn root_from_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
) -> Result<Hash, TreeError> {
    if index >= size {
        return Err(TreeError::IndexOutOfRange { index, size });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(TreeError::RootMismatch);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(TreeError::RootMismatch);
    }
    Ok(r)
}

/// Checks that leaf `leaf` is entry `index` of the tree of `size` leaves with root `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), TreeError> {
    match root_from_inclusion(index, size, leaf, proof)? == *root {
        true => Ok(()),
        false => Err(TreeError::RootMismatch),
    }
}

/// Checks that the tree of size `to` with root `to_root` extends the tree of size `from` with
/// root `from_root` (RFC 9162 §2.1.4.2). `from == to` needs an empty proof and equal roots;
/// `from == 0` is consistent with anything, with an empty proof.
pub fn verify_consistency(
    from: u64,
    to: u64,
    proof: &[Hash],
    from_root: &Hash,
    to_root: &Hash,
) -> Result<(), TreeError> {
    if from > to {
        return Err(TreeError::SizesReversed { from, to });
    }
    if from == to || from == 0 {
        if !proof.is_empty() {
            return Err(TreeError::WrongLength {
                got: proof.len(),
                want: 0,
                from,
                to,
            });
        }
        return match from == 0 || from_root == to_root {
            true => Ok(()),
            false => Err(TreeError::RootMismatch),
        };
    }
    // The RFC's loop rejects a proof with hashes missing or left over (`snode` must reach 0
    // exactly at its end), so no separate length check is needed.
    if proof.is_empty() {
        return Err(TreeError::WrongLength {
            got: 0,
            want: 1,
            from,
            to,
        });
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if from.is_power_of_two() {
        path.push(*from_root);
    }
    path.extend_from_slice(proof);
    let (mut fnode, mut snode) = (from - 1, to - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return Err(TreeError::RootMismatch);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    match fr == *from_root && sr == *to_root && snode == 0 {
        true => Ok(()),
        false => Err(TreeError::RootMismatch),
    }
}

#[cfg(test)]
mod tests;
