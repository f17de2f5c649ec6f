//! A bad policy fails the load with the file, the line and the rule, and says how to fix it.

use countersign_policy::{Policy, PolicyError};

fn error(text: &str) -> PolicyError {
    match Policy::parse(text, "policy.yaml") {
        Ok(_) => panic!("expected the policy to be refused:\n{text}"),
        Err(e) => e,
    }
}

const HEAD: &str =
    "version: 1\ndefault: review\ndefaults:\n  review: {approvers: [{group: sre}]}\nrules:\n";

#[test]
fn unknown_key_names_the_line_and_rule() {
    let e = error(&format!(
        "{HEAD}  - name: ok\n    effect: allow\n  - name: typo\n    effect: allow\n    whn: 'true'\n"
    ));
    assert_eq!(e.file, "policy.yaml");
    assert_eq!(e.line, Some(10), "{e}");
    assert_eq!(e.rule.as_deref(), Some("typo"), "{e}");
    assert!(e.message.contains("unknown field `whn`"), "{e}");
    assert!(
        e.to_string().starts_with("policy.yaml:10: rule `typo`: "),
        "{e}"
    );
}

#[test]
fn unknown_top_level_key_names_the_line() {
    let e = error("version: 1\ndefault: allow\nrulez: []\n");
    assert_eq!(e.line, Some(3), "{e}");
    assert_eq!(e.rule, None);
    assert!(e.message.contains("unknown field `rulez`"), "{e}");
}

#[test]
fn duplicate_rule_names_are_refused() {
    let e = error(&format!(
        "{HEAD}  - name: same\n    effect: allow\n  - name: same\n    effect: deny\n"
    ));
    assert_eq!(e.rule.as_deref(), Some("same"));
    assert_eq!(e.line, Some(8), "{e}");
    assert!(
        e.message.contains("duplicate") && e.message.contains("line 6"),
        "{e}"
    );
}

#[test]
fn bad_rule_names_are_refused() {
    for name in ["\"\"", "'has space'", "caf\u{e9}"] {
        let e = error(&format!("{HEAD}  - name: {name}\n    effect: allow\n"));
        assert!(e.message.contains("name"), "{e}");
    }
}

#[test]
fn bad_cel_names_the_rule_and_line() {
    let e = error(&format!(
        "{HEAD}  - name: first\n    effect: allow\n  - name: broken\n    match: {{kind: db.query}}\n    when: 'params.rows >'\n    effect: allow\n"
    ));
    assert_eq!(e.rule.as_deref(), Some("broken"));
    assert_eq!(e.line, Some(10), "{e}");
    assert!(e.message.contains("not valid CEL"), "{e}");
}

#[test]
fn unknown_cel_variables_are_refused_at_load() {
    let e = error(&format!(
        "{HEAD}  - name: misspelt\n    when: 'param.rows > 5'\n    effect: allow\n"
    ));
    assert_eq!(e.rule.as_deref(), Some("misspelt"));
    assert_eq!(e.line, Some(7), "{e}");
    assert!(e.message.contains("unknown variable `param`"), "{e}");
}

#[test]
fn bad_durations_are_refused_with_the_fix() {
    for (bad, says) in [
        ("15", "no unit"),
        ("'15'", "no unit"),
        ("0s", "longer than zero"),
        ("fifteen", "e.g. `90s`"),
        ("1.5h", "e.g. `90s`"),
    ] {
        let e = error(&format!(
            "{HEAD}  - name: slow\n    effect: review\n    review:\n      timeout: {bad}\n"
        ));
        assert_eq!(e.rule.as_deref(), Some("slow"), "{bad}: {e}");
        assert_eq!(e.line, Some(9), "{bad}: {e}");
        assert!(e.message.contains(says), "{bad}: {e}");
    }
    let e = error(
        "version: 1\ndefault: review\ndefaults:\n  review: {approvers: [{group: sre}], timeout: 0m}\n",
    );
    assert!(e.message.contains("longer than zero"), "{e}");
    assert_eq!(e.line, Some(4), "{e}");
}

#[test]
fn review_without_approvers_is_refused() {
    let e = error(
        "version: 1\ndefault: deny\nrules:\n  - name: lonely\n    effect: review\n    review: {timeout: 5m}\n",
    );
    assert_eq!(e.rule.as_deref(), Some("lonely"));
    assert_eq!(e.line, Some(6), "{e}");
    assert!(e.message.contains("approvers"), "{e}");

    let e = error(&format!(
        "{HEAD}  - name: empty\n    effect: review\n    review: {{approvers: []}}\n"
    ));
    assert!(e.message.contains("empty"), "{e}");

    let e = error("version: 1\ndefault: review\n");
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.message.contains("defaults.review.approvers"), "{e}");
}

#[test]
fn approver_clauses_are_checked() {
    let e = error(&format!(
        "{HEAD}  - name: zero\n    effect: review\n    review: {{approvers: [{{group: sre, count: 0}}]}}\n"
    ));
    assert!(e.message.contains("count 0"), "{e}");
    let e = error(&format!(
        "{HEAD}  - name: twice\n    effect: review\n    review: {{approvers: [{{group: sre}}, {{group: sre}}]}}\n"
    ));
    assert!(e.message.contains("twice"), "{e}");
}

#[test]
fn on_timeout_only_denies() {
    let e = error(&format!(
        "{HEAD}  - name: lenient\n    effect: review\n    review: {{on_timeout: allow}}\n"
    ));
    assert_eq!(e.rule.as_deref(), Some("lenient"));
    assert!(e.message.contains("only value is `deny`"), "{e}");
}

#[test]
fn review_block_only_on_review_rules() {
    let e = error(&format!(
        "{HEAD}  - name: confused\n    effect: allow\n    review: {{timeout: 5m}}\n"
    ));
    assert_eq!(e.line, Some(8), "{e}");
    assert!(
        e.message.contains("only applies to `effect: review`"),
        "{e}"
    );
    let e = error(&format!(
        "{HEAD}  - name: nogrant\n    effect: deny\n    grant_ttl: 5m\n"
    ));
    assert!(e.message.contains("grant_ttl"), "{e}");
}

#[test]
fn version_must_be_one() {
    let e = error("version: 2\ndefault: allow\n");
    assert_eq!(e.line, Some(1));
    assert!(e.message.contains("version 2"), "{e}");
    let e = error("default: allow\n");
    assert!(e.message.contains("version"), "{e}");
}

#[test]
fn bad_effects_and_globs_are_refused() {
    let e = error(&format!("{HEAD}  - name: x\n    effect: permit\n"));
    assert_eq!(e.rule.as_deref(), Some("x"));
    assert!(
        e.message.contains("permit") && e.message.contains("review"),
        "{e}"
    );
    let e = error(&format!(
        "{HEAD}  - name: x\n    match: {{resource: \"db.[\"}}\n    effect: allow\n"
    ));
    assert!(e.message.contains("match.resource"), "{e}");
    assert_eq!(e.line, Some(7), "{e}");
    let e = error(&format!(
        "{HEAD}  - name: x\n    match: {{kind: []}}\n    effect: allow\n"
    ));
    assert!(e.message.contains("empty list"), "{e}");
}

#[test]
fn yaml_syntax_errors_have_a_line() {
    let e = error("version: 1\ndefault: allow\nrules:\n  - name: x\n   effect: [\n");
    assert!(e.line.is_some(), "{e}");
}

#[test]
fn load_reads_the_file_and_names_it() {
    let dir = std::env::temp_dir().join(format!("countersign-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("p.yaml");
    std::fs::write(&path, "version: 1\ndefault: allow\nbogus: 1\n").expect("write");
    let e = Policy::load(&path).expect_err("bad file");
    assert_eq!(e.file, path.display().to_string());
    assert_eq!(e.line, Some(3));
    std::fs::write(&path, countersign_policy::SAMPLE_POLICY).expect("write");
    let policy = Policy::load(&path).expect("sample loads");
    assert_eq!(
        policy.hash(),
        Policy::parse(countersign_policy::SAMPLE_POLICY, "x")
            .expect("sample")
            .hash()
    );
    let missing = Policy::load(&dir.join("missing.yaml")).expect_err("missing");
    assert!(missing.message.contains("cannot read"), "{missing}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_notification_targets_are_refused_with_the_fix() {
    for (target, says) in [
        ("email:bob@example.com", "unknown channel `email`"),
        ("slack:@bob", "name a person by email"),
        ("slack:", "malformed"),
        ("#approvals", "has no channel"),
    ] {
        let text = format!(
            "{HEAD}  - name: r\n    effect: review\n    review: {{notify: [\"{target}\"]}}\n"
        );
        let e = error(&text).to_string();
        assert!(e.contains(says), "{target}: {e}");
        assert!(e.contains("e.g. `slack:"), "the fix is shown: {e}");
    }
    let text = format!(
        "{HEAD}  - name: r\n    effect: review\n    review: {{escalate: {{after: 5m, notify: []}}}}\n"
    );
    assert!(
        error(&text)
            .to_string()
            .contains("escalate.notify` is empty")
    );
}

#[test]
fn a_reading_time_as_long_as_the_timeout_is_refused() {
    let e = error(&format!(
        "{HEAD}  - name: never\n    effect: review\n    review: {{timeout: 1m, min_review_time: 1m}}\n"
    ));
    assert!(e.message.contains("min_review_time"), "{e}");
    assert!(e.message.contains("nobody could ever approve"), "{e}");
}

#[test]
fn standing_approvals_are_bounded_and_never_with_mfa() {
    for (review, says) in [
        ("{mfa: true, standing: {max: 1h, max_uses: 5}}", "mfa: true"),
        ("{standing: {max: 8d, max_uses: 5}}", "at most 7d"),
        ("{standing: {max: 0s, max_uses: 5}}", "longer than zero"),
        ("{standing: {max: 1h, max_uses: 0}}", "max_uses"),
        ("{standing: {max: 1h, max_uses: 1001}}", "1 to 1000"),
        ("{standing: {max: 1h, max_uses: 5, scope: []}}", "is empty"),
        (
            "{standing: {max: 1h, max_uses: 5, scope: [kind, labels]}}",
            "`labels`",
        ),
        ("{standing: {max: 1h, max_uses: 5, until: 1h}}", "until"),
    ] {
        let e = error(&format!(
            "{HEAD}  - name: standing\n    effect: review\n    review: {review}\n"
        ));
        assert!(e.message.contains(says), "{review}: {e}");
    }
}

/// What the YAML reader refuses before parsing (control characters) is named on its own line,
/// not line 1 (found by the fuzz target `policy_condition`).
#[test]
fn characters_yaml_refuses_are_named_on_their_line() {
    for (text, line) in [
        (
            format!("{HEAD}  - name: a\n    when: \"x\u{7f}y\"\n    effect: allow\n"),
            7,
        ),
        (
            format!(
                "{HEAD}  - name: ééé\n    effect: allow\n  - name: \"b\u{81}\"\n    effect: deny\n"
            ),
            8,
        ),
        (
            format!("{HEAD}  # a comment\u{1}\n  - name: c\n    effect: allow\n"),
            6,
        ),
        ("\u{7}version: 1\n".to_string(), 1),
    ] {
        let e = error(&text);
        assert_eq!(e.line, Some(line), "{e}");
        assert!(e.message.contains("control characters"), "{e}");
        assert!(!e.message.contains("position"), "{e}");
    }
}
