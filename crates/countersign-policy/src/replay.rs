//! Policy replay (issue 18): the recorded actions decided again by a proposed policy, each as
//! its requester asked it and at the time it was asked, so a team sees what loosening or
//! tightening a policy does to the people reviewing before it loads it.
//!
//! Pure: the caller reads the requests (from the database or an export).

use crate::Policy;
use countersign_core::{Effect, Request};
use serde::Serialize;
use std::collections::BTreeMap;

/// How many example requests each transition names.
pub const EXAMPLES: usize = 3;

/// What the proposed policy would change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayReport {
    pub replayed: usize,
    /// The same effect (by the same rule or another).
    pub unchanged: usize,
    /// Of those, the ones another rule would decide.
    pub rule_changed: usize,
    /// Effects that would change, the largest first.
    pub transitions: Vec<EffectChange>,
}

/// One change of effect (e.g. allow → review), how often, under which rules, with examples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EffectChange {
    pub from: &'static str,
    pub to: &'static str,
    pub count: usize,
    pub rules: Vec<RuleChange>,
    pub examples: Vec<Example>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleChange {
    /// `None`: the policy's default decided.
    pub from_rule: Option<String>,
    pub to_rule: Option<String>,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Example {
    pub request: String,
    pub requester: String,
    pub kind: String,
    pub resource: String,
}

/// Decides each of `requests` again with `policy` (as its requester, at its creation time) and
/// compares the effect and rule with the recorded decision.
pub fn replay<'a>(
    policy: &Policy,
    requests: impl IntoIterator<Item = &'a Request>,
) -> ReplayReport {
    /// One transition's count, its (from rule, to rule) pairs counted, its examples.
    #[derive(Default)]
    struct Acc {
        count: usize,
        rules: BTreeMap<(Option<String>, Option<String>), usize>,
        examples: Vec<Example>,
    }
    let mut by: BTreeMap<(&'static str, &'static str), Acc> = BTreeMap::new();
    let (mut replayed, mut unchanged, mut rule_changed) = (0, 0, 0);
    for req in requests {
        replayed += 1;
        let was = req.decision();
        let now = policy.evaluate(req.requester(), req.action(), req.created_at());
        if now.effect == was.effect {
            unchanged += 1;
            rule_changed += usize::from(now.rule != was.rule);
            continue;
        }
        let entry = by.entry((name(was.effect), name(now.effect))).or_default();
        entry.count += 1;
        *entry
            .rules
            .entry((was.rule.clone(), now.rule.clone()))
            .or_default() += 1;
        if entry.examples.len() < EXAMPLES {
            entry.examples.push(Example {
                request: req.id().to_owned(),
                requester: req.requester().id.to_string(),
                kind: req.action().kind.clone(),
                resource: req.action().resource.clone(),
            });
        }
    }
    let mut transitions: Vec<EffectChange> = by
        .into_iter()
        .map(|((from, to), acc)| {
            let mut rules: Vec<RuleChange> = acc
                .rules
                .into_iter()
                .map(|((from_rule, to_rule), count)| RuleChange {
                    from_rule,
                    to_rule,
                    count,
                })
                .collect();
            rules.sort_by_key(|r| std::cmp::Reverse(r.count));
            EffectChange {
                from,
                to,
                count: acc.count,
                rules,
                examples: acc.examples,
            }
        })
        .collect();
    transitions.sort_by_key(|t| std::cmp::Reverse(t.count));
    ReplayReport {
        replayed,
        unchanged,
        rule_changed,
        transitions,
    }
}

fn name(effect: Effect) -> &'static str {
    effect.as_str()
}
