//! Tests of the JSON text check: numbers that would mean two things and duplicate keys are
//! refused wherever they are; everything a serializer writes passes; accepted text keeps its
//! value and its digest through canonical JSON.

use super::*;
use crate::{Action, Digest, PrincipalId, canonical};
use proptest::prelude::*;
use serde_json::{Value, json};

fn refused_number(text: &str) -> bool {
    matches!(
        check(text.as_bytes()),
        Err(JsonTextError::ImpreciseNumber { .. })
    )
}

fn refused_key(text: &str) -> bool {
    matches!(
        check(text.as_bytes()),
        Err(JsonTextError::DuplicateKey { .. })
    )
}

#[test]
fn numbers_mean_one_thing_imprecise_spellings_are_refused() {
    for n in [
        "9007199254740993",
        "-9007199254740993",
        "9007199254740993.0",
        "9007199254740993.000",
        "9.007199254740993e15",
        "9.007199254740993E+15",
        "90071992547409930e-1",
        "1e400",
        "-1e400",
        "1e-400",
        "4.9e-325",
        "18446744073709551616",
        "18446744073709551615",
        "-9223372036854775809",
        "9223372036854775807",
        "0.1000000000000000055511151231257827",
        "0.1000000000000000055511151231257827021181583404541015625",
        "0.30000000000000001",
        "123456789012345678901234567890",
        "1.00000000000000000000001",
        "-0",
        "-0.0",
        "-0e5",
        "-0.000E-3",
    ] {
        assert!(
            refused_number(&format!("{{\"n\":{n}}}")),
            "{n} was accepted"
        );
        assert!(!number_means_one_thing(n), "{n}");
    }
}

#[test]
fn numbers_mean_one_thing_exact_spellings_are_accepted() {
    for n in [
        "0",
        "0.0",
        "0e10",
        "1",
        "-1",
        "1.0",
        "1e2",
        "1E2",
        "1e+2",
        "100e-2",
        "0.1",
        "0.5",
        "2.5E-3",
        "123456789012345",
        "999999999999999",
        "9007199254740991",
        "-9007199254740991",
        "9007199254740992",
        "9007199254740992.0",
        "18014398509481984",
        "1e21",
        "1.7976931348623157e308",
        "5e-324",
        "333333333.3333333",
        "3.141592653589793",
    ] {
        assert_eq!(check(format!("{{\"n\":{n}}}").as_bytes()), Ok(()), "{n}");
        assert!(number_means_one_thing(n), "{n}");
    }
}

#[test]
fn numbers_mean_one_thing_wherever_they_are() {
    for text in [
        "9007199254740993",
        "[1, 2, 9007199254740993]",
        r#"{"params": {"a": [{"b": 1e400}]}}"#,
        r#"{"kind": "x", "resource": "y", "params": {"n": 9007199254740993.0}}"#,
        r#"{"labels": {}, "params": {"deep": [[[[-0]]]]}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"amount":1.00000000000000001}}}"#,
    ] {
        assert!(refused_number(text), "{text}");
    }
}

#[test]
fn numbers_mean_one_thing_errors_name_the_place() {
    let err = check(br#"{"params": {"items": [{"id": 1}, {"id": 9007199254740993}]}}"#)
        .expect_err("imprecise");
    assert_eq!(err.code(), "imprecise_number");
    assert_eq!(
        err,
        JsonTextError::ImpreciseNumber {
            path: "params.items[1].id".into(),
            text: "9007199254740993".into()
        }
    );
    assert!(err.to_string().contains("send it as a string"), "{err}");
    let err = check(b"[1e999]").expect_err("imprecise");
    assert!(err.to_string().contains("`[0]`"), "{err}");
}

#[test]
fn duplicate_keys_are_refused_anywhere() {
    for text in [
        r#"{"a": 1, "a": 1}"#,
        r#"{"a": 1, "a": 2}"#,
        r#"{"kind": "x", "kind": "y"}"#,
        r#"{"params": {"sql": "select 1", "sql": "drop table users"}}"#,
        r#"{"params": {"list": [{"x": 1}, {"y": 1, "y": 2}]}}"#,
        r#"[[{"deep": {"deeper": {"k": null, "k": true}}}]]"#,
        r#"{"labels": {"team": "a", "team": "b"}}"#,
        r#"{"a": {}, "b": [], "a": "later"}"#,
        r#"{"a":1,"\u0061":2}"#,
        r#"{"\u0061":1,"a":2}"#,
        r#"{"é":1,"\u00e9":2}"#,
        r#"{"😀":1,"\ud83d\ude00":2}"#,
        r#"{"a\"b":1,"a\u0022b":2}"#,
        r#"{"/":1,"\/":2}"#,
        r#"{"":1,"":2}"#,
        "{\"a\"\n:\t1 ,\r\n \"a\" : 2}",
    ] {
        assert!(refused_key(text), "{text} was accepted");
    }
}

#[test]
fn duplicate_keys_are_refused_in_large_objects() {
    let mut members: Vec<String> = (0..5000).map(|i| format!("\"k{i}\": {i}")).collect();
    assert_eq!(
        check(format!("{{{}}}", members.join(",")).as_bytes()),
        Ok(())
    );
    members.push("\"k4321\": 0".into());
    let err = check(format!("{{{}}}", members.join(",")).as_bytes()).expect_err("duplicate");
    assert_eq!(
        err,
        JsonTextError::DuplicateKey {
            path: "$".into(),
            key: "k4321".into()
        }
    );
}

#[test]
fn duplicate_keys_are_refused_with_the_place_and_the_key() {
    let err = check(br#"{"params": {"a": [{"x": 1, "x": 2}]}}"#).expect_err("duplicate");
    assert_eq!(err.code(), "duplicate_key");
    assert_eq!(
        err,
        JsonTextError::DuplicateKey {
            path: "params.a[0]".into(),
            key: "x".into()
        }
    );
}

#[test]
fn distinct_keys_and_repeats_in_other_objects_are_fine() {
    for text in [
        r#"{"a": 1, "A": 2, "a ": 3, "\u0041b": 4, "ab": 5}"#,
        r#"[{"a": 1}, {"a": 2}]"#,
        r#"{"a": {"a": {"a": 1}}}"#,
        r#"{"x": "\"a\": 1, \"a\": 2"}"#,
        r#"{"e\u0301": 1, "é": 2}"#,
    ] {
        assert_eq!(check(text.as_bytes()), Ok(()), "{text}");
    }
}

#[test]
fn text_that_is_not_json_is_left_to_the_parser() {
    for text in [
        "",
        "{",
        "{\"a\": }",
        "nope",
        "{\"a\": 01}",
        "{\"a\": 1.}",
        "{\"a\": --1}",
        "\"unterminated",
        "{\"a\": \"\\u12\"}",
        "a=1&b=2",
    ] {
        assert_eq!(check(text.as_bytes()), Ok(()), "{text}");
    }
}

/// The parser reads every accepted number as its nearest double, as this check assumes: found
/// by the fuzz target `action_digest` (`1111111e31` was read one ULP below `1.111111e37`, so
/// one value had two canonical forms and two digests).
#[test]
fn numbers_mean_one_thing_the_parser_reads_the_nearest_double() {
    for (a, b) in [
        ("1111111e31", "1.111111e37"),
        ("11111110e30", "0.1111111e38"),
        ("2.225073858507201e-308", "2225073858507201e-323"),
        ("8.98846567431158e307", "898846567431158e293"),
        ("123456.789e-10", "0.0000123456789"),
        ("9.99999999999999e22", "999999999999999e8"),
    ] {
        let parsed = |t: &str| {
            assert_eq!(check(format!("{{\"n\":{t}}}").as_bytes()), Ok(()), "{t}");
            let v: Value = serde_json::from_str(t).expect("a number");
            let n = v.as_f64().expect("a double");
            assert_eq!(
                n.to_bits(),
                t.parse::<f64>().expect("a number").to_bits(),
                "{t}"
            );
            n
        };
        assert_eq!(parsed(a).to_bits(), parsed(b).to_bits(), "{a} and {b}");
        assert_eq!(
            digest_of(serde_json::from_str(&format!("{{\"n\":{a}}}")).expect("JSON")),
            digest_of(serde_json::from_str(&format!("{{\"n\":{b}}}")).expect("JSON")),
            "{a} and {b} are one value, one digest"
        );
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        // Integers beyond 2^53 that a double cannot hold are what the check refuses.
        (-(1i64 << 53)..=(1i64 << 53)).prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite, not -0", |f| f.is_finite()
                && !(*f == 0.0 && f.is_sign_negative()))
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A number as someone might write it: digits, maybe a fraction, maybe an exponent.
fn arb_number_text() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        "(0|[1-9][0-9]{0,24})",
        prop::option::of("[0-9]{1,20}"),
        prop::option::of((prop_oneof![Just("e"), Just("E")], -400i32..400)),
    )
        .prop_map(|(negative, int, frac, exp)| {
            let mut s = String::new();
            if negative {
                s.push('-');
            }
            s.push_str(&int);
            if let Some(f) = frac {
                s.push('.');
                s.push_str(&f);
            }
            if let Some((e, x)) = exp {
                s.push_str(&format!("{e}{x}"));
            }
            s
        })
}

fn digest_of(params: Value) -> Digest {
    let action = Action {
        kind: "db.export".into(),
        resource: "postgres://prod/customers".into(),
        params,
        justification: None,
        run: None,
        labels: Default::default(),
    };
    Digest::of_action(&action, &PrincipalId::parse("agent:a").expect("valid id"))
}

proptest! {
    /// What a serializer writes (distinct keys, doubles printed exactly) always passes, so the
    /// check refuses nothing an honest client sends.
    #[test]
    fn serialized_values_pass(v in arb_json()) {
        let text = serde_json::to_vec(&v).expect("serializes");
        prop_assert_eq!(check(&text), Ok(()));
        let pretty = serde_json::to_vec_pretty(&v).expect("serializes");
        prop_assert_eq!(check(&pretty), Ok(()));
    }

    /// Repeating any member of any object (even with an escaped spelling) is refused.
    #[test]
    fn duplicate_keys_are_refused_whatever_the_document(
        v in prop::collection::btree_map("[a-z]{1,6}", arb_json(), 1..6),
        pick in any::<prop::sample::Index>(),
        escape in any::<bool>(),
    ) {
        let keys: Vec<&String> = v.keys().collect();
        let key = keys[pick.index(keys.len())];
        let spelled = if escape {
            key.chars().map(|c| format!("\\u{:04x}", c as u32)).collect::<String>()
        } else {
            key.clone()
        };
        let object = serde_json::to_string(&v).expect("serializes");
        let text = format!("{{\"params\": {{\"{spelled}\": 0, {}}}", &object[1..]);
        let err = check(text.as_bytes()).expect_err("duplicate");
        prop_assert_eq!(err.code(), "duplicate_key");
    }

    /// An accepted number has exactly the value of its canonical (RFC 8785) form; a refused one
    /// does not (or has no double at all).
    #[test]
    fn numbers_mean_one_thing_accepted_text_keeps_its_value(text in arb_number_text()) {
        let parsed: f64 = text.parse().expect("a number");
        let accepted = number_means_one_thing(&text);
        let zero = Decimal::parse(text.as_bytes()).expect("grammar").digits.is_empty();
        if parsed.is_finite() && !(zero && text.starts_with('-')) && (parsed != 0.0 || zero) {
            let canonical = canonical::to_string(&json!(parsed));
            let same = Decimal::parse(canonical.as_bytes()) == Decimal::parse(text.as_bytes());
            prop_assert_eq!(accepted, same, "{} vs canonical {}", text, canonical);
        } else {
            prop_assert!(!accepted, "{}", text);
        }
    }

    /// An accepted number is read by the parser as the nearest double (as `str::parse` reads it).
    #[test]
    fn numbers_mean_one_thing_the_parser_agrees(text in arb_number_text()) {
        if number_means_one_thing(&text) {
            let v: Value = serde_json::from_str(&text).expect("a number");
            let read = v.as_f64().expect("a double");
            let nearest: f64 = text.parse().expect("a number");
            prop_assert_eq!(read.to_bits(), nearest.to_bits(), "{}", text);
        }
    }

    /// Any accepted params text round-trips through canonical JSON to the same digest, and its
    /// canonical form is accepted too.
    #[test]
    fn accepted_params_round_trip_through_canonical_json(
        v in arb_json(),
        numbers in prop::collection::vec(arb_number_text(), 0..4),
    ) {
        let mut text = format!("{{\"v\": {}", serde_json::to_string(&v).expect("serializes"));
        for (i, n) in numbers.iter().enumerate() {
            text.push_str(&format!(", \"n{i}\": {n}"));
        }
        text.push('}');
        if check(text.as_bytes()).is_ok() {
            let params: Value = serde_json::from_str(&text).expect("valid JSON");
            let canonical = canonical::to_vec(&params);
            prop_assert_eq!(check(&canonical), Ok(()));
            let again: Value = serde_json::from_slice(&canonical).expect("valid JSON");
            prop_assert_eq!(digest_of(params), digest_of(again));
        }
    }
}
