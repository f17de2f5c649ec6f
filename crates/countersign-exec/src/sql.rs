//! `exec.sql.<name>`: SQL on PostgreSQL, run by the gateway with a connection URL the agent
//! never sees.
//!
//! The config: `postgres: {url, read_only (default true), max_rows (default 10000),
//! statement_timeout (default 30s)}`; `url` is a secret reference (`${env:PROD_DB_URL}`) and
//! appears in no error, log line or outcome. The action: `kind: exec.sql.<name>`, `resource:
//! postgres://<name>`, `params: {sql, args?}`. `sql` holds 1 to 20 statements; `args` (strings,
//! numbers, booleans, nulls) are the values of `$1`, `$2`, ... and need exactly one statement.
//! The check parses the SQL (`countersign_policy::sql`): SQL it cannot read is refused as
//! `invalid_sql` before anything is recorded, and its facts are what the policy's `sql` sees.
//!
//! A run (`session`) connects (one connection per run: no session state, such as a `SET
//! ROLE` or a `search_path`, outlives the run that set it, and a gateway whose database is down
//! still starts), opens a transaction (`BEGIN READ ONLY` when `read_only`), runs the statements
//! one by one and commits, or rolls back when `read_only`. PostgreSQL enforces read-only: a
//! write fails with its own message and changes nothing.
//!
//! **Invariant (what runs is what was checked):** `script` cuts the SQL into the statements the
//! policy saw; each is sent alone in a `Parse` message before it runs, which PostgreSQL refuses
//! if it holds more than one command, and transaction control (`BEGIN`, `COMMIT`, `ROLLBACK`)
//! is refused at check, so no statement can end the executor's transaction. `COPY` is refused
//! too (the executor streams no COPY data, and server files are no agent's business).
//!
//! Binding `args`: the statement is prepared server-side (`PREPARE s AS <sql>`, so PostgreSQL
//! infers each parameter's type from where it is used) and run with `EXECUTE s('lit', ...)`,
//! each value an untyped, quoted literal that PostgreSQL converts to that type (`'42'` compared
//! with an `int` column is the integer 42). Quoting doubles `'`, the only special character in
//! such a literal under `standard_conforming_strings = on`, which the session sets first: a value
//! can never end its literal, so it cannot inject SQL. (Binding through the driver's protocol
//! would send typed binary values, so an untyped string could not meet an `int` column.)
//!
//! Why sqlx and not tokio-postgres: sqlx is already the gateway's driver (one TLS stack, one
//! SQLite). The simple query protocol it speaks for raw SQL returns every column as text, which
//! is what an outcome shows for any type, where both drivers' extended protocol returns binary
//! values that would need a decoder per type.
//!
//! Time: `statement_timeout` bounds the whole run on the server: before each statement the
//! session sets `SET LOCAL statement_timeout` to what is left of it. The client gives up a few
//! seconds later ([`CLIENT_MARGIN`]): before the statements were sent that is `failed`; after, it
//! is `unknown` (and the backend is asked to terminate, best effort).
//!
//! Results: `columns` and `rows` (text, or null) of the last statement that returns rows, at
//! most `max_rows` (then `truncated`, with a sentence in `error`; the status stays
//! `succeeded`). `bytes` and `output_sha256` cover every row received from every statement,
//! written as JSON Lines: for each statement that returns rows, its column names as a JSON
//! array, then each row as a JSON array of strings and nulls, each line ending in `\n`.

mod script;
mod session;

use crate::invalid;
use crate::secret::Resolver;
use countersign_app::executors::{Checked, ExecRefusal, ExecutorInfo};
use countersign_core::{Action, ExecStatus, Outcome};
use serde::Deserialize;
use sqlx::ConnectOptions as _;
use sqlx::postgres::PgConnectOptions;
use std::str::FromStr as _;
use std::time::{Duration, Instant};

/// How much longer than `statement_timeout` the client waits before it gives up.
pub const CLIENT_MARGIN: Duration = Duration::from_secs(5);

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/db?sslmode=...`, usually a secret reference.
    pub url: String,
    #[serde(default = "default_read_only")]
    pub read_only: bool,
    #[serde(default = "default_max_rows")]
    pub max_rows: u64,
    #[serde(
        default = "default_statement_timeout",
        deserialize_with = "crate::duration"
    )]
    pub statement_timeout: Duration,
}

/// Shows no URL: one written in place may hold a password.
impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &"[not shown]")
            .field("read_only", &self.read_only)
            .field("max_rows", &self.max_rows)
            .field("statement_timeout", &self.statement_timeout)
            .finish()
    }
}

fn default_read_only() -> bool {
    true
}

fn default_max_rows() -> u64 {
    10_000
}

fn default_statement_timeout() -> Duration {
    Duration::from_secs(30)
}

/// A configured PostgreSQL executor. Holds the connection settings (with the password), so it
/// implements no `Debug`.
pub struct SqlExecutor {
    name: String,
    options: PgConnectOptions,
    read_only: bool,
    max_rows: u64,
    statement_timeout: Duration,
}

/// An accepted action, ready to run.
pub(crate) struct Plan {
    pub statements: Vec<String>,
    /// The `args` as literals, when given.
    pub args: Option<Vec<String>>,
    pub facts: countersign_policy::sql::SqlFacts,
}

impl SqlExecutor {
    pub fn build(name: &str, c: &PostgresConfig, r: &mut Resolver) -> Result<Self, String> {
        let url = r.resolve(&c.url).map_err(|e| format!("`url`: {e}"))?;
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err("`url` must be a postgres:// or postgresql:// URL".into());
        }
        // The parser's message may quote the URL: it is not shown.
        let options = PgConnectOptions::from_str(&url)
            .map_err(|_| "`url` is not a valid PostgreSQL connection URL".to_owned())?
            .application_name("countersign")
            .disable_statement_logging();
        if c.max_rows == 0 {
            return Err("`max_rows` must be above zero".into());
        }
        if c.statement_timeout < Duration::from_millis(1) {
            return Err("`statement_timeout` must be at least 1ms".into());
        }
        Ok(SqlExecutor {
            name: name.to_owned(),
            options,
            read_only: c.read_only,
            max_rows: c.max_rows,
            statement_timeout: c.statement_timeout,
        })
    }

    /// The longest a run takes: `statement_timeout` and the client's margin.
    pub fn timeout(&self) -> Duration {
        self.statement_timeout + CLIENT_MARGIN
    }

    fn resource(&self) -> String {
        format!("postgres://{}", self.name)
    }

    fn plan(&self, action: &Action) -> Result<Plan, ExecRefusal> {
        let resource = self.resource();
        if action.resource != resource {
            return Err(invalid(
                "resource",
                format!("must be {resource:?} for executor {}", self.name),
            ));
        }
        let Some(params) = action.params.as_object() else {
            return Err(invalid("params", "must be an object {sql, args?}"));
        };
        for key in params.keys() {
            if !matches!(key.as_str(), "sql" | "args") {
                return Err(invalid(
                    key,
                    "is not a parameter of a SQL executor (sql, args)",
                ));
            }
        }
        let text = params
            .get("sql")
            .and_then(|s| s.as_str())
            .ok_or_else(|| invalid("sql", "is required: a string of SQL"))?;
        let args = match params.get("args") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Array(items)) if items.is_empty() => None,
            Some(serde_json::Value::Array(items)) => {
                Some(script::literals(items).map_err(|e| invalid("args", e))?)
            }
            Some(_) => {
                return Err(invalid(
                    "args",
                    "must be an array of strings, numbers, booleans and nulls ($1, $2, ...)",
                ));
            }
        };
        let script = script::script(text).map_err(ExecRefusal::InvalidSql)?;
        if args.is_some() && script.statements.len() != 1 {
            return Err(invalid(
                "args",
                format!(
                    "binds $1, $2, ... of exactly one statement; the SQL holds {}",
                    script.statements.len()
                ),
            ));
        }
        Ok(Plan {
            statements: script.statements,
            args,
            facts: script.facts,
        })
    }

    pub fn check(&self, action: &Action) -> Result<Checked, ExecRefusal> {
        let plan = self.plan(action)?;
        let facts = serde_json::to_value(&plan.facts).unwrap_or(serde_json::Value::Null);
        Ok(Checked {
            executor: self.name.clone(),
            timeout: self.timeout(),
            facts: vec![("sql", facts)],
        })
    }

    pub async fn run(&self, action: &Action) -> Outcome {
        let started = Instant::now();
        let plan = match self.plan(action) {
            Ok(p) => p,
            Err(e) => return Outcome::with_error(ExecStatus::Failed, e.to_string()),
        };
        let limits = session::Limits {
            read_only: self.read_only,
            max_rows: self.max_rows,
            statement_timeout: self.statement_timeout,
        };
        let mut o = session::run(&self.options, &plan, &limits, self.timeout()).await;
        o.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        o
    }

    pub fn info(&self) -> ExecutorInfo {
        ExecutorInfo {
            name: self.name.clone(),
            kind: format!("exec.sql.{}", self.name),
            description: format!(
                "SQL on PostgreSQL ({}), run by the gateway with its own credentials: at most \
                 {} rows returned, {} per run",
                if self.read_only {
                    "read-only: writes fail"
                } else {
                    "reads and writes, committed"
                },
                self.max_rows,
                humantime::format_duration(self.statement_timeout),
            ),
            params_schema: serde_json::json!({
                "type": "object",
                "properties": {
                    "sql": {
                        "type": "string",
                        "description": "PostgreSQL SQL: 1 to 20 statements separated by `;`, run in one transaction (no BEGIN, COMMIT or ROLLBACK)"
                    },
                    "args": {
                        "type": "array",
                        "items": {"type": ["string", "number", "boolean", "null"]},
                        "description": "The values of $1, $2, ... (one statement only)"
                    }
                },
                "required": ["sql"],
                "additionalProperties": false
            }),
            resource: self.resource(),
        }
    }
}

#[cfg(test)]
mod postgres_tests;
#[cfg(test)]
mod tests;
