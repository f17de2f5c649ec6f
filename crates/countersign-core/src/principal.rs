//! Who acts: `agent:<name>` or `user:<email>`. Identity always comes from authentication; this
//! module only says what a well-formed principal id is and what a principal carries.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The two kinds of principal. Only people can vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    Agent,
    User,
}

/// A validated principal id such as `agent:deploy-bot` or `user:alice@example.com`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PrincipalId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid principal id {0:?}: expected `agent:<name>` or `user:<email>`")]
pub struct InvalidPrincipalId(pub String);

impl PrincipalId {
    pub fn parse(s: &str) -> Result<Self, InvalidPrincipalId> {
        let bad = || InvalidPrincipalId(s.to_string());
        let (kind, name) = s.split_once(':').ok_or_else(bad)?;
        let name_ok = !name.is_empty()
            && name.len() <= 200
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@+".contains(c));
        match kind {
            "agent" if name_ok => Ok(Self(s.to_string())),
            "user" if name_ok && name.contains('@') => Ok(Self(s.to_string())),
            _ => Err(bad()),
        }
    }

    pub fn kind(&self) -> PrincipalKind {
        if self.0.starts_with("agent:") {
            PrincipalKind::Agent
        } else {
            PrincipalKind::User
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PrincipalId {
    type Error = InvalidPrincipalId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<PrincipalId> for String {
    fn from(p: PrincipalId) -> String {
        p.0
    }
}

impl fmt::Display for PrincipalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A principal as known at the moment it acted: its id, the person accountable for it (agents),
/// and its groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub id: PrincipalId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<PrincipalId>,
    #[serde(default)]
    pub groups: Vec<String>,
}

impl Principal {
    pub fn kind(&self) -> PrincipalKind {
        self.id.kind()
    }

    pub fn is_person(&self) -> bool {
        self.kind() == PrincipalKind::User
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_agents_and_users() {
        assert_eq!(
            PrincipalId::parse("agent:deploy-bot").unwrap().kind(),
            PrincipalKind::Agent
        );
        assert_eq!(
            PrincipalId::parse("user:alice@example.com").unwrap().kind(),
            PrincipalKind::User
        );
        for bad in [
            "",
            "agent:",
            "user:alice",
            "root:x",
            "agent:a b",
            "deploy-bot",
        ] {
            assert!(PrincipalId::parse(bad).is_err(), "{bad}");
        }
    }
}
