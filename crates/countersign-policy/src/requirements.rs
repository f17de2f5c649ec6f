//! How a rule's `review` block becomes the `Requirements` of a decision: each field is taken from
//! the rule, else from `defaults.review`, else from the built-in defaults (timeout 30m, on
//! timeout deny, no MFA, the run keeps going, grants valid 5m, no comment or reading time
//! required). Checked once at load; the
//! approver clauses must name at least one group, each once, each needing at least one person.

use crate::document::{ClauseDoc, ReviewDoc, StandingDoc};
use countersign_core::decision::DEFAULT_GRANT_TTL_SECONDS;
use countersign_core::standing::{
    MAX_STANDING_SECONDS, MAX_STANDING_USES, ScopeField, StandingRule,
};
use countersign_core::{Clause, Escalation, OnTimeout, Requirements, check_target};

/// Built-in review timeout when neither the rule nor `defaults.review` sets one.
pub const BUILT_IN_REVIEW_TIMEOUT_SECONDS: u64 = 30 * 60;

/// Fills `rule` from `defaults`, then from the built-ins. `Err` says what is missing or wrong.
pub(crate) fn resolve(rule: &ReviewDoc, defaults: &ReviewDoc) -> Result<Requirements, String> {
    let approvers = match (&rule.approvers, &defaults.approvers) {
        (Some(own), _) => clauses(own, "review.approvers")?,
        (None, Some(inherited)) => clauses(inherited, "defaults.review.approvers")?,
        (None, None) => {
            return Err(
                "a review needs approvers, but neither the rule nor `defaults.review` \
                 names any: add e.g. `review: {approvers: [{group: sre, count: 1}]}`"
                    .into(),
            );
        }
    };
    let notify = rule.notify.as_ref().or(defaults.notify.as_ref());
    targets(notify.map_or(&[][..], Vec::as_slice), "review.notify")?;
    let escalate = match rule.escalate.as_ref().or(defaults.escalate.as_ref()) {
        None => None,
        Some(e) => {
            if e.notify.is_empty() {
                return Err(
                    "`review.escalate.notify` is empty: name who is asked next, \
                            e.g. [slack:#sre-leads]"
                        .into(),
                );
            }
            targets(&e.notify, "review.escalate.notify")?;
            Some(Escalation {
                after_seconds: e.after.0,
                notify: e.notify.clone(),
            })
        }
    };
    let standing = match rule.standing.as_ref().or(defaults.standing.as_ref()) {
        None => None,
        Some(doc) => Some(standing(doc)?),
    };
    let requirements = Requirements {
        standing,
        amend: rule.amend.or(defaults.amend).unwrap_or(false),
        notify: notify.cloned().unwrap_or_default(),
        remind_seconds: rule.remind.or(defaults.remind).map(|d| d.0),
        require_comment: rule
            .require_comment
            .or(defaults.require_comment)
            .unwrap_or(false),
        min_review_seconds: rule
            .min_review_time
            .or(defaults.min_review_time)
            .map(|d| d.0)
            .filter(|s| *s > 0),
        escalate,
        approvers,
        mfa: rule.mfa.or(defaults.mfa).unwrap_or(false),
        timeout_seconds: rule
            .timeout
            .or(defaults.timeout)
            .map_or(BUILT_IN_REVIEW_TIMEOUT_SECONDS, |d| d.0),
        on_timeout: rule
            .on_timeout
            .or(defaults.on_timeout)
            .map_or(OnTimeout::Deny, |o| o.0),
        pause_run: rule.pause_run.or(defaults.pause_run).unwrap_or(false),
        grant_ttl_seconds: rule
            .grant_ttl
            .or(defaults.grant_ttl)
            .map_or(DEFAULT_GRANT_TTL_SECONDS, |d| d.0),
    };
    if let Some(min) = requirements.min_review_seconds
        && min >= requirements.timeout_seconds
    {
        return Err(format!(
            "`review.min_review_time` ({min}s) is not shorter than the review's timeout \
             ({}s): nobody could ever approve",
            requirements.timeout_seconds
        ));
    }
    if requirements.standing.is_some() && requirements.mfa {
        return Err(
            "`review.standing` with `mfa: true`: a rule that asks for a second factor on every action allows no standing approvals; remove one of them"
                .into(),
        );
    }
    Ok(requirements)
}

/// Checks `review.standing`.
fn standing(doc: &StandingDoc) -> Result<StandingRule, String> {
    if doc.max.0 == 0 || doc.max.0 > MAX_STANDING_SECONDS {
        return Err(format!(
            "`review.standing.max` must be more than 0 and at most 7d (it is {}s)",
            doc.max.0
        ));
    }
    if doc.max_uses == 0 || doc.max_uses > MAX_STANDING_USES {
        return Err(format!(
            "`review.standing.max_uses` must be 1 to {MAX_STANDING_USES} (it is {})",
            doc.max_uses
        ));
    }
    let scope = match &doc.scope {
        None => ScopeField::ALL.to_vec(),
        Some(names) if names.is_empty() => {
            return Err(
                "`review.standing.scope` is empty: name the fields that must stay equal (kind, resource, params, run), or leave it out for all four"
                    .into(),
            );
        }
        Some(names) => {
            let mut fields = names
                .iter()
                .map(|n| {
                    ScopeField::parse(n).ok_or_else(|| {
                        format!(
                            "`review.standing.scope` names `{n}`: it may name kind, resource, params and run"
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            fields.sort();
            fields.dedup();
            fields
        }
    };
    Ok(StandingRule {
        max_seconds: doc.max.0,
        max_uses: doc.max_uses,
        scope,
    })
}

/// Checks the clauses of an `approvers` list written at `path`.
pub(crate) fn clauses(written: &[ClauseDoc], path: &str) -> Result<Vec<Clause>, String> {
    if written.is_empty() {
        return Err(format!(
            "`{path}` is empty: name at least one group, e.g. [{{group: sre, count: 1}}]"
        ));
    }
    let mut out: Vec<Clause> = Vec::with_capacity(written.len());
    for clause in written {
        let group = clause.group.trim();
        if group.is_empty() || group != clause.group {
            return Err(format!(
                "`{path}` has a group name {:?}; write the group without surrounding spaces",
                clause.group
            ));
        }
        if clause.count == 0 {
            return Err(format!(
                "`{path}`: group `{group}` has count 0; a clause needs at least 1 approver \
                 (remove the clause if the group need not approve)"
            ));
        }
        if out.iter().any(|c| c.group == group) {
            return Err(format!(
                "`{path}` names group `{group}` twice; write one clause with the total count, \
                 e.g. {{group: {group}, count: 2}}"
            ));
        }
        out.push(Clause {
            group: group.to_string(),
            count: clause.count,
        });
    }
    Ok(out)
}

/// Checks the notification targets of a list written at `path`.
fn targets(written: &[String], path: &str) -> Result<(), String> {
    for t in written {
        check_target(t).map_err(|e| format!("`{path}`: {e}"))?;
    }
    Ok(())
}
