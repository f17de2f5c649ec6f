//! The tree's own costs, without storage: appending a leaf to the frontier, generating and
//! verifying an inclusion proof in a tree of 10 million entries (every perfect subtree kept in
//! memory, as storage keeps them on disk), and verifying an exported bundle (JSON lines plus a
//! signed checkpoint) line by line.
//!
//! Run: `cargo bench -p countersign-audit --bench tree`. Building the 10M-entry tree takes a
//! few seconds and ~700 MiB before the measurements start.

use countersign_audit::merkle::{self, Hash, NodeId};
use countersign_audit::{AuditEntry, Checkpoint, Frontier, NoteSigner, Verifier};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

const BIG: u64 = 10_000_000;
const BUNDLE: u64 = 1_000_000;

/// Every perfect subtree of a tree of `n` synthetic leaves, level by level.
fn levels(n: u64) -> Vec<Vec<Hash>> {
    let mut levels = vec![
        (0..n)
            .map(|i| merkle::leaf_hash(&i.to_be_bytes()))
            .collect::<Vec<_>>(),
    ];
    while levels.last().is_some_and(|l| l.len() > 1) {
        let next = levels
            .last()
            .expect("non-empty")
            .chunks_exact(2)
            .map(|p| merkle::node_hash(&p[0], &p[1]))
            .collect();
        levels.push(next);
    }
    levels
}

fn node(levels: &[Vec<Hash>], id: NodeId) -> Option<Hash> {
    levels
        .get(id.level as usize)?
        .get(id.index as usize)
        .copied()
}

fn tree(c: &mut Criterion) {
    let mut group = c.benchmark_group("tree");
    group.throughput(Throughput::Elements(1));
    group.bench_function("frontier_append", |b| {
        let mut f = Frontier::new();
        let leaf = merkle::leaf_hash(b"entry");
        b.iter(|| {
            f.push(black_box(leaf), |h| {
                black_box(h);
            })
        })
    });

    let levels = levels(BIG);
    let frontier: Vec<Hash> = Frontier::subtrees(BIG)
        .into_iter()
        .map(|id| node(&levels, id).expect("in the tree"))
        .collect();
    let root = Frontier::from_parts(BIG, frontier)
        .expect("a frontier")
        .root();
    let mut i = 0u64;
    group.bench_function("inclusion_proof_10m", |b| {
        b.iter(|| {
            i = (i + 7_919_993) % BIG;
            let plan = merkle::inclusion_plan(i, BIG).expect("in range");
            black_box(merkle::assemble(&plan, |id| node(&levels, id)).expect("all nodes"))
        })
    });
    let proof = merkle::assemble(
        &merkle::inclusion_plan(123_456, BIG).expect("in range"),
        |id| node(&levels, id),
    )
    .expect("all nodes");
    group.bench_function("verify_inclusion_10m", |b| {
        b.iter(|| {
            merkle::verify_inclusion(123_456, BIG, &levels[0][123_456], black_box(&proof), &root)
                .expect("valid")
        })
    });
    drop(levels);

    // An exported bundle of a million entries shaped like the gateway's.
    let lines: Vec<Vec<u8>> = (0..BUNDLE)
        .map(|seq| {
            AuditEntry {
                seq,
                at: "2026-11-23T03:00:00.000Z".into(),
                actor: "agent:deploy-bot".into(),
                event: "request.created".into(),
                request: Some(format!("req_{seq:032}")),
                digest: Some(format!("sha256:{}", "ab".repeat(32))),
                policy: Some(format!("sha256:{}", "cd".repeat(32))),
                data: serde_json::json!({"kind": "db.export", "resource": "postgres://prod/customers", "held": false}),
            }
            .canonical_bytes()
        })
        .collect();
    let mut tree = Frontier::new();
    for line in &lines {
        tree.push(merkle::leaf_hash(line), |_| {});
    }
    let signer = NoteSigner::generate("bench.example/log").expect("a key");
    let note = Checkpoint {
        origin: "bench.example/log".into(),
        size: BUNDLE,
        root: tree.root(),
        extensions: vec![],
    }
    .sign(&signer)
    .expect("signed");
    let verifier = signer.verifier();
    group.throughput(Throughput::Elements(BUNDLE));
    group.sample_size(10);
    group.bench_function("verify_export_1m", |b| {
        b.iter_batched(
            || (),
            |()| {
                let cp = Checkpoint::open(&note, &verifier, None).expect("valid checkpoint");
                let mut v = Verifier::with_checkpoints(vec![cp]);
                for line in &lines {
                    v.push_line(line);
                }
                let report = v.finish();
                assert!(report.is_intact(), "{:?}", report.first_bad);
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, tree);
criterion_main!(benches);
