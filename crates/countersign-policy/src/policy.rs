//! A compiled policy: the file parsed, checked and turned into rules whose globs and CEL are
//! ready to run, with each rule's decision computed in advance. Everything that can be wrong with
//! a policy is found here, at load, and reported with the file, line and rule; a `Policy` that
//! exists is valid. The only I/O in the crate is `Policy::load` reading its file.

use crate::PolicyError;
use crate::condition::Condition;
use crate::document::{Document, ReviewDoc, RuleDoc};
use crate::glob::Globs;
use crate::location::SourceText;
use crate::requirements::{self, BUILT_IN_REVIEW_TIMEOUT_SECONDS};
use countersign_core::decision::DEFAULT_GRANT_TTL_SECONDS;
use countersign_core::{Decision, Effect};
use sha2::{Digest as _, Sha256};
use std::path::Path;
use std::sync::Arc;

/// A compiled, immutable policy. Cheap to share behind an `Arc`; evaluation never fails.
pub struct Policy {
    pub(crate) source: String,
    pub(crate) hash: String,
    pub(crate) rules: Vec<Rule>,
    /// The decision when no rule matches.
    pub(crate) default_decision: Decision,
    pub(crate) default_review_timeout_seconds: u64,
    pub(crate) env: Arc<cel::Env>,
    /// The literal patterns of the rules' `matches` calls, compiled once.
    pub(crate) regexes: Arc<[regex::Regex]>,
}

/// One compiled rule.
pub(crate) struct Rule {
    pub name: String,
    pub line: Option<usize>,
    pub kind: Option<Globs>,
    pub resource: Option<Globs>,
    pub principal: Option<Globs>,
    pub when: Option<Condition>,
    /// What this rule decides when it matches.
    pub decision: Decision,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("source", &self.source)
            .field("hash", &self.hash)
            .field("rules", &self.rules.len())
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// Parses and checks policy YAML. `source` names the file in errors.
    pub fn parse(text: &str, source: &str) -> Result<Policy, PolicyError> {
        let document: Document =
            yaml_serde::from_str(text).map_err(|e| yaml_error(&e, text, source, "rules"))?;
        compile(document, text, source)
    }

    /// Reads and parses the policy file at `path`.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let source = path.display().to_string();
        let bytes = std::fs::read(path)
            .map_err(|e| PolicyError::new(&source, format!("cannot read the policy file: {e}")))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            PolicyError::new(
                &source,
                format!(
                    "the policy file is not UTF-8 (byte {})",
                    e.utf8_error().valid_up_to()
                ),
            )
        })?;
        Policy::parse(&text, &source)
    }

    /// `sha256:<hex>` of the exact bytes of the file.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The file name the policy was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// `defaults.review.timeout` (30m when unset): how long held actions wait at most.
    pub fn default_review_timeout_seconds(&self) -> u64 {
        self.default_review_timeout_seconds
    }

    /// The rule names, in the order they are tried.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.name.as_str())
    }
}

/// Turns a YAML error into a `PolicyError` with the line, and the item's name when the error is
/// inside the list `list_key` (`rules[2].review: ...` names the third rule).
pub(crate) fn yaml_error(
    error: &yaml_serde::Error,
    text: &str,
    source: &str,
    list_key: &str,
) -> PolicyError {
    let mut message = error.to_string();
    if let Some(at) = message.rfind(" at line ") {
        message.truncate(at);
    }
    let mut item = None;
    let prefix = format!("{list_key}[");
    if let Some(rest) = message.strip_prefix(&prefix)
        && let Some((index, tail)) = rest.split_once(']')
        && let Ok(index) = index.parse::<usize>()
    {
        item = item_name(text, list_key, index);
        if item.is_some() {
            let tail = tail.trim_start_matches('.');
            message = tail.strip_prefix(": ").unwrap_or(tail).to_string();
        }
    }
    let line = yaml_line(error, text);
    if let Some(at) = message.rfind(" at position ") {
        message.truncate(at);
    }
    let error_out = PolicyError::new(source, message).at(line);
    match item {
        Some(name) if list_key == "rules" => error_out.in_rule(name),
        Some(name) => PolicyError {
            message: format!("case `{name}`: {}", error_out.message),
            ..error_out
        },
        None => error_out,
    }
}

/// The 1-based line a YAML error is on. The parser's location is right for what it parses;
/// what its reader refuses first (control characters, invalid encodings) comes with line 1 and
/// the byte offset in the message (`… at position N`), so the line is counted up to that
/// offset (found by the fuzz target `policy_condition`: a DEL on line 7 was reported on line 1).
pub fn yaml_line(error: &yaml_serde::Error, text: &str) -> Option<usize> {
    let message = error.to_string();
    let offset = message
        .rsplit_once(" at position ")
        .and_then(|(_, n)| n.trim().parse::<usize>().ok());
    match offset {
        Some(offset) => {
            let before = text.as_bytes().get(..offset.min(text.len()))?;
            Some(1 + before.iter().filter(|b| **b == b'\n').count())
        }
        None => error.location().map(|l| l.line()),
    }
}

/// The `name` of item `index` of the top-level list `list_key`, read leniently.
fn item_name(text: &str, list_key: &str, index: usize) -> Option<String> {
    let value: yaml_serde::Value = yaml_serde::from_str(text).ok()?;
    value
        .get(list_key)?
        .get(index)?
        .get("name")?
        .as_str()
        .map(str::to_string)
}

fn compile(document: Document, text: &str, source: &str) -> Result<Policy, PolicyError> {
    let lines = SourceText::new(text);
    let error = |message: String| PolicyError::new(source, message);
    if document.version != 1 {
        return Err(error(format!(
            "unsupported policy version {}: this Countersign reads `version: 1`",
            document.version
        ))
        .at(lines.top_level_key("version")));
    }
    let hash = format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())));
    let defaults = &document.defaults.review;
    let defaults_line = lines.top_level_key("defaults");
    if let Some(approvers) = &defaults.approvers {
        requirements::clauses(approvers, "defaults.review.approvers")
            .map_err(|m| error(m).at(defaults_line))?;
    }
    let default_decision = default_decision(document.default, defaults, &hash)
        .map_err(|m| error(m).at(lines.top_level_key("default")))?;

    let env = Arc::new(cel::Env::stdlib());
    let mut regexes = Vec::new();
    let names: Vec<&str> = document.rules.iter().map(|r| r.name.as_str()).collect();
    let starts = lines.named_items("rules", &names);
    let mut rules: Vec<Rule> = Vec::with_capacity(document.rules.len());
    for (index, doc) in document.rules.iter().enumerate() {
        let line = starts[index];
        let next = starts[index + 1..].iter().flatten().next().copied();
        let key_line = |key: &str| line.and_then(|l| lines.key_between(key, l, next)).or(line);
        let in_rule = |message: String, at: Option<usize>| {
            let e = error(message).at(at);
            if doc.name.is_empty() {
                e
            } else {
                e.in_rule(&doc.name)
            }
        };
        check_name(&doc.name).map_err(|m| in_rule(m, key_line("name")))?;
        if let Some(first) = rules.iter().find(|r| r.name == doc.name) {
            let also = first
                .line
                .map(|l| format!(" (first at line {l})"))
                .unwrap_or_default();
            return Err(in_rule(
                format!("duplicate rule name{also}: every rule needs its own name"),
                line,
            ));
        }
        let globs = |written: &Option<crate::document::Globs>, key: &str| {
            written
                .as_ref()
                .map(|g| Globs::compile(&g.0))
                .transpose()
                .map_err(|m| in_rule(format!("match.{key}: {m}"), key_line(key)))
        };
        let kind = globs(&doc.matches.kind, "kind")?;
        let resource = globs(&doc.matches.resource, "resource")?;
        // Principal ids are compared in their canonical form (ASCII lower case, see
        // `PrincipalId::parse`), so a pattern written in another case is folded the same way.
        let principal =
            doc.matches.principal.as_ref().map(|g| {
                crate::document::Globs(g.0.iter().map(|p| p.to_ascii_lowercase()).collect())
            });
        let principal = globs(&principal, "principal")?;
        let when = doc
            .when
            .as_deref()
            .map(|w| Condition::compile(&env, w, &mut regexes))
            .transpose()
            .map_err(|m| in_rule(m, key_line("when")))?;
        let decision =
            rule_decision(doc, defaults, &hash).map_err(|(m, key)| in_rule(m, key_line(key)))?;
        rules.push(Rule {
            name: doc.name.clone(),
            line,
            kind,
            resource,
            principal,
            when,
            decision,
        });
    }
    Ok(Policy {
        source: source.to_string(),
        hash,
        rules,
        default_decision,
        default_review_timeout_seconds: defaults
            .timeout
            .map_or(BUILT_IN_REVIEW_TIMEOUT_SECONDS, |d| d.0),
        env,
        regexes: regexes.into(),
    })
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a rule needs a non-empty `name`".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        return Err(format!(
            "rule name {name:?} may only use letters, digits, `_`, `.` and `-`"
        ));
    }
    Ok(())
}

fn default_decision(effect: Effect, defaults: &ReviewDoc, hash: &str) -> Result<Decision, String> {
    let requirements = match effect {
        Effect::Review => Some(
            requirements::resolve(&ReviewDoc::default(), defaults).map_err(|_| {
                "the policy default is `review`, so `defaults.review.approvers` must say who \
                 reviews, e.g. `defaults: {review: {approvers: [{group: sre, count: 1}]}}`"
                    .to_string()
            })?,
        ),
        Effect::Allow | Effect::Deny => None,
    };
    Ok(Decision {
        effect,
        rule: None,
        reason: format!("no rule matched; policy default is {}", effect.as_str()),
        grant_ttl_seconds: requirements
            .as_ref()
            .map_or(DEFAULT_GRANT_TTL_SECONDS, |r| r.grant_ttl_seconds),
        requirements,
        policy_hash: hash.to_string(),
    })
}

/// The decision a rule gives when it matches, or what is wrong and under which key.
fn rule_decision(
    doc: &RuleDoc,
    defaults: &ReviewDoc,
    hash: &str,
) -> Result<Decision, (String, &'static str)> {
    let name = &doc.name;
    if let Some(reason) = &doc.reason
        && reason.trim().is_empty()
    {
        return Err((
            "`reason` is empty: write a sentence or leave it out".into(),
            "reason",
        ));
    }
    if doc.review.is_some() && doc.effect != Effect::Review {
        return Err((
            format!(
                "a `review` block only applies to `effect: review`, but this rule's effect is \
                 `{}`: remove the block or change the effect",
                doc.effect.as_str()
            ),
            "review",
        ));
    }
    if doc.grant_ttl.is_some() && doc.effect != Effect::Allow {
        let fix = match doc.effect {
            Effect::Review => "set it inside the review block as `review.grant_ttl`",
            _ => "a denied action gets no grant; remove it",
        };
        return Err((
            format!("`grant_ttl` on a rule applies to `effect: allow` only: {fix}"),
            "grant_ttl",
        ));
    }
    let mut decision = Decision {
        effect: doc.effect,
        rule: Some(name.clone()),
        reason: String::new(),
        requirements: None,
        policy_hash: hash.to_string(),
        grant_ttl_seconds: DEFAULT_GRANT_TTL_SECONDS,
    };
    let generated = match doc.effect {
        Effect::Allow => {
            decision.grant_ttl_seconds = doc.grant_ttl.map_or(DEFAULT_GRANT_TTL_SECONDS, |d| d.0);
            format!("allowed by rule {name}")
        }
        Effect::Deny => format!("denied by rule {name}"),
        Effect::Review => {
            let own = doc.review.as_ref();
            let requirements =
                requirements::resolve(own.unwrap_or(&ReviewDoc::default()), defaults)
                    .map_err(|m| (m, if own.is_some() { "review" } else { "effect" }))?;
            let sentence = format!("rule {name} requires review: {}", requirements.summary());
            decision.grant_ttl_seconds = requirements.grant_ttl_seconds;
            decision.requirements = Some(requirements);
            sentence
        }
    };
    decision.reason = doc.reason.clone().unwrap_or(generated);
    Ok(decision)
}
