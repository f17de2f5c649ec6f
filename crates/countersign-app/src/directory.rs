//! The directory of principals: who exists, who owns which agent, who is in which group, and
//! for whom each policy enforcement point may ask. It is read from configuration; identity
//! itself always comes from authentication (`auth`).

use countersign_core::{Principal, PrincipalId, PrincipalKind};
use std::collections::HashMap;

#[derive(Debug, Clone, Default)]
pub struct Directory {
    by_id: HashMap<PrincipalId, Principal>,
    /// Each policy enforcement point's `evaluates_for`.
    evaluators: HashMap<PrincipalId, Vec<SubjectPattern>>,
}

/// One entry of a policy enforcement point's `evaluates_for`: a principal id, or a prefix of
/// ids ending in `*` (`agent:*`, `agent:ci-*`). Written, like ids, in canonical form (lower
/// case), and only over agents and people: a PEP never asks for another PEP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectPattern {
    Exact(PrincipalId),
    Prefix(String),
}

impl SubjectPattern {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("`evaluates_for` entry {s:?}: {why}");
        if let Some(prefix) = s.strip_suffix('*') {
            if !prefix.is_ascii() || prefix.contains('*') {
                return Err(bad("only one `*`, at the end, and ASCII only"));
            }
            let prefix = prefix.to_ascii_lowercase();
            let kind_ok = ["agent:", "user:"].iter().any(|k| prefix.starts_with(k));
            if !kind_ok {
                return Err(bad("must start with `agent:` or `user:`"));
            }
            return Ok(SubjectPattern::Prefix(prefix));
        }
        let id = PrincipalId::parse(s).map_err(|e| bad(&e.to_string()))?;
        if id.kind() == PrincipalKind::Pep {
            return Err(bad(
                "a policy enforcement point asks for agents and people only",
            ));
        }
        Ok(SubjectPattern::Exact(id))
    }

    fn matches(&self, subject: &PrincipalId) -> bool {
        match self {
            SubjectPattern::Exact(id) => id == subject,
            SubjectPattern::Prefix(p) => subject.as_str().starts_with(p.as_str()),
        }
    }
}

impl Directory {
    pub fn new(principals: Vec<Principal>) -> Self {
        Self::with_evaluators(principals, HashMap::new())
    }

    /// A directory whose policy enforcement points may ask for the subjects `evaluators` names.
    pub fn with_evaluators(
        principals: Vec<Principal>,
        evaluators: HashMap<PrincipalId, Vec<SubjectPattern>>,
    ) -> Self {
        Self {
            by_id: principals.into_iter().map(|p| (p.id.clone(), p)).collect(),
            evaluators,
        }
    }

    pub fn get(&self, id: &PrincipalId) -> Option<&Principal> {
        self.by_id.get(id)
    }

    pub fn all(&self) -> impl Iterator<Item = &Principal> {
        self.by_id.values()
    }

    /// **Invariant (a PEP asks only for whom it may):** `pep` may ask the gateway on behalf of
    /// `subject` only when `pep` is a policy enforcement point and one of its `evaluates_for`
    /// entries names `subject`, which is an agent or a person. Ids are canonical (parsed), so
    /// this compares canonical forms. The one place this is decided.
    pub fn may_evaluate_for(&self, pep: &PrincipalId, subject: &PrincipalId) -> bool {
        pep.kind() == PrincipalKind::Pep
            && subject.kind() != PrincipalKind::Pep
            && self
                .evaluators
                .get(pep)
                .is_some_and(|patterns| patterns.iter().any(|p| p.matches(subject)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> PrincipalId {
        PrincipalId::parse(s).expect("an id")
    }

    #[test]
    fn a_pep_asks_only_for_whom_it_may() {
        let patterns = ["agent:ci-*", "user:Alice@Example.com"]
            .iter()
            .map(|p| SubjectPattern::parse(p).expect("a pattern"))
            .collect();
        let dir = Directory::with_evaluators(
            vec![],
            HashMap::from([
                (id("pep:gateway"), patterns),
                (
                    id("agent:ci-rogue"),
                    vec![SubjectPattern::parse("agent:*").unwrap()],
                ),
            ]),
        );
        let pep = id("pep:gateway");
        assert!(dir.may_evaluate_for(&pep, &id("agent:ci-build")));
        assert!(dir.may_evaluate_for(&pep, &id("AGENT:CI-Build")));
        assert!(dir.may_evaluate_for(&pep, &id("user:alice@example.com")));
        for other in [
            "agent:deploy-bot",
            "agent:ci",
            "user:bob@example.com",
            "pep:ci-x",
        ] {
            assert!(!dir.may_evaluate_for(&pep, &id(other)), "{other}");
        }
        // Another PEP, unlisted, and a principal that is not a PEP ask for nobody.
        assert!(!dir.may_evaluate_for(&id("pep:other"), &id("agent:ci-build")));
        assert!(!dir.may_evaluate_for(&id("agent:ci-rogue"), &id("agent:ci-build")));
    }

    #[test]
    fn subject_patterns_are_refused_unless_over_agents_or_people() {
        for bad in [
            "*",
            "pep:*",
            "pep:gateway",
            "agent:*x*",
            "root:*",
            "agent:é*",
            "user:bob",
        ] {
            assert!(SubjectPattern::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            SubjectPattern::parse("AGENT:*").unwrap(),
            SubjectPattern::Prefix("agent:".into())
        );
    }
}
