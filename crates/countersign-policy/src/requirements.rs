//! How a rule's `review` block becomes the `Requirements` of a decision: each field is taken from
//! the rule, else from `defaults.review`, else from the built-in defaults (timeout 30m, on
//! timeout deny, no MFA, the run keeps going, grants valid 5m). Checked once at load; the
//! approver clauses must name at least one group, each once, each needing at least one person.

use crate::document::{ClauseDoc, ReviewDoc};
use countersign_core::decision::DEFAULT_GRANT_TTL_SECONDS;
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
    Ok(Requirements {
        notify: notify.cloned().unwrap_or_default(),
        remind_seconds: rule.remind.or(defaults.remind).map(|d| d.0),
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
