//! An action's SQL made ready to run: cut into its statements, each checked alone, and its
//! `args` written as literals. Pure: no connection, no clock.
//!
//! `countersign_policy::sql::split` cuts the SQL where its parser does; each piece must then be
//! exactly one statement, the same ones `analyze` found in the whole. The session sends each
//! piece alone in a `Parse` message before running it, which PostgreSQL refuses if it holds
//! more than one command: what runs is exactly what the policy saw, even where the parser and
//! PostgreSQL would read a piece differently.

use countersign_policy::sql::{self, SqlFacts};

/// Statement kinds an action may not hold. The executor runs the SQL in one transaction of its
/// own: a `COMMIT` in the SQL would end it (and with it the read-only mode). `COPY` moves data
/// through the connection (`STDIN`, `STDOUT`), which the executor does not stream, or through
/// the server's files and programs, which an agent has no business reaching.
const REFUSED: &[(&str, &str)] = &[
    (
        "begin",
        "the executor runs the SQL in a transaction of its own, and commits or rolls back itself",
    ),
    (
        "commit",
        "the executor runs the SQL in a transaction of its own, and commits or rolls back itself",
    ),
    (
        "rollback",
        "the executor runs the SQL in a transaction of its own, and commits or rolls back itself",
    ),
    ("copy", "select the rows, or insert them"),
];

/// An action's SQL, checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Script {
    /// The text of each statement, in order, without its `;`.
    pub statements: Vec<String>,
    /// The facts of the whole SQL.
    pub facts: SqlFacts,
}

/// Cuts and checks `text`. The error is a sentence for `invalid_sql`.
pub(crate) fn script(text: &str) -> Result<Script, String> {
    let facts = sql::analyze(text).map_err(|e| e.to_string())?;
    let statements = sql::split(text).map_err(|e| e.to_string())?;
    if statements.len() != facts.statements.len() {
        return Err(format!(
            "the SQL holds {} statements but cuts at `;` into {} pieces; write statements \
             without a `;` inside",
            facts.statements.len(),
            statements.len()
        ));
    }
    let count = statements.len();
    for (i, piece) in statements.iter().enumerate() {
        let at = |what: String| {
            if count == 1 {
                what
            } else {
                format!("statement {} of {count}: {what}", i + 1)
            }
        };
        let alone = sql::analyze(piece).map_err(|e| at(e.to_string()))?;
        if alone.statements.len() != 1 || alone.statements[0] != facts.statements[i] {
            return Err(at(format!(
                "it does not read as the {} statement it is in the whole SQL",
                facts.statements[i]
            )));
        }
        let kind = facts.statements[i];
        if let Some((_, why)) = REFUSED.iter().find(|(k, _)| *k == kind) {
            return Err(at(format!(
                "`{}` is not allowed: {why}",
                kind.to_uppercase()
            )));
        }
    }
    Ok(Script { statements, facts })
}

/// `args` as SQL literals for `EXECUTE`: `NULL`, or the value's text in single quotes with
/// every `'` doubled. Under `standard_conforming_strings = on` (which the session sets) that
/// quote is the only character special inside such a literal, so no value can end it early.
/// The literal has no type: PostgreSQL converts it to the parameter's type, as if it had been
/// written in place (`'42'` against an `int` column is 42; `'abc'` there is an error).
pub(crate) fn literals(args: &[serde_json::Value]) -> Result<Vec<String>, String> {
    args.iter()
        .enumerate()
        .map(|(i, v)| {
            let text = match v {
                serde_json::Value::Null => return Ok("NULL".to_owned()),
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::String(s) => s.clone(),
                _ => {
                    return Err(format!(
                        "`args[{i}]` must be a string, a number, a boolean or null"
                    ));
                }
            };
            if text.contains('\0') {
                return Err(format!(
                    "`args[{i}]` holds a NUL character, which PostgreSQL text cannot"
                ));
            }
            Ok(format!("'{}'", text.replace('\'', "''")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_checked_one_by_one() {
        let s = script(" select 1 ;\n insert into t values (';'); -- done\n").expect("valid");
        assert_eq!(s.statements, ["select 1", "insert into t values (';')"]);
        assert_eq!(s.facts.statements, ["select", "insert"]);
    }

    #[test]
    fn transaction_control_and_copy_are_refused() {
        for (text, says) in [
            (
                "commit; insert into t values (1)",
                "statement 1 of 2: `COMMIT` is not allowed",
            ),
            (
                "select 1; rollback",
                "statement 2 of 2: `ROLLBACK` is not allowed",
            ),
            ("begin", "`BEGIN` is not allowed"),
            ("start transaction read write", "`BEGIN` is not allowed"),
            ("end", "`COMMIT` is not allowed"),
            ("abort", "`ROLLBACK` is not allowed"),
            ("copy t to stdout", "`COPY` is not allowed"),
            ("copy t from '/etc/passwd'", "`COPY` is not allowed"),
            ("selec 1", "cannot be parsed"),
        ] {
            let e = script(text).expect_err(text);
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn literals_quote_every_value() {
        let args = serde_json::json!([42, 1.5, true, null, "it's", "a\\'; drop table t; --"]);
        assert_eq!(
            literals(args.as_array().expect("array")).expect("scalars"),
            [
                "'42'",
                "'1.5'",
                "'true'",
                "NULL",
                "'it''s'",
                "'a\\''; drop table t; --'"
            ]
        );
        assert!(literals(&[serde_json::json!([1])]).is_err());
        assert!(literals(&[serde_json::json!("a\u{0}b")]).is_err());
    }
}
