//! Evaluation: the first matching rule decides, globs mean what the docs say, decisions carry
//! their reasons and requirements, and a condition that errors denies (the policy fails closed).

use crate::support::{action, agent, now, person};
use countersign_core::{Effect, OnTimeout, Principal};
use countersign_policy::{Policy, RuleOutcome};
use serde_json::json;

fn policy(rules: &str) -> Policy {
    let text = format!(
        "version: 1\ndefault: review\ndefaults:\n  review: {{approvers: [{{group: sre, count: 1}}], timeout: 30m}}\nrules:\n{rules}"
    );
    Policy::parse(&text, "test.yaml").unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn first_match_wins() {
    let p = policy(
        "  - {name: first, match: {kind: 'db.*'}, effect: deny}\n  - {name: second, match: {kind: db.query}, effect: allow}\n",
    );
    let d = p.evaluate(&agent(), &action("db.query", "x", json!({})), now());
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(d.rule.as_deref(), Some("first"));
    assert_eq!(d.reason, "denied by rule first");

    // A rule whose condition is false does not stop the search.
    let p = policy(
        "  - {name: big, when: 'params.n > 10', effect: deny}\n  - {name: rest, effect: allow}\n",
    );
    let d = p.evaluate(&agent(), &action("a", "b", json!({"n": 3})), now());
    assert_eq!(d.rule.as_deref(), Some("rest"));
    assert_eq!(d.reason, "allowed by rule rest");
}

#[test]
fn no_match_gives_the_default_with_its_requirements() {
    let p = policy("  - {name: only-db, match: {kind: 'db.*'}, effect: allow}\n");
    let d = p.evaluate(&agent(), &action("shell.exec", "host", json!({})), now());
    assert_eq!(d.effect, Effect::Review);
    assert_eq!(d.rule, None);
    assert_eq!(d.reason, "no rule matched; policy default is review");
    let r = d.requirements.expect("review requirements");
    assert_eq!(r.summary(), "1 of sre");
    assert_eq!(r.timeout_seconds, 1800);
    assert_eq!(p.default_review_timeout_seconds(), 1800);
    assert_eq!(d.policy_hash, p.hash());
}

#[test]
fn person_ids_are_canonical_so_principal_patterns_match_in_any_case() {
    let p = policy(
        "  - {name: alice, match: {principal: 'User:Alice@Example.COM'}, effect: deny}\n  - {name: team, match: {principal: 'USER:*@EXAMPLE.com'}, effect: allow}\n",
    );
    let rule = |who: &Principal| p.evaluate(who, &action("a", "b", json!({})), now()).rule;
    assert_eq!(
        rule(&person("alice@example.com", &[])).as_deref(),
        Some("alice")
    );
    assert_eq!(
        rule(&person("ALICE@example.com", &[])).as_deref(),
        Some("alice")
    );
    assert_eq!(
        rule(&person("Bob@Example.com", &[])).as_deref(),
        Some("team")
    );
    assert_eq!(rule(&agent()), None);
}

#[test]
fn globs_cover_kind_resource_and_principal() {
    let p = policy(
        "  - name: prod-agents\n    match: {kind: [db.export, 'db.dump*'], resource: 'postgres://prod/*', principal: 'agent:*'}\n    effect: deny\n",
    );
    let hit = |kind: &str, resource: &str, who: &Principal| {
        p.evaluate(who, &action(kind, resource, json!({})), now())
            .rule
            .is_some()
    };
    let alice = person("alice@example.com", &["sre"]);
    assert!(hit("db.export", "postgres://prod/customers", &agent()));
    assert!(hit("db.dump.full", "postgres://prod/a/b.c", &agent()));
    assert!(!hit("db.export", "postgres://prod/customers", &alice));
    assert!(!hit("db.export", "postgres://staging/customers", &agent()));
    assert!(!hit("db.exports", "postgres://prod/customers", &agent()));
    assert!(!hit("db.query", "postgres://prod/customers", &agent()));
}

#[test]
fn review_requirements_fill_from_rule_then_defaults_then_built_ins() {
    let p = policy(
        "  - name: two\n    effect: review\n    review:\n      approvers: [{group: sre, count: 1}, {group: security, count: 1}]\n      mfa: true\n      timeout: 15m\n      on_timeout: deny\n      pause_run: true\n      grant_ttl: 1h\n  - name: inherit\n    match: {kind: inherit}\n    effect: review\n",
    );
    let d = p.evaluate(&agent(), &action("anything", "x", json!({})), now());
    assert_eq!(
        d.reason,
        "rule two requires review: 1 of sre, 1 of security"
    );
    let r = d.requirements.expect("requirements");
    assert!(r.mfa && r.pause_run);
    assert_eq!((r.timeout_seconds, r.grant_ttl_seconds), (900, 3600));
    assert_eq!(r.on_timeout, OnTimeout::Deny);
    assert_eq!(d.grant_ttl_seconds, 3600);

    let p = policy("  - {name: inherit, effect: review}\n");
    let d = p.evaluate(&agent(), &action("inherit", "x", json!({})), now());
    let r = d.requirements.expect("requirements");
    assert_eq!(r.summary(), "1 of sre");
    assert!(!r.mfa && !r.pause_run);
    assert_eq!((r.timeout_seconds, r.grant_ttl_seconds), (1800, 300));
}

#[test]
fn allow_rules_set_the_grant_lifetime_and_reasons_can_be_written() {
    let p = policy(
        "  - {name: quick, match: {kind: q}, effect: allow, grant_ttl: 90s}\n  - {name: no, effect: deny, reason: Not today.}\n",
    );
    let d = p.evaluate(&agent(), &action("q", "x", json!({})), now());
    assert_eq!((d.effect, d.grant_ttl_seconds), (Effect::Allow, 90));
    assert_eq!(d.requirements, None);
    let d = p.evaluate(&agent(), &action("other", "x", json!({})), now());
    assert_eq!(d.reason, "Not today.");
}

#[test]
fn policy_fails_closed() {
    let p = policy(
        "  - {name: small-exports-ok, match: {kind: db.export}, when: 'params.rows < 100', effect: allow}\n",
    );
    // `rows` is missing: the allow rule cannot be evaluated, so the action is denied.
    let d = p.evaluate(&agent(), &action("db.export", "x", json!({})), now());
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(d.rule.as_deref(), Some("small-exports-ok"));
    assert!(
        d.reason
            .starts_with("rule `small-exports-ok` failed to evaluate: ")
            && d.reason.contains("rows")
            && d.reason.ends_with("; denied (policy fails closed)"),
        "{}",
        d.reason
    );
    assert_eq!(d.requirements, None);

    // A type mismatch and a non-boolean result fail closed too.
    let d = p.evaluate(
        &agent(),
        &action("db.export", "x", json!({"rows": "10"})),
        now(),
    );
    assert_eq!(
        (d.effect, d.rule.as_deref()),
        (Effect::Deny, Some("small-exports-ok"))
    );
    let p = policy("  - {name: not-a-bool, when: 'params.rows', effect: allow}\n");
    let d = p.evaluate(&agent(), &action("a", "b", json!({"rows": 1})), now());
    assert_eq!(d.effect, Effect::Deny);
    assert!(
        d.reason.contains("instead of true or false"),
        "{}",
        d.reason
    );

    // The error is not read as `false` either: a later allow rule is not reached.
    let p = policy(
        "  - {name: guard, when: 'params.rows > 5', effect: deny}\n  - {name: everything, effect: allow}\n",
    );
    let d = p.evaluate(&agent(), &action("a", "b", json!({})), now());
    assert_eq!((d.effect, d.rule.as_deref()), (Effect::Deny, Some("guard")));
}

#[test]
fn conditions_see_principal_action_and_now() {
    let p = policy(
        "  - name: office-hours\n    when: >-\n      principal.kind == 'user' && 'sre' in principal.groups\n      && action.labels.env == 'prod' && now.getHours() >= 9 && now.getHours() < 17\n    effect: allow\n",
    );
    let mut a = action("x", "y", json!({}));
    a.labels.insert("env".into(), "prod".into());
    let sre = person("bob@example.com", &["sre"]);
    assert_eq!(p.evaluate(&sre, &a, now()).effect, Effect::Allow);
    let night = now() + chrono::Duration::hours(10);
    assert_eq!(p.evaluate(&sre, &a, night).effect, Effect::Review);
    assert_eq!(p.evaluate(&agent(), &a, now()).effect, Effect::Review);
}

#[test]
fn hash_is_of_the_exact_bytes_and_stable() {
    let text = "version: 1\ndefault: allow\n";
    let a = Policy::parse(text, "a.yaml").expect("valid");
    let b = Policy::parse(text, "b.yaml").expect("valid");
    assert_eq!(a.hash(), b.hash());
    // `printf 'version: 1\ndefault: allow\n' | sha256sum`
    assert_eq!(
        a.hash(),
        "sha256:2887b03bc6dc9776c3d4c2abf0379db18bd24e737d91f250fba19dc7f8f451b9"
    );
    let c = Policy::parse("version: 1\ndefault: allow \n", "a.yaml").expect("valid");
    assert_ne!(a.hash(), c.hash(), "a changed byte changes the hash");
    let d = a.evaluate(&agent(), &action("a", "b", json!({})), now());
    assert_eq!(d.policy_hash, a.hash());
}

#[test]
fn explain_traces_every_rule_and_agrees_with_evaluate() {
    let p = policy(
        "  - {name: reads, match: {kind: db.query}, effect: allow}\n  - {name: prod, match: {resource: 'prod/*'}, effect: deny}\n  - {name: big, when: 'params.rows > 10', effect: deny}\n  - {name: agents, match: {principal: 'agent:*'}, effect: allow}\n  - {name: later, effect: allow}\n",
    );
    let a = action("db.export", "staging/x", json!({"rows": 3}));
    let e = p.explain(&agent(), &a, now());
    assert_eq!(e.decision, p.evaluate(&agent(), &a, now()));
    let outcomes: Vec<&RuleOutcome> = e.rules.iter().map(|t| &t.outcome).collect();
    assert!(matches!(outcomes[0], RuleOutcome::KindDiffers { .. }));
    assert!(matches!(outcomes[1], RuleOutcome::ResourceDiffers { .. }));
    assert_eq!(outcomes[2], &RuleOutcome::ConditionFalse);
    assert_eq!(outcomes[3], &RuleOutcome::Matched);
    assert_eq!(outcomes[4], &RuleOutcome::NotReached);
    let text = e.to_string();
    assert!(text.contains("MATCHED"), "{text}");
    assert!(text.contains("decision:  allow (rule agents)"), "{text}");
    let json = serde_json::to_value(&e).expect("serializes");
    assert_eq!(json["rules"][2]["outcome"], "condition_false");
    assert_eq!(json["decision"]["effect"], "allow");

    let failed = p.explain(&agent(), &action("x", "y", json!({})), now());
    assert!(matches!(
        failed.rules[2].outcome,
        RuleOutcome::ConditionFailed { .. }
    ));
    assert!(failed.to_string().contains("FAILED"), "{failed}");
}

#[test]
fn a_policy_is_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Policy>();
    let p = std::sync::Arc::new(policy(
        "  - {name: big, match: {kind: db.export}, when: 'params.rows > 1000', effect: deny}\n",
    ));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let p = std::sync::Arc::clone(&p);
            std::thread::spawn(move || {
                let rows = if i % 2 == 0 { 10 } else { 5000 };
                p.evaluate(
                    &agent(),
                    &action("db.export", "x", json!({"rows": rows})),
                    now(),
                )
                .effect
            })
        })
        .collect();
    let effects: Vec<Effect> = handles
        .into_iter()
        .map(|h| h.join().expect("no panic"))
        .collect();
    assert_eq!(
        effects,
        [Effect::Review, Effect::Deny, Effect::Review, Effect::Deny]
    );
}

#[test]
fn review_names_its_audience_reminders_and_escalation() {
    let p = policy(
        "  - name: loud\n    effect: review\n    review:\n      notify: [\"slack:#prod\", \"slack:@lead@example.com\"]\n      remind: 10m\n      escalate: {after: 20m, notify: [\"slack:#sre-leads\"]}\n",
    );
    let r = p
        .evaluate(&agent(), &action("x", "y", json!({})), now())
        .requirements
        .expect("requirements");
    assert_eq!(r.notify, ["slack:#prod", "slack:@lead@example.com"]);
    assert_eq!(r.remind_seconds, Some(600));
    let e = r.escalate.expect("escalation");
    assert_eq!(
        (e.after_seconds, e.notify.as_slice()),
        (1200, &["slack:#sre-leads".to_string()][..])
    );

    let quiet = policy("  - {name: quiet, effect: review}\n");
    let r = quiet
        .evaluate(&agent(), &action("x", "y", json!({})), now())
        .requirements
        .expect("requirements");
    assert!(r.notify.is_empty() && r.remind_seconds.is_none() && r.escalate.is_none());
}

#[test]
fn always_denies_only_when_no_params_could_pass() {
    let p = policy(
        "  - {name: no-env, match: {kind: 'mcp.tool.*.get-env'}, effect: deny}\n  - {name: big, match: {kind: 'mcp.tool.*.get-sum'}, when: 'params.a > 10', effect: deny}\n  - {name: sums, match: {kind: 'mcp.tool.*.get-sum'}, effect: deny}\n  - {name: echo-small, match: {kind: 'mcp.tool.*.echo'}, when: 'size(params.message) < 10', effect: allow}\n  - {name: people, match: {kind: 'mcp.tool.*.zap', principal: 'user:*'}, effect: deny}\n",
    );
    let bot = agent();
    let deny = |kind: &str| p.always_denies(&bot, kind, "mcp://x/y");
    assert!(deny("mcp.tool.e.get-env"), "an unconditional deny");
    assert!(
        deny("mcp.tool.e.get-sum"),
        "a conditional deny, then an unconditional one"
    );
    assert!(
        !deny("mcp.tool.e.echo"),
        "a conditional allow may let it through"
    );
    assert!(
        !deny("mcp.tool.e.zap"),
        "the deny is for people; the default reviews"
    );
    let strict = Policy::parse(
        "version: 1\ndefault: deny\nrules:\n  - {name: sums, match: {kind: 'mcp.tool.*.get-sum'}, effect: allow}\n",
        "strict.yaml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(strict.always_denies(&bot, "mcp.tool.e.echo", "mcp://e/echo"));
    assert!(!strict.always_denies(&bot, "mcp.tool.e.get-sum", "mcp://e/get-sum"));
}

#[test]
fn review_may_require_a_comment_and_a_reading_time() {
    let p = policy(
        "  - {name: plain, match: {kind: plain}, effect: review}\n  - name: careful\n    effect: review\n    review: {require_comment: true, min_review_time: 10s}\n",
    );
    let r = p
        .evaluate(&agent(), &action("x", "y", json!({})), now())
        .requirements
        .expect("requirements");
    assert!(r.require_comment);
    assert_eq!(r.min_review_seconds, Some(10));
    let r = p
        .evaluate(&agent(), &action("plain", "y", json!({})), now())
        .requirements
        .expect("requirements");
    assert!(!r.require_comment && r.min_review_seconds.is_none());
}

#[test]
fn a_rule_may_allow_standing_approvals_over_chosen_fields() {
    use countersign_core::standing::ScopeField;
    let p = policy(
        "  - name: narrow\n    match: {kind: narrow}\n    effect: review\n    review: {standing: {max: 30m, max_uses: 20, scope: [resource, kind, kind]}}\n  - name: wide\n    effect: review\n    review: {standing: {max: 8h, max_uses: 100}}\n",
    );
    let narrow = p
        .evaluate(&agent(), &action("narrow", "y", json!({})), now())
        .requirements
        .expect("requirements")
        .standing
        .expect("standing");
    assert_eq!((narrow.max_seconds, narrow.max_uses), (1800, 20));
    assert_eq!(narrow.scope, [ScopeField::Kind, ScopeField::Resource]);
    let wide = p
        .evaluate(&agent(), &action("x", "y", json!({})), now())
        .requirements
        .expect("requirements")
        .standing
        .expect("standing");
    assert_eq!(wide.scope, ScopeField::ALL);
}
