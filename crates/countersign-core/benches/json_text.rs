//! The cost of checking a JSON body's text before it is parsed (`json_text::check`), beside the
//! parse it precedes: a body like `loadgen actions` sends, and one with typical params.
//!
//! Run: `cargo bench --workspace --bench json_text`.

use countersign_core::json_text;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let small: &[u8] = br#"{"kind":"bench.allow","resource":"bench://x/12345"}"#;
    let typical: &[u8] = br#"{"kind":"db.export","resource":"postgres://prod/customers","params":{"rows":5000,"format":"csv","columns":["id","email","created_at"],"filter":{"since":"2026-01-01","limit":1.5e3,"ratio":0.25}},"justification":"weekly churn report","run":"run-42","labels":{"team":"data"}}"#;
    for (name, body) in [("loadgen body", small), ("typical body", typical)] {
        c.bench_function(&format!("json_text::check/{name}"), |b| {
            b.iter(|| json_text::check(black_box(body)))
        });
        c.bench_function(&format!("serde_json::from_slice/{name}"), |b| {
            b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(body)).map(|_| ()))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
