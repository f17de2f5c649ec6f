//! Quorum: do the approvals fill every approver clause, each slot by a different person?
//!
//! With several clauses a person can belong to more than one group, and a greedy count would let
//! one person fill two slots or fill the wrong one first. Deciding it is a maximum bipartite
//! matching between people and slots (Kuhn's augmenting paths; sizes are tiny).

use crate::Clause;

/// A person who approved, with the groups they held when they voted.
pub struct Approver<'a> {
    pub id: &'a str,
    pub groups: &'a [String],
}

/// For each slot (clause index repeated `count` times), which approver fills it.
fn matching(clauses: &[Clause], approvers: &[Approver<'_>]) -> Vec<Option<usize>> {
    let slots: Vec<usize> = clauses
        .iter()
        .enumerate()
        .flat_map(|(i, c)| std::iter::repeat_n(i, c.count as usize))
        .collect();
    // Distinct people only: a second approval by the same id never adds capacity.
    let mut people: Vec<&Approver<'_>> = Vec::new();
    for a in approvers {
        if !people.iter().any(|p| p.id == a.id) {
            people.push(a);
        }
    }
    let fits = |person: &Approver<'_>, slot: usize| {
        let group = &clauses[slots[slot]].group;
        person.groups.iter().any(|g| g == group)
    };
    let mut slot_owner: Vec<Option<usize>> = vec![None; slots.len()];
    for p in 0..people.len() {
        let mut seen = vec![false; slots.len()];
        augment(p, &people, &fits, &mut slot_owner, &mut seen);
    }
    slot_owner
}

fn augment(
    p: usize,
    people: &[&Approver<'_>],
    fits: &dyn Fn(&Approver<'_>, usize) -> bool,
    slot_owner: &mut [Option<usize>],
    seen: &mut [bool],
) -> bool {
    for s in 0..slot_owner.len() {
        if seen[s] || !fits(people[p], s) {
            continue;
        }
        seen[s] = true;
        let free = match slot_owner[s] {
            None => true,
            Some(q) => augment(q, people, fits, slot_owner, seen),
        };
        if free {
            slot_owner[s] = Some(p);
            return true;
        }
    }
    false
}

/// True when every slot of every clause is filled by a distinct approver.
pub fn is_met(clauses: &[Clause], approvers: &[Approver<'_>]) -> bool {
    matching(clauses, approvers).iter().all(Option::is_some)
}

/// What is still needed: per clause, how many more people are required (clauses with zero left
/// are omitted).
pub fn remaining(clauses: &[Clause], approvers: &[Approver<'_>]) -> Vec<Clause> {
    let owners = matching(clauses, approvers);
    let mut left: Vec<u32> = clauses.iter().map(|c| c.count).collect();
    let mut slot = 0;
    for (i, c) in clauses.iter().enumerate() {
        for _ in 0..c.count {
            if owners[slot].is_some() {
                left[i] -= 1;
            }
            slot += 1;
        }
    }
    clauses
        .iter()
        .zip(left)
        .filter(|(_, n)| *n > 0)
        .map(|(c, n)| Clause {
            group: c.group.clone(),
            count: n,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clause(group: &str, count: u32) -> Clause {
        Clause {
            group: group.into(),
            count,
        }
    }

    fn groups(gs: &[&str]) -> Vec<String> {
        gs.iter().map(|g| g.to_string()).collect()
    }

    #[test]
    fn person_in_two_groups_fills_one_slot() {
        let clauses = [clause("sre", 1), clause("security", 1)];
        let both = groups(&["sre", "security"]);
        let one = [Approver {
            id: "user:dana@x",
            groups: &both,
        }];
        assert!(!is_met(&clauses, &one));
        assert_eq!(remaining(&clauses, &one).len(), 1);
    }

    #[test]
    fn matching_reassigns_instead_of_counting_greedily() {
        // Dana (sre+security) votes first and a greedy count would put her on sre; then Erin (sre
        // only) could not fill anything. The matching moves Dana to security.
        let clauses = [clause("sre", 1), clause("security", 1)];
        let dana_groups = groups(&["sre", "security"]);
        let erin_groups = groups(&["sre"]);
        let votes = [
            Approver {
                id: "user:dana@x",
                groups: &dana_groups,
            },
            Approver {
                id: "user:erin@x",
                groups: &erin_groups,
            },
        ];
        assert!(is_met(&clauses, &votes));
    }

    #[test]
    fn the_same_person_twice_counts_once() {
        let clauses = [clause("sre", 2)];
        let g = groups(&["sre"]);
        let twice = [
            Approver {
                id: "user:bob@x",
                groups: &g,
            },
            Approver {
                id: "user:bob@x",
                groups: &g,
            },
        ];
        assert!(!is_met(&clauses, &twice));
        assert_eq!(remaining(&clauses, &twice), vec![clause("sre", 1)]);
    }
}
