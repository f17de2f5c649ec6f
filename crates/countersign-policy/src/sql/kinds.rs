//! What kind of statement each parsed statement is, as policies name it, and which functions are
//! known to change nothing. Pure tables over sqlparser's AST; knows nothing of tables or scopes.

use sqlparser::ast::{Expr, ObjectName, SetExpr, Statement, UtilityOption, Value, ValueWithSpan};

/// The kind of `statement`, lower-case: `select`, `insert`, `update`, `delete`, `merge`,
/// `create`, `drop`, `alter`, `truncate`, `grant`, `revoke`, `copy`, `set`, `show`, `explain`,
/// `call`, `begin`, `commit`, `rollback`, `savepoint`, `lock`, `prepare`, `execute`, ... and
/// `other` for the rest. A `WITH ... INSERT` is an `insert`: the kind is what the outermost
/// body does.
pub(crate) fn kind(statement: &Statement) -> &'static str {
    use Statement as S;
    match statement {
        S::Query(q) => query_kind(&q.body),
        S::Insert(_) => "insert",
        S::Update(_) => "update",
        S::Delete(_) => "delete",
        S::Merge(_) => "merge",
        S::Truncate(_) => "truncate",
        S::Copy { .. } => "copy",
        S::Call(_) => "call",
        S::Set(_) | S::Reset(_) => "set",
        S::Explain { .. } | S::ExplainTable { .. } => "explain",
        S::ShowFunctions { .. }
        | S::ShowVariable { .. }
        | S::ShowStatus { .. }
        | S::ShowVariables { .. }
        | S::ShowCreate { .. }
        | S::ShowColumns { .. }
        | S::ShowCatalogs { .. }
        | S::ShowDatabases { .. }
        | S::ShowProcessList { .. }
        | S::ShowSchemas { .. }
        | S::ShowCharset(_)
        | S::ShowObjects(_)
        | S::ShowTables { .. }
        | S::ShowViews { .. }
        | S::ShowCollation { .. } => "show",
        S::Grant(_) | S::GrantRole(_) => "grant",
        S::Revoke(_) | S::RevokeRole(_) => "revoke",
        S::StartTransaction { .. } => "begin",
        S::Commit { .. } => "commit",
        S::Rollback { .. } => "rollback",
        S::Savepoint { .. } | S::ReleaseSavepoint { .. } => "savepoint",
        S::Lock(_) | S::LockTables { .. } | S::UnlockTables => "lock",
        S::Prepare { .. } => "prepare",
        S::Execute { .. } => "execute",
        S::Deallocate { .. } => "deallocate",
        S::Comment { .. } => "comment",
        S::Analyze(_) => "analyze",
        S::Vacuum(_) => "vacuum",
        S::Discard { .. } => "discard",
        S::Declare { .. } => "declare",
        S::Fetch { .. } => "fetch",
        S::Close { .. } => "close",
        S::LISTEN { .. } => "listen",
        S::UNLISTEN { .. } => "unlisten",
        S::NOTIFY { .. } => "notify",
        S::RefreshMaterializedView(_) => "refresh",
        S::CreateView(_)
        | S::CreateTable(_)
        | S::CreateVirtualTable { .. }
        | S::CreateIndex(_)
        | S::CreateRole(_)
        | S::CreateSecret { .. }
        | S::CreateServer(_)
        | S::CreateForeignTable(_)
        | S::CreateForeignDataWrapper(_)
        | S::CreateUserMapping(_)
        | S::CreatePolicy(_)
        | S::CreateRule(_)
        | S::CreateConnector(_)
        | S::CreateOperator(_)
        | S::CreateOperatorFamily(_)
        | S::CreateOperatorClass(_)
        | S::CreateTextSearch(_)
        | S::CreateAggregate(_)
        | S::CreateExtension(_)
        | S::CreateCollation(_)
        | S::CreateSchema { .. }
        | S::CreateDatabase { .. }
        | S::CreateFunction(_)
        | S::CreateTrigger(_)
        | S::CreateProcedure { .. }
        | S::CreateMacro { .. }
        | S::CreateStage { .. }
        | S::CreateFileFormat { .. }
        | S::CreateWarehouse(_)
        | S::CreateSequence { .. }
        | S::CreateDomain(_)
        | S::CreateType { .. }
        | S::CreateUser(_) => "create",
        S::AlterTable(_)
        | S::AlterSchema(_)
        | S::AlterIndex { .. }
        | S::AlterView(_)
        | S::AlterFunction(_)
        | S::AlterType(_)
        | S::AlterCollation(_)
        | S::AlterOperator(_)
        | S::AlterOperatorFamily(_)
        | S::AlterOperatorClass(_)
        | S::AlterTextSearch(_)
        | S::AlterRole { .. }
        | S::AlterPolicy(_)
        | S::AlterTrigger(_)
        | S::AlterConnector { .. }
        | S::AlterSession { .. }
        | S::AlterUser(_)
        | S::AlterDefaultPrivileges(_)
        | S::RenameTable(_) => "alter",
        S::Drop { .. }
        | S::DropFunction(_)
        | S::DropDomain(_)
        | S::DropProcedure { .. }
        | S::DropSecret { .. }
        | S::DropPolicy(_)
        | S::DropRule(_)
        | S::DropConnector { .. }
        | S::DropExtension(_)
        | S::DropOperator(_)
        | S::DropOperatorFamily(_)
        | S::DropOperatorClass(_)
        | S::DropTrigger(_) => "drop",
        _ => "other",
    }
}

/// The kind of a query by its body: a data-modifying body (`WITH ... INSERT`) names it.
fn query_kind(body: &SetExpr) -> &'static str {
    match body {
        SetExpr::Insert(_) => "insert",
        SetExpr::Update(_) => "update",
        SetExpr::Delete(_) => "delete",
        SetExpr::Merge(_) => "merge",
        SetExpr::Query(q) => query_kind(&q.body),
        _ => "select",
    }
}

/// Whether `statement` itself only reads: a `select` or a `show` (whose parts may still write:
/// see `collect`), an `explain` (which writes when it runs a statement that writes: that
/// statement is walked too). Every other kind may change data, schema, privileges or the
/// session, and counts as a write.
pub(crate) fn reads_only(statement: &Statement) -> bool {
    matches!(kind(statement), "select" | "show" | "explain")
}

/// Whether `statement` is an `EXPLAIN` that runs the statement it explains (`ANALYZE`, as a
/// keyword or an option not set to false).
pub(crate) fn runs_explained(statement: &Statement) -> bool {
    match statement {
        Statement::Explain {
            analyze, options, ..
        } => *analyze || options.iter().flatten().any(analyze_option),
        _ => false,
    }
}

fn analyze_option(option: &UtilityOption) -> bool {
    if !option.name.value.eq_ignore_ascii_case("analyze") {
        return false;
    }
    let off = |text: &str| {
        ["false", "off", "0"]
            .iter()
            .any(|f| text.eq_ignore_ascii_case(f))
    };
    match &option.arg {
        None => true,
        Some(Expr::Value(ValueWithSpan {
            value: Value::Boolean(b),
            ..
        })) => *b,
        Some(Expr::Value(ValueWithSpan {
            value: Value::Number(n, _) | Value::SingleQuotedString(n),
            ..
        })) => !off(n),
        Some(Expr::Identifier(id)) => !off(&id.value),
        Some(_) => true,
    }
}

/// Built-in functions that change nothing (no data, no session, no other backend) and read only
/// their arguments, the clock or the catalog's own description of itself. A call of any other
/// function (`nextval`, `set_config`, `pg_terminate_backend`, `dblink`, `query_to_xml`, a
/// function of the database's own) makes `writes` true: it may change data or run SQL the facts
/// cannot see. Lower-case, sorted (binary search).
const PURE_FUNCTIONS: &[&str] = &[
    "abs",
    "age",
    "array_agg",
    "array_append",
    "array_cat",
    "array_dims",
    "array_length",
    "array_lower",
    "array_position",
    "array_positions",
    "array_prepend",
    "array_remove",
    "array_replace",
    "array_to_json",
    "array_to_string",
    "array_upper",
    "ascii",
    "avg",
    "bit_and",
    "bit_length",
    "bit_or",
    "bool_and",
    "bool_or",
    "btrim",
    "cardinality",
    "cbrt",
    "ceil",
    "ceiling",
    "char_length",
    "character_length",
    "chr",
    "clock_timestamp",
    "coalesce",
    "concat",
    "concat_ws",
    "corr",
    "count",
    "covar_pop",
    "covar_samp",
    "cume_dist",
    "current_catalog",
    "current_database",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "date_bin",
    "date_part",
    "date_trunc",
    "decode",
    "degrees",
    "dense_rank",
    "div",
    "encode",
    "every",
    "exp",
    "first_value",
    "floor",
    "format",
    "format_type",
    "gen_random_uuid",
    "generate_series",
    "generate_subscripts",
    "greatest",
    "initcap",
    "isfinite",
    "json_agg",
    "json_array_elements",
    "json_array_elements_text",
    "json_array_length",
    "json_build_array",
    "json_build_object",
    "json_each",
    "json_each_text",
    "json_extract_path",
    "json_extract_path_text",
    "json_object_agg",
    "json_object_keys",
    "json_strip_nulls",
    "json_typeof",
    "jsonb_agg",
    "jsonb_array_elements",
    "jsonb_array_elements_text",
    "jsonb_array_length",
    "jsonb_build_array",
    "jsonb_build_object",
    "jsonb_each",
    "jsonb_each_text",
    "jsonb_extract_path",
    "jsonb_extract_path_text",
    "jsonb_insert",
    "jsonb_object_agg",
    "jsonb_object_keys",
    "jsonb_path_exists",
    "jsonb_path_match",
    "jsonb_path_query",
    "jsonb_path_query_array",
    "jsonb_path_query_first",
    "jsonb_pretty",
    "jsonb_set",
    "jsonb_strip_nulls",
    "jsonb_typeof",
    "justify_days",
    "justify_hours",
    "justify_interval",
    "lag",
    "last_value",
    "lead",
    "least",
    "left",
    "length",
    "ln",
    "localtime",
    "localtimestamp",
    "log",
    "log10",
    "lower",
    "lpad",
    "ltrim",
    "make_date",
    "make_interval",
    "make_time",
    "make_timestamp",
    "make_timestamptz",
    "max",
    "md5",
    "min",
    "mod",
    "mode",
    "now",
    "nth_value",
    "ntile",
    "nullif",
    "num_nonnulls",
    "num_nulls",
    "octet_length",
    "overlay",
    "percent_rank",
    "percentile_cont",
    "percentile_disc",
    "pg_typeof",
    "pi",
    "position",
    "pow",
    "power",
    "quote_ident",
    "quote_literal",
    "quote_nullable",
    "radians",
    "random",
    "rank",
    "regexp_count",
    "regexp_instr",
    "regexp_like",
    "regexp_match",
    "regexp_matches",
    "regexp_replace",
    "regexp_split_to_array",
    "regexp_split_to_table",
    "regexp_substr",
    "repeat",
    "replace",
    "reverse",
    "right",
    "round",
    "row_number",
    "row_to_json",
    "rpad",
    "rtrim",
    "session_user",
    "sha224",
    "sha256",
    "sha384",
    "sha512",
    "sign",
    "split_part",
    "sqrt",
    "starts_with",
    "statement_timestamp",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "string_agg",
    "string_to_array",
    "strpos",
    "substr",
    "substring",
    "sum",
    "timeofday",
    "to_char",
    "to_date",
    "to_json",
    "to_jsonb",
    "to_number",
    "to_timestamp",
    "transaction_timestamp",
    "translate",
    "trim",
    "trunc",
    "unnest",
    "upper",
    "user",
    "var_pop",
    "var_samp",
    "variance",
    "version",
    "width_bucket",
];

/// Whether a call of the function `name` (as the facts write it: lower-case unless quoted,
/// parts joined with `.`) is known to change nothing. A name qualified by any schema but
/// `pg_catalog` is a function of the database's own.
pub(crate) fn pure_function(name: &str) -> bool {
    let bare = name.strip_prefix("pg_catalog.").unwrap_or(name);
    PURE_FUNCTIONS.binary_search(&bare).is_ok()
}

/// Whether `name` has exactly one part (so it may name a CTE).
pub(crate) fn single_part(name: &ObjectName) -> bool {
    name.0.len() == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pure_function_list_is_sorted_and_lower_case() {
        assert!(PURE_FUNCTIONS.windows(2).all(|w| w[0] < w[1]));
        assert!(PURE_FUNCTIONS.iter().all(|f| {
            f.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        }));
        assert!(pure_function("count") && pure_function("pg_catalog.lower"));
        assert!(!pure_function("nextval") && !pure_function("app.lower"));
    }
}
