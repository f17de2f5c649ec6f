//! Deciding one action: rules are tried in order and the first whose globs match and whose
//! `when` is true decides; none matching gives the policy default. A `when` that cannot be
//! evaluated (a missing field, a type mismatch, a non-boolean result) denies the action and names
//! the rule: the policy fails closed, and an error is never read as `false`. `explain` runs the
//! very same walk and records what each rule did. Pure: no clock (time is `now`), no I/O.

use crate::budget::Walk;
use crate::condition::Bindings;
use crate::duration::format_seconds;
use crate::policy::{Policy, Rule};
use countersign_core::decision::DEFAULT_GRANT_TTL_SECONDS;
use countersign_core::{Action, Decision, Effect, Principal, Timestamp};
use serde::Serialize;
use std::fmt;

/// What one rule did with one action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RuleOutcome {
    /// The action's kind matched none of the rule's `match.kind` globs.
    KindDiffers {
        globs: Vec<String>,
    },
    ResourceDiffers {
        globs: Vec<String>,
    },
    PrincipalDiffers {
        globs: Vec<String>,
    },
    /// The globs matched and `when` evaluated to false.
    ConditionFalse,
    /// `when` could not be evaluated; this rule denied the action (fail closed).
    ConditionFailed {
        error: String,
    },
    /// This rule decided.
    Matched,
    /// An earlier rule decided, so this one was not tried.
    NotReached,
}

/// One line of an explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleTrace {
    pub rule: String,
    /// Where the rule starts in the policy file.
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    #[serde(flatten)]
    pub outcome: RuleOutcome,
}

/// Which rule decided an action and why, rule by rule, with the decision itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub policy: String,
    pub principal: String,
    pub kind: String,
    pub resource: String,
    pub rules: Vec<RuleTrace>,
    pub decision: Decision,
}

/// How far one rule got, without allocating on the paths that evaluation takes for every rule.
pub(crate) enum Step {
    KindDiffers,
    ResourceDiffers,
    PrincipalDiffers,
    ConditionFalse,
    ConditionFailed(String),
    Matched,
}

impl Policy {
    /// The decision for `action` requested by `principal` at `now`. Never fails.
    ///
    /// Runs every condition to its end, however long it takes: for offline use (`policy test`,
    /// replay). The gateway uses `evaluate_inline` and `evaluate_deferred` (module `budget`).
    pub fn evaluate(&self, principal: &Principal, action: &Action, now: Timestamp) -> Decision {
        self.decide(principal, action, now, Walk::All, |_, _| {})
            .unwrap_or_else(|_| unreachable_deferral(self))
    }

    /// The decision together with what every rule did.
    pub fn explain(&self, principal: &Principal, action: &Action, now: Timestamp) -> Explanation {
        let mut rules = Vec::with_capacity(self.rules.len());
        let decision = self
            .decide(principal, action, now, Walk::All, |rule, step| {
                let outcome = match step {
                    Step::KindDiffers => RuleOutcome::KindDiffers {
                        globs: describe(&rule.kind),
                    },
                    Step::ResourceDiffers => RuleOutcome::ResourceDiffers {
                        globs: describe(&rule.resource),
                    },
                    Step::PrincipalDiffers => RuleOutcome::PrincipalDiffers {
                        globs: describe(&rule.principal),
                    },
                    Step::ConditionFalse => RuleOutcome::ConditionFalse,
                    Step::ConditionFailed(error) => RuleOutcome::ConditionFailed {
                        error: error.clone(),
                    },
                    Step::Matched => RuleOutcome::Matched,
                };
                rules.push(trace(rule, outcome));
            })
            .unwrap_or_else(|_| unreachable_deferral(self));
        for rule in &self.rules[rules.len()..] {
            rules.push(trace(rule, RuleOutcome::NotReached));
        }
        Explanation {
            policy: self.source.clone(),
            principal: principal.id.to_string(),
            kind: action.kind.clone(),
            resource: action.resource.clone(),
            rules,
            decision,
        }
    }

    /// The one walk over the rules that `evaluate`, `explain` and the budgeted evaluation use.
    /// `Err(index)`: the walk stopped before rule `index`, whose condition needs a budget
    /// (`Walk::Inline` only).
    pub(crate) fn decide(
        &self,
        principal: &Principal,
        action: &Action,
        now: Timestamp,
        walk: Walk<'_>,
        mut observe: impl FnMut(&Rule, &Step),
    ) -> Result<Decision, usize> {
        let (start, budget) = match walk {
            Walk::From(start, budget) => (start, Some(budget)),
            Walk::All | Walk::Inline => (0, None),
        };
        let bindings = Bindings::new(principal, action, now, budget.map(|b| &b.cancelled));
        // Built on the first `when` that is reached, then shared by the rules after it.
        let mut context = None;
        for (index, rule) in self.rules.iter().enumerate().skip(start) {
            let step = if !matches(&rule.kind, &action.kind) {
                Step::KindDiffers
            } else if !matches(&rule.resource, &action.resource) {
                Step::ResourceDiffers
            } else if !matches(&rule.principal, principal.id.as_str()) {
                Step::PrincipalDiffers
            } else if let Some(condition) = &rule.when {
                if matches!(walk, Walk::Inline) && condition.budgeted() {
                    return Err(index);
                }
                if let Some(budget) = budget {
                    budget.enter(index);
                }
                let context =
                    context.get_or_insert_with(|| bindings.context(&self.env, &self.regexes));
                let outcome = condition.evaluate(context);
                // Whatever a cancelled evaluation returned is void: it may have been cut short
                // anywhere (an error that `all` absorbed into `false`, say).
                if let Some(budget) = budget
                    && budget.is_cancelled()
                {
                    return Ok(self.budget_exceeded(index, "it ran out of time"));
                }
                match outcome {
                    Ok(true) => Step::Matched,
                    Ok(false) => Step::ConditionFalse,
                    Err(error) => Step::ConditionFailed(bindings.explain_error(error)),
                }
            } else {
                Step::Matched
            };
            observe(rule, &step);
            match step {
                Step::Matched => return Ok(rule.decision.clone()),
                Step::ConditionFailed(error) => return Ok(self.failed_closed(rule, &error)),
                _ => {}
            }
        }
        Ok(self.default_decision.clone())
    }

    /// Whether `principal` is denied every action of `kind` on `resource`, whatever its params
    /// (and whenever it is asked): the first rule whose globs match has no `when` and denies, or
    /// only conditional denials come before a denying default. A conditional rule that does not
    /// deny may let some action through, so it answers "no". The MCP gateway uses this to hide
    /// tools an agent could never call.
    pub fn always_denies(&self, principal: &Principal, kind: &str, resource: &str) -> bool {
        for rule in &self.rules {
            if !matches(&rule.kind, kind)
                || !matches(&rule.resource, resource)
                || !matches(&rule.principal, principal.id.as_str())
            {
                continue;
            }
            let denies = rule.decision.effect == Effect::Deny;
            match rule.when {
                None => return denies,
                // Whether it matches or not, the answer is deny or a later rule.
                Some(_) if denies => continue,
                Some(_) => return false,
            }
        }
        self.default_decision.effect == Effect::Deny
    }

    pub(crate) fn failed_closed(&self, rule: &Rule, error: &str) -> Decision {
        Decision {
            effect: Effect::Deny,
            rule: Some(rule.name.clone()),
            reason: format!(
                "rule `{}` failed to evaluate: {error}; denied (policy fails closed)",
                rule.name
            ),
            requirements: None,
            policy_hash: self.hash.clone(),
            grant_ttl_seconds: DEFAULT_GRANT_TTL_SECONDS,
        }
    }
}

/// Only `Walk::Inline` defers; a walk that cannot defer still needs a value here, and denying
/// keeps it closed.
fn unreachable_deferral(policy: &Policy) -> Decision {
    policy.budget_exceeded(0, "the evaluation was deferred unexpectedly")
}

fn matches(globs: &Option<crate::glob::Globs>, text: &str) -> bool {
    globs.as_ref().is_none_or(|g| g.is_match(text))
}

fn describe(globs: &Option<crate::glob::Globs>) -> Vec<String> {
    globs
        .as_ref()
        .map_or_else(|| vec!["*".to_string()], |g| g.patterns().to_vec())
}

/// One glob in backquotes, or "any of" a list of them.
fn globs_text(globs: &[String]) -> String {
    let quoted: Vec<String> = globs.iter().map(|g| format!("`{g}`")).collect();
    match quoted.as_slice() {
        [one] => one.clone(),
        many => format!("any of {}", many.join(", ")),
    }
}

fn trace(rule: &Rule, outcome: RuleOutcome) -> RuleTrace {
    RuleTrace {
        rule: rule.name.clone(),
        line: rule.line,
        when: rule.when.as_ref().map(|w| w.source().to_string()),
        outcome,
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "policy:    {} ({})",
            self.policy, self.decision.policy_hash
        )?;
        writeln!(f, "principal: {}", self.principal)?;
        writeln!(f, "action:    {} on {}", self.kind, self.resource)?;
        writeln!(f)?;
        for (i, t) in self.rules.iter().enumerate() {
            let at = t.line.map(|l| format!(" (line {l})")).unwrap_or_default();
            let when = t.when.as_deref().unwrap_or_default();
            let what = match &t.outcome {
                RuleOutcome::KindDiffers { globs } => {
                    format!(
                        "skipped: kind `{}` does not match {}",
                        self.kind,
                        globs_text(globs)
                    )
                }
                RuleOutcome::ResourceDiffers { globs } => {
                    format!(
                        "skipped: resource `{}` does not match {}",
                        self.resource,
                        globs_text(globs)
                    )
                }
                RuleOutcome::PrincipalDiffers { globs } => {
                    format!(
                        "skipped: principal `{}` does not match {}",
                        self.principal,
                        globs_text(globs)
                    )
                }
                RuleOutcome::ConditionFalse => format!("skipped: `{when}` is false"),
                RuleOutcome::ConditionFailed { error } => {
                    format!(
                        "FAILED: `{when}` could not be evaluated: {error}; denied (fails closed)"
                    )
                }
                RuleOutcome::Matched if t.when.is_some() => format!("MATCHED: `{when}` is true"),
                RuleOutcome::Matched => "MATCHED".to_string(),
                RuleOutcome::NotReached => "not reached".to_string(),
            };
            writeln!(f, "  {:>3}. {}{at}: {what}", i + 1, t.rule)?;
        }
        if self.decision.rule.is_none() {
            writeln!(f, "  no rule matched: the policy default applies")?;
        }
        writeln!(f)?;
        let d = &self.decision;
        match &d.rule {
            Some(rule) => writeln!(f, "decision:  {} (rule {rule})", d.effect.as_str())?,
            None => writeln!(f, "decision:  {} (policy default)", d.effect.as_str())?,
        }
        writeln!(f, "reason:    {}", d.reason)?;
        if let Some(r) = &d.requirements {
            writeln!(
                f,
                "requires:  {}; {}timeout {} then deny; {}grant valid {}",
                r.summary(),
                if r.mfa { "MFA; " } else { "" },
                format_seconds(r.timeout_seconds),
                if r.pause_run { "pauses the run; " } else { "" },
                format_seconds(r.grant_ttl_seconds),
            )?;
        } else if d.effect == Effect::Allow {
            writeln!(
                f,
                "grant:     valid {}",
                format_seconds(d.grant_ttl_seconds)
            )?;
        }
        Ok(())
    }
}
