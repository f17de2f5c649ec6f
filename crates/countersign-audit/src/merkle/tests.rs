//! The tree against the published RFC 6962/9162 vectors of transparency-dev/merkle
//! (`testdata/rfc9162-vectors.json`, source named inside), and against a naive recursive
//! reference written straight from RFC 9162 §2.1 for every size up to a few hundred leaves.

use super::*;
use proptest::prelude::*;
use serde_json::Value;
use std::collections::HashMap;

const VECTORS: &str = include_str!("../../testdata/rfc9162-vectors.json");

fn vectors() -> Value {
    serde_json::from_str(VECTORS).expect("the vectors file is JSON")
}

fn h(hex_str: &str) -> Hash {
    let v = hex::decode(hex_str).expect("hex");
    v.try_into().expect("32 bytes")
}

fn hashes(v: &Value) -> Vec<Hash> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| h(x.as_str().expect("string")))
        .collect()
}

fn vector_leaves() -> Vec<Hash> {
    vectors()["leaves_hex"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| leaf_hash(&hex::decode(x.as_str().unwrap()).unwrap()))
        .collect()
}

// --- the naive reference: RFC 9162 §2.1, recursion over slices of leaf hashes ---

fn mth(d: &[Hash]) -> Hash {
    match d.len() {
        0 => EMPTY_ROOT,
        1 => d[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(&mth(&d[..k]), &mth(&d[k..]))
        }
    }
}

fn ref_path(m: usize, d: &[Hash]) -> Vec<Hash> {
    let n = d.len();
    if n <= 1 {
        return vec![];
    }
    let k = split_point(n as u64) as usize;
    if m < k {
        let mut p = ref_path(m, &d[..k]);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = ref_path(m - k, &d[k..]);
        p.push(mth(&d[..k]));
        p
    }
}

fn ref_subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b { vec![] } else { vec![mth(d)] };
    }
    let k = split_point(n as u64) as usize;
    if m <= k {
        let mut p = ref_subproof(m, &d[..k], b);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = ref_subproof(m - k, &d[k..], false);
        p.push(mth(&d[..k]));
        p
    }
}

/// Every perfect subtree of a list of leaves, as storage would keep them.
fn all_nodes(leaves: &[Hash]) -> HashMap<NodeId, Hash> {
    let mut out = HashMap::new();
    let mut level: Vec<Hash> = leaves.to_vec();
    let mut l = 0u8;
    while !level.is_empty() {
        for (i, x) in level.iter().enumerate() {
            out.insert(NodeId::new(l, i as u64), *x);
        }
        level = level
            .chunks_exact(2)
            .map(|p| node_hash(&p[0], &p[1]))
            .collect();
        l += 1;
    }
    out
}

fn inclusion(nodes: &HashMap<NodeId, Hash>, index: u64, size: u64) -> Vec<Hash> {
    assemble(&inclusion_plan(index, size).unwrap(), |id| {
        nodes.get(&id).copied()
    })
    .unwrap()
}

fn consistency(nodes: &HashMap<NodeId, Hash>, from: u64, to: u64) -> Vec<Hash> {
    assemble(&consistency_plan(from, to).unwrap(), |id| {
        nodes.get(&id).copied()
    })
    .unwrap()
}

#[test]
fn roots_match_the_published_vectors() {
    let v = vectors();
    let roots = hashes(&v["roots_by_size_hex"]);
    let leaves = vector_leaves();
    let mut f = Frontier::new();
    assert_eq!(f.root(), roots[0]);
    for (i, leaf) in leaves.iter().enumerate() {
        f.push(*leaf, |_| {});
        assert_eq!(f.root(), roots[i + 1], "root at size {}", i + 1);
        assert_eq!(mth(&leaves[..=i]), roots[i + 1]);
    }
}

#[test]
fn completed_subtrees_match_the_published_node_hashes() {
    let v = vectors();
    let levels = v["node_hashes_by_level_hex"].as_array().unwrap();
    let mut f = Frontier::new();
    let mut seen: HashMap<NodeId, Hash> = HashMap::new();
    for (i, leaf) in vector_leaves().into_iter().enumerate() {
        let mut level = 1u8;
        let id_of = |level: u8| NodeId::new(level, ((i as u64) + 1) / (1 << level) - 1);
        f.push(leaf, |node| {
            seen.insert(id_of(level), *node);
            level += 1;
        });
    }
    for (level, row) in levels.iter().enumerate().skip(1) {
        for (index, want) in hashes(row).into_iter().enumerate() {
            let id = NodeId::new(level as u8, index as u64);
            assert_eq!(seen.get(&id), Some(&want), "{id:?}");
        }
    }
    assert_eq!(seen.len(), 7);
}

#[test]
fn inclusion_proofs_match_the_published_vectors() {
    let v = vectors();
    let roots = hashes(&v["roots_by_size_hex"]);
    let leaves = vector_leaves();
    let nodes = all_nodes(&leaves);
    for case in v["inclusion"].as_array().unwrap() {
        let index = case["index"].as_u64().unwrap();
        let size = case["size"].as_u64().unwrap();
        let want = hashes(&case["proof_hex"]);
        assert_eq!(inclusion(&nodes, index, size), want, "{index} in {size}");
        let leaf = leaves[index as usize];
        verify_inclusion(index, size, &leaf, &want, &roots[size as usize]).unwrap();
        // The mutations of the Go suite: each must fail.
        let root = roots[size as usize];
        let bad = |i: u64, s: u64, l: &Hash, p: &[Hash], r: &Hash| {
            verify_inclusion(i, s, l, p, r).is_err()
        };
        if index > 0 {
            assert!(bad(index - 1, size, &leaf, &want, &root), "index - 1");
        }
        assert!(bad(index + 1, size, &leaf, &want, &root), "index + 1");
        assert!(bad(index ^ 2, size, &leaf, &want, &root), "index ^ 2");
        assert!(bad(index, size * 2, &leaf, &want, &root), "size * 2");
        assert!(bad(index, size / 2, &leaf, &want, &root), "size / 2");
        assert!(bad(index, size, &[7; 32], &want, &root), "wrong leaf");
        assert!(bad(index, size, &leaf, &want, &EMPTY_ROOT), "empty root");
        let mut longer = want.clone();
        longer.push(root);
        assert!(bad(index, size, &leaf, &longer, &root), "trailing root");
        let mut front = vec![root];
        front.extend_from_slice(&want);
        assert!(bad(index, size, &leaf, &front, &root), "preceding root");
        for i in 0..want.len() {
            let mut flipped = want.clone();
            flipped[i][0] ^= 8;
            assert!(bad(index, size, &leaf, &flipped, &root), "flip {i}");
        }
        if !want.is_empty() {
            let shorter = &want[..want.len() - 1];
            assert!(bad(index, size, &leaf, shorter, &root), "removed");
        }
    }
}

#[test]
fn consistency_proofs_match_the_published_vectors() {
    let v = vectors();
    let roots = hashes(&v["roots_by_size_hex"]);
    let nodes = all_nodes(&vector_leaves());
    for case in v["consistency"].as_array().unwrap() {
        let from = case["from"].as_u64().unwrap();
        let to = case["to"].as_u64().unwrap();
        let want = hashes(&case["proof_hex"]);
        assert_eq!(consistency(&nodes, from, to), want, "{from} -> {to}");
        let (r1, r2) = (roots[from as usize], roots[to as usize]);
        verify_consistency(from, to, &want, &r1, &r2).unwrap();
        if want.is_empty() {
            continue;
        }
        let bad = |m: u64, n: u64, p: &[Hash], a: &Hash, b: &Hash| {
            verify_consistency(m, n, p, a, b).is_err()
        };
        assert!(bad(from - 1, to, &want, &r1, &r2), "from - 1");
        assert!(bad(from + 1, to, &want, &r1, &r2), "from + 1");
        assert!(bad(from ^ 2, to, &want, &r1, &r2), "from ^ 2");
        assert!(bad(from, to * 2, &want, &r1, &r2), "to * 2");
        assert!(bad(from, to / 2, &want, &r1, &r2), "to / 2");
        assert!(bad(from, to, &want, &[9; 32], &r2), "wrong root1");
        assert!(bad(from, to, &want, &r1, &[9; 32]), "wrong root2");
        assert!(bad(from, to, &want, &r2, &r1), "swapped roots");
        assert!(bad(from, to, &[], &r1, &r2), "empty proof");
        let mut longer = want.clone();
        longer.push(r1);
        assert!(bad(from, to, &longer, &r1, &r2), "trailing root1");
        let mut front = vec![want[0]];
        front.extend_from_slice(&want);
        assert!(bad(from, to, &front, &r1, &r2), "preceding proof[0]");
        assert!(
            bad(from, to, &want[..want.len() - 1], &r1, &r2),
            "truncated"
        );
        for i in 0..want.len() {
            let mut flipped = want.clone();
            flipped[i][0] ^= 16;
            assert!(bad(from, to, &flipped, &r1, &r2), "flip {i}");
        }
    }
}

#[test]
fn trivial_consistency_cases() {
    let (a, b) = ([1; 32], [2; 32]);
    verify_consistency(0, 0, &[], &a, &a).unwrap();
    verify_consistency(0, 5, &[], &a, &b).unwrap();
    verify_consistency(3, 3, &[], &a, &a).unwrap();
    assert!(verify_consistency(3, 3, &[], &a, &b).is_err());
    assert!(verify_consistency(3, 3, &[a], &a, &a).is_err());
    assert!(verify_consistency(2, 1, &[], &a, &b).is_err());
    assert!(inclusion_plan(3, 3).is_err());
    assert!(consistency_plan(4, 3).is_err());
}

#[test]
fn frontier_survives_a_round_trip_through_bytes() {
    let mut f = Frontier::new();
    for i in 0..37u8 {
        f.push(leaf_hash(&[i]), |_| {});
    }
    let back = Frontier::from_bytes(37, &f.to_bytes()).unwrap();
    assert_eq!(back, f);
    assert!(Frontier::from_bytes(39, &f.to_bytes()).is_err());
    assert!(Frontier::from_parts(2, vec![]).is_err());
}

fn leaves(n: usize) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(&(i as u64).to_be_bytes()))
        .collect()
}

#[test]
fn every_small_tree_agrees_with_the_reference() {
    let all = leaves(70);
    let nodes = all_nodes(&all);
    let mut f = Frontier::new();
    for n in 1..=all.len() {
        f.push(all[n - 1], |_| {});
        let d = &all[..n];
        let root = mth(d);
        assert_eq!(f.root(), root, "size {n}");
        let frontier_ids = Frontier::subtrees(n as u64);
        let from_ids: Vec<Hash> = frontier_ids.iter().map(|id| nodes[id]).collect();
        assert_eq!(from_ids, f.hashes(), "frontier {n}");
        for m in 0..n {
            let p = inclusion(&nodes, m as u64, n as u64);
            assert_eq!(p, ref_path(m, d), "path {m} in {n}");
            verify_inclusion(m as u64, n as u64, &d[m], &p, &root).unwrap();
        }
        for m in 1..=n {
            let p = consistency(&nodes, m as u64, n as u64);
            let want = if m == n {
                vec![]
            } else {
                ref_subproof(m, d, true)
            };
            assert_eq!(p, want, "consistency {m} -> {n}");
            verify_consistency(m as u64, n as u64, &p, &mth(&d[..m]), &root).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn proofs_agree_with_the_reference_at_any_size(n in 1usize..600, pick in any::<u64>(), pick2 in any::<u64>()) {
        let all = leaves(n);
        let nodes = all_nodes(&all);
        let root = mth(&all);
        let m = (pick % n as u64) as usize;
        let p = inclusion(&nodes, m as u64, n as u64);
        prop_assert_eq!(&p, &ref_path(m, &all));
        prop_assert!(verify_inclusion(m as u64, n as u64, &all[m], &p, &root).is_ok());
        let other = (m + 1) % n;
        if all[other] != all[m] {
            prop_assert!(verify_inclusion(m as u64, n as u64, &all[other], &p, &root).is_err());
        }
        let from = 1 + (pick2 % n as u64) as usize;
        let c = consistency(&nodes, from as u64, n as u64);
        if from < n {
            prop_assert_eq!(&c, &ref_subproof(from, &all, true));
        }
        let old_root = mth(&all[..from]);
        prop_assert!(verify_consistency(from as u64, n as u64, &c, &old_root, &root).is_ok());
        if from < n {
            prop_assert!(verify_consistency(from as u64, n as u64, &c, &root, &root).is_err());
        }
    }

    #[test]
    fn frontier_root_is_mth(n in 0usize..2000) {
        let all = leaves(n);
        let mut f = Frontier::new();
        let mut completed = 0usize;
        for leaf in &all {
            f.push(*leaf, |_| completed += 1);
        }
        prop_assert_eq!(f.root(), mth(&all));
        // Every interior node of the perfect subtrees is completed exactly once.
        prop_assert_eq!(completed, n - n.count_ones() as usize);
    }
}
