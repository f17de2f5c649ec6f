//! The SQL executor against a real PostgreSQL: the server named by
//! `COUNTERSIGN_TEST_POSTGRES_URL`, else `postgres://postgres@127.0.0.1:5432/postgres` (trust
//! auth, as on CI machines). Each test makes a database of its own and drops it at the end.
//! When the server's port does not answer, the tests print a note and pass without running.

use super::tests::{action, executor_with};
use super::*;
use sqlx::{Connection as _, PgConnection};
use std::sync::atomic::{AtomicU32, Ordering};

const URL_VAR: &str = "COUNTERSIGN_TEST_POSTGRES_URL";
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh database, and an admin connection to make and drop it.
struct Scratch {
    admin: PgConnection,
    name: String,
    /// The URL of the fresh database.
    url: String,
}

impl Scratch {
    async fn new() -> Option<Scratch> {
        let base = std::env::var(URL_VAR).unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let parsed = url::Url::parse(&base).expect("a PostgreSQL URL");
        let host = parsed.host_str().unwrap_or("127.0.0.1").to_owned();
        let port = parsed.port().unwrap_or(5432);
        let reachable = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await;
        if !matches!(reachable, Ok(Ok(_))) {
            eprintln!("note: PostgreSQL at {host}:{port} does not answer; skipping this test");
            return None;
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "cs_exec_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default()
        );
        let mut admin = PgConnection::connect(&base)
            .await
            .expect("connect as admin");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let mut url = parsed.clone();
        url.set_path(&format!("/{name}"));
        let url = url.to_string();
        let mut setup = PgConnection::connect(&url)
            .await
            .expect("connect to the test database");
        sqlx::raw_sql(
            "CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, total numeric);
             INSERT INTO orders SELECT i, 'customer ' || i, i * 1.5 FROM generate_series(1, 25) i;
             CREATE TABLE secrets (id int);",
        )
        .execute(&mut setup)
        .await
        .expect("create the tables");
        setup.close().await.ok();
        Some(Scratch { admin, name, url })
    }

    /// A read-only executor (the default) on the database, with `extra` config.
    fn executor(&self, name: &str, extra: &str) -> SqlExecutor {
        executor_with(name, &self.url, extra)
    }

    async fn scalar(&self, sql: &'static str) -> i64 {
        let mut conn = PgConnection::connect(&self.url).await.expect("connect");
        let n: i64 = sqlx::query_scalar(sql)
            .fetch_one(&mut conn)
            .await
            .expect("query");
        conn.close().await.ok();
        n
    }

    async fn remove(mut self) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut self.admin)
        .await
        .expect("drop the test database");
        self.admin.close().await.ok();
    }
}

fn sql(name: &str, text: &str) -> Action {
    action(name, serde_json::json!({"sql": text}))
}

#[tokio::test]
async fn a_read_returns_columns_and_text_rows() {
    let Some(db) = Scratch::new().await else {
        return;
    };
    let e = db.executor("pg", "");
    let o = e
        .run(&sql(
            "pg",
            "select id, customer, total, null::text as note from orders where id <= 2 order by id",
        ))
        .await;
    assert_eq!(o.status, ExecStatus::Succeeded, "{o:?}");
    assert_eq!(
        o.columns,
        Some(vec![
            "id".into(),
            "customer".into(),
            "total".into(),
            "note".into()
        ])
    );
    assert_eq!(
        o.rows,
        Some(vec![
            vec![
                "1".into(),
                "customer 1".into(),
                "1.5".into(),
                serde_json::Value::Null
            ],
            vec![
                "2".into(),
                "customer 2".into(),
                "3.0".into(),
                serde_json::Value::Null
            ],
        ])
    );
    assert!(!o.truncated && o.error.is_none());
    // The hash covers the canonical lines: the column names, then each row.
    let canonical = "[\"id\",\"customer\",\"total\",\"note\"]\n[\"1\",\"customer 1\",\"1.5\",null]\n[\"2\",\"customer 2\",\"3.0\",null]\n";
    assert_eq!(o.bytes, canonical.len() as u64);
    use sha2::Digest as _;
    assert_eq!(
        o.output_sha256.as_deref(),
        Some(hex::encode(sha2::Sha256::digest(canonical)).as_str())
    );

    // The last statement that returns rows is shown, even with none.
    let o = e
        .run(&sql(
            "pg",
            "select 1 as a; select id from orders where id < 0; show search_path",
        ))
        .await;
    assert_eq!(o.columns, Some(vec!["search_path".into()]), "{o:?}");
    let o = e
        .run(&sql(
            "pg",
            "select id from orders where id = 1; select id as none from orders where id < 0",
        ))
        .await;
    assert_eq!(
        (o.columns, o.rows),
        (Some(vec!["none".into()]), Some(vec![]))
    );
    db.remove().await;
}

#[tokio::test]
async fn a_write_through_a_read_only_executor_fails_and_changes_nothing() {
    let Some(db) = Scratch::new().await else {
        return;
    };
    let e = db.executor("pg", "");
    for (text, says) in [
        (
            "insert into orders values (100, 'x', 1)",
            "cannot execute INSERT in a read-only transaction",
        ),
        (
            "select 1; delete from orders",
            "statement 2 of 2: cannot execute DELETE in a read-only transaction",
        ),
        (
            "with d as (delete from orders returning 1) select count(*) from d",
            "read-only transaction",
        ),
        ("create table t (id int)", "read-only transaction"),
        // Leaving read-only mode from inside is refused: the transaction has its snapshot.
        (
            "set transaction read write; delete from orders",
            "read-write mode must be set before any query",
        ),
        (
            "set transaction_read_only = off; delete from orders",
            "read-write mode must be set before any query",
        ),
        (
            "select set_config('transaction_read_only', 'off', true); delete from orders",
            "read-write mode must be set before any query",
        ),
    ] {
        let o = e.run(&sql("pg", text)).await;
        assert_eq!(o.status, ExecStatus::Failed, "{text}: {o:?}");
        let error = o.error.unwrap_or_default();
        assert!(error.contains(says), "{text}: {error}");
    }
    assert_eq!(db.scalar("select count(*) from orders").await, 25);
    db.remove().await;
}

#[tokio::test]
async fn a_write_through_a_read_write_executor_commits() {
    let Some(db) = Scratch::new().await else {
        return;
    };
    let e = db.executor("rw", "read_only: false\n");
    let o = e
        .run(&sql(
            "rw",
            "insert into orders values (100, 'new', 2); \
             update orders set total = 0 where id = 1 returning id, total",
        ))
        .await;
    assert_eq!(o.status, ExecStatus::Succeeded, "{o:?}");
    assert_eq!(o.rows, Some(vec![vec!["1".into(), "0".into()]]));
    assert_eq!(db.scalar("select count(*) from orders").await, 26);
    assert_eq!(
        db.scalar("select total::bigint from orders where id = 1")
            .await,
        0
    );
    // A failing statement rolls back the ones before it.
    let o = e
        .run(&sql(
            "rw",
            "delete from orders where id = 100; insert into orders values (1, 'dup', 0)",
        ))
        .await;
    assert_eq!(o.status, ExecStatus::Failed, "{o:?}");
    let error = o.error.unwrap_or_default();
    assert!(
        error.contains("statement 2 of 2: duplicate key") && error.contains("23505"),
        "{error}"
    );
    assert_eq!(db.scalar("select count(*) from orders").await, 26);
    db.remove().await;
}

#[tokio::test]
async fn max_rows_truncates_and_says_so() {
    let Some(db) = Scratch::new().await else {
        return;
    };
    let e = db.executor("pg", "max_rows: 10\n");
    let o = e.run(&sql("pg", "select id from orders order by id")).await;
    assert_eq!(o.status, ExecStatus::Succeeded, "{o:?}");
    assert!(o.truncated);
    let rows = o.rows.expect("rows");
    assert_eq!(rows.len(), 10);
    assert_eq!(rows[9], vec![serde_json::Value::from("10")]);
    let error = o.error.expect("a note");
    assert!(
        error.contains("25 rows") && error.contains("max_rows"),
        "{error}"
    );
    // Every row received is hashed, not only the ones shown.
    let all: String = std::iter::once("[\"id\"]\n".to_owned())
        .chain((1..=25).map(|i| format!("[\"{i}\"]\n")))
        .collect();
    assert_eq!(o.bytes, all.len() as u64);
    db.remove().await;
}

#[tokio::test]
async fn args_are_bound_as_values_never_as_sql() {
    let Some(db) = Scratch::new().await else {
        return;
    };
    let e = db.executor("pg", "");
    let run = async |text: &str, args: serde_json::Value| {
        e.run(&action(
            "pg",
            serde_json::json!({"sql": text, "args": args}),
        ))
        .await
    };
    // Untyped values meet typed columns: PostgreSQL converts them.
    let o = run(
        "select customer from orders where id = $1 and total > $2",
        serde_json::json!(["3", 1]),
    )
    .await;
    assert_eq!(o.status, ExecStatus::Succeeded, "{o:?}");
    assert_eq!(o.rows, Some(vec![vec!["customer 3".into()]]));
    let o = run(
        "select count(*) from orders where id <= $1",
        serde_json::json!([5]),
    )
    .await;
    assert_eq!(o.rows, Some(vec![vec!["5".into()]]), "{o:?}");
    let o = run(
        "select $1::text is null, $2::bool",
        serde_json::json!([null, true]),
    )
    .await;
    assert_eq!(o.rows, Some(vec![vec!["t".into(), "t".into()]]), "{o:?}");
    // An injection attempt stays a value.
    for evil in [
        "1' OR '1'='1",
        "x'); delete from orders; --",
        "\\'; delete from orders; --",
        "$$; delete from orders; --",
    ] {
        let o = run(
            "select count(*) from orders where customer = $1",
            serde_json::json!([evil]),
        )
        .await;
        assert_eq!(o.status, ExecStatus::Succeeded, "{evil}: {o:?}");
        assert_eq!(o.rows, Some(vec![vec!["0".into()]]), "{evil}");
        let o = run("select $1::text", serde_json::json!([evil])).await;
        assert_eq!(o.rows, Some(vec![vec![evil.into()]]), "{evil}");
    }
    // A value that is not of the column's type is PostgreSQL's error.
    let o = run(
        "select * from orders where id = $1",
        serde_json::json!(["1 or 1=1"]),
    )
    .await;
    assert_eq!(o.status, ExecStatus::Failed, "{o:?}");
    assert!(
        o.error
            .unwrap_or_default()
            .contains("invalid input syntax for type integer")
    );
    assert_eq!(db.scalar("select count(*) from orders").await, 25);
    db.remove().await;
}

#[tokio::test]
async fn statement_timeout_stops_a_slow_statement() {
    let Some(db) = Scratch::new().await else {
        return;
    };
    let e = db.executor("pg", "statement_timeout: 1s\n");
    let started = std::time::Instant::now();
    let o = e.run(&sql("pg", "select pg_sleep(10)")).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(o.status, ExecStatus::Failed, "{o:?}");
    assert!(o.error.unwrap_or_default().contains("statement timeout"));
    // The budget covers the whole run: the second statement gets what the first left.
    let started = std::time::Instant::now();
    let o = e
        .run(&sql("pg", "select pg_sleep(0.6); select pg_sleep(0.6)"))
        .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(o.status, ExecStatus::Failed, "{o:?}");
    assert!(o.error.unwrap_or_default().contains("statement 2 of 2"));
    db.remove().await;
}

#[tokio::test]
async fn a_piece_holding_two_commands_never_runs() {
    // Should sqlparser and PostgreSQL ever disagree on where a statement ends, the piece is
    // refused by its lone `Parse` before anything runs.
    let Some(db) = Scratch::new().await else {
        return;
    };
    let e = db.executor("rw", "read_only: false\n");
    let plan = Plan {
        statements: vec!["select 1; delete from orders".into()],
        args: None,
        facts: countersign_policy::sql::analyze("select 1").expect("facts"),
    };
    let limits = session::Limits {
        read_only: false,
        max_rows: 10,
        statement_timeout: Duration::from_secs(5),
    };
    let o = session::run(&e.options, &plan, &limits, e.timeout()).await;
    assert_eq!(o.status, ExecStatus::Failed, "{o:?}");
    let error = o.error.unwrap_or_default();
    assert!(error.contains("cannot insert multiple commands"), "{error}");
    assert_eq!(db.scalar("select count(*) from orders").await, 25);
    db.remove().await;
}

#[tokio::test]
async fn errors_never_show_the_url_or_password() {
    let Some(db) = Scratch::new().await else {
        return;
    };
    let mut wrong = url::Url::parse(&db.url).expect("url");
    wrong.set_username("nobody-here").expect("user");
    wrong
        .set_password(Some("hunter2-secret"))
        .expect("password");
    let e = executor_with("pg", wrong.as_str(), "");
    let o = e.run(&sql("pg", "select 1")).await;
    assert_eq!(o.status, ExecStatus::Failed, "{o:?}");
    let text = serde_json::to_string(&o).expect("json");
    assert!(
        !text.contains("hunter2") && !text.contains(&db.name),
        "{text}"
    );
    assert!(text.contains("could not connect"), "{text}");
    db.remove().await;
}
