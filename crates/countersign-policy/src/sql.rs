//! SQL facts for policy conditions: what a piece of PostgreSQL SQL does, read from its syntax
//! with the `sqlparser` crate (PostgreSQL dialect). Conditions see them as the variable `sql`
//! (for `exec.sql.<name>` actions); the SQL executor checks actions with them. Pure: no I/O, no
//! database, no clock.
//!
//! The facts ([`SqlFacts`]):
//! - `statements`: each statement's kind in order, lower-case (`select`, `insert`, `update`,
//!   `delete`, `merge`, `create`, `drop`, `alter`, `truncate`, `grant`, `revoke`, `copy`, `set`,
//!   `show`, `explain`, `call`, `begin`, `commit`, `rollback`, ..., `other`).
//! - `tables`: every table named anywhere (FROM, JOIN, subqueries, CTE bodies, the targets of
//!   INSERT, UPDATE, DELETE, MERGE, COPY and DDL). A name is lower-cased unless quoted (quoted
//!   identifiers keep their case, as in PostgreSQL). A qualified name is listed as written, its
//!   parts joined with `.` (`public.customers`), **and** by its bare table name (`customers`),
//!   so a rule that names the bare table catches it in every schema. CTE names are not tables.
//! - `reads`, `writes_to`: the same names, split by whether the statement reads or writes them.
//! - `writes`: true when anything may change data, schema, privileges or the session: every
//!   statement but `select`, `show` and an `explain` without `ANALYZE` (so `set` writes: it can
//!   change what later statements mean, e.g. `search_path` or the role); a data-modifying CTE;
//!   `SELECT ... INTO`; `FOR UPDATE`/`FOR SHARE`; a call of any function not known to change
//!   nothing (`kinds::PURE_FUNCTIONS`: `nextval`, `set_config`, `pg_terminate_backend`,
//!   `dblink`, a function of the database's own all write); a user-defined operator.
//!   `EXPLAIN ANALYZE` writes when its statement does. What the parser does not know (`DO`
//!   blocks, `FOR NO KEY UPDATE`, a bare `TABLE t` statement) is an error, never a guess.
//! - `functions`: every function called, named like tables (`pg_catalog.now` stays qualified).
//! - `limit`: the literal `LIMIT` (or `FETCH FIRST n ROWS`) of the outermost query when the SQL
//!   is exactly one statement that reads only; otherwise `null` (no limit, a computed one, or
//!   not a single read).
//!
//! The name lists are sorted, without duplicates. The facts are syntactic: what a view, a rule, a trigger or a function body does is not seen.
//! They help a policy route SQL to the right people; what a read-only executor may do is
//! enforced by PostgreSQL (a `READ ONLY` transaction), not by them.
//!
//! Cost: parsing and the walk are about linear in the SQL's length, which the gateway's body
//! limit bounds (`max_body_bytes`, 256 KiB by default) and [`MAX_SQL_BYTES`] caps whatever that
//! limit is; the parser's recursion is capped at [`MAX_DEPTH`] nested levels and the SQL at
//! [`MAX_STATEMENTS`] statements. Some trees are deep without nesting (`1+1+1+...` is a chain as
//! long as the SQL): they are parsed, walked and dropped on a stack segment of their own
//! ([`ANALYSIS_STACK`], reserved, and touched only as deep as the tree goes), so no caller's
//! thread can overflow. No syntax tree leaves this module: only facts and statement texts.

mod collect;
mod kinds;

use serde::Serialize;
use sqlparser::ast::{Expr, LimitClause, Query, SetExpr, Statement, Value, ValueWithSpan};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Token, Tokenizer};
use std::collections::BTreeSet;

/// The most statements one piece of SQL may hold.
pub const MAX_STATEMENTS: usize = 20;

/// The deepest nesting (subqueries, parentheses, expressions) the parser follows.
pub const MAX_DEPTH: usize = 50;

/// The longest SQL analyzed, in bytes (the gateway's default body limit).
pub const MAX_SQL_BYTES: usize = 256 * 1024;

/// The stack an analysis runs on. The deepest tree [`MAX_SQL_BYTES`] can make (a chain of
/// 128 Ki binary operators) needs less than half of it in an unoptimized build.
pub const ANALYSIS_STACK: usize = 64 * 1024 * 1024;

/// What a piece of SQL does, as far as its syntax tells (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SqlFacts {
    pub statements: Vec<&'static str>,
    pub tables: BTreeSet<String>,
    pub reads: BTreeSet<String>,
    pub writes_to: BTreeSet<String>,
    pub writes: bool,
    pub functions: BTreeSet<String>,
    pub limit: Option<u64>,
}

/// Why SQL has no facts; the gateway answers 400 `invalid_sql` with the sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    #[error("the SQL is empty: it holds no statement")]
    Empty,
    #[error("the SQL cannot be parsed (PostgreSQL dialect): {0}")]
    Unparseable(String),
    #[error("the SQL nests more than {MAX_DEPTH} levels deep")]
    TooDeep,
    #[error("the SQL holds {0} statements; at most {MAX_STATEMENTS} are accepted")]
    TooManyStatements(usize),
    #[error("the SQL is {0} bytes long; at most {MAX_SQL_BYTES} are analyzed")]
    TooLong(usize),
}

/// Parses `sql` (PostgreSQL dialect) into its statements, with this module's bounds. Its
/// result must be dropped on the analysis stack (see `analyze`).
fn parse(sql: &str) -> Result<Vec<Statement>, SqlError> {
    let statements = Parser::new(&PostgreSqlDialect {})
        .with_recursion_limit(MAX_DEPTH)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| match e {
            ParserError::RecursionLimitExceeded => SqlError::TooDeep,
            ParserError::TokenizerError(m) | ParserError::ParserError(m) => {
                SqlError::Unparseable(m)
            }
        })?;
    match statements.len() {
        0 => Err(SqlError::Empty),
        n if n > MAX_STATEMENTS => Err(SqlError::TooManyStatements(n)),
        _ => Ok(statements),
    }
}

/// The facts of `sql`, or why it has none (empty, unparseable, too deep, too long, too many
/// statements).
pub fn analyze(sql: &str) -> Result<SqlFacts, SqlError> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(SqlError::TooLong(sql.len()));
    }
    // The tree is made, walked and dropped on the analysis stack.
    stacker::grow(ANALYSIS_STACK, || {
        parse(sql).map(|statements| facts(&statements))
    })
}

/// The text of each statement of `sql`, in order, trimmed and without its `;`: `sql` cut at the
/// `;` tokens of the same tokenizer `analyze` uses (so a `;` in a string, a quoted name or a
/// comment does not cut); pieces holding only whitespace and comments are left out. A piece is
/// one statement when `analyze` finds as many statements in `sql` as there are pieces and one
/// in each (statements with a `;` inside, like `CREATE RULE ... (a; b)`, fail that test).
pub fn split(sql: &str) -> Result<Vec<String>, SqlError> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(SqlError::TooLong(sql.len()));
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| SqlError::Unparseable(e.to_string()))?;
    let mut cuts: Vec<Location> = Vec::new();
    let mut has_content = Vec::new();
    let mut content = false;
    for t in &tokens {
        match &t.token {
            Token::SemiColon => {
                cuts.push(t.span.start);
                has_content.push(content);
                content = false;
            }
            Token::Whitespace(_) | Token::EOF => {}
            _ => content = true,
        }
    }
    has_content.push(content);
    let offsets = byte_offsets(sql, &cuts)
        .ok_or_else(|| SqlError::Unparseable("the statements cannot be told apart".into()))?;
    let mut pieces = Vec::new();
    let mut from = 0;
    for (i, keep) in has_content.into_iter().enumerate() {
        let to = offsets.get(i).copied().unwrap_or(sql.len());
        if keep {
            pieces.push(sql[from..to].trim().to_owned());
        }
        // Past the `;`, one byte.
        from = to + 1;
    }
    Ok(pieces)
}

/// The byte offsets of `locations` (increasing; lines and columns counted from 1, columns in
/// characters, as the tokenizer counts them), or `None` if one is not in `text`.
fn byte_offsets(text: &str, locations: &[Location]) -> Option<Vec<usize>> {
    let mut offsets = Vec::with_capacity(locations.len());
    let mut wanted = locations.iter().peekable();
    let (mut line, mut column) = (1u64, 1u64);
    for (at, c) in text.char_indices() {
        while wanted
            .next_if(|l| (l.line, l.column) == (line, column))
            .is_some()
        {
            offsets.push(at);
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    wanted.peek().is_none().then_some(offsets)
}

/// The facts of parsed statements.
fn facts(statements: &[Statement]) -> SqlFacts {
    let mut facts = SqlFacts {
        statements: Vec::with_capacity(statements.len()),
        tables: BTreeSet::new(),
        reads: BTreeSet::new(),
        writes_to: BTreeSet::new(),
        writes: false,
        functions: BTreeSet::new(),
        limit: None,
    };
    for statement in statements {
        facts.statements.push(kinds::kind(statement));
        let mut found = collect::collect(statement);
        if matches!(statement, Statement::Explain { .. }) && !kinds::runs_explained(statement) {
            // A plan only: nothing runs, so nothing is written; the tables are still named.
            found.writes = false;
            found.reads.append(&mut found.writes_to);
        }
        facts.tables.append(&mut found.tables);
        facts.reads.append(&mut found.reads);
        facts.writes_to.append(&mut found.writes_to);
        facts.functions.append(&mut found.functions);
        facts.writes |= found.writes;
    }
    if let [Statement::Query(query)] = statements
        && !facts.writes
        && facts.statements == ["select"]
    {
        facts.limit = limit(query);
    }
    facts
}

/// The literal row limit of `query`: `LIMIT n`, `FETCH FIRST n ROWS ONLY` (the smaller if both),
/// or that of a parenthesized query that is its whole body.
fn limit(query: &Query) -> Option<u64> {
    let by_limit = match &query.limit_clause {
        Some(LimitClause::LimitOffset { limit: Some(e), .. }) => Some(literal(e)?),
        Some(LimitClause::LimitOffset { limit: None, .. }) => None,
        Some(LimitClause::OffsetCommaLimit { limit, .. }) => Some(literal(limit)?),
        None => None,
    };
    let by_fetch = match &query.fetch {
        Some(f) if f.percent => return None,
        Some(f) => match &f.quantity {
            Some(e) => Some(literal(e)?),
            None => Some(1),
        },
        None => None,
    };
    match (by_limit, by_fetch) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (Some(n), None) | (None, Some(n)) => Some(n),
        (None, None) => match query.body.as_ref() {
            SetExpr::Query(inner) => limit(inner),
            _ => None,
        },
    }
}

/// A non-negative integer literal, possibly in parentheses.
fn literal(expr: &Expr) -> Option<u64> {
    match expr {
        Expr::Value(ValueWithSpan {
            value: Value::Number(n, _),
            ..
        }) => n.parse().ok(),
        Expr::Nested(inner) => literal(inner),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
