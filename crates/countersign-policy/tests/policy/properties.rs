//! Property tests: evaluation never panics on any params, and an allow guarded by a condition
//! only ever allows actions whose params really satisfy it.

use crate::support::{action, agent, now};
use countersign_core::Effect;
use countersign_policy::Policy;
use proptest::prelude::*;
use serde_json::{Value, json};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[a-z0-9 ]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,3}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn params() -> impl Strategy<Value = Value> {
    (
        prop::option::of(json_value()),
        prop::collection::btree_map("[a-z]{1,3}", json_value(), 0..4),
    )
        .prop_map(|(n, rest)| {
            let mut map: serde_json::Map<String, Value> = rest.into_iter().collect();
            match n {
                Some(n) => map.insert("n".into(), n),
                None => map.remove("n"),
            };
            Value::Object(map)
        })
}

fn guarded() -> Policy {
    Policy::parse(
        "version: 1\ndefault: review\ndefaults: {review: {approvers: [{group: sre}]}}\nrules:\n  - {name: n-above-five, when: 'params.n > 5', effect: allow}\n",
        "guarded.yaml",
    )
    .expect("valid")
}

proptest! {
    #[test]
    fn evaluate_never_panics(params in params()) {
        let sample = Policy::parse(countersign_policy::SAMPLE_POLICY, "sample").expect("valid");
        for kind in ["db.query", "db.ddl", "db.export", "shell.exec", "other"] {
            let a = action(kind, "postgres://prod/x", params.clone());
            let d = sample.evaluate(&agent(), &a, now());
            prop_assert_eq!(d.policy_hash, sample.hash());
        }
        let _ = guarded().explain(&agent(), &action("k", "r", params), now());
    }

    #[test]
    fn allowed_only_when_the_condition_really_holds(params in params()) {
        let d = guarded().evaluate(&agent(), &action("k", "r", params.clone()), now());
        let n = params.get("n");
        let really = n.and_then(Value::as_f64).is_some_and(|n| n > 5.0);
        if d.effect == Effect::Allow {
            prop_assert!(really, "allowed with params {}", params);
        }
        if n.and_then(Value::as_i64).is_some_and(|n| n > 5) {
            prop_assert_eq!(d.effect, Effect::Allow);
        }
        if !n.is_some_and(Value::is_number) {
            // Missing or not a number: the condition errors, and the rule denies.
            prop_assert_eq!(d.effect, Effect::Deny);
            prop_assert_eq!(d.rule.as_deref(), Some("n-above-five"));
        }
    }
}
