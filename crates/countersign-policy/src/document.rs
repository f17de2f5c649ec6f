//! The policy file exactly as written: serde structs that mirror the YAML, every one of them
//! `deny_unknown_fields`, so a misspelt key is a load error with a line number. Shapes that serde
//! can check (types, durations, `on_timeout`) are checked here, where the YAML parser still knows
//! the line; rules about meaning (unique names, defaults, CEL) belong to `compile`, and nothing
//! here is used at evaluation time.

use crate::duration::Duration;
use countersign_core::{Effect, OnTimeout};
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use std::fmt;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Document {
    pub version: u32,
    /// Effect when no rule matches.
    pub default: Effect,
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub rules: Vec<RuleDoc>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Defaults {
    #[serde(default)]
    pub review: ReviewDoc,
}

/// A `review` block; every field optional, filled from `defaults.review`, then built-ins.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReviewDoc {
    pub approvers: Option<Vec<ClauseDoc>>,
    pub mfa: Option<bool>,
    pub timeout: Option<Duration>,
    pub on_timeout: Option<OnTimeoutDoc>,
    pub pause_run: Option<bool>,
    pub grant_ttl: Option<Duration>,
    /// Channel targets asked to review (`slack:#approvals`, `slack:@bob@example.com`).
    pub notify: Option<Vec<String>>,
    /// Re-notify this often while pending.
    pub remind: Option<Duration>,
    pub escalate: Option<EscalateDoc>,
    /// An approval must carry a comment.
    pub require_comment: Option<bool>,
    /// An approval sooner than this after the request was created is refused.
    pub min_review_time: Option<Duration>,
    /// Standing approvals the rule allows.
    pub standing: Option<StandingDoc>,
    /// Approvers may answer with amended params.
    pub amend: Option<bool>,
}

/// `review.standing`: how long and how many uses an approval may stand for, and which action
/// fields must stay equal (default all four).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StandingDoc {
    pub max: Duration,
    pub max_uses: u32,
    pub scope: Option<Vec<String>>,
}

/// `review.escalate`: after this long, also notify these targets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EscalateDoc {
    pub after: Duration,
    pub notify: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClauseDoc {
    pub group: String,
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleDoc {
    pub name: String,
    #[serde(default, rename = "match")]
    pub matches: MatchDoc,
    pub when: Option<String>,
    pub effect: Effect,
    pub reason: Option<String>,
    pub review: Option<ReviewDoc>,
    /// For `allow` rules: how long the grant issued at once may be redeemed.
    pub grant_ttl: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MatchDoc {
    pub kind: Option<Globs>,
    pub resource: Option<Globs>,
    pub principal: Option<Globs>,
}

/// `on_timeout` only has one value; anything else is refused with the reason why.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OnTimeoutDoc(pub OnTimeout);

impl<'de> Deserialize<'de> for OnTimeoutDoc {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text == "deny" {
            Ok(OnTimeoutDoc(OnTimeout::Deny))
        } else {
            Err(de::Error::custom(format!(
                "on_timeout `{text}` is not supported: the only value is `deny` \
                 (a review that times out never lets the action through)"
            )))
        }
    }
}

/// One glob or a list of globs; the key matches when any of them does.
#[derive(Debug, Clone)]
pub(crate) struct Globs(pub Vec<String>);

impl<'de> Deserialize<'de> for Globs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct GlobsVisitor;

        impl<'de> Visitor<'de> for GlobsVisitor {
            type Value = Globs;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a glob string such as \"db.*\", or a list of them")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Globs, E> {
                Ok(Globs(vec![v.to_string()]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Globs, A::Error> {
                let mut globs = Vec::new();
                while let Some(glob) = seq.next_element::<String>()? {
                    globs.push(glob);
                }
                if globs.is_empty() {
                    return Err(de::Error::custom(
                        "an empty list of globs matches nothing: list at least one glob, \
                         or leave the key out to match everything",
                    ));
                }
                Ok(Globs(globs))
            }
        }

        deserializer.deserialize_any(GlobsVisitor)
    }
}
