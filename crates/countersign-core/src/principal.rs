//! Who acts: `agent:<name>` or `user:<email>`, and `pep:<name>`, a policy enforcement point
//! that asks the gateway on an agent's behalf (AuthZEN). Identity always comes from
//! authentication; this module only says what a well-formed principal id is and what a
//! principal carries.
//!
//! One person, one identity: [`PrincipalId::parse`] is the one place an id gets its canonical
//! form, and every id in the program is a parsed one, so comparisons of ids (self-approval,
//! owners, distinct people in a quorum, the directory) compare canonical forms. The canonical
//! form is plain ASCII, lower-cased as a whole (`user:Alice@Example.COM` and
//! `USER:alice@example.com` are one person, `user:alice@example.com`; agent names fold the same
//! way, so `agent:Deploy-Bot` is `agent:deploy-bot`). Anything outside ASCII is refused rather
//! than folded: Unicode case rules map look-alikes such as the Kelvin sign `K` (U+212A) onto
//! ASCII letters, which would let a look-alike address sign in as someone else.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The kinds of principal. Only people can vote; only agents and people request; a policy
/// enforcement point only asks for the subjects its configuration names (`evaluates_for`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    Agent,
    User,
    Pep,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Agent => "agent",
            PrincipalKind::User => "user",
            PrincipalKind::Pep => "pep",
        }
    }
}

/// A validated principal id such as `agent:deploy-bot` or `user:alice@example.com`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "String", into = "String")]
pub struct PrincipalId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid principal id {0:?}: expected `agent:<name>`, `user:<email>` or `pep:<name>`")]
pub struct InvalidPrincipalId(pub String);

impl PrincipalId {
    /// Parses an id into its canonical form (see the module's doc): ASCII only, lower-cased as
    /// a whole; a person's name is an address `local@domain`.
    pub fn parse(s: &str) -> Result<Self, InvalidPrincipalId> {
        let bad = || InvalidPrincipalId(s.to_string());
        // Checked before folding, so no Unicode case rule ever applies.
        if !s.is_ascii() {
            return Err(bad());
        }
        let canonical = s.to_ascii_lowercase();
        let (kind, name) = canonical.split_once(':').ok_or_else(bad)?;
        let name_ok = !name.is_empty()
            && name.len() <= 200
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@+".contains(c));
        let address_ok = || {
            name.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && !domain.is_empty() && !domain.contains('@')
            })
        };
        match kind {
            "agent" | "pep" if name_ok => Ok(Self(canonical)),
            "user" if name_ok && address_ok() => Ok(Self(canonical)),
            _ => Err(bad()),
        }
    }

    /// The person an email address names, as an identity provider or a chat service states it
    /// (`user:<email>`, canonical). An address that is not plain ASCII is refused, never folded.
    pub fn person_from_email(email: &str) -> Result<Self, InvalidPrincipalId> {
        Self::parse(&format!("user:{}", email.trim()))
    }

    /// True when `s` is already written in its canonical form.
    pub fn is_canonical(s: &str) -> bool {
        Self::parse(s).is_ok_and(|id| id.0 == s)
    }

    pub fn kind(&self) -> PrincipalKind {
        if self.0.starts_with("agent:") {
            PrincipalKind::Agent
        } else if self.0.starts_with("pep:") {
            PrincipalKind::Pep
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
        assert_eq!(
            PrincipalId::parse("PEP:Gateway").unwrap().kind(),
            PrincipalKind::Pep
        );
        for bad in [
            "",
            "agent:",
            "user:alice",
            "root:x",
            "pep:",
            "pep:a@b c",
            "agent:a b",
            "deploy-bot",
        ] {
            assert!(PrincipalId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn person_ids_are_canonical_whatever_the_case() {
        let canonical = PrincipalId::parse("user:alice@example.com").unwrap();
        for variant in [
            "user:Alice@example.com",
            "user:ALICE@EXAMPLE.COM",
            "USER:alice@Example.Com",
            "User:aLiCe@example.com",
        ] {
            let id = PrincipalId::parse(variant).unwrap();
            assert_eq!(id, canonical, "{variant}");
            assert_eq!(id.as_str(), "user:alice@example.com");
            assert!(!PrincipalId::is_canonical(variant));
        }
        assert!(PrincipalId::is_canonical("user:alice@example.com"));
        assert_eq!(
            PrincipalId::person_from_email(" Alice@Example.com ").unwrap(),
            canonical
        );
        // Agents fold the same way.
        assert_eq!(
            PrincipalId::parse("Agent:Deploy-Bot").unwrap().as_str(),
            "agent:deploy-bot"
        );
        // Deserialising (config, store rows, wire) goes through the same rule.
        let read: PrincipalId = serde_json::from_str("\"user:BOB@example.com\"").unwrap();
        assert_eq!(read.as_str(), "user:bob@example.com");
    }

    #[test]
    fn person_ids_are_canonical_and_look_alikes_are_refused() {
        for look_alike in [
            "user:\u{212A}arol@example.com",  // Kelvin sign, lower-cases to `k`
            "user:\u{130}van@example.com",    // dotted capital I
            "user:\u{FF41}lice@example.com",  // fullwidth a
            "user:alice@\u{FF45}xample.com",  // fullwidth e in the domain
            "user:stra\u{DF}e@example.com",   // sharp s
            "user:alice@example.com\u{200B}", // zero-width space
            "agent:deploy-b\u{3BF}t",         // Greek omicron
        ] {
            assert!(PrincipalId::parse(look_alike).is_err(), "{look_alike}");
        }
        for email in [
            "\u{212A}arol@example.com",
            "\u{130}van@example.com",
            "\u{FF41}lice@example.com",
            "stra\u{DF}e@example.com",
        ] {
            assert!(PrincipalId::person_from_email(email).is_err(), "{email}");
        }
        for not_an_address in ["user:@example.com", "user:alice@", "user:a@b@c"] {
            assert!(
                PrincipalId::parse(not_an_address).is_err(),
                "{not_an_address}"
            );
        }
    }
}
