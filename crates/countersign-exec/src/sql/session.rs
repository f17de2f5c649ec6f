//! One run of checked SQL on PostgreSQL: connect, open the transaction, run each statement
//! (sent alone in a `Parse` first, then run over the simple query protocol so every value comes
//! back as text), commit or roll back, and turn what happened into an [`Outcome`]. Errors are
//! built from PostgreSQL's own message or the kind of failure, never from the connection
//! settings, so no URL or password can reach them.

use super::Plan;
use crate::output::{Capture, Captured};
use countersign_core::{ExecStatus, Outcome};
use futures::TryStreamExt as _;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgDatabaseError, PgRow};
use sqlx::{AssertSqlSafe, Column as _, Connection as _, Either, Executor as _, Row as _};
use sqlx::{SqlSafeStr as _, Statement as _, ValueRef as _};
use std::time::{Duration, Instant};

/// The longest a connection may take to open.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);

/// How long closing a connection, or asking a stuck backend to terminate, may take.
const CLEANUP_LIMIT: Duration = Duration::from_secs(2);

/// The server-side name of the statement `args` are bound to.
const PREPARED: &str = "countersign_statement";

pub(super) struct Limits {
    pub read_only: bool,
    pub max_rows: u64,
    pub statement_timeout: Duration,
}

/// How far a run got, kept outside its future so that a timeout can tell.
#[derive(Default)]
struct Progress {
    /// The statements were sent: they may have acted.
    sent: bool,
    /// The backend's process id, to terminate it if the client gives up.
    backend: Option<i32>,
    connection: Option<PgConnection>,
}

/// Why a run failed, and whether it may have acted.
struct Failure {
    status: ExecStatus,
    message: String,
}

impl Failure {
    fn failed(message: impl Into<String>) -> Self {
        Failure {
            status: ExecStatus::Failed,
            message: message.into(),
        }
    }
}

/// The rows a run kept and the capture of every row received.
struct Results {
    columns: Option<Vec<String>>,
    rows: Option<Vec<Vec<serde_json::Value>>>,
    /// Rows of the kept result past `max_rows`, received and not kept.
    dropped: u64,
    capture: Capture,
}

/// Runs `plan`, giving up after `limit`.
pub(super) async fn run(
    options: &PgConnectOptions,
    plan: &Plan,
    limits: &Limits,
    limit: Duration,
) -> Outcome {
    let mut progress = Progress::default();
    let result = tokio::time::timeout(limit, execute(options, plan, limits, &mut progress)).await;
    let outcome = match result {
        Ok(Ok(results)) => succeeded(results, limits.max_rows),
        Ok(Err(failure)) => Outcome::with_error(failure.status, failure.message),
        Err(_) => {
            if let Some(pid) = progress.backend {
                // The backend may still be running the statement: ask it to stop.
                tokio::spawn(terminate(options.clone(), pid));
            }
            // Not closed: it is in the middle of an exchange.
            drop(progress.connection.take());
            let (status, when) = if progress.sent {
                (
                    ExecStatus::Unknown,
                    "after the SQL was sent; it may have taken effect",
                )
            } else {
                (ExecStatus::Failed, "before the SQL was sent")
            };
            Outcome::with_error(
                status,
                format!(
                    "PostgreSQL did not answer within {} ({when})",
                    humantime::format_duration(limit)
                ),
            )
        }
    };
    if let Some(connection) = progress.connection.take() {
        let _ = tokio::time::timeout(CLEANUP_LIMIT, connection.close()).await;
    }
    outcome
}

fn succeeded(results: Results, max_rows: u64) -> Outcome {
    let captured: Captured = results.capture.finish();
    let mut o = Outcome::with_status(ExecStatus::Succeeded);
    o.bytes = captured.bytes;
    o.output_sha256 = Some(captured.sha256);
    o.columns = results.columns;
    o.rows = results.rows;
    if results.dropped > 0 {
        o.truncated = true;
        o.error = Some(format!(
            "the result has {} rows; only the first {max_rows} (max_rows) are shown",
            max_rows + results.dropped
        ));
    }
    o
}

async fn execute(
    options: &PgConnectOptions,
    plan: &Plan,
    limits: &Limits,
    progress: &mut Progress,
) -> Result<Results, Failure> {
    let started = Instant::now();
    let connect_limit = CONNECT_LIMIT.min(limits.statement_timeout);
    let connection = tokio::time::timeout(connect_limit, PgConnection::connect_with(options))
        .await
        .map_err(|_| {
            Failure::failed(format!(
                "could not connect to PostgreSQL within {}",
                humantime::format_duration(connect_limit)
            ))
        })?
        .map_err(|e| {
            Failure::failed(format!("could not connect to PostgreSQL: {}", describe(&e)))
        })?;
    let conn = progress.connection.insert(connection);

    let setup = |e: sqlx::Error| {
        Failure::failed(format!("could not start the transaction: {}", describe(&e)))
    };
    let begin = if limits.read_only {
        "BEGIN READ ONLY"
    } else {
        "BEGIN"
    };
    sqlx::raw_sql(begin)
        .execute(&mut *conn)
        .await
        .map_err(setup)?;
    // Running a query takes the transaction's snapshot, after which `SET transaction_read_only
    // = off` is refused: the SQL cannot leave read-only mode.
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .map_err(setup)?;
    progress.backend = Some(pid);
    sqlx::raw_sql("SET LOCAL standard_conforming_strings = on")
        .execute(&mut *conn)
        .await
        .map_err(setup)?;

    let mut results = Results {
        columns: None,
        rows: None,
        dropped: 0,
        capture: Capture::keeping(0),
    };
    let count = plan.statements.len();
    for (i, statement) in plan.statements.iter().enumerate() {
        let at = |message: String| {
            if count == 1 {
                message
            } else {
                format!("statement {} of {count}: {message}", i + 1)
            }
        };
        let left = limits.statement_timeout.saturating_sub(started.elapsed());
        if left < Duration::from_millis(1) {
            return Err(Failure::failed(at(format!(
                "statement_timeout ({}) ran out before this statement",
                humantime::format_duration(limits.statement_timeout)
            ))));
        }
        let timeout = format!("SET LOCAL statement_timeout = {}", left.as_millis().max(1));
        sqlx::raw_sql(AssertSqlSafe(timeout))
            .execute(&mut *conn)
            .await
            .map_err(|e| failure(progress.sent, at(describe(&e)), &e))?;
        // Alone in a `Parse`: PostgreSQL refuses a piece holding more than one command. It also
        // names the columns, even of a result without rows.
        let prepared = (&mut *conn)
            .prepare(AssertSqlSafe(statement.as_str()).into_sql_str())
            .await
            .map_err(|e| failure(progress.sent, at(describe(&e)), &e))?;
        let columns: Vec<String> = prepared
            .columns()
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        let text = match &plan.args {
            None => statement.clone(),
            Some(literals) => {
                // Preparing runs nothing: only the `EXECUTE` may act.
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "PREPARE {PREPARED} AS {statement}\n"
                )))
                .execute(&mut *conn)
                .await
                .map_err(|e| failure(progress.sent, at(describe(&e)), &e))?;
                format!("EXECUTE {PREPARED}({})", literals.join(", "))
            }
        };
        progress.sent = true;
        let returns_rows = !columns.is_empty();
        if returns_rows {
            line(&mut results.capture, &columns);
            results.columns = Some(columns);
            results.rows = Some(Vec::new());
            results.dropped = 0;
        }
        let mut stream = sqlx::raw_sql(AssertSqlSafe(text)).fetch_many(&mut *conn);
        while let Some(item) = stream
            .try_next()
            .await
            .map_err(|e| failure(true, at(describe(&e)), &e))?
        {
            let Either::Right(row) = item else { continue };
            let values = values(&row);
            line(&mut results.capture, &values);
            if !returns_rows {
                continue;
            }
            let kept = results.rows.get_or_insert_with(Vec::new);
            if (kept.len() as u64) < limits.max_rows {
                kept.push(values);
            } else {
                results.dropped += 1;
            }
        }
    }
    let end = if limits.read_only {
        "ROLLBACK"
    } else {
        "COMMIT"
    };
    sqlx::raw_sql(end).execute(&mut *conn).await.map_err(|e| {
        // A refused COMMIT rolled back; a lost one may have committed.
        failure(true, format!("{end} failed: {}", describe(&e)), &e)
    })?;
    Ok(results)
}

/// A failed step: PostgreSQL's refusal, or a lost connection, which leaves a step that was sent
/// in doubt.
fn failure(sent: bool, message: String, e: &sqlx::Error) -> Failure {
    let answered = matches!(e, sqlx::Error::Database(_));
    Failure {
        status: if sent && !answered {
            ExecStatus::Unknown
        } else {
            ExecStatus::Failed
        },
        message,
    }
}

/// A row's values: text, or null.
fn values(row: &PgRow) -> Vec<serde_json::Value> {
    (0..row.len())
        .map(|i| match row.try_get_raw(i) {
            Ok(v) if v.is_null() => serde_json::Value::Null,
            // The simple query protocol sends every value as text.
            Ok(v) => v
                .as_str()
                .map(|s| serde_json::Value::String(s.to_owned()))
                .unwrap_or(serde_json::Value::Null),
            Err(_) => serde_json::Value::Null,
        })
        .collect()
}

/// One line of the canonical output: `items` as a compact JSON array and `\n`.
fn line<T: serde::Serialize>(capture: &mut Capture, items: &[T]) {
    let mut bytes = serde_json::to_vec(items).unwrap_or_default();
    bytes.push(b'\n');
    capture.push(&bytes);
}

/// A driver error as a sentence: PostgreSQL's message (with its code, detail and hint), or the
/// kind of failure. Never the connection settings.
fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => {
            let mut text = db.message().to_owned();
            if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
                text.push_str(&format!(" (SQLSTATE {})", pg.code()));
                if let Some(detail) = pg.detail() {
                    text.push_str(&format!("; {detail}"));
                }
                if let Some(hint) = pg.hint() {
                    text.push_str(&format!("; hint: {hint}"));
                }
            }
            text
        }
        sqlx::Error::Io(io) => format!("the connection failed: {io}"),
        sqlx::Error::Tls(tls) => format!("TLS failed: {tls}"),
        sqlx::Error::Protocol(p) => format!("protocol error: {p}"),
        sqlx::Error::Configuration(_) => "the connection settings were refused".to_owned(),
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            "a value could not be read".to_owned()
        }
        _ => "the PostgreSQL driver failed".to_owned(),
    }
}

/// Asks PostgreSQL to end backend `pid`, which a run gave up on (best effort).
async fn terminate(options: PgConnectOptions, pid: i32) {
    let _ = tokio::time::timeout(CLEANUP_LIMIT, async move {
        let mut conn = PgConnection::connect_with(&options).await?;
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(&mut conn)
            .await?;
        conn.close().await
    })
    .await;
}
