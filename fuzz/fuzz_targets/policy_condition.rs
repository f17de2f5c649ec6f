//! CEL conditions (`when:`) inside an otherwise valid policy. Never panics; a condition that
//! does not compile is refused with an error naming its line (and its rule, once the YAML is
//! read); one that compiles
//! is evaluated against actions with assorted params.
#![no_main]

use countersign_core::{Action, Principal, PrincipalId};
use countersign_policy::Policy;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

/// The `when:` is on line 7.
const WHEN_LINE: usize = 7;

fuzz_target!(|data: &[u8]| {
    let Ok(condition) = std::str::from_utf8(data) else {
        return;
    };
    // A JSON string is a YAML double-quoted scalar: the condition arrives intact, on one line.
    let quoted = serde_json::to_string(condition).expect("a string serialises");
    let text = format!(
        "version: 1\n\
         default: deny\n\
         defaults:\n  review: {{approvers: [{{group: sre, count: 1}}], timeout: 30m, on_timeout: deny}}\n\
         rules:\n  - name: fuzzed\n    when: {quoted}\n    effect: allow\n"
    );
    debug_assert_eq!(
        text.lines()
            .nth(WHEN_LINE - 1)
            .map(|l| l.trim_start().starts_with("when:")),
        Some(true)
    );
    let policy = match Policy::parse(&text, "policy.yaml") {
        Ok(p) => p,
        Err(e) => {
            // What the YAML reader refuses (a control character) names no rule, only the line.
            assert!(
                e.rule.is_none() || e.rule.as_deref() == Some("fuzzed"),
                "{e}"
            );
            assert_eq!(e.line, Some(WHEN_LINE), "{e}");
            return;
        }
    };
    let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("a time");
    let agent = Principal {
        id: PrincipalId::parse("agent:deploy-bot").expect("an id"),
        owner: None,
        groups: vec!["bots".into()],
    };
    for params in [
        json!({}),
        json!({"readonly": true, "rows": 5000, "sql": "select 1"}),
        json!({"rows": -1, "n": 1.5e300, "list": [1, "a", null, {"k": []}], "s": "é\u{0}"}),
        json!({"rows": u64::MAX, "big": i64::MIN}),
    ] {
        let action = Action {
            kind: "db.export".into(),
            resource: "postgres://prod/customers".into(),
            params,
            justification: None,
            run: Some("run_1".into()),
            labels: [("env".to_string(), "prod".to_string())].into(),
        };
        let _ = policy.evaluate(&agent, &action, now);
    }
});
