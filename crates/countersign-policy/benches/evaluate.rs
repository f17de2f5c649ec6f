//! Policy decision time for a 100-rule policy (target: ≤ 10 µs p50). The generated policy is
//! shaped like a real one: most rules are ruled out by their globs (literal, prefix and brace
//! globs), a few get as far as their CEL condition and find it false, and the rule that decides
//! is near the end. Also measured: the same policy when nothing matches, the sample policy, and
//! loading (parse + compile) the 100-rule file.
//!
//! Run: `cargo bench -p countersign-policy --bench evaluate`.

use countersign_core::{Action, Principal, PrincipalId};
use countersign_policy::{Policy, SAMPLE_POLICY};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use std::hint::black_box;

/// 100 rules; rule 97 decides `bench.export` of a prod table with more than 1000 rows.
fn hundred_rule_policy() -> String {
    let mut text = String::from(
        "version: 1\ndefault: review\ndefaults:\n  review: {approvers: [{group: sre, count: 1}], timeout: 30m}\nrules:\n",
    );
    for i in 0..100 {
        let rule = match i {
            // A few rules whose globs match the benchmark action and whose condition is false.
            10 | 40 | 70 => format!(
                "  - name: cel-{i}\n    match: {{kind: 'bench.*', resource: 'postgres://prod/*'}}\n    when: 'params.rows > 1000000 || principal.kind == \"user\" || \"contractors\" in principal.groups'\n    effect: deny\n"
            ),
            // Rules that match the kind but not the resource.
            20 | 50 | 80 => format!(
                "  - name: resource-{i}\n    match: {{kind: 'bench.*', resource: 'mysql://host-{i}/*'}}\n    effect: allow\n"
            ),
            // Rules that match kind and resource but not the principal.
            30 | 60 | 90 => format!(
                "  - name: principal-{i}\n    match: {{kind: bench.export, principal: 'user:*@team-{i}.example.com'}}\n    effect: allow\n"
            ),
            97 => "  - name: prod-export-needs-two\n    match: {kind: bench.export, resource: 'postgres://prod/*', principal: 'agent:*'}\n    when: 'params.rows > 1000'\n    effect: review\n    review: {approvers: [{group: sre}, {group: security}], timeout: 15m}\n".to_string(),
            i if i % 3 == 0 => format!(
                "  - name: literal-{i}\n    match: {{kind: svc{i}.deploy}}\n    when: 'params.replicas > 3'\n    effect: review\n"
            ),
            i if i % 3 == 1 => format!(
                "  - name: prefix-{i}\n    match: {{kind: 'svc{i}.*', resource: 'k8s://prod/*'}}\n    effect: allow\n"
            ),
            i => format!(
                "  - name: brace-{i}\n    match: {{kind: ['svc{i}.{{create,delete}}', 'ops{i}.*.restart']}}\n    effect: deny\n"
            ),
        };
        text.push_str(&rule);
    }
    text
}

fn principal() -> Principal {
    Principal {
        id: PrincipalId::parse("agent:deploy-bot").expect("valid id"),
        owner: Some(PrincipalId::parse("user:alice@example.com").expect("valid id")),
        groups: vec!["deployers".into()],
    }
}

fn action(kind: &str, rows: u64) -> Action {
    Action {
        kind: kind.into(),
        resource: "postgres://prod/customers".into(),
        params: json!({"rows": rows, "format": "csv", "columns": ["id", "email", "created_at"]}),
        justification: Some("weekly churn report".into()),
        run: Some("run-42".into()),
        labels: [("team".to_string(), "data".to_string())].into(),
    }
}

fn bench(c: &mut Criterion) {
    let text = hundred_rule_policy();
    let policy = Policy::parse(&text, "bench.yaml").unwrap_or_else(|e| panic!("{e}"));
    let who = principal();
    let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
        .expect("valid time")
        .to_utc();

    let export = action("bench.export", 5000);
    let decided = policy.evaluate(&who, &export, now);
    assert_eq!(decided.rule.as_deref(), Some("prod-export-needs-two"));
    c.bench_function("evaluate/100 rules, decided by rule 98", |b| {
        b.iter(|| policy.evaluate(black_box(&who), black_box(&export), now))
    });

    // What the gateway calls: the same walk, stopping only before a budgeted condition.
    assert_eq!(
        policy.evaluate_inline(&who, &export, now).as_ref(),
        Ok(&decided)
    );
    c.bench_function("evaluate_inline/100 rules, decided by rule 98", |b| {
        b.iter(|| policy.evaluate_inline(black_box(&who), black_box(&export), now))
    });

    let unmatched = action("nothing.matches", 5000);
    assert_eq!(policy.evaluate(&who, &unmatched, now).rule, None);
    c.bench_function("evaluate/100 rules, none match (default)", |b| {
        b.iter(|| policy.evaluate(black_box(&who), black_box(&unmatched), now))
    });

    let sample = Policy::parse(SAMPLE_POLICY, "sample").expect("valid sample");
    let sample_export = action("db.export", 5000);
    c.bench_function("evaluate/sample policy, db.export", |b| {
        b.iter(|| sample.evaluate(black_box(&who), black_box(&sample_export), now))
    });

    let mut ddl = action("db.ddl", 0);
    ddl.params = json!({"sql": "drop table customers"});
    c.bench_function("evaluate/sample policy, db.ddl (regex)", |b| {
        b.iter(|| sample.evaluate(black_box(&who), black_box(&ddl), now))
    });

    c.bench_function("parse/100 rules", |b| {
        b.iter(|| Policy::parse(black_box(&text), "bench.yaml").map(|p| p.hash().len()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
