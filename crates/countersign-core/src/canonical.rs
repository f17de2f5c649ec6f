//! Canonical JSON (RFC 8785, the JSON Canonicalization Scheme): the exact bytes that digests and
//! audit leaves are computed over.
//!
//! Written here rather than taken from `serde_jcs` because that crate re-parses every object
//! key and dominated the cost of a submission in profiles. The rules are few: object keys
//! sorted by their UTF-16 code units, no whitespace, strings escaped as ECMAScript's
//! `JSON.stringify` does, and numbers printed as ECMAScript prints doubles (`ryu-js`). The RFC's
//! own examples and the property tests below pin the behaviour.

use serde::Serialize;
use serde_json::Value;

/// Serializes any value to its RFC 8785 canonical bytes.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Converting plain domain data (string keys, finite numbers) to a JSON value cannot fail; if
    // a future type makes it fail, we would rather stop than sign garbage.
    let value = serde_json::to_value(value).expect("domain data converts to JSON");
    let mut out = Vec::with_capacity(256);
    write_value(&value, &mut out);
    out
}

pub fn to_string<T: Serialize + ?Sized>(value: &T) -> String {
    String::from_utf8(to_vec(value)).expect("canonical JSON is UTF-8")
}

/// A member of an object written by [`object_to_vec`], borrowed.
pub enum Member<'a> {
    Str(&'a str),
    Value(&'a Value),
    Null,
}

/// The canonical bytes of the object whose members are `members`: the same bytes as
/// [`to_vec`] of the map holding them, without building (or cloning into) that map. Keys must
/// be ASCII and distinct (the callers' fixed field names); they are sorted here.
pub fn object_to_vec(members: &mut [(&str, Member<'_>)]) -> Vec<u8> {
    debug_assert!(members.iter().all(|(k, _)| k.is_ascii()));
    // ASCII keys: byte order is UTF-16 order.
    members.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::with_capacity(256);
    out.push(b'{');
    for (i, (key, member)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(key, &mut out);
        out.push(b':');
        match member {
            Member::Str(s) => write_string(s, &mut out),
            Member::Value(v) => write_value(v, &mut out),
            Member::Null => out.extend_from_slice(b"null"),
        }
    }
    out.push(b'}');
    out
}

fn write_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            // serde_json's map is ordered by UTF-8 bytes, which equals UTF-16 order except
            // where characters beyond the BMP meet U+E000..U+FFFF (UTF-8 lead bytes 0xEE and
            // up): sort properly only when a key has such a character.
            if map.keys().any(|k| k.bytes().any(|b| b >= 0xEE)) {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
                write_entries(entries.into_iter(), out);
            } else {
                write_entries(map.iter(), out);
            }
            out.push(b'}');
        }
    }
}

fn write_entries<'a>(entries: impl Iterator<Item = (&'a String, &'a Value)>, out: &mut Vec<u8>) {
    for (i, (k, item)) in entries.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(k, out);
        out.push(b':');
        write_value(item, out);
    }
}

fn write_number(n: &serde_json::Number, out: &mut Vec<u8>) {
    if let Some(i) = n.as_i64().filter(|i| i.unsigned_abs() <= 1 << 53) {
        out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
    } else if let Some(u) = n.as_u64().filter(|u| *u <= 1 << 53) {
        out.extend_from_slice(itoa::Buffer::new().format(u).as_bytes());
    } else {
        let f = n.as_f64().unwrap_or(0.0);
        if f == 0.0 {
            out.push(b'0');
        } else if f.is_finite() {
            let mut buf = ryu_js::Buffer::new();
            out.extend_from_slice(buf.format_finite(f).as_bytes());
        } else {
            // JSON cannot carry NaN or infinities; serde_json never produces them.
            out.extend_from_slice(b"null");
        }
    }
}

/// Which bytes a JSON string must escape: the C0 controls, `"` and `\`.
const fn needs_escape_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
}
static NEEDS_ESCAPE: [bool; 256] = needs_escape_table();

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        // One table lookup per byte on the common path (no escape); most strings have none.
        if !NEEDS_ESCAPE[usize::from(b)] {
            continue;
        }
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0x08 => Some(b"\\b"),
            0x0c => Some(b"\\f"),
            _ => None,
        };
        out.extend_from_slice(&bytes[start..i]);
        match escape {
            Some(e) => out.extend_from_slice(e),
            None => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    #[test]
    fn rfc8785_sorting_example() {
        // RFC 8785 §3.2.3: keys sort by UTF-16 code units, not by UTF-8 bytes or code points.
        let v: Value = serde_json::from_str(
            r#"{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}"#,
        )
        .unwrap();
        assert_eq!(
            to_string(&v),
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
        );
    }

    #[test]
    fn rfc8785_number_and_literal_example() {
        // RFC 8785 §3.2.2 sample input.
        let v: Value = serde_json::from_str(
            r#"{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001], "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/", "literals": [null, true, false]}"#,
        )
        .unwrap();
        assert_eq!(
            to_string(&v),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }

    #[test]
    fn integers_print_without_fraction() {
        assert_eq!(to_string(&json!({"b": 1.0, "a": -0.0})), r#"{"a":0,"b":1}"#);
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-(1i64 << 53)..(1i64 << 53)).prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
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

    proptest! {
        #[test]
        fn canonical_form_is_a_fixed_point(v in arb_json()) {
            let once = to_vec(&v);
            let reparsed: Value = serde_json::from_slice(&once).unwrap();
            prop_assert_eq!(to_vec(&reparsed), once);
        }

        /// Differential check against an independent RFC 8785 implementation.
        #[test]
        fn canonical_form_matches_serde_jcs(v in arb_json()) {
            prop_assert_eq!(to_vec(&v), serde_jcs::to_vec(&v).unwrap());
        }

        #[test]
        fn canonical_form_preserves_the_value(v in arb_json()) {
            let reparsed: Value = serde_json::from_slice(&to_vec(&v)).unwrap();
            prop_assert!(json_eq(&v, &reparsed), "{v} != {reparsed}");
        }
    }

    /// Value equality where numbers compare as doubles (JCS's number model).
    fn json_eq(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
            }
            _ => a == b,
        }
    }
}
