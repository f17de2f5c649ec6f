use super::*;

fn facts(sql: &str) -> SqlFacts {
    analyze(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[test]
fn a_plain_read() {
    let f = facts("SELECT id, name FROM Customers WHERE id = 1 LIMIT 10");
    assert_eq!(f.statements, ["select"]);
    assert_eq!(f.tables, set(&["customers"]));
    assert_eq!(f.reads, set(&["customers"]));
    assert!(f.writes_to.is_empty() && !f.writes);
    assert_eq!(f.limit, Some(10));
    assert!(f.functions.is_empty());
}

#[test]
fn joins_subqueries_and_set_operations_name_every_table() {
    let f = facts(
        "select o.id from orders o join customers c on c.id = o.customer_id \
         left join (select * from refunds where amount > (select max(x) from limits)) r on true \
         where exists (select 1 from audit.events e where e.order_id = o.id) \
         union all select id from archive.orders",
    );
    assert_eq!(
        f.tables,
        set(&[
            "archive.orders",
            "audit.events",
            "customers",
            "events",
            "limits",
            "orders",
            "refunds"
        ])
    );
    assert_eq!(f.reads, f.tables);
    assert!(!f.writes);
    assert_eq!(f.functions, set(&["max"]));
    assert_eq!(f.limit, None);
}

#[test]
fn ctes_are_not_tables_but_their_bodies_are_read() {
    let f = facts(
        "WITH recent AS (SELECT * FROM orders WHERE at > now() - interval '1 day'), \
              big AS (SELECT * FROM recent WHERE total > 100) \
         SELECT * FROM big JOIN customers USING (customer_id) LIMIT 5",
    );
    assert_eq!(f.tables, set(&["customers", "orders"]));
    assert_eq!(f.limit, Some(5));
    assert!(!f.writes);
    // A CTE named like a table hides it only after its own body: the body reads the table.
    let f = facts("with customers as (select * from customers) select * from customers");
    assert_eq!(f.tables, set(&["customers"]));
    // A recursive CTE sees itself.
    let f = facts(
        "with recursive tree as (select id from nodes where parent is null \
         union all select n.id from nodes n join tree t on n.parent = t.id) select * from tree",
    );
    assert_eq!(f.tables, set(&["nodes"]));
    // A CTE name used in another statement of the SQL is a table there.
    let f = facts("with t as (select 1) select * from t; select * from t");
    assert_eq!(f.tables, set(&["t"]));
}

#[test]
fn a_data_modifying_cte_writes() {
    let f = facts(
        "WITH gone AS (DELETE FROM sessions WHERE expires < now() RETURNING user_id) \
         SELECT count(*) FROM gone",
    );
    assert_eq!(f.statements, ["select"]);
    assert!(f.writes);
    assert_eq!(f.writes_to, set(&["sessions"]));
    assert_eq!(f.limit, None);
    let f = facts("with x as (select id from staging) insert into target select id from x");
    assert_eq!(f.statements, ["insert"]);
    assert_eq!(f.writes_to, set(&["target"]));
    assert_eq!(f.reads, set(&["staging"]));
}

#[test]
fn quoted_identifiers_keep_their_case_and_qualified_names_add_the_bare_name() {
    let f = facts(r#"SELECT * FROM "Sales"."Orders", public.customers, "lower", MiXeD"#);
    assert_eq!(
        f.tables,
        set(&[
            "Orders",
            "Sales.Orders",
            "customers",
            "lower",
            "mixed",
            "public.customers"
        ])
    );
}

#[test]
fn writes_name_their_targets() {
    let f = facts("INSERT INTO archive.orders (id) SELECT id FROM orders WHERE old");
    assert_eq!(f.statements, ["insert"]);
    assert!(f.writes);
    assert_eq!(f.writes_to, set(&["archive.orders", "orders"]));
    assert_eq!(f.reads, set(&["orders"]));

    let f = facts(
        "update accounts a set balance = a.balance - p.amount from payments p where p.account = a.id",
    );
    assert_eq!(f.statements, ["update"]);
    assert_eq!(f.writes_to, set(&["accounts"]));
    assert_eq!(f.reads, set(&["payments"]));

    let f = facts("delete from orders o using customers c where o.customer = c.id and c.gone");
    assert_eq!(f.statements, ["delete"]);
    assert_eq!(f.writes_to, set(&["orders"]));
    assert_eq!(f.reads, set(&["customers"]));

    let f = facts(
        "merge into stock s using deliveries d on s.item = d.item \
         when matched then update set qty = s.qty + d.qty \
         when not matched then insert (item, qty) values (d.item, d.qty)",
    );
    assert_eq!(f.statements, ["merge"]);
    assert_eq!(f.writes_to, set(&["stock"]));
    assert_eq!(f.reads, set(&["deliveries"]));

    let f = facts("truncate table logs, audit.trail");
    assert_eq!(f.statements, ["truncate"]);
    assert_eq!(f.writes_to, set(&["audit.trail", "logs", "trail"]));
}

#[test]
fn ddl_writes_and_names_its_tables() {
    for (sql, kind, written) in [
        ("create table t (id int)", "create", &["t"][..]),
        (
            "create table t2 as select * from customers",
            "create",
            &["t2"],
        ),
        (
            "create index i on orders (customer_id)",
            "create",
            &["orders"],
        ),
        ("create view v as select * from orders", "create", &["v"]),
        (
            "alter table orders add column note text",
            "alter",
            &["orders"],
        ),
        ("drop table if exists a, s.b", "drop", &["a", "b", "s.b"]),
        (
            "grant select on customers to analyst",
            "grant",
            &["customers"],
        ),
        (
            "revoke select on customers from analyst",
            "revoke",
            &["customers"],
        ),
        ("create sequence s", "create", &[]),
        ("drop index i", "drop", &[]),
    ] {
        let f = facts(sql);
        assert_eq!(f.statements, [kind], "{sql}");
        assert!(f.writes, "{sql}");
        assert_eq!(f.writes_to, set(written), "{sql}");
    }
    assert_eq!(
        facts("create table t2 as select * from customers").reads,
        set(&["customers"])
    );
}

#[test]
fn select_into_and_locking_reads_write() {
    let f = facts("SELECT * INTO backup_orders FROM orders");
    assert!(f.writes);
    assert_eq!(f.writes_to, set(&["backup_orders"]));
    assert_eq!(f.reads, set(&["orders"]));
    assert_eq!(f.limit, None);

    for sql in [
        "select * from jobs for update skip locked limit 1",
        "select * from jobs for share",
    ] {
        let f = facts(sql);
        assert!(f.writes, "{sql}");
        assert_eq!(f.limit, None, "{sql}");
        assert!(f.writes_to.is_empty(), "{sql}");
    }
}

#[test]
fn functions_that_may_change_something_make_a_select_write() {
    let f =
        facts("select lower(name), count(*), pg_catalog.now() from customers group by 1 limit 3");
    assert!(!f.writes);
    assert_eq!(f.functions, set(&["count", "lower", "pg_catalog.now"]));
    assert_eq!(f.limit, Some(3));
    for sql in [
        "select nextval('orders_id_seq')",
        "select pg_terminate_backend(pid) from pg_stat_activity",
        "select set_config('search_path', 'evil', false)",
        "select * from dblink('host=x', 'delete from t') as r(x int)",
        "select app.refresh_cache()",
        "select * from customers where id = 1 and app.audit(id)",
        "select 1 ### 2",
        "select 1 operator(public.+) 2",
    ] {
        assert!(facts(sql).writes, "{sql}");
    }
    // A set-returning function in FROM is a call, not a table.
    let f = facts("select * from generate_series(1, 10) g, unnest(array[1, 2]) u");
    assert!(f.tables.is_empty(), "{:?}", f.tables);
    assert_eq!(f.functions, set(&["generate_series"]));
    assert!(!f.writes);
}

#[test]
fn statement_kinds_and_which_write() {
    for (sql, kind, writes) in [
        ("show search_path", "show", false),
        ("explain select * from orders", "explain", false),
        ("explain delete from orders", "explain", false),
        ("explain analyze delete from orders", "explain", true),
        ("explain (analyze) select * from orders", "explain", false),
        (
            "explain (analyze, buffers) update orders set x = 1",
            "explain",
            true,
        ),
        (
            "explain (analyze false) update orders set x = 1",
            "explain",
            false,
        ),
        ("set search_path = evil, public", "set", true),
        ("set local statement_timeout = 0", "set", true),
        ("reset role", "set", true),
        ("copy orders to stdout", "copy", true),
        ("copy orders from stdin", "copy", true),
        ("call refresh_all()", "call", true),
        ("begin", "begin", true),
        ("commit", "commit", true),
        ("rollback", "rollback", true),
        ("lock table orders", "lock", true),
        ("vacuum orders", "vacuum", true),
        ("values (1), (2)", "select", false),
    ] {
        let f = facts(sql);
        assert_eq!((f.statements[0], f.writes), (kind, writes), "{sql}");
    }
    let f = facts("explain delete from orders");
    assert_eq!(f.reads, set(&["orders"]));
    assert!(f.writes_to.is_empty());
    // `TABLE t` reads `t` (the parser takes it in a query, not as a statement).
    assert_eq!(
        facts("select * from a union table b").tables,
        set(&["a", "b"])
    );
    assert_eq!(
        facts("with x as (table b) select * from x").tables,
        set(&["b"])
    );
    assert_eq!(facts("copy orders from stdin").writes_to, set(&["orders"]));
    assert_eq!(facts("copy orders to stdout").reads, set(&["orders"]));
    assert_eq!(facts("call refresh_all()").functions, set(&["refresh_all"]));
}

#[test]
fn several_statements_keep_their_order_and_have_no_limit() {
    let f = facts("select * from a limit 1; insert into b values (1); select 1");
    assert_eq!(f.statements, ["select", "insert", "select"]);
    assert!(f.writes);
    assert_eq!(f.reads, set(&["a"]));
    assert_eq!(f.writes_to, set(&["b"]));
    assert_eq!(f.limit, None);
    assert_eq!(facts("select 1; select 2 limit 1").limit, None);
}

#[test]
fn comments_are_ignored() {
    let f = facts(
        "-- a line comment; with a semicolon\n/* a block /* nested */ comment; drop table x */ \
         SELECT * FROM t /* inline */ LIMIT /* here */ 7 -- trailing",
    );
    assert_eq!(f.statements, ["select"]);
    assert_eq!(f.tables, set(&["t"]));
    assert_eq!(f.limit, Some(7));
    // Strings are not comments or statement ends either.
    let f = facts("select 'x; drop table y -- z' from t; select $$a;b$$");
    assert_eq!(f.statements, ["select", "select"]);
    assert_eq!(f.tables, set(&["t"]));
    // `#` is PostgreSQL's XOR, not a comment; a backslash does not escape a quote.
    let f = facts("select 1 # 2; delete from t");
    assert_eq!(f.statements, ["select", "delete"]);
    let f = facts(r"select 'a\'; delete from t");
    assert_eq!(f.statements, ["select", "delete"]);
}

#[test]
fn limits_are_literal_or_null() {
    for (sql, limit) in [
        ("select * from t limit 1000", Some(1000)),
        ("select * from t limit 10 offset 50", Some(10)),
        (
            "select * from t offset 5 fetch first 20 rows only",
            Some(20),
        ),
        ("select * from t fetch first row only", Some(1)),
        ("(select * from t limit 4)", Some(4)),
        ("select * from t limit (25)", Some(25)),
        ("select * from t", None),
        ("select * from t limit all", None),
        ("select * from t limit $1", None),
        ("select * from t limit 10 + 1", None),
        ("select * from t limit (select 5)", None),
        ("select * from (select * from t limit 5) s", None),
        ("select * from t union select * from u limit 9", Some(9)),
        ("insert into t select * from u limit 5", None),
    ] {
        assert_eq!(facts(sql).limit, limit, "{sql}");
    }
}

#[test]
fn bad_sql_is_an_error_with_a_sentence() {
    for (sql, says) in [
        ("", "empty"),
        ("  -- only a comment\n", "empty"),
        (";;", "empty"),
        ("selec * from t", "cannot be parsed"),
        ("select * from", "cannot be parsed"),
        ("select 'unterminated", "cannot be parsed"),
        ("DO $$ begin delete from t; end $$", "cannot be parsed"),
        ("table orders", "cannot be parsed"),
        ("select * from jobs for no key update", "cannot be parsed"),
    ] {
        let e = analyze(sql).expect_err(sql);
        assert!(e.to_string().contains(says), "{sql}: {e}");
    }
    let many = "select 1;".repeat(MAX_STATEMENTS + 1);
    assert_eq!(
        analyze(&many),
        Err(SqlError::TooManyStatements(MAX_STATEMENTS + 1))
    );
    assert!(analyze(&"select 1;".repeat(MAX_STATEMENTS)).is_ok());
    let deep = format!("select {}1{}", "(".repeat(500), ")".repeat(500));
    assert_eq!(analyze(&deep), Err(SqlError::TooDeep));
}

#[test]
fn nesting_up_to_the_limit_parses_quickly() {
    // Parenthesized expressions and subqueries are where a backtracking parser could blow up.
    for sql in [
        format!("select {}1{}", "(".repeat(40), ")".repeat(40)),
        format!(
            "select * from t where x in {}select 1{}",
            "(select * from (".repeat(10),
            ") s)".repeat(10)
        ),
    ] {
        let started = std::time::Instant::now();
        let _ = analyze(&sql);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{sql}"
        );
    }
}

#[test]
fn facts_serialize_as_the_policy_sees_them() {
    let v = serde_json::to_value(facts("select * from s.t limit 2")).expect("serializes");
    assert_eq!(
        v,
        serde_json::json!({
            "statements": ["select"],
            "tables": ["s.t", "t"],
            "reads": ["s.t", "t"],
            "writes_to": [],
            "writes": false,
            "functions": [],
            "limit": 2
        })
    );
}

#[test]
fn the_deepest_trees_within_the_size_cap_are_analyzed_on_any_thread() {
    // Chains as deep as the SQL is long, on a thread with a small stack of its own.
    let chain = format!("select {}1", "1+".repeat((MAX_SQL_BYTES - 8) / 2));
    let unions = format!(
        "select 1{}",
        " union select 1".repeat((MAX_SQL_BYTES - 8) / 15)
    );
    for sql in [chain, unions] {
        assert!(sql.len() <= MAX_SQL_BYTES);
        let facts = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || analyze(&sql))
            .expect("a thread")
            .join()
            .expect("no overflow");
        assert_eq!(facts.expect("analyzed").statements, ["select"]);
    }
    let long = format!("select '{}'", "x".repeat(MAX_SQL_BYTES));
    assert_eq!(analyze(&long), Err(SqlError::TooLong(long.len())));
    assert_eq!(split(&long), Err(SqlError::TooLong(long.len())));
}

#[test]
fn split_cuts_at_semicolons_outside_strings_names_and_comments() {
    let split = |sql: &str| split(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_eq!(split("select 1"), ["select 1"]);
    assert_eq!(split(" select 1 ;\n select 2; "), ["select 1", "select 2"]);
    assert_eq!(
        split("select 'a;b', \"c;d\" from t; -- x; y\nselect $q$;$q$ /* ; */"),
        [
            "select 'a;b', \"c;d\" from t",
            "-- x; y\nselect $q$;$q$ /* ; */"
        ]
    );
    assert_eq!(split(";; select 1;;; -- only a comment\n;"), ["select 1"]);
    assert_eq!(
        split("select 'é;ü' ;\nselect 'ß'\n;select 3"),
        ["select 'é;ü'", "select 'ß'", "select 3"]
    );
    assert_eq!(
        split(r"select 'a\'; delete from t"),
        [r"select 'a\'", "delete from t"]
    );
    assert!(split("").is_empty());
    assert!(matches!(
        super::split("select 'open"),
        Err(SqlError::Unparseable(_))
    ));
}
