//! What clients send: the request bodies of the API (and the CLI), each read with the
//! constraints its OpenAPI schema states.

use countersign_app::gateway::{CastVote, GatewayError};
use countersign_core::{Action, ExecStatus, Outcome};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `labels`: at most 64, each key and value at most 200 characters, no key under a reserved
/// prefix.
fn labels_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .max_properties(Some(countersign_core::action::MAX_LABELS))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(200))
                // `RESERVED_LABEL_PREFIXES`: set by the gateway alone.
                .pattern(Some("^(?!mcp\\.|authzen\\.)")),
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(200))
                .into(),
        )))
        .build()
}

/// `POST /v1/actions`. The requester is whoever authenticated; a body that tries to name one is
/// refused (`requester` is accepted only to be rejected with a clear message).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    #[schema(pattern = "^[A-Za-z0-9_-]([A-Za-z0-9._-]{0,198}[A-Za-z0-9_-])?$")]
    pub kind: String,
    #[schema(
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]+$",
        max_length = 2048
    )]
    pub resource: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub params: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 8192)]
    pub justification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,200}$")]
    pub run: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(schema_with = labels_schema)]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing)]
    #[schema(ignore)]
    pub requester: Option<serde_json::Value>,
}

impl ActionBody {
    /// The action to submit. Refuses a body that names its own requester
    /// (`requester_not_allowed`): the requester is whoever authenticates.
    pub fn into_action(self) -> Result<Action, GatewayError> {
        if self.requester.is_some() {
            return Err(GatewayError::Forbidden(
                "requester_not_allowed",
                "the requester is whoever authenticates; remove `requester` from the body".into(),
            ));
        }
        Ok(Action {
            kind: self.kind,
            resource: self.resource,
            params: self
                .params
                .unwrap_or_else(|| serde_json::Value::Object(Default::default())),
            justification: self.justification,
            run: self.run,
            labels: self.labels,
        })
    }
}

/// `POST /v1/requests/{id}/votes`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoteBody {
    pub decision: countersign_core::VoteDecision,
    /// The digest the approver was shown; must equal the request's.
    #[schema(pattern = "^sha256:[0-9a-f]{64}$")]
    pub digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 4096)]
    pub comment: Option<String>,
    /// A TOTP code, when the rule requires MFA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp: Option<String>,
    /// With an approval: also approve the same requester's matching actions for a while
    /// (bounded by the rule's `review.standing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standing: Option<StandingAskBody>,
}

/// `POST /v1/requests/{id}/amend`: the params the approver approves instead (the kind,
/// resource, justification and run stay), why, and optionally the digest they were shown and a
/// second factor.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmendBody {
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 4096)]
    pub comment: Option<String>,
    /// The digest shown before amending; when given, it must be the request's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^sha256:[0-9a-f]{64}$")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp: Option<String>,
}

/// `standing` on a vote: `{"for": "30m", "uses": 20}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StandingAskBody {
    #[serde(rename = "for")]
    pub for_: String,
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "whole::required")]
    pub uses: u32,
}

impl VoteBody {
    /// The vote to cast (`CastVote::parse`: the digest must be one, the comment not too long;
    /// `CastVote::standing`: the duration must be one).
    pub fn into_vote(self) -> Result<CastVote, GatewayError> {
        let vote = CastVote::parse(self.decision, &self.digest, self.comment, self.otp)?;
        match self.standing {
            None => Ok(vote),
            Some(ask) => vote.standing(&ask.for_, ask.uses),
        }
    }
}

/// `POST /v1/grants/{id}/redeem`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemBody {
    #[schema(pattern = "^sha256:[0-9a-f]{64}$")]
    pub digest: String,
}

/// `POST /v1/plans`: the steps in order (each `{kind, resource, params}`), and what applies
/// to all of them.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanBody {
    #[schema(min_items = 1, max_items = 50)]
    pub steps: Vec<countersign_core::plan::StepInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 8192)]
    pub justification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,200}$")]
    pub run: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(schema_with = labels_schema)]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing)]
    #[schema(ignore)]
    pub requester: Option<serde_json::Value>,
}

impl PlanBody {
    /// The plan to submit (refused, like an action, when it names its own requester).
    pub fn into_plan(self) -> Result<countersign_app::gateway::plans::PlanInput, GatewayError> {
        if self.requester.is_some() {
            return Err(GatewayError::Forbidden(
                "requester_not_allowed",
                "the requester is whoever authenticates; remove `requester` from the body".into(),
            ));
        }
        Ok(countersign_app::gateway::plans::PlanInput {
            steps: self.steps,
            justification: self.justification,
            run: self.run,
            labels: self.labels,
        })
    }
}

/// How a reported execution ended (`running` cannot be reported).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportedStatus {
    Succeeded,
    Failed,
    Unknown,
}

/// Whole numbers in request bodies, however written (`484`, `484.0`, `4.84e2`): what JSON
/// Schema calls an `integer`, and so what the OpenAPI document promises. serde alone takes
/// only the first form. Written here because no serde helper crate reads JSON's integers by
/// value.
mod whole {
    use serde::{Deserialize, Deserializer, de::Error};

    fn value<T: TryFrom<i128>, E: Error>(n: &serde_json::Number) -> Result<T, E> {
        let whole = if let Some(u) = n.as_u64() {
            Some(i128::from(u))
        } else if let Some(i) = n.as_i64() {
            Some(i128::from(i))
        } else {
            // Within ±2^63 and without a fraction, the cast is exact.
            n.as_f64()
                .filter(|f| f.is_finite() && f.fract() == 0.0 && f.abs() < 9.3e18)
                .map(|f| f as i128)
        };
        whole
            .and_then(|w| T::try_from(w).ok())
            .ok_or_else(|| E::custom(format!("{n} is not a whole number in range")))
    }

    pub fn required<'de, D: Deserializer<'de>, T: TryFrom<i128>>(d: D) -> Result<T, D::Error> {
        value(&serde_json::Number::deserialize(d)?)
    }

    pub fn optional<'de, D: Deserializer<'de>, T: TryFrom<i128>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        Option::<serde_json::Number>::deserialize(d)?
            .map(|n| value(&n))
            .transpose()
    }
}

/// The body of an operation that takes none but accepts `{}` (`POST /v1/requests/{id}/execute`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoBody {}

/// `POST /v1/requests/{id}/outcome`: the requester reports how the action they ran went.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeBody {
    /// Required (an `Option` so that its absence gets a clear message).
    #[schema(value_type = ReportedStatus, required = true)]
    pub status: Option<ReportedStatus>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole::optional"
    )]
    #[schema(maximum = 9007199254740991_u64)]
    pub duration_ms: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole::optional"
    )]
    #[schema(maximum = 9007199254740991_u64)]
    pub bytes: Option<u64>,
    /// Lower-case hex SHA-256 of the action's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub output_sha256: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole::optional"
    )]
    pub exit_code: Option<i32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole::optional"
    )]
    #[schema(minimum = 100, maximum = 599)]
    pub http_status: Option<u16>,
    /// A sentence, at most 1,000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1000, pattern = "^[^\\x00-\\x09\\x0b-\\x1f\\x7f-\\x9f]*$")]
    pub error: Option<String>,
}

impl OutcomeBody {
    /// The outcome to record, or why this report is not one.
    pub fn into_outcome(self) -> Result<Outcome, (&'static str, String)> {
        let bad = |m: &str| ("invalid_outcome", m.to_owned());
        let status = match self.status {
            Some(ReportedStatus::Succeeded) => ExecStatus::Succeeded,
            Some(ReportedStatus::Failed) => ExecStatus::Failed,
            Some(ReportedStatus::Unknown) => ExecStatus::Unknown,
            None => return Err(bad("`status` is required: succeeded, failed or unknown")),
        };
        if let Some(h) = &self.output_sha256
            && (h.len() != 64 || !h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        {
            return Err(bad("`output_sha256` must be 64 lower-case hex digits"));
        }
        if self.http_status.is_some_and(|s| !(100..=599).contains(&s)) {
            return Err(bad("`http_status` must be between 100 and 599"));
        }
        if let Some(e) = &self.error
            && (e.chars().count() > 1000 || e.chars().any(|c| c.is_control() && c != '\n'))
        {
            return Err(bad(
                "`error` must be at most 1,000 characters, without control characters",
            ));
        }
        let mut o = Outcome::with_status(status);
        o.duration_ms = self.duration_ms.unwrap_or(0);
        o.bytes = self.bytes.unwrap_or(0);
        o.output_sha256 = self.output_sha256;
        o.exit_code = self.exit_code;
        o.error = self.error;
        o.http = self
            .http_status
            .map(|status| countersign_core::HttpOutcome {
                status,
                headers: Default::default(),
                body: String::new(),
            });
        Ok(o)
    }
}

/// `POST /v1/mfa/totp` (an empty body is `{}`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaEnrollBody {
    /// A current one-time code, required when the caller already has a second factor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp: Option<String>,
}

#[cfg(test)]
mod openapi_patterns {
    use super::*;
    use countersign_core::action::ActionError;
    use proptest::prelude::*;
    use utoipa::PartialSchema as _;

    /// The pattern of `T`'s `field` in the OpenAPI document (`field` a JSON pointer under the
    /// schema's properties).
    fn pattern_of<T: utoipa::PartialSchema>(field: &str) -> String {
        let schema = serde_json::to_value(T::schema()).expect("a schema");
        schema
            .pointer(&format!("/properties/{field}/pattern"))
            .and_then(|p| p.as_str())
            .unwrap_or_else(|| panic!("no pattern at {field}: {schema}"))
            .to_owned()
    }

    fn re(p: &str) -> regex::Regex {
        regex::Regex::new(p).expect("a regex")
    }

    fn kind_pattern() -> String {
        pattern_of::<ActionBody>("kind")
    }

    fn resource_pattern() -> String {
        pattern_of::<ActionBody>("resource")
    }

    fn digest_pattern() -> String {
        pattern_of::<VoteBody>("digest")
    }

    /// Where the same field appears in several bodies, it has one pattern.
    #[test]
    fn each_field_has_one_pattern_in_every_body() {
        use countersign_core::plan::StepInput;
        assert_eq!(pattern_of::<StepInput>("kind"), kind_pattern());
        assert_eq!(pattern_of::<StepInput>("resource"), resource_pattern());
        assert_eq!(
            pattern_of::<PlanBody>("run"),
            pattern_of::<ActionBody>("run")
        );
        assert_eq!(pattern_of::<RedeemBody>("digest"), digest_pattern());
        let amend = serde_json::to_value(AmendBody::schema()).expect("a schema");
        assert_eq!(amend["properties"]["digest"]["pattern"], digest_pattern());
    }

    fn action(kind: &str, resource: &str, run: Option<&str>) -> Action {
        Action {
            kind: kind.into(),
            resource: resource.into(),
            params: serde_json::json!({}),
            justification: None,
            run: run.map(str::to_owned),
            labels: BTreeMap::new(),
        }
    }

    /// The document's patterns and `Action::validate` agree on each field (tried with the
    /// other fields valid): what the pattern allows is never refused, what it refuses always is.
    fn agree(kind: &str, resource: &str, run: Option<&str>) -> Result<(), TestCaseError> {
        let refused = |a: Action| a.validate().err();
        let kind_refused = refused(action(kind, "x", None)).is_some();
        prop_assert_eq!(
            !re(&kind_pattern()).is_match(kind),
            kind_refused,
            "kind {:?}",
            kind
        );
        let resource_refused = refused(action("k", resource, None)).is_some();
        let resource_ok =
            re(&resource_pattern()).is_match(resource) && resource.chars().count() <= 2048;
        prop_assert_eq!(!resource_ok, resource_refused, "resource {:?}", resource);
        if let Some(run) = run {
            let run_refused =
                matches!(refused(action("k", "x", Some(run))), Some(ActionError::Run));
            let run_pattern = pattern_of::<ActionBody>("run");
            prop_assert_eq!(
                !re(&run_pattern).is_match(run),
                run_refused,
                "run {:?}",
                run
            );
        }
        Ok(())
    }

    #[test]
    fn the_action_patterns_are_the_action_checks() {
        let long_kind = "k".repeat(200);
        let too_long_kind = "k".repeat(201);
        let wide = "é".repeat(2048);
        let wider = "é".repeat(2049);
        for (kind, resource, run) in [
            ("db.export", "postgres://prod", Some("run-1:a")),
            (".db", "x", None),
            ("db.", "x", None),
            ("_", "x", None),
            ("-", "x", None),
            (long_kind.as_str(), "x", None),
            (too_long_kind.as_str(), "x", None),
            ("d b", "x", None),
            ("db", "", None),
            ("db", "a\u{7}b", None),
            ("db", "a\u{85}b", None),
            ("db", "a\u{202e}b", None),
            ("db", wide.as_str(), None),
            ("db", wider.as_str(), None),
            ("db", "x", Some("")),
            ("db", "x", Some("a b")),
        ] {
            agree(kind, resource, run).expect("agree");
        }
        assert!(re(&digest_pattern()).is_match(&format!("sha256:{}", "ab".repeat(32))));
        assert!(!re(&digest_pattern()).is_match(&format!("sha256:{}", "AB".repeat(32))));
    }

    /// An `integer` in JSON Schema is a whole value however written; the bodies read it so.
    #[test]
    fn whole_numbers_are_read_however_written() {
        for text in ["484", "484.0", "4.84e2"] {
            let body: OutcomeBody =
                serde_json::from_str(&format!(r#"{{"status":"failed","http_status":{text}}}"#))
                    .expect(text);
            assert_eq!(body.http_status, Some(484), "{text}");
        }
        for text in ["484.5", "-1", "70000", "1e300"] {
            let refused = serde_json::from_str::<OutcomeBody>(&format!(
                r#"{{"status":"failed","http_status":{text}}}"#
            ));
            assert!(refused.is_err(), "{text}");
        }
        let ask: StandingAskBody =
            serde_json::from_str(r#"{"for":"30m","uses":2.0}"#).expect("2.0");
        assert_eq!(ask.uses, 2);
    }

    proptest! {
        #[test]
        fn any_action_fields_are_refused_by_both_or_neither(
            kind in "[a-z._ -]{0,4}",
            resource in "[a-z:/\\x00-\\x1f\\x7f-\\x9f\u{200e}\u{2066}é ]{0,6}",
            run in proptest::option::of("[a-z:._ -]{0,4}"),
        ) {
            agree(&kind, &resource, run.as_deref())?;
        }

        #[test]
        fn a_digest_matches_the_pattern_exactly_when_it_parses(s in "(sha256:)?[0-9a-fA-F]{62,66}") {
            prop_assert_eq!(
                re(&digest_pattern()).is_match(&s),
                s.parse::<countersign_core::Digest>().is_ok()
            );
        }
    }
}
