//! The built-in sample policy loads and decides the tour's actions as the README says.

use crate::support::{action, agent, now, person};
use countersign_core::Effect;
use countersign_policy::{Policy, SAMPLE_POLICY};
use serde_json::json;

fn sample() -> Policy {
    Policy::parse(SAMPLE_POLICY, "sample-policy.yaml").unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn sample_policy_decisions() {
    let p = sample();
    let export = action(
        "db.export",
        "postgres://prod/customers",
        json!({"rows": 5000}),
    );
    let d = p.evaluate(&agent(), &export, now());
    assert_eq!(d.effect, Effect::Review);
    assert_eq!(d.rule.as_deref(), Some("prod-export-needs-two"));
    assert_eq!(
        d.reason,
        "rule prod-export-needs-two requires review: 1 of sre, 1 of security"
    );
    let r = d.requirements.expect("requirements");
    assert!(r.pause_run && !r.mfa);
    assert_eq!(r.timeout_seconds, 900);

    let read = action(
        "db.query",
        "postgres://prod/customers",
        json!({"readonly": true}),
    );
    let d = p.evaluate(&agent(), &read, now());
    assert_eq!(
        (d.effect, d.rule.as_deref()),
        (Effect::Allow, Some("reads-are-free"))
    );
    assert_eq!(d.grant_ttl_seconds, 300);
    let unsure = action(
        "db.query",
        "postgres://prod/customers",
        json!({"readonly": "yes"}),
    );
    // CEL's `==` across types is false, not an error: "yes" is not `true`, so no rule allows it.
    let d = p.evaluate(&agent(), &unsure, now());
    assert_eq!((d.effect, d.rule), (Effect::Review, None));

    let drop = action(
        "db.ddl",
        "postgres://prod/orders",
        json!({"sql": "drop table orders"}),
    );
    let d = p.evaluate(&agent(), &drop, now());
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(
        d.reason,
        "Dropping tables in production is never automated."
    );

    let shell = action("shell.exec", "host:build-01", json!({"argv": ["ls"]}));
    let d = p.evaluate(&person("bob@example.com", &["sre"]), &shell, now());
    assert_eq!(
        (d.effect, d.rule.as_deref()),
        (Effect::Review, Some("shell-needs-sre"))
    );

    let other = action("iam.grant", "aws://iam/role/admin", json!({}));
    let d = p.evaluate(&agent(), &other, now());
    assert_eq!((d.effect, d.rule), (Effect::Review, None));
    assert_eq!(d.reason, "no rule matched; policy default is review");
    assert_eq!(p.default_review_timeout_seconds(), 1800);
}
