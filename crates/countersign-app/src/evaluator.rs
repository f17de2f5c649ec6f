//! Where policy decisions are evaluated, with a budget (invariant 11). A decision whose walk
//! needs no budgeted condition (`Policy::evaluate_inline`: time linear in the policy and the
//! action) is made at once on the calling task: the hot path has no thread hop. The rest of a
//! walk that reaches a budgeted condition (comprehensions, run-time `matches` patterns) runs on
//! the blocking pool, never on a request-serving worker, so `/healthz` and every other request
//! stay responsive however slow a condition is. The caller waits at most `budget` (queueing
//! included) and then denies with `evaluation_budget_exceeded`, naming the rule.
//!
//! A thread cannot be killed, so CPU is bounded by slots: at most `concurrency` deferred
//! evaluations run at once, each holding its slot until it really ends. A cancelled evaluation
//! (out of time, or its caller gone) errors out at its next variable lookup, which frees most
//! slots at once; one that looks nothing up keeps its slot until it ends, and while every slot
//! is taken, deferred decisions are denied after their budget (fail closed). Decisions that do
//! not need a budget are never affected.

use countersign_core::{Action, Decision, Principal, Timestamp};
use countersign_policy::{Budget, Policy};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The `policy_evaluation` section of the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationConfig {
    /// How long one decision's deferred evaluation may take, waiting for a slot included.
    #[serde(default = "default_budget", deserialize_with = "duration")]
    pub budget: Duration,
    /// How many deferred evaluations may run at once. Default: the number of CPUs.
    #[serde(default)]
    pub concurrency: Option<usize>,
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        Self {
            budget: default_budget(),
            concurrency: None,
        }
    }
}

fn default_budget() -> Duration {
    Duration::from_millis(50)
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!("`{text}` is not a duration like 50ms or 1s: {e}"))
    })
}

impl EvaluationConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.budget < Duration::from_millis(1) || self.budget > Duration::from_secs(10) {
            return Err(format!(
                "`budget` must be between 1ms and 10s (it is the longest a decision waits for \
                 policy), got {}",
                humantime::format_duration(self.budget)
            ));
        }
        if self.concurrency.is_some_and(|n| n == 0 || n > 256) {
            return Err("`concurrency` must be between 1 and 256".into());
        }
        Ok(())
    }

    fn concurrency(&self) -> usize {
        self.concurrency.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        })
    }
}

pub struct Evaluator {
    budget: Duration,
    slots: Arc<Semaphore>,
}

impl Default for Evaluator {
    fn default() -> Self {
        Self::new(&EvaluationConfig::default())
    }
}

/// Cancels the budget when the waiting side goes away, whether it timed out, was answered, or
/// was dropped (the client hung up): the evaluation then stops at its next variable lookup.
struct CancelOnDrop(Arc<Budget>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

impl Evaluator {
    pub fn new(config: &EvaluationConfig) -> Self {
        Self {
            budget: config.budget,
            slots: Arc::new(Semaphore::new(config.concurrency())),
        }
    }

    /// The policy's decision for `action`, within the budget. Never fails: a budget spent is a
    /// deny that names the rule.
    pub async fn evaluate(
        &self,
        policy: &Arc<Policy>,
        principal: &Principal,
        action: &Action,
        now: Timestamp,
    ) -> Decision {
        let deferred = match policy.evaluate_inline(principal, action, now) {
            Ok(decision) => return decision,
            Err(deferred) => deferred,
        };
        let deadline = tokio::time::Instant::now() + self.budget;
        let spent = |rule: usize, why: &str| {
            tracing::warn!(
                principal = %principal.id, kind = %action.kind,
                rule = policy.rule_names().nth(rule).unwrap_or("<none>"),
                budget_ms = self.budget.as_millis() as u64, why,
                "policy evaluation budget exceeded; denied"
            );
            policy.budget_exceeded(rule, why)
        };
        let slot = match tokio::time::timeout_at(deadline, self.slots.clone().acquire_owned()).await
        {
            Ok(Ok(slot)) => slot,
            _ => {
                return spent(
                    deferred.rule(),
                    "every policy evaluator stayed busy for the whole budget",
                );
            }
        };
        let budget = Arc::new(Budget::new(&deferred));
        let _cancel = CancelOnDrop(budget.clone());
        let job = {
            let (policy, budget) = (policy.clone(), budget.clone());
            let (principal, action) = (principal.clone(), action.clone());
            tokio::task::spawn_blocking(move || {
                let _slot = slot;
                policy.evaluate_deferred(&deferred, &principal, &action, now, &budget)
            })
        };
        match tokio::time::timeout_at(deadline, job).await {
            Ok(Ok(decision)) => decision,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "a policy evaluation stopped unexpectedly");
                spent(budget.rule(), "the evaluation stopped unexpectedly")
            }
            Err(_) => {
                budget.cancel();
                spent(
                    budget.rule(),
                    &format!(
                        "it took longer than {}",
                        humantime::format_duration(self.budget)
                    ),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use countersign_core::{Effect, PrincipalId};
    use serde_json::json;

    const POLICY: &str = r#"
version: 1
default: allow
rules:
  - name: quick
    match: {kind: quick}
    when: 'params.n > 1'
    effect: review
    review: {approvers: [{group: sre}]}
  - name: pairs
    match: {kind: slow}
    when: '[params.a].exists(l, l.exists(x, l.exists(y, l.exists(z, x + y + z == -1))))'
    effect: deny
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

    #[tokio::test]
    async fn policy_evaluation_has_a_budget_slow_rules_are_denied_by_name() {
        let policy = Arc::new(Policy::parse(POLICY, "p.yaml").expect("valid"));
        let evaluator = Evaluator::new(&EvaluationConfig {
            budget: Duration::from_millis(20),
            concurrency: Some(1),
        });
        let slow = action("slow", json!({"a": (0..400).collect::<Vec<i64>>()}));
        let d = evaluator
            .evaluate(&policy, &agent(), &slow, chrono::Utc::now())
            .await;
        assert_eq!(d.effect, Effect::Deny);
        assert_eq!(d.rule.as_deref(), Some("pairs"));
        assert!(
            d.reason.contains("evaluation_budget_exceeded"),
            "{}",
            d.reason
        );
        // A fast decision is unaffected, even while the slot is still taken.
        let quick = action("quick", json!({"n": 5}));
        let d = evaluator
            .evaluate(&policy, &agent(), &quick, chrono::Utc::now())
            .await;
        assert_eq!(d.effect, Effect::Review);
        // A deferred evaluation that is quick gives the ordinary decision.
        let small = action("slow", json!({"a": [1, 2]}));
        let d = Evaluator::default()
            .evaluate(&policy, &agent(), &small, chrono::Utc::now())
            .await;
        assert_eq!(d.effect, Effect::Allow);
    }

    #[test]
    fn policy_evaluation_has_a_budget_config_is_validated() {
        let parse = |y: &str| yaml_serde::from_str::<EvaluationConfig>(y);
        let c = parse("budget: 250ms\nconcurrency: 3\n").expect("valid");
        assert_eq!(c.budget, Duration::from_millis(250));
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(
            parse("{}").expect("valid").budget,
            Duration::from_millis(50)
        );
        assert!(parse("budget: soon\n").is_err());
        assert!(parse("budjet: 1s\n").is_err());
        for bad in ["budget: 0ms\n", "budget: 1h\n", "concurrency: 0\n"] {
            assert!(parse(bad).expect("parses").validate().is_err(), "{bad}");
        }
    }
}
