//! Policy evaluation with a budget (invariant 11: unauthenticated input never causes unbounded
//! work). Most conditions cost time linear in their own size and the action's, which the body
//! limit bounds: those run inline, at once, where the decision is asked for. A condition that
//! may cost more (comprehensions, which nest; `matches` with a pattern computed at run time) is
//! marked at load (`Condition::budgeted`), and evaluation stops before the first such condition
//! it reaches (`evaluate_inline` answers `Deferred`). The caller then runs the rest of the walk
//! (`evaluate_deferred`) where a slow evaluation harms nobody, stops waiting when its budget is
//! spent and cancels the `Budget`: the evaluation then errors out at its next variable lookup,
//! and whatever it returns is void. Running out of time, or finding no room to run, is a deny
//! that names the rule and says `evaluation_budget_exceeded`.
//!
//! This crate keeps no clock and no threads: where the deferred walk runs and how long it may
//! take are the caller's (the server's `evaluator`).

use crate::policy::Policy;
use countersign_core::decision::DEFAULT_GRANT_TTL_SECONDS;
use countersign_core::{Action, Decision, Effect, Principal, Timestamp};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The code a budget denial's reason carries.
pub const BUDGET_EXCEEDED: &str = "evaluation_budget_exceeded";

/// One deferred evaluation's shared state: whether its time is up (set by the caller) and which
/// rule it is in (set by the walk), so that a denial names the rule that was running.
#[derive(Debug, Default)]
pub struct Budget {
    pub(crate) cancelled: AtomicBool,
    rule: AtomicUsize,
}

impl Budget {
    pub fn new(deferred: &Deferred) -> Self {
        Self {
            cancelled: AtomicBool::new(false),
            rule: AtomicUsize::new(deferred.rule),
        }
    }

    /// Time is up: the evaluation stops at its next variable lookup, and its result is void.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    pub(crate) fn enter(&self, rule: usize) {
        self.rule.store(rule, Ordering::Relaxed);
    }

    /// The rule being evaluated (or about to be).
    pub fn rule(&self) -> usize {
        self.rule.load(Ordering::Relaxed)
    }
}

/// How far a walk over the rules may go.
#[derive(Clone, Copy)]
pub(crate) enum Walk<'b> {
    /// Every rule, every condition to its end (offline tools).
    All,
    /// Stop before the first reached condition that needs a budget.
    Inline,
    /// From rule `.0` on, under `.1`.
    From(usize, &'b Budget),
}

/// Where an inline evaluation stopped: before rule `rule`, whose condition needs a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deferred {
    rule: usize,
}

impl Deferred {
    pub fn rule(&self) -> usize {
        self.rule
    }
}

impl Policy {
    /// The decision, if reaching it needs no condition that must run under a budget; else where
    /// the walk stopped. Never slower than linear in the policy and the action.
    pub fn evaluate_inline(
        &self,
        principal: &Principal,
        action: &Action,
        now: Timestamp,
    ) -> Result<Decision, Deferred> {
        self.decide(principal, action, now, Walk::Inline, |_, _| {})
            .map_err(|rule| Deferred { rule })
    }

    /// The rest of a deferred walk, under `budget`. If the budget is cancelled meanwhile, the
    /// answer is the budget denial (or void, when the caller has stopped waiting).
    pub fn evaluate_deferred(
        &self,
        deferred: &Deferred,
        principal: &Principal,
        action: &Action,
        now: Timestamp,
        budget: &Budget,
    ) -> Decision {
        self.decide(
            principal,
            action,
            now,
            Walk::From(deferred.rule, budget),
            |_, _| {},
        )
        .unwrap_or_else(|rule| self.budget_exceeded(rule, "the evaluation was deferred twice"))
    }

    /// The deny for a decision whose rule `rule` could not be evaluated within its budget;
    /// `why` says how (out of time, no room to run).
    pub fn budget_exceeded(&self, rule: usize, why: &str) -> Decision {
        let name = self.rules.get(rule).map(|r| r.name.clone());
        let which = name
            .as_deref()
            .map_or_else(|| "a rule".to_string(), |n| format!("rule `{n}`"));
        Decision {
            effect: Effect::Deny,
            reason: format!(
                "{which} could not be evaluated within the policy's evaluation budget ({why}): \
                 {BUDGET_EXCEEDED}; denied (policy fails closed)"
            ),
            rule: name,
            requirements: None,
            policy_hash: self.hash.clone(),
            grant_ttl_seconds: DEFAULT_GRANT_TTL_SECONDS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use countersign_core::PrincipalId;
    use serde_json::json;

    const POLICY: &str = r#"
version: 1
default: allow
rules:
  - name: cheap
    match: {kind: cheap}
    when: 'params.n > 1'
    effect: deny
  - name: pairs
    when: 'params.a.exists(x, params.a.exists(y, x == y + 1000000))'
    effect: deny
  - name: after
    match: {kind: after}
    effect: review
    review: {approvers: [{group: sre}]}
"#;

    fn agent() -> Principal {
        Principal {
            id: PrincipalId::parse("agent:a").expect("valid id"),
            owner: None,
            groups: vec![],
        }
    }

    fn action(kind: &str, params: serde_json::Value) -> Action {
        Action {
            kind: kind.into(),
            resource: "r".into(),
            params,
            justification: None,
            run: None,
            labels: Default::default(),
        }
    }

    fn now() -> Timestamp {
        chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("valid time")
            .to_utc()
    }

    #[test]
    fn policy_evaluation_has_a_budget_cheap_conditions_decide_inline() {
        let p = Policy::parse(POLICY, "p.yaml").expect("valid");
        let d = p
            .evaluate_inline(&agent(), &action("cheap", json!({"n": 5})), now())
            .expect("inline");
        assert_eq!(d.rule.as_deref(), Some("cheap"));
    }

    #[test]
    fn policy_evaluation_has_a_budget_costly_conditions_are_deferred_and_agree() {
        let p = Policy::parse(POLICY, "p.yaml").expect("valid");
        let a = action("cheap", json!({"n": 0, "a": [1, 2, 3]}));
        let deferred = p
            .evaluate_inline(&agent(), &a, now())
            .expect_err("deferred");
        assert_eq!(deferred.rule(), 1);
        let budget = Budget::new(&deferred);
        let d = p.evaluate_deferred(&deferred, &agent(), &a, now(), &budget);
        assert_eq!(d, p.evaluate(&agent(), &a, now()));
        assert_eq!(d.effect, Effect::Allow);
    }

    #[test]
    fn policy_evaluation_has_a_budget_cancelled_evaluations_deny_naming_the_rule() {
        let p = Policy::parse(POLICY, "p.yaml").expect("valid");
        let a = action("after", json!({"a": [1, 2, 3]}));
        let deferred = p
            .evaluate_inline(&agent(), &a, now())
            .expect_err("deferred");
        let budget = Budget::new(&deferred);
        budget.cancel();
        let d = p.evaluate_deferred(&deferred, &agent(), &a, now(), &budget);
        assert_eq!(d.effect, Effect::Deny);
        assert_eq!(d.rule.as_deref(), Some("pairs"));
        assert!(d.reason.contains(BUDGET_EXCEEDED), "{}", d.reason);
        assert!(d.reason.contains("`pairs`"), "{}", d.reason);
        let busy = p.budget_exceeded(budget.rule(), "no room");
        assert_eq!(busy.rule.as_deref(), Some("pairs"));
    }

    /// A loop that looks no variable up still stops soon after its budget is cancelled: without
    /// the guard (`cancellation`), this evaluation would run for hours and the join would hang.
    #[test]
    fn policy_evaluation_has_a_budget_a_cancelled_loop_stops() {
        let text = POLICY.replace(
            "params.a.exists(x, params.a.exists(y, x == y + 1000000))",
            "[params.a].exists(l, l.exists(x, l.exists(y, l.exists(z, x + y + z == -1))))",
        );
        let p = std::sync::Arc::new(Policy::parse(&text, "p.yaml").expect("valid"));
        let a = action("after", json!({"a": (0..3000).collect::<Vec<i64>>()}));
        let deferred = p
            .evaluate_inline(&agent(), &a, now())
            .expect_err("deferred");
        let budget = std::sync::Arc::new(Budget::new(&deferred));
        let run = {
            let (p, budget) = (p.clone(), budget.clone());
            std::thread::spawn(move || p.evaluate_deferred(&deferred, &agent(), &a, now(), &budget))
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        budget.cancel();
        let d = run.join().expect("no panic");
        assert_eq!(d.effect, Effect::Deny);
        assert!(d.reason.contains(BUDGET_EXCEEDED), "{}", d.reason);
    }
}
