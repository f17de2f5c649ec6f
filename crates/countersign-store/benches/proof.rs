//! Proofs from a large log on disk: an inclusion proof and a consistency proof through
//! `SqliteStore` (its read pool, one query per proof) in a log of 10 million entries.
//!
//! The log is built directly in a temporary SQLite file first (synthetic entries, each row
//! with the tree nodes its leaf completes, exactly as the writer stores them), which takes a
//! minute and ~1.2 GB of disk. `COUNTERSIGN_BENCH_ENTRIES` changes the size.
//!
//! Run: `cargo bench -p countersign-store --bench proof`.

use countersign_audit::merkle::{self, Frontier};
use countersign_store::{SqliteStore, Store};
use criterion::{Criterion, criterion_group, criterion_main};
use std::time::Instant;

fn build(path: &std::path::Path, n: u64) {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; BEGIN")
        .expect("begin");
    let mut insert = conn
        .prepare("INSERT INTO audit (seq, bytes, leaf, chain, nodes) VALUES (?1, ?2, ?3, ?4, ?5)")
        .expect("prepare");
    let mut tree = Frontier::new();
    let mut nodes = Vec::with_capacity(64 * 32);
    for seq in 0..n {
        let bytes = format!(r#"{{"actor":"bench","event":"bench.entry","seq":{seq}}}"#);
        let leaf = merkle::leaf_hash(bytes.as_bytes());
        nodes.clear();
        tree.push(leaf, |h| nodes.extend_from_slice(h));
        insert
            .execute(rusqlite::params![
                seq as i64,
                bytes.as_bytes(),
                leaf.as_slice(),
                [0u8; 32].as_slice(),
                nodes.as_slice()
            ])
            .expect("insert");
    }
    drop(insert);
    conn.execute_batch("COMMIT").expect("commit");
}

fn proofs(c: &mut Criterion) {
    let n: u64 = std::env::var("COUNTERSIGN_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("big.db");
    // The schema, through the store's own migrations.
    rt.block_on(async {
        SqliteStore::open(&path)
            .await
            .expect("create")
            .close()
            .await;
    });
    let started = Instant::now();
    build(&path, n);
    println!("built a log of {n} entries in {:.1?}", started.elapsed());
    let store = rt
        .block_on(SqliteStore::open(&path))
        .expect("open the big log");
    let root = rt.block_on(store.audit_root(n)).expect("root");
    let mut group = c.benchmark_group(format!("sqlite_proofs_{n}"));
    let mut i = 0u64;
    group.bench_function("inclusion_proof", |b| {
        b.iter(|| {
            i = (i + 7_919_993) % n;
            rt.block_on(store.inclusion_proof(i, n)).expect("proof")
        })
    });
    let leaf = merkle::leaf_hash(
        format!(
            r#"{{"actor":"bench","event":"bench.entry","seq":{}}}"#,
            4242
        )
        .as_bytes(),
    );
    let proof = rt.block_on(store.inclusion_proof(4242, n)).expect("proof");
    merkle::verify_inclusion(4242, n, &leaf, &proof, &root).expect("a valid proof");
    let mut m = 1u64;
    group.bench_function("consistency_proof", |b| {
        b.iter(|| {
            m = (m + 3_000_017) % (n - 1) + 1;
            rt.block_on(store.consistency_proof(m, n)).expect("proof")
        })
    });
    group.bench_function("tree_root", |b| {
        b.iter(|| rt.block_on(store.audit_root(n)).expect("root"))
    });
    group.finish();
}

criterion_group!(benches, proofs);
criterion_main!(benches);
