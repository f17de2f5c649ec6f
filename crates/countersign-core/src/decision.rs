//! What the policy decided for one action, and what a review requires. The policy crate produces
//! these; the request state machine consumes them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Allow,
    Deny,
    Review,
}

impl Effect {
    pub fn as_str(&self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
            Effect::Review => "review",
        }
    }
}

/// One approver clause: `count` distinct people from `group`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Clause {
    pub group: String,
    pub count: u32,
}

/// What happens when a review is not decided in time. Only `deny` exists: a timeout never lets
/// an action through (the request ends `expired`, reported distinctly from `denied`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum OnTimeout {
    #[default]
    Deny,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Requirements {
    /// All clauses must be filled, each slot by a different person.
    pub approvers: Vec<Clause>,
    /// Votes count only with a verified second factor.
    pub mfa: bool,
    pub timeout_seconds: u64,
    pub on_timeout: OnTimeout,
    /// While this request is pending, new actions of the same run are held.
    pub pause_run: bool,
    /// How long the grant issued on approval may be redeemed.
    pub grant_ttl_seconds: u64,
    /// Who is asked, as channel targets (`slack:#approvals`, `slack:@bob@example.com`). Empty:
    /// the channels' configured default audience.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<String>,
    /// Re-notify the audience this often while the request is pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remind_seconds: Option<u64>,
    /// Notify a second audience once the request has been pending this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate: Option<Escalation>,
    /// An approval must say why (a comment): a click alone is refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_comment: bool,
    /// An approval cast sooner than this after the request was created is refused: nobody
    /// reads an action in less.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_review_seconds: Option<u64>,
    /// Approvers may answer with amended params (`Request::amend`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub amend: bool,
    /// Standing approvals this rule allows (see `crate::standing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standing: Option<crate::standing::StandingRule>,
}

/// A second audience asked when a review is still pending after `after_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    pub after_seconds: u64,
    pub notify: Vec<String>,
}

/// Checks one notification target as written in a policy or config: `slack:#channel`,
/// `slack:@person@example.com`, `slack:C0123ABC` (a channel id), or `teams:<name>`.
pub fn check_target(target: &str) -> Result<(), String> {
    let hint = "write e.g. `slack:#approvals`, `slack:@bob@example.com` or `teams:approvals`";
    let Some((channel, rest)) = target.split_once(':') else {
        return Err(format!(
            "notification target `{target}` has no channel: {hint}"
        ));
    };
    if rest.trim().is_empty() || rest.trim() != rest || rest.contains(char::is_whitespace) {
        return Err(format!(
            "notification target `{target}` is malformed: {hint}"
        ));
    }
    match channel {
        "slack" => {
            if let Some(person) = rest.strip_prefix('@')
                && !person.contains('@')
            {
                return Err(format!(
                    "notification target `{target}`: name a person by email, e.g. `slack:@bob@example.com`"
                ));
            }
            Ok(())
        }
        "teams" => Ok(()),
        other => Err(format!(
            "notification target `{target}`: unknown channel `{other}`: {hint}"
        )),
    }
}

impl Requirements {
    /// **Invariant (approvals are read, not clicked):** where a rule asks for it, an approval
    /// carries a comment that says something, and comes no sooner than `min_review_seconds`
    /// after the request was created (`elapsed`). Denials are never slowed down.
    pub fn check_approval(
        &self,
        comment: Option<&str>,
        elapsed: chrono::Duration,
    ) -> Result<(), crate::Refusal> {
        if self.require_comment && comment.is_none_or(|c| c.trim().is_empty()) {
            return Err(crate::Refusal::CommentRequired);
        }
        if let Some(min) = self.min_review_seconds {
            let elapsed_seconds = u64::try_from(elapsed.num_seconds()).unwrap_or(0);
            let min_millis = i64::try_from(min.saturating_mul(1000)).unwrap_or(i64::MAX);
            if elapsed.num_milliseconds() < min_millis {
                return Err(crate::Refusal::TooFast {
                    elapsed_seconds,
                    min_seconds: min,
                });
            }
        }
        Ok(())
    }

    /// The groups whose members may vote on this request.
    pub fn is_eligible_group(&self, groups: &[String]) -> bool {
        self.approvers.iter().any(|c| groups.contains(&c.group))
    }

    /// Human summary such as "1 of sre, 1 of security".
    pub fn summary(&self) -> String {
        self.approvers
            .iter()
            .map(|c| format!("{} of {}", c.count, c.group))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The policy's answer for one action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Decision {
    pub effect: Effect,
    /// The rule that decided, or `None` when the policy's default applied.
    pub rule: Option<String>,
    /// Why, in a sentence a person can read.
    pub reason: String,
    /// Present when `effect` is `review`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements: Option<Requirements>,
    /// `sha256:<hex>` of the policy file that decided.
    pub policy_hash: String,
    /// How long a grant issued at once (effect `allow`) may be redeemed.
    #[serde(default = "default_grant_ttl")]
    pub grant_ttl_seconds: u64,
}

pub const DEFAULT_GRANT_TTL_SECONDS: u64 = 300;

fn default_grant_ttl() -> u64 {
    DEFAULT_GRANT_TTL_SECONDS
}
