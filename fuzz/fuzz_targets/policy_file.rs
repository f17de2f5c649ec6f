//! Policy files (YAML with CEL conditions), as `countersign policy check` and a reload read
//! them. Never panics; an error that names a line names one inside the file; a policy that
//! loads decides a few actions without panicking.
#![no_main]

use countersign_core::{Action, Principal, PrincipalId};
use countersign_policy::Policy;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Policy::parse(text, "policy.yaml") {
        Ok(policy) => decide_some(&policy),
        Err(e) => {
            if let Some(line) = e.line {
                // Lines as YAML (and editors) count them: `\r\n`, `\n` and a lone `\r` each
                // end one (`str::lines` alone misses a lone `\r`; found by this target).
                let lines = text
                    .replace("\r\n", "\n")
                    .replace('\r', "\n")
                    .lines()
                    .count()
                    .max(1);
                assert!(
                    (1..=lines + 1).contains(&line),
                    "line {line} of a {lines}-line file: {e}"
                );
            }
            assert!(!e.to_string().is_empty());
        }
    }
});

fn decide_some(policy: &Policy) {
    let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("a time");
    let agent = Principal {
        id: PrincipalId::parse("agent:deploy-bot").expect("an id"),
        owner: Some(PrincipalId::parse("user:alice@example.com").expect("an id")),
        groups: vec!["bots".into()],
    };
    for (kind, resource, params) in [
        ("db.query", "postgres://prod/x", json!({"readonly": true})),
        (
            "db.export",
            "postgres://prod/customers",
            json!({"rows": 5000}),
        ),
        (
            "shell.exec",
            "host://a",
            json!({"cmd": ["ls", "-l"], "n": 1.5}),
        ),
        ("mcp.tool.s.t", "mcp://s/t", json!({})),
    ] {
        let action = Action {
            kind: kind.into(),
            resource: resource.into(),
            params,
            justification: Some("fuzz".into()),
            run: None,
            labels: Default::default(),
        };
        let _ = policy.evaluate(&agent, &action, now);
        let _ = policy.explain(&agent, &action, now);
    }
}
