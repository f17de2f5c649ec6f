//! How many auto-allowed submissions per second the SQLite store acknowledges durably, with 64
//! tasks submitting at once (as 64 HTTP clients would). Each submission is one request insert
//! and two audit entries (`request.created`, `request.approved`), fsync'd before it is answered.
//!
//! Run: `cargo bench -p countersign-store --bench append`. Criterion prints the time per batch
//! of 64 × 100 submissions and the throughput in elements (submissions) per second.

use countersign_core::{Action, Decision, Effect, Principal, PrincipalId, Request};
use countersign_store::{SqliteStore, Store};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TASKS: u64 = 64;
const PER_TASK: u64 = 100;

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn allowed(run: Option<String>) -> countersign_store::Submit {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let now = chrono::Utc::now();
    Box::new(move |gate| {
        let requester = Principal {
            id: PrincipalId::parse("agent:bench").expect("valid"),
            owner: None,
            groups: vec![],
        };
        let action = Action {
            kind: "db.query".into(),
            resource: "postgres://prod/customers".into(),
            params: serde_json::json!({"readonly": true, "n": n}),
            justification: None,
            run,
            labels: Default::default(),
        };
        let decision = Decision {
            effect: Effect::Allow,
            rule: Some("reads-are-free".into()),
            reason: "reads are free".into(),
            requirements: None,
            policy_hash: format!("sha256:{}", "0".repeat(64)),
            grant_ttl_seconds: 300,
        };
        Request::submit(
            format!("req_{n:016}"),
            requester,
            action,
            decision,
            gate,
            60,
            now,
        )
    })
}

/// Time for `TASKS` tasks to each submit `PER_TASK` requests, `with_runs` giving each task its
/// own run (so every submission also reads the run's gate).
async fn batch(store: &Arc<SqliteStore>, with_runs: bool) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                for _ in 0..PER_TASK {
                    let run = with_runs.then(|| format!("run-{t}"));
                    let submit = allowed(run.clone());
                    let requester = PrincipalId::parse("agent:bench").expect("valid");
                    let run_of = run.as_deref().map(|run| countersign_store::RunOf {
                        run,
                        requester: &requester,
                    });
                    store
                        .submit(run_of, chrono::Utc::now(), submit)
                        .await
                        .expect("submit");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    start.elapsed()
}

fn submissions(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(
        rt.block_on(SqliteStore::open(&dir.path().join("bench.db")))
            .expect("open"),
    );
    let mut group = c.benchmark_group("sqlite_submit_64_tasks");
    group.throughput(Throughput::Elements(TASKS * PER_TASK));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(15));
    for (name, with_runs) in [("auto_allowed", false), ("auto_allowed_in_runs", true)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += batch(&store, with_runs).await;
                    }
                    total
                })
            })
        });
    }
    group.finish();
    let report = rt.block_on(store.verify_audit()).expect("verify");
    assert!(report.is_intact(), "{:?}", report.first_bad);
    println!(
        "audit log after the bench: {} entries, intact",
        report.entries
    );
}

criterion_group!(benches, submissions);
criterion_main!(benches);
