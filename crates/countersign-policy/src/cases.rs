//! Offline policy tests (`countersign policy test POLICY CASES.yaml`, like `opa test`): a YAML
//! list of principals and actions with the decision each should get. A case passes when every
//! field it states in `expect` holds; fields it leaves out are not checked. This module only
//! reads the cases text it is given and calls `Policy::evaluate`; it never touches files.
//!
//! ```yaml
//! cases:
//!   - name: big prod export needs sre and security
//!     principal: {id: "agent:deploy-bot", owner: "user:alice@example.com", groups: [deployers]}
//!     action: {kind: db.export, resource: "postgres://prod/customers", params: {rows: 5000}}
//!     now: "2026-01-01T00:00:00Z"          # optional; this is the default
//!     expect:
//!       effect: review                     # required: allow | deny | review
//!       rule: prod-export-needs-two        # optional; `rule: null` means the policy default
//!       reason_contains: "1 of security"   # optional substring of the reason
//!       approvers: [{group: sre, count: 1}, {group: security, count: 1}]  # optional, review only
//!       mfa: false                         # optional, review only
//!       pause_run: true                    # optional, review only
//!       timeout: 15m                       # optional, review only
//! ```
//! `principal` may also be just the id: `principal: "user:bob@example.com"`.

use crate::document::ClauseDoc;
use crate::duration::{Duration, format_seconds};
use crate::location::SourceText;
use crate::policy::yaml_error;
use crate::{Policy, PolicyError, requirements};
use countersign_core::{Action, Clause, Decision, Effect, Principal, PrincipalId, Timestamp};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The time a case is evaluated at when it names none, so that results never depend on the clock.
pub const DEFAULT_CASE_TIME: &str = "2026-01-01T00:00:00Z";

/// The outcome of one case, with human summaries of what was expected and what the policy said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseResult {
    pub name: String,
    pub passed: bool,
    pub expected: String,
    pub got: String,
}

impl fmt::Display for CaseResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.passed {
            write!(f, "PASS {}", self.name)
        } else {
            write!(
                f,
                "FAIL {}\n     expected: {}\n     got:      {}",
                self.name, self.expected, self.got
            )
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CasesDoc {
    cases: Vec<CaseDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseDoc {
    name: String,
    principal: PrincipalDoc,
    action: ActionDoc,
    now: Option<String>,
    expect: ExpectDoc,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrincipalFields {
    id: String,
    owner: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
}

/// A principal written as a map, or as just its id.
struct PrincipalDoc(PrincipalFields);

impl<'de> Deserialize<'de> for PrincipalDoc {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PrincipalVisitor;

        impl<'de> Visitor<'de> for PrincipalVisitor {
            type Value = PrincipalDoc;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a principal id such as \"agent:deploy-bot\", or {id, owner, groups}")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<PrincipalDoc, E> {
                Ok(PrincipalDoc(PrincipalFields {
                    id: v.to_string(),
                    owner: None,
                    groups: Vec::new(),
                }))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PrincipalDoc, A::Error> {
                PrincipalFields::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(PrincipalDoc)
            }
        }

        deserializer.deserialize_any(PrincipalVisitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionDoc {
    kind: String,
    resource: String,
    #[serde(default = "empty_object")]
    params: serde_json::Value,
    justification: Option<String>,
    run: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectDoc {
    effect: Effect,
    /// Absent: not checked. `null`: the policy default decided.
    #[serde(default, deserialize_with = "present")]
    rule: Option<Option<String>>,
    reason_contains: Option<String>,
    approvers: Option<Vec<ClauseDoc>>,
    mfa: Option<bool>,
    pause_run: Option<bool>,
    timeout: Option<Duration>,
}

/// Tells `rule: null` (the default decided) apart from no `rule` key (not checked).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// Runs every case in `cases_yaml` against `policy`. `Err` when the cases file itself is wrong;
/// a case whose expectation does not hold is a `CaseResult` with `passed: false`.
pub fn run(
    policy: &Policy,
    cases_yaml: &str,
    source: &str,
) -> Result<Vec<CaseResult>, PolicyError> {
    let doc: CasesDoc = yaml_serde::from_str(cases_yaml)
        .map_err(|e| yaml_error(&e, cases_yaml, source, "cases"))?;
    let names: Vec<&str> = doc.cases.iter().map(|c| c.name.as_str()).collect();
    let lines = SourceText::new(cases_yaml).named_items("cases", &names);
    let mut results = Vec::with_capacity(doc.cases.len());
    for (index, case) in doc.cases.iter().enumerate() {
        let fail = |message: String| {
            PolicyError::new(source, format!("case `{}`: {message}", case.name)).at(lines[index])
        };
        if case.name.trim().is_empty() {
            return Err(
                PolicyError::new(source, "every case needs a non-empty `name`").at(lines[index]),
            );
        }
        if names[..index].contains(&case.name.as_str()) {
            return Err(fail(
                "another case has the same name; give each case its own".into(),
            ));
        }
        let (principal, action, now) = inputs(case).map_err(fail)?;
        let expect = Expected::from_doc(&case.expect).map_err(fail)?;
        let decision = policy.evaluate(&principal, &action, now);
        results.push(CaseResult {
            name: case.name.clone(),
            passed: expect.holds(&decision),
            expected: expect.summary(),
            got: summary(&decision),
        });
    }
    Ok(results)
}

fn inputs(case: &CaseDoc) -> Result<(Principal, Action, Timestamp), String> {
    let id = |text: &str| PrincipalId::parse(text).map_err(|e| e.to_string());
    let p = &case.principal.0;
    let principal = Principal {
        id: id(&p.id)?,
        owner: p.owner.as_deref().map(id).transpose()?,
        groups: p.groups.clone(),
    };
    let a = &case.action;
    let action = Action {
        kind: a.kind.clone(),
        resource: a.resource.clone(),
        params: a.params.clone(),
        justification: a.justification.clone(),
        run: a.run.clone(),
        labels: a.labels.clone(),
    };
    action
        .validate()
        .map_err(|e| format!("the action is not valid: {e}"))?;
    let now_text = case.now.as_deref().unwrap_or(DEFAULT_CASE_TIME);
    let now = chrono::DateTime::parse_from_rfc3339(now_text)
        .map_err(|e| {
            format!("`now` {now_text:?} is not an RFC 3339 time ({e}), e.g. {DEFAULT_CASE_TIME:?}")
        })?
        .to_utc();
    Ok((principal, action, now))
}

/// A checked `expect` block.
struct Expected {
    effect: Effect,
    rule: Option<Option<String>>,
    reason_contains: Option<String>,
    approvers: Option<Vec<Clause>>,
    mfa: Option<bool>,
    pause_run: Option<bool>,
    timeout_seconds: Option<u64>,
}

impl Expected {
    fn from_doc(doc: &ExpectDoc) -> Result<Self, String> {
        let review_only = doc.approvers.is_some()
            || doc.mfa.is_some()
            || doc.pause_run.is_some()
            || doc.timeout.is_some();
        if review_only && doc.effect != Effect::Review {
            return Err(
                "`approvers`, `mfa`, `pause_run` and `timeout` can only be expected of a review"
                    .into(),
            );
        }
        Ok(Self {
            effect: doc.effect,
            rule: doc.rule.clone(),
            reason_contains: doc.reason_contains.clone(),
            approvers: doc
                .approvers
                .as_deref()
                .map(|a| requirements::clauses(a, "expect.approvers"))
                .transpose()?,
            mfa: doc.mfa,
            pause_run: doc.pause_run,
            timeout_seconds: doc.timeout.map(|d| d.0),
        })
    }

    fn holds(&self, d: &Decision) -> bool {
        let r = d.requirements.as_ref();
        d.effect == self.effect
            && self.rule.as_ref().is_none_or(|rule| *rule == d.rule)
            && self
                .reason_contains
                .as_ref()
                .is_none_or(|s| d.reason.contains(s.as_str()))
            && self
                .approvers
                .as_ref()
                .is_none_or(|a| r.is_some_and(|r| same_clauses(a, &r.approvers)))
            && self.mfa.is_none_or(|m| r.is_some_and(|r| r.mfa == m))
            && self
                .pause_run
                .is_none_or(|p| r.is_some_and(|r| r.pause_run == p))
            && self
                .timeout_seconds
                .is_none_or(|t| r.is_some_and(|r| r.timeout_seconds == t))
    }

    fn summary(&self) -> String {
        let mut out = self.effect.as_str().to_string();
        match &self.rule {
            Some(Some(rule)) => out.push_str(&format!(" by rule {rule}")),
            Some(None) => out.push_str(" by the policy default"),
            None => {}
        }
        let mut details = Vec::new();
        if let Some(a) = &self.approvers {
            details.push(clauses_summary(a));
        }
        if let Some(m) = self.mfa {
            details.push(format!("mfa {m}"));
        }
        if let Some(p) = self.pause_run {
            details.push(format!("pause_run {p}"));
        }
        if let Some(t) = self.timeout_seconds {
            details.push(format!("timeout {}", format_seconds(t)));
        }
        if let Some(s) = &self.reason_contains {
            details.push(format!("reason containing {s:?}"));
        }
        if !details.is_empty() {
            out.push_str(&format!(" ({})", details.join("; ")));
        }
        out
    }
}

fn same_clauses(a: &[Clause], b: &[Clause]) -> bool {
    let sorted = |c: &[Clause]| {
        let mut v: Vec<(String, u32)> = c.iter().map(|c| (c.group.clone(), c.count)).collect();
        v.sort();
        v
    };
    sorted(a) == sorted(b)
}

fn clauses_summary(clauses: &[Clause]) -> String {
    clauses
        .iter()
        .map(|c| format!("{} of {}", c.count, c.group))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "review by rule X (1 of sre; mfa false; pause_run true; timeout 15m): <reason>".
fn summary(d: &Decision) -> String {
    let by = match &d.rule {
        Some(rule) => format!("by rule {rule}"),
        None => "by the policy default".to_string(),
    };
    let details = match &d.requirements {
        Some(r) => format!(
            " ({}; mfa {}; pause_run {}; timeout {})",
            r.summary(),
            r.mfa,
            r.pause_run,
            format_seconds(r.timeout_seconds)
        ),
        None => String::new(),
    };
    format!("{} {by}{details}: {}", d.effect.as_str(), d.reason)
}
