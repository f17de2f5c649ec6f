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

#[test]
fn sample_policy_sql_decisions() {
    let p = sample();
    let sql = |text: &str| {
        let a = action("exec.sql.prod", "postgres://prod", json!({"sql": text}));
        let d = p.evaluate(&agent(), &a, now());
        (d.effect, d.rule, d.reason)
    };
    let free = Some("sql-reads-are-free".to_string());
    let reviewed = Some("sql-writes-and-big-customer-reads-need-sre".to_string());

    // Reads are allowed, unless they may take many customers.
    assert_eq!(sql("select * from orders").0, Effect::Allow);
    assert_eq!(sql("select * from orders").1, free);
    assert_eq!(sql("select * from customers limit 10").1, free);
    assert_eq!(sql("SELECT * FROM public.customers LIMIT 1000").1, free);
    for big in [
        "select * from customers limit 5000",
        "select * from customers",
        "select * from public.customers",
        "select o.* from orders o join customers c on c.id = o.customer_id limit 1001",
        "select * from (select * from customers limit 5) c",
        "select * from customers limit 5; select 1",
    ] {
        let (effect, rule, _) = sql(big);
        assert_eq!((effect, rule), (Effect::Review, reviewed.clone()), "{big}");
    }

    // Writes of any kind are reviewed.
    for write in [
        "insert into orders (id) values (1)",
        "update orders set status = 'paid' where id = 1",
        "delete from orders",
        "with d as (delete from orders returning *) select * from d",
        "select * from orders for update",
        "select nextval('orders_id_seq')",
        "drop table orders",
        "set search_path = other",
    ] {
        let (effect, rule, _) = sql(write);
        assert_eq!(
            (effect, rule),
            (Effect::Review, reviewed.clone()),
            "{write}"
        );
    }

    // SQL that cannot be analyzed is denied by the rule that needed it, never allowed.
    for bad in ["selec * from orders", "", "select 1;".repeat(21).as_str()] {
        let (effect, rule, reason) = sql(bad);
        assert_eq!((effect, rule), (Effect::Deny, reviewed.clone()), "{bad}");
        assert!(
            reason.contains("failed to evaluate") && reason.contains("`sql`: the SQL"),
            "{reason}"
        );
    }
    // Without a string `params.sql`, `sql` is null and the condition errors: denied.
    let a = action(
        "exec.sql.prod",
        "postgres://prod",
        json!({"query": "select 1"}),
    );
    assert_eq!(p.evaluate(&agent(), &a, now()).effect, Effect::Deny);
}
