//! Standing approvals (issue 18): "don't ask again for this for 30 minutes". A rule may allow
//! them (`review.standing`, a [`StandingRule`]); each approving vote may ask for one (a
//! [`StandingAsk`]); it forms on the request the votes approved only if every approving vote
//! asked for it, for the smallest duration and number of uses asked, and is kept on that
//! request ([`Standing`]). While it lasts, a later action of the same requester that the
//! policy sends to the same rule (same name, same policy hash) and that equals the approved one
//! on the rule's scope fields has the same [`standing_key`], and is approved at once with its
//! own single-use grant, naming the standing approval and its approvers.
//!
//! **Invariant (a standing approval covers only what its approvers approved):** the key binds
//! the requester, the rule, the policy hash and the scope fields' canonical values, so an
//! action of another requester, under another rule or policy, or with a changed scope field
//! never finds it; each use is taken from the count the store keeps beside the pair that finds
//! the approval, by a conditional decrement in the same transaction that records the covered
//! request (whose `request.created` entry names the approval and says which use it was), so uses never exceed the
//! bound;
//! a revoked, expired or used-up approval covers nothing; a rule with `mfa: true` never forms
//! one (its policy does not load with `standing`, and a vote asking for one is refused).

use crate::{Action, Digest, PrincipalId, Timestamp, canonical};
use serde::{Deserialize, Serialize};

/// The action fields a standing approval keeps equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ScopeField {
    Kind,
    Resource,
    Params,
    Run,
}

impl ScopeField {
    pub const ALL: [ScopeField; 4] = [
        ScopeField::Kind,
        ScopeField::Resource,
        ScopeField::Params,
        ScopeField::Run,
    ];

    pub fn parse(s: &str) -> Option<ScopeField> {
        match s {
            "kind" => Some(ScopeField::Kind),
            "resource" => Some(ScopeField::Resource),
            "params" => Some(ScopeField::Params),
            "run" => Some(ScopeField::Run),
            _ => None,
        }
    }
}

/// What a rule allows (`review.standing: {max: 8h, max_uses: 100, scope: [kind, resource]}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StandingRule {
    pub max_seconds: u64,
    pub max_uses: u32,
    /// Sorted, without duplicates; never empty.
    pub scope: Vec<ScopeField>,
}

/// The longest standing approval a rule may allow: the store keeps the pair that finds it for
/// this long (`parked_calls`' retention).
pub const MAX_STANDING_SECONDS: u64 = 7 * 24 * 3600;

/// The most uses a rule may allow one standing approval.
pub const MAX_STANDING_USES: u32 = 1000;

/// What one approving vote asks for (`standing: {for: 30m, uses: 20}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StandingAsk {
    pub seconds: u64,
    pub uses: u32,
}

impl StandingRule {
    /// Why `ask` is more than this rule allows, if it is.
    pub fn refuse(&self, ask: &StandingAsk) -> Option<String> {
        if ask.seconds == 0 || ask.uses == 0 {
            return Some("a standing approval needs a duration and at least one use".into());
        }
        if ask.seconds > self.max_seconds {
            return Some(format!(
                "this rule allows standing approvals of at most {} s (asked {} s)",
                self.max_seconds, ask.seconds
            ));
        }
        if ask.uses > self.max_uses {
            return Some(format!(
                "this rule allows standing approvals of at most {} uses (asked {})",
                self.max_uses, ask.uses
            ));
        }
        None
    }
}

/// A standing approval, kept on the request whose approval formed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    /// [`standing_key`] of the approved action.
    pub key: Digest,
    pub scope: Vec<ScopeField>,
    pub until: Timestamp,
    pub uses: u32,
    pub used: u32,
    /// The people whose approvals formed it.
    pub approvers: Vec<PrincipalId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<PrincipalId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
}

impl Standing {
    /// Whether it covers one more action at `now`: not revoked, not expired, not used up.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && now < self.until && self.used < self.uses
    }

    /// Its state in words: `active`, `revoked`, `expired` or `used_up`.
    pub fn status(&self, now: Timestamp) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self.used >= self.uses {
            "used_up"
        } else if now >= self.until {
            "expired"
        } else {
            "active"
        }
    }
}

/// What a request approved by a standing approval records of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoveredBy {
    /// The id of the request whose approval formed the standing approval.
    pub standing: String,
    pub approvers: Vec<PrincipalId>,
}

/// The key under which a standing approval for `action` of `requester`, decided by `rule`
/// under the policy `policy_hash`, is found: the hash of those and of the scope fields'
/// values, in canonical JSON (so equal values have one key however they were spelled).
pub fn standing_key(
    requester: &PrincipalId,
    rule: &str,
    policy_hash: &str,
    action: &Action,
    scope: &[ScopeField],
) -> Digest {
    keyed(
        "countersign standing v1",
        requester,
        rule,
        policy_hash,
        action,
        scope,
    )
}

/// The hash, under `label`, of the requester, rule, policy hash and the `scope` fields of
/// `action`, in canonical JSON (also the key of a plan's step, under its own label).
pub(crate) fn keyed(
    label: &str,
    requester: &PrincipalId,
    rule: &str,
    policy_hash: &str,
    action: &Action,
    scope: &[ScopeField],
) -> Digest {
    use canonical::Member;
    let mut members = Vec::with_capacity(8);
    members.extend([
        ("v", Member::Str(label)),
        ("requester", Member::Str(requester.as_str())),
        ("rule", Member::Str(rule)),
        ("policy_hash", Member::Str(policy_hash)),
    ]);
    for field in scope {
        members.push(match field {
            ScopeField::Kind => ("kind", Member::Str(action.kind.as_str())),
            ScopeField::Resource => ("resource", Member::Str(action.resource.as_str())),
            ScopeField::Params => ("params", Member::Value(&action.params)),
            ScopeField::Run => (
                "run",
                action.run.as_deref().map_or(Member::Null, Member::Str),
            ),
        });
    }
    // A field named twice in a scope counts once (as a map would keep it).
    members.sort_by(|a, b| a.0.cmp(b.0));
    members.dedup_by(|a, b| a.0 == b.0);
    Digest::of_bytes(&canonical::object_to_vec(&mut members))
}

/// The id of the standing approval held by request `request_id`: `std_` and the request id's
/// unique part.
pub fn standing_id_for(request_id: &str) -> String {
    format!(
        "std_{}",
        request_id.strip_prefix("req_").unwrap_or(request_id)
    )
}

/// The request holding standing approval `id` (`std_X` → `req_X`), if it is one.
pub fn request_id_for_standing(id: &str) -> Option<String> {
    id.strip_prefix("std_").map(|rest| format!("req_{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// The keys as they were first computed (a map of the fields in canonical JSON): keys
    /// already stored in `parked_calls` must still be found.
    fn keyed_by_map(
        label: &str,
        requester: &PrincipalId,
        rule: &str,
        policy_hash: &str,
        action: &Action,
        scope: &[ScopeField],
    ) -> Digest {
        let mut fields = serde_json::Map::new();
        fields.insert("v".into(), label.into());
        fields.insert("requester".into(), requester.as_str().into());
        fields.insert("rule".into(), rule.into());
        fields.insert("policy_hash".into(), policy_hash.into());
        for field in scope {
            let (name, value) = match field {
                ScopeField::Kind => ("kind", serde_json::Value::from(action.kind.as_str())),
                ScopeField::Resource => ("resource", action.resource.as_str().into()),
                ScopeField::Params => ("params", action.params.clone()),
                ScopeField::Run => ("run", action.run.clone().into()),
            };
            fields.insert(name.into(), value);
        }
        Digest::of_bytes(&canonical::to_vec(&serde_json::Value::Object(fields)))
    }

    fn scope_field() -> impl Strategy<Value = ScopeField> {
        prop_oneof![
            Just(ScopeField::Kind),
            Just(ScopeField::Resource),
            Just(ScopeField::Params),
            Just(ScopeField::Run),
        ]
    }

    proptest! {
        #[test]
        fn keys_are_unchanged_from_the_map_they_were_first_computed_from(
            kind in "[a-z.]{1,12}",
            resource in ".{0,16}",
            rule in ".{0,10}",
            run in proptest::option::of(".{0,8}"),
            key in ".{0,6}",
            n in any::<i64>(),
            text in ".{0,10}",
            scope in proptest::collection::vec(scope_field(), 0..6),
        ) {
            let action = Action {
                kind,
                resource,
                params: json!({key: n, "nested": {"é\u{1F600}": [text, 1.5, null]}, "\u{FB33}": true}),
                justification: Some("why".into()),
                run,
                labels: Default::default(),
            };
            let who = PrincipalId::parse("agent:deploy-bot").unwrap();
            for label in ["countersign standing v1", "countersign plan step v1"] {
                prop_assert_eq!(
                    keyed(label, &who, &rule, "sha256:abc", &action, &scope),
                    keyed_by_map(label, &who, &rule, "sha256:abc", &action, &scope)
                );
            }
        }
    }
}
