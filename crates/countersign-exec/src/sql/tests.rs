use super::*;

pub(super) fn executor_with(name: &str, url: &str, extra: &str) -> SqlExecutor {
    let config: PostgresConfig =
        yaml_serde::from_str(&format!("url: \"${{env:DB}}\"\n{extra}")).expect("valid config");
    let url = url.to_owned();
    let mut r = Resolver::with_env(move |n| (n == "DB").then(|| url.clone()));
    SqlExecutor::build(name, &config, &mut r).unwrap_or_else(|e| panic!("{e}"))
}

fn executor() -> SqlExecutor {
    executor_with(
        "prod",
        "postgres://app:s3cret-pass@db.example:5432/prod",
        "",
    )
}

pub(super) fn action(name: &str, params: serde_json::Value) -> Action {
    Action {
        kind: format!("exec.sql.{name}"),
        resource: format!("postgres://{name}"),
        params,
        justification: None,
        run: None,
        labels: Default::default(),
    }
}

fn refusal(e: &SqlExecutor, a: &Action) -> ExecRefusal {
    e.check(a).expect_err("refused")
}

#[test]
fn config_defaults_and_refusals() {
    let e = executor();
    assert!(e.read_only);
    assert_eq!(e.max_rows, 10_000);
    assert_eq!(e.statement_timeout, Duration::from_secs(30));
    assert_eq!(e.timeout(), Duration::from_secs(35));

    let config: PostgresConfig = yaml_serde::from_str(
        "url: postgres://u:very-secret@h/db\nread_only: false\nmax_rows: 5\nstatement_timeout: 2s\n",
    )
    .expect("valid");
    assert!(!format!("{config:?}").contains("very-secret"));
    let e = SqlExecutor::build("rw", &config, &mut Resolver::with_env(|_| None)).expect("builds");
    assert!(!e.read_only && e.max_rows == 5 && e.statement_timeout == Duration::from_secs(2));

    assert!(yaml_serde::from_str::<PostgresConfig>("url: x\nreadonly: true\n").is_err());
    for (config, says) in [
        ("url: \"${env:MISSING}\"", "MISSING is not set"),
        ("url: mysql://u:p@h/db", "postgres://"),
        ("url: \"postgres://u:p@h:notaport/db\"", "not a valid"),
        ("url: postgres://h/db\nmax_rows: 0", "max_rows"),
        (
            "url: postgres://h/db\nstatement_timeout: 0s",
            "statement_timeout",
        ),
    ] {
        let config: PostgresConfig = yaml_serde::from_str(config).expect("parses");
        let e = SqlExecutor::build("x", &config, &mut Resolver::with_env(|_| None))
            .err()
            .expect(config.url.as_str());
        assert!(e.contains(says), "{e}");
        assert!(!e.contains("u:p@"), "{e}");
    }
}

#[test]
fn check_accepts_sql_and_hands_its_facts_to_the_policy() {
    let e = executor();
    let checked = e
        .check(&action(
            "prod",
            serde_json::json!({"sql": "select * from public.orders limit 3"}),
        ))
        .expect("accepted");
    assert_eq!(checked.executor, "prod");
    assert_eq!(checked.timeout, Duration::from_secs(35));
    let [(name, facts)] = checked.facts.as_slice() else {
        panic!("one fact: {:?}", checked.facts)
    };
    assert_eq!(*name, "sql");
    assert_eq!(facts["statements"], serde_json::json!(["select"]));
    assert_eq!(
        facts["tables"],
        serde_json::json!(["orders", "public.orders"])
    );
    assert_eq!(facts["limit"], serde_json::json!(3));
    assert_eq!(facts["writes"], serde_json::json!(false));

    for params in [
        serde_json::json!({"sql": "select $1::int + $2", "args": [1, "2"]}),
        serde_json::json!({"sql": "select 1; select 2", "args": []}),
        serde_json::json!({"sql": "select 1; select 2", "args": null}),
        serde_json::json!({"sql": "update t set a = $1 where b = $2", "args": [null, true]}),
    ] {
        assert!(e.check(&action("prod", params.clone())).is_ok(), "{params}");
    }
}

#[test]
fn the_resource_must_name_the_executor() {
    let e = executor();
    for resource in ["postgres://other", "postgres://prod/customers", "prod", ""] {
        let mut a = action("prod", serde_json::json!({"sql": "select 1"}));
        a.resource = resource.into();
        match refusal(&e, &a) {
            ExecRefusal::InvalidParams { param, message } => {
                assert_eq!(param, "resource");
                assert!(message.contains("postgres://prod"), "{message}");
            }
            other => panic!("{resource}: {other:?}"),
        }
    }
}

#[test]
fn params_are_checked_by_name() {
    let e = executor();
    for (params, param) in [
        (serde_json::json!({"sql": "select 1", "limit": 5}), "limit"),
        (serde_json::json!({"query": "select 1"}), "query"),
        (serde_json::json!({}), "sql"),
        (serde_json::json!({"sql": 5}), "sql"),
        (serde_json::json!(["select 1"]), "params"),
        (serde_json::json!({"sql": "select $1", "args": "x"}), "args"),
        (
            serde_json::json!({"sql": "select $1", "args": [[1]]}),
            "args",
        ),
        (
            serde_json::json!({"sql": "select $1", "args": [{"a": 1}]}),
            "args",
        ),
        (
            serde_json::json!({"sql": "select $1", "args": ["a\u{0}b"]}),
            "args",
        ),
    ] {
        match refusal(&e, &action("prod", params.clone())) {
            ExecRefusal::InvalidParams { param: got, .. } => assert_eq!(got, param, "{params}"),
            other => panic!("{params}: {other:?}"),
        }
    }
}

#[test]
fn sql_that_cannot_be_read_is_invalid_sql() {
    let e = executor();
    for (sql, says) in [
        ("", "empty"),
        ("selec 1", "cannot be parsed"),
        ("select 1;".repeat(21).as_str(), "at most 20"),
        ("commit; delete from t", "`COMMIT` is not allowed"),
        ("copy t from stdin", "`COPY` is not allowed"),
    ] {
        match refusal(&e, &action("prod", serde_json::json!({"sql": sql}))) {
            e @ ExecRefusal::InvalidSql(_) => {
                assert_eq!(e.code(), "invalid_sql");
                assert!(e.to_string().contains(says), "{sql}: {e}");
            }
            other => panic!("{sql}: {other:?}"),
        }
    }
}

#[test]
fn args_bind_exactly_one_statement() {
    let e = executor();
    let a = action(
        "prod",
        serde_json::json!({"sql": "select $1; delete from t where id = $1", "args": [1]}),
    );
    match refusal(&e, &a) {
        ExecRefusal::InvalidParams { param, message } => {
            assert_eq!(param, "args");
            assert!(
                message.contains("exactly one statement") && message.contains('2'),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn info_describes_the_action_and_no_secret() {
    let info = executor().info();
    assert_eq!(info.kind, "exec.sql.prod");
    assert_eq!(info.resource, "postgres://prod");
    assert_eq!(info.params_schema["required"], serde_json::json!(["sql"]));
    assert_eq!(info.params_schema["properties"]["args"]["type"], "array");
    assert!(
        info.description.contains("read-only"),
        "{}",
        info.description
    );
    let text = format!("{info:?}");
    assert!(
        !text.contains("s3cret") && !text.contains("db.example"),
        "{text}"
    );
}

#[tokio::test]
async fn an_unreachable_database_fails_without_showing_the_url() {
    // A port that accepts and never answers, then one that refuses.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let silent = listener.local_addr().expect("address").port();
    let e = executor_with(
        "slow",
        &format!("postgres://app:s3cret-pass@127.0.0.1:{silent}/db?sslmode=disable"),
        "statement_timeout: 1s\n",
    );
    let o = e
        .run(&action("slow", serde_json::json!({"sql": "select 1"})))
        .await;
    assert_eq!(o.status, ExecStatus::Failed, "{o:?}");
    let error = o.error.expect("error");
    assert!(error.contains("could not connect"), "{error}");
    drop(listener);

    let e = executor_with(
        "gone",
        &format!("postgres://app:s3cret-pass@127.0.0.1:{silent}/db?sslmode=disable"),
        "",
    );
    let o = e
        .run(&action("gone", serde_json::json!({"sql": "select 1"})))
        .await;
    assert_eq!(o.status, ExecStatus::Failed, "{o:?}");
    let error = o.error.expect("error");
    assert!(error.contains("could not connect"), "{error}");
    assert!(
        !error.contains("s3cret") && !error.contains("app:"),
        "{error}"
    );
}
