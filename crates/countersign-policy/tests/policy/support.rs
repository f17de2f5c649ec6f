//! Builders for principals and actions, shared by the test modules.

use countersign_core::{Action, Principal, PrincipalId, Timestamp};
use serde_json::Value;

pub fn agent() -> Principal {
    Principal {
        id: PrincipalId::parse("agent:deploy-bot").expect("valid id"),
        owner: Some(PrincipalId::parse("user:alice@example.com").expect("valid id")),
        groups: vec!["deployers".into()],
    }
}

pub fn person(email: &str, groups: &[&str]) -> Principal {
    Principal {
        id: PrincipalId::parse(&format!("user:{email}")).expect("valid id"),
        owner: None,
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

pub fn action(kind: &str, resource: &str, params: Value) -> Action {
    Action {
        kind: kind.into(),
        resource: resource.into(),
        params,
        justification: None,
        run: None,
        labels: Default::default(),
    }
}

pub fn now() -> Timestamp {
    chrono::DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
        .expect("valid time")
        .to_utc()
}
