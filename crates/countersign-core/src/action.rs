//! What an agent asks to do. An `Action` is validated once, when it enters the system, so that
//! everything downstream (policy, digest, storage, display) can trust its shape.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Integers up to this magnitude are always held exactly by an IEEE double. RFC 8785 (and
/// I-JSON, RFC 7493) canonicalize numbers as doubles, so an integer a double cannot hold would
/// give two different actions the same digest; such params are refused (`json_text` says
/// precisely which numbers mean one thing; this is the same rule on parsed values).
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

pub const MAX_KIND_LEN: usize = 200;
pub const MAX_RESOURCE_LEN: usize = 2048;
pub const MAX_JUSTIFICATION_LEN: usize = 8192;
pub const MAX_LABELS: usize = 64;

/// Labels under these prefixes are set by the gateway alone (the MCP gateway records a tool's
/// annotations under `mcp.`, from the upstream's listing; the AuthZEN endpoints name the
/// policy enforcement point that asked under `authzen.`), so a policy may trust them: an
/// action submitted with one is refused at the edge (`reserved_label`).
pub const RESERVED_LABEL_PREFIXES: [&str; 2] = ["mcp.", "authzen."];

/// The label naming the policy enforcement point that asked for an action (AuthZEN).
pub const PEP_LABEL: &str = "authzen.pep";

/// True for a label key only the gateway sets ([`RESERVED_LABEL_PREFIXES`]).
pub fn is_reserved_label(key: &str) -> bool {
    RESERVED_LABEL_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// The label of a tool annotation (`mcp.annotation.readOnlyHint`, `…title`): the hints as
/// `true` or `false`, the title as given (cut to the label limit).
pub const ANNOTATION_LABEL_PREFIX: &str = "mcp.annotation.";

/// The tool annotations the MCP specification defines, with their defaults when a tool does not
/// give one (`title` has none).
pub const TOOL_HINTS: [(&str, bool); 4] = [
    ("readOnlyHint", false),
    ("destructiveHint", true),
    ("idempotentHint", false),
    ("openWorldHint", true),
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Action {
    pub kind: String,
    pub resource: String,
    #[serde(default = "empty_object")]
    pub params: serde_json::Value,
    #[serde(default)]
    pub justification: Option<String>,
    #[serde(default)]
    pub run: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error(
        "`kind` must be 1-{MAX_KIND_LEN} characters of letters, digits, `.`, `_`, `-` (e.g. `db.export`), got {0:?}"
    )]
    Kind(String),
    #[error("`resource` must be 1-{MAX_RESOURCE_LEN} printable characters")]
    Resource,
    #[error("`justification` is longer than {MAX_JUSTIFICATION_LEN} characters")]
    Justification,
    #[error("`run` must be 1-200 characters of letters, digits, `.`, `_`, `-`, `:`")]
    Run,
    #[error("`labels` may have at most {MAX_LABELS} entries of at most 200 characters each")]
    Labels,
    #[error("`params` must be a JSON object")]
    ParamsNotObject,
    #[error(
        "`params` contains the number {0}, which an IEEE double cannot hold exactly (or negative zero), so it could be read as another number; send it as a string"
    )]
    UnsafeNumber(String),
    #[error(
        "`{field}` contains the bidirectional control character U+{code_point:04X}, which can make it read differently from what it is; remove it"
    )]
    BidiControl {
        field: &'static str,
        code_point: u32,
    },
}

impl Action {
    /// Checks the action's shape. Called at every entry point before anything else sees it.
    pub fn validate(&self) -> Result<(), ActionError> {
        // First, so the refusal names the character (the kind's rule would refuse it anyway).
        for (field, text) in [("kind", &self.kind), ("resource", &self.resource)] {
            if let Some(c) = text.chars().find(|c| crate::text::is_bidi_control(*c)) {
                return Err(ActionError::BidiControl {
                    field,
                    code_point: c as u32,
                });
            }
        }
        let kind_ok = !self.kind.is_empty()
            && self.kind.len() <= MAX_KIND_LEN
            && self
                .kind
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            && !self.kind.starts_with('.')
            && !self.kind.ends_with('.');
        if !kind_ok {
            return Err(ActionError::Kind(self.kind.chars().take(80).collect()));
        }
        // Lengths are in characters, as the refusals say (and as the OpenAPI schema's
        // `maxLength` counts them).
        if self.resource.is_empty()
            || self.resource.chars().count() > MAX_RESOURCE_LEN
            || self.resource.chars().any(char::is_control)
        {
            return Err(ActionError::Resource);
        }
        if self
            .justification
            .as_ref()
            .is_some_and(|j| j.chars().count() > MAX_JUSTIFICATION_LEN)
        {
            return Err(ActionError::Justification);
        }
        if let Some(run) = &self.run {
            let ok = !run.is_empty()
                && run.len() <= 200
                && run
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-:".contains(c));
            if !ok {
                return Err(ActionError::Run);
            }
        }
        if self.labels.len() > MAX_LABELS
            || self
                .labels
                .iter()
                .any(|(k, v)| k.chars().count() > 200 || v.chars().count() > 200)
        {
            return Err(ActionError::Labels);
        }
        if !self.params.is_object() {
            return Err(ActionError::ParamsNotObject);
        }
        check_numbers(&self.params)
    }
}

fn check_numbers(v: &serde_json::Value) -> Result<(), ActionError> {
    match v {
        serde_json::Value::Number(n) => {
            // Invariant 9, on a parsed value: the same rule as `json_text::check` on text (an
            // integer must print back as itself from a double; a double must be finite and not
            // negative zero, which RFC 8785 prints as `0`).
            let big_integer_is_exact = || crate::json_text::number_means_one_thing(&n.to_string());
            let safe = if let Some(u) = n.as_u64() {
                u <= MAX_SAFE_INTEGER || big_integer_is_exact()
            } else if let Some(i) = n.as_i64() {
                i.unsigned_abs() <= MAX_SAFE_INTEGER || big_integer_is_exact()
            } else {
                n.as_f64()
                    .is_some_and(|f| f.is_finite() && !(f == 0.0 && f.is_sign_negative()))
            };
            if safe {
                Ok(())
            } else {
                Err(ActionError::UnsafeNumber(n.to_string()))
            }
        }
        serde_json::Value::Array(items) => items.iter().try_for_each(check_numbers),
        serde_json::Value::Object(map) => map.values().try_for_each(check_numbers),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn action(params: serde_json::Value) -> Action {
        Action {
            kind: "db.export".into(),
            resource: "postgres://prod/customers".into(),
            params,
            justification: None,
            run: None,
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn accepts_a_plain_action() {
        assert_eq!(action(json!({"rows": 5000})).validate(), Ok(()));
    }

    #[test]
    fn refuses_integers_a_double_cannot_hold() {
        let err = action(json!({"n": 9007199254740993u64})).validate();
        assert!(matches!(err, Err(ActionError::UnsafeNumber(_))));
        assert_eq!(action(json!({"n": 9007199254740991u64})).validate(), Ok(()));
    }

    #[test]
    fn bidi_controls_are_refused_in_kind_and_resource() {
        for c in [
            '\u{202E}', '\u{202A}', '\u{2066}', '\u{2069}', '\u{200F}', '\u{061C}',
        ] {
            let mut a = action(json!({}));
            a.resource = format!("s3://bucket/{c}fdp.exe");
            assert_eq!(
                a.validate(),
                Err(ActionError::BidiControl {
                    field: "resource",
                    code_point: c as u32
                })
            );
            let mut a = action(json!({}));
            a.kind = format!("db.{c}export");
            let err = a.validate().unwrap_err();
            assert!(matches!(
                err,
                ActionError::BidiControl { field: "kind", .. }
            ));
            assert!(
                !err.to_string().contains(c),
                "the message shows no raw {c:?}"
            );
        }
        // Other non-ASCII text stays valid in a resource.
        let mut a = action(json!({}));
        a.resource = "file:///srv/données/日本".into();
        assert_eq!(a.validate(), Ok(()));
    }

    #[test]
    fn numbers_mean_one_thing_in_parsed_params() {
        for bad in [
            json!({"n": 9007199254740993u64}),
            json!({"n": u64::MAX}),
            json!({"n": i64::MIN + 1}),
            json!({"deep": [{"n": -0.0}]}),
            json!({"n": 18446744073709551615u64}),
        ] {
            assert!(
                matches!(
                    action(bad.clone()).validate(),
                    Err(ActionError::UnsafeNumber(_))
                ),
                "{bad}"
            );
        }
        // Exactly a double, and printed back as the same digits.
        for good in [
            json!({"n": 9007199254740992u64}),
            json!({"n": 18014398509481984u64}),
            json!({"n": -9007199254740992i64}),
            json!({"n": 0.1, "m": 1e300, "z": 0.0}),
        ] {
            assert_eq!(action(good.clone()).validate(), Ok(()), "{good}");
        }
    }

    #[test]
    fn refuses_bad_kinds_and_non_object_params() {
        let mut a = action(json!({}));
        a.kind = "db export".into();
        assert!(matches!(a.validate(), Err(ActionError::Kind(_))));
        assert_eq!(
            action(json!([1])).validate(),
            Err(ActionError::ParamsNotObject)
        );
    }
}
