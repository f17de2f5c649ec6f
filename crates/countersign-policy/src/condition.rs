//! `when` conditions: CEL compiled and checked at load, evaluated against one principal and one
//! action. The variables are `principal` {id, kind, owner, groups}, `action` {kind, resource,
//! params, labels, justification, run}, `params` (= `action.params`), `sql` and `now`. `sql` is
//! the facts of `params.sql` ({statements, tables, reads, writes_to, writes, functions, limit}:
//! see the `sql` module) when the action's kind starts with `exec.sql.` and `params.sql` is a
//! string, and `null` otherwise; SQL that cannot be analyzed makes a condition that uses `sql`
//! an error (so the rule denies). Values are converted to CEL lazily, each variable at most once
//! per evaluation (the SQL is parsed only if a condition uses `sql`), borrowing the action's
//! strings rather than copying them. This module reports errors and never turns one into
//! `false`: deciding what an error means (deny, fail closed) is `evaluate`'s job.

use crate::regex_literals;
use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelTimestamp,
    CelUInt,
};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env, Value};
use countersign_core::{Action, Principal, Timestamp};
use regex::Regex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// The top-level variables a condition may use, in the order they are documented.
pub(crate) const VARIABLES: [&str; 6] = ["principal", "action", "params", "sql", "tool", "now"];

/// The kinds of action that are MCP tool calls, whose `tool` describes the tool.
pub(crate) const TOOL_KIND_PREFIX: &str = "mcp.tool.";

/// The kinds of action whose `params.sql` the `sql` variable describes start with this.
pub(crate) const SQL_KIND_PREFIX: &str = "exec.sql.";

/// One compiled `when`.
#[derive(Debug)]
pub(crate) struct Condition {
    source: String,
    /// The parsed expression, with literal `matches` patterns precompiled.
    expression: IdedExpr,
    /// Whether evaluating it may take more than time linear in the condition and the action's
    /// size (see `needs_budget`): such a condition runs only under a budget.
    budgeted: bool,
}

impl Condition {
    /// Parses `source`, checks that it only names known variables, and compiles the patterns of
    /// its `matches` calls into `regexes`, the policy-wide list.
    pub(crate) fn compile(
        env: &Env,
        source: &str,
        regexes: &mut Vec<Regex>,
    ) -> Result<Self, String> {
        if source.trim().is_empty() {
            return Err(
                "`when` is empty: write a CEL condition, or leave `when` out to match on globs alone"
                    .into(),
            );
        }
        let program = env.compile(source).map_err(|errors| {
            let details = errors
                .errors
                .iter()
                .map(|e| format!("{} (line {}, column {})", e.msg, e.pos.0, e.pos.1))
                .collect::<Vec<_>>()
                .join("; ");
            format!("`when` is not valid CEL: {details}")
        })?;
        let mut unknown = Vec::new();
        check_identifiers(program.expression(), &mut Vec::new(), env, &mut unknown);
        if let Some(name) = unknown.first() {
            let hint = match suggestion(name) {
                Some(s) => format!(" (did you mean `{s}`?)"),
                None => String::new(),
            };
            return Err(format!(
                "`when` uses the unknown variable `{name}`{hint}; the variables are `principal`, \
                 `action`, `params`, `sql` and `now`"
            ));
        }
        let mut expression = program.expression().clone();
        regex_literals::rewrite(&mut expression, regexes)?;
        let budgeted = needs_budget(&expression);
        if budgeted {
            crate::cancellation::guard_loops(&mut expression);
        }
        Ok(Self {
            source: source.to_string(),
            budgeted,
            expression,
        })
    }

    /// Whether this condition must run under a budget (invariant 11).
    pub(crate) fn budgeted(&self) -> bool {
        self.budgeted
    }

    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// `Ok(true)` or `Ok(false)`, or why the condition could not be decided.
    pub(crate) fn evaluate(&self, context: &Context<'_, '_>) -> Result<bool, String> {
        match Value::resolve(&self.expression, context) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "the condition returned a {} instead of true or false",
                other.type_of()
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Whether an expression may cost more than linear time in its own size and its inputs' size.
/// Without comprehensions (`all`, `exists`, `exists_one`, `map`, `filter`) every node of a CEL
/// expression is evaluated at most once, and each standard function (comparisons, arithmetic,
/// `in`, `size`, `contains`, `startsWith`, conversions, timestamps, a `matches` whose literal
/// pattern was compiled at load) is linear in its arguments, which come from the action (bounded
/// by the body limit) or from literals. Comprehensions nest (n² and worse), and a `matches`
/// whose pattern is computed at run time compiles and runs a pattern the agent may choose: both
/// need a budget. The policy's environment is `Env::stdlib()` alone; a function added to it must
/// be judged here.
///
/// Using `sql` needs no budget: it is resolved at most once per evaluation, by parsing
/// `params.sql` (bounded by the body limit and `sql::MAX_SQL_BYTES`) with a recursive-descent
/// parser whose depth is capped (`sql::MAX_DEPTH`) and a walk that visits each node once, so its
/// cost is about linear in the SQL's length, like converting `params`, and its facts are lists
/// no longer than the SQL. And the gateway checks an `exec.sql.` action with its executor, which
/// parses the same SQL, before the policy sees it: deferring this parse would bound nothing more.
/// (`nesting_up_to_the_limit_parses_quickly` in `sql` guards the parser's worst case.)
fn needs_budget(expr: &IdedExpr) -> bool {
    match &expr.expr {
        Expr::Comprehension(_) => true,
        Expr::Call(call) => {
            call.func_name == "matches"
                || call.target.as_deref().is_some_and(needs_budget)
                || call.args.iter().any(needs_budget)
        }
        Expr::Select(select) => needs_budget(&select.operand),
        Expr::List(list) => list.elements.iter().any(needs_budget),
        Expr::Map(map) => map.entries.iter().any(|entry| match &entry.expr {
            EntryExpr::MapEntry(e) => needs_budget(&e.key) || needs_budget(&e.value),
            EntryExpr::StructField(f) => needs_budget(&f.value),
        }),
        Expr::Struct(s) => s.entries.iter().any(|entry| match &entry.expr {
            EntryExpr::MapEntry(e) => needs_budget(&e.key) || needs_budget(&e.value),
            EntryExpr::StructField(f) => needs_budget(&f.value),
        }),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => false,
    }
}

/// Walks the expression and collects identifiers that are neither a variable, a name bound by a
/// comprehension (`exists(x, ...)`), nor a type name such as `int`.
fn check_identifiers<'e>(
    expr: &'e IdedExpr,
    bound: &mut Vec<&'e str>,
    env: &Env,
    unknown: &mut Vec<String>,
) {
    match &expr.expr {
        Expr::Ident(name) => {
            let known = bound.contains(&name.as_str())
                || VARIABLES.contains(&name.as_str())
                || env.types().find_type(name).is_some();
            if !known {
                unknown.push(name.clone());
            }
        }
        Expr::Select(select) => check_identifiers(&select.operand, bound, env, unknown),
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                check_identifiers(target, bound, env, unknown);
            }
            for arg in &call.args {
                check_identifiers(arg, bound, env, unknown);
            }
        }
        Expr::Comprehension(c) => {
            check_identifiers(&c.iter_range, bound, env, unknown);
            check_identifiers(&c.accu_init, bound, env, unknown);
            let depth = bound.len();
            bound.push(&c.iter_var);
            if let Some(second) = &c.iter_var2 {
                bound.push(second);
            }
            bound.push(&c.accu_var);
            for part in [&c.loop_cond, &c.loop_step, &c.result] {
                check_identifiers(part, bound, env, unknown);
            }
            bound.truncate(depth);
        }
        Expr::List(list) => {
            for element in &list.elements {
                check_identifiers(element, bound, env, unknown);
            }
        }
        Expr::Map(map) => {
            for entry in &map.entries {
                if let EntryExpr::MapEntry(e) = &entry.expr {
                    check_identifiers(&e.key, bound, env, unknown);
                    check_identifiers(&e.value, bound, env, unknown);
                }
            }
        }
        Expr::Struct(s) => {
            for entry in &s.entries {
                match &entry.expr {
                    EntryExpr::StructField(f) => check_identifiers(&f.value, bound, env, unknown),
                    EntryExpr::MapEntry(e) => {
                        check_identifiers(&e.key, bound, env, unknown);
                        check_identifiers(&e.value, bound, env, unknown);
                    }
                }
            }
        }
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// The variable a misspelt name was probably meant to be.
fn suggestion(name: &str) -> Option<&'static str> {
    VARIABLES
        .iter()
        .copied()
        .find(|v| edit_distance(name, v) <= 2 || v.starts_with(name) || name.starts_with(v))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// The variables of one evaluation, converted to CEL on first use and then borrowed.
pub(crate) struct Bindings<'a> {
    /// Set when a budgeted evaluation ran out of time: every variable then stops resolving, so
    /// the evaluation errors out at its next use of one (the caller discards the result).
    cancel: Option<&'a AtomicBool>,
    principal: &'a Principal,
    action: &'a Action,
    now: Timestamp,
    principal_val: OnceLock<Box<dyn Val + 'a>>,
    action_val: OnceLock<Box<dyn Val + 'a>>,
    params_val: OnceLock<Box<dyn Val + 'a>>,
    now_val: OnceLock<Box<dyn Val + 'a>>,
    budget_val: OnceLock<Box<dyn Val + 'a>>,
    /// The facts of `params.sql`, or why the SQL has none.
    sql_val: OnceLock<Result<Box<dyn Val + 'a>, String>>,
    tool_val: OnceLock<Box<dyn Val + 'a>>,
}

impl<'a> Bindings<'a> {
    pub(crate) fn new(
        principal: &'a Principal,
        action: &'a Action,
        now: Timestamp,
        cancel: Option<&'a AtomicBool>,
    ) -> Self {
        Self {
            cancel,
            principal,
            action,
            now,
            principal_val: OnceLock::new(),
            action_val: OnceLock::new(),
            params_val: OnceLock::new(),
            now_val: OnceLock::new(),
            budget_val: OnceLock::new(),
            sql_val: OnceLock::new(),
            tool_val: OnceLock::new(),
        }
    }

    /// `error` from a condition, with the reason when it comes from SQL that could not be
    /// analyzed (the variable then did not resolve, and CEL only says so).
    pub(crate) fn explain_error(&self, error: String) -> String {
        match self.sql_val.get() {
            Some(Err(why)) if error == unresolved_sql() => {
                format!("`sql`: {why}")
            }
            _ => error,
        }
    }

    /// A CEL context whose variables resolve through these bindings, with the policy's
    /// precompiled `matches` patterns.
    pub(crate) fn context<'v>(&'v self, env: &Arc<Env>, regexes: &Arc<[Regex]>) -> Context<'v, 'v> {
        let mut context = Context::with_env(Arc::clone(env));
        context.set_variable_resolver(self);
        regex_literals::install(&mut context, regexes);
        context
    }
}

impl VariableResolver for Bindings<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        if self
            .cancel
            .is_some_and(|cancel| cancel.load(Ordering::Relaxed))
        {
            return None;
        }
        let value: &'b (dyn Val + 'b) = match variable {
            "params" => self
                .params_val
                .get_or_init(|| json_val(&self.action.params))
                .as_ref(),
            "principal" => self
                .principal_val
                .get_or_init(|| principal_val(self.principal))
                .as_ref(),
            "action" => self
                .action_val
                .get_or_init(|| action_val(self.action))
                .as_ref(),
            // The guard of every loop of a budgeted condition (`cancellation`).
            crate::cancellation::VARIABLE => self
                .budget_val
                .get_or_init(|| Box::new(CelBool::from(true)))
                .as_ref(),
            "now" => self
                .now_val
                .get_or_init(|| Box::new(CelTimestamp::from(self.now.fixed_offset())))
                .as_ref(),
            "tool" => self.tool_val.get_or_init(|| tool_val(self.action)).as_ref(),
            // No value when the SQL cannot be analyzed: the condition errors (`explain_error`).
            "sql" => match self.sql_val.get_or_init(|| sql_val(self.action)) {
                Ok(value) => value.as_ref(),
                Err(_) => return None,
            },
            _ => return None,
        };
        Some(CowVal::Borrowed(value))
    }
}

fn string_val(s: &str) -> Box<dyn Val + '_> {
    Box::new(CelString::from(s))
}

fn optional_string_val(s: Option<&str>) -> Box<dyn Val + '_> {
    match s {
        Some(s) => string_val(s),
        None => Box::new(CelNull),
    }
}

fn map_val<'a>(
    entries: impl IntoIterator<Item = (&'a str, Box<dyn Val + 'a>)>,
) -> Box<dyn Val + 'a> {
    let map: HashMap<CelMapKey<'a>, Box<dyn Val + 'a>> = entries
        .into_iter()
        .map(|(k, v)| (CelMapKey::from(k), v))
        .collect();
    Box::new(CelMap::from(map))
}

/// JSON to CEL: integers become `int` (or `uint` above `i64::MAX`), other numbers `double`.
pub(crate) fn json_val(value: &serde_json::Value) -> Box<dyn Val + '_> {
    use serde_json::Value as J;
    match value {
        J::Null => Box::new(CelNull),
        J::Bool(b) => Box::new(CelBool::from(*b)),
        J::Number(n) => number_val(n),
        J::String(s) => string_val(s),
        J::Array(items) => Box::new(CelList::from(
            items.iter().map(json_val).collect::<Vec<_>>(),
        )),
        J::Object(fields) => map_val(fields.iter().map(|(k, v)| (k.as_str(), json_val(v)))),
    }
}

/// The error CEL reports when `sql` does not resolve.
fn unresolved_sql() -> String {
    cel::ExecutionError::UndeclaredReference(Arc::new("sql".to_string())).to_string()
}

/// The `sql` variable: the facts of `params.sql` for an `exec.sql.` action, else `null`.
fn sql_val(action: &Action) -> Result<Box<dyn Val + 'static>, String> {
    match action.params.get("sql") {
        Some(serde_json::Value::String(sql)) if action.kind.starts_with(SQL_KIND_PREFIX) => {
            let facts = crate::sql::analyze(sql).map_err(|e| e.to_string())?;
            let json = serde_json::to_value(facts).map_err(|e| e.to_string())?;
            Ok(owned_json_val(json))
        }
        _ => Ok(Box::new(CelNull)),
    }
}

/// JSON to CEL as `json_val` does, owning its strings (for values made during evaluation).
fn owned_json_val(value: serde_json::Value) -> Box<dyn Val + 'static> {
    use serde_json::Value as J;
    match value {
        J::Array(items) => Box::new(CelList::from(
            items.into_iter().map(owned_json_val).collect::<Vec<_>>(),
        )),
        J::Object(fields) => {
            let map: HashMap<CelMapKey<'static>, Box<dyn Val + 'static>> = fields
                .into_iter()
                .map(|(k, v)| (CelMapKey::from(k), owned_json_val(v)))
                .collect();
            Box::new(CelMap::from(map))
        }
        J::String(s) => Box::new(CelString::from(s)),
        J::Number(n) => number_val(&n),
        J::Bool(b) => Box::new(CelBool::from(b)),
        J::Null => Box::new(CelNull),
    }
}

/// A JSON number in CEL: integers become `int` (or `uint` above `i64::MAX`), others `double`.
fn number_val(n: &serde_json::Number) -> Box<dyn Val + 'static> {
    if let Some(i) = n.as_i64() {
        Box::new(CelInt::from(i))
    } else if let Some(u) = n.as_u64() {
        Box::new(CelUInt::from(u))
    } else {
        Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN)))
    }
}

fn principal_val(principal: &Principal) -> Box<dyn Val + '_> {
    let kind = principal.kind().as_str();
    let groups: Vec<Box<dyn Val + '_>> = principal.groups.iter().map(|g| string_val(g)).collect();
    map_val([
        ("id", string_val(principal.id.as_str())),
        ("kind", string_val(kind)),
        (
            "owner",
            optional_string_val(principal.owner.as_ref().map(|o| o.as_str())),
        ),
        ("groups", Box::new(CelList::from(groups)) as Box<dyn Val>),
    ])
}

/// `tool` for an MCP tool call (`mcp.tool.*`): `{annotations: {readOnlyHint, destructiveHint,
/// idempotentHint, openWorldHint, title}}`, from the labels the MCP gateway recorded from the
/// upstream's listing (no one else may set them), each missing hint at the specification's
/// default and a missing title empty. For other actions an empty map, so a condition that reads
/// `tool.annotations` there fails (closed).
fn tool_val(action: &Action) -> Box<dyn Val + '_> {
    use countersign_core::action::{ANNOTATION_LABEL_PREFIX, TOOL_HINTS};
    if !action.kind.starts_with(TOOL_KIND_PREFIX) {
        return map_val([]);
    }
    let label = |name: &str| {
        action
            .labels
            .get(&format!("{ANNOTATION_LABEL_PREFIX}{name}"))
            .map(String::as_str)
    };
    let mut annotations: Vec<(&str, Box<dyn Val + '_>)> = TOOL_HINTS
        .iter()
        .map(|(name, default)| {
            let value = match label(name) {
                Some("true") => true,
                Some("false") => false,
                _ => *default,
            };
            (*name, Box::new(CelBool::from(value)) as Box<dyn Val>)
        })
        .collect();
    annotations.push(("title", string_val(label("title").unwrap_or(""))));
    map_val([("annotations", map_val(annotations))])
}

fn action_val(action: &Action) -> Box<dyn Val + '_> {
    let labels = map_val(
        action
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), string_val(v))),
    );
    map_val([
        ("kind", string_val(&action.kind)),
        ("resource", string_val(&action.resource)),
        ("params", json_val(&action.params)),
        ("labels", labels),
        (
            "justification",
            optional_string_val(action.justification.as_deref()),
        ),
        ("run", optional_string_val(action.run.as_deref())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use countersign_core::PrincipalId;
    use serde_json::json;

    fn env() -> Arc<Env> {
        Arc::new(Env::stdlib())
    }

    fn principal() -> Principal {
        Principal {
            id: PrincipalId::parse("agent:deploy-bot").expect("valid id"),
            owner: Some(PrincipalId::parse("user:alice@example.com").expect("valid id")),
            groups: vec!["deployers".into()],
        }
    }

    fn action(params: serde_json::Value) -> Action {
        Action {
            kind: "db.export".into(),
            resource: "postgres://prod/customers".into(),
            params,
            justification: Some("weekly report".into()),
            run: None,
            labels: [("team".to_string(), "data".to_string())].into(),
        }
    }

    fn eval(source: &str, params: serde_json::Value) -> Result<bool, String> {
        let env = env();
        let mut regexes = Vec::new();
        let condition = Condition::compile(&env, source, &mut regexes)?;
        let regexes: Arc<[Regex]> = regexes.into();
        let (p, a) = (principal(), action(params));
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T09:30:00Z")
            .expect("valid time")
            .to_utc();
        let bindings = Bindings::new(&p, &a, now, None);
        condition.evaluate(&bindings.context(&env, &regexes))
    }

    #[test]
    fn sees_every_documented_variable() {
        let ok = |s: &str| assert_eq!(eval(s, json!({"rows": 5000})), Ok(true), "{s}");
        ok("params.rows > 1000");
        ok("action.params.rows == 5000");
        ok("action.kind == 'db.export' && action.resource.startsWith('postgres://prod/')");
        ok("action.labels.team == 'data'");
        ok("action.justification == 'weekly report' && action.run == null");
        ok("principal.id == 'agent:deploy-bot' && principal.kind == 'agent'");
        ok("principal.owner == 'user:alice@example.com' && 'deployers' in principal.groups");
        ok("now.getHours() == 9");
        ok("now > timestamp('2025-01-01T00:00:00Z')");
        ok("params.exists(k, k == 'rows')");
        ok("type(params.rows) == int");
        // Not an `exec.sql.` action: `sql` is null.
        ok("sql == null");
    }

    /// `source` on an MCP tool call whose recorded labels are `labels`.
    fn eval_tool(source: &str, kind: &str, labels: &[(&str, &str)]) -> Result<bool, String> {
        let env = env();
        let condition = Condition::compile(&env, source, &mut Vec::new())?;
        let regexes: Arc<[Regex]> = Vec::new().into();
        let p = principal();
        let a = Action {
            kind: kind.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..action(json!({}))
        };
        let bindings = Bindings::new(&p, &a, chrono::Utc::now(), None);
        condition.evaluate(&bindings.context(&env, &regexes))
    }

    #[test]
    fn tool_annotations_are_visible_with_the_specifications_defaults() {
        let kind = "mcp.tool.files.delete";
        let t = |source: &str, labels: &[(&str, &str)]| eval_tool(source, kind, labels);
        // None given: read-only false, destructive true, idempotent false, open world true.
        assert_eq!(
            t(
                "!tool.annotations.readOnlyHint && tool.annotations.destructiveHint \
                 && !tool.annotations.idempotentHint && tool.annotations.openWorldHint \
                 && tool.annotations.title == ''",
                &[]
            ),
            Ok(true)
        );
        let given = [
            ("mcp.annotation.readOnlyHint", "true"),
            ("mcp.annotation.destructiveHint", "false"),
            ("mcp.annotation.title", "Delete a file"),
        ];
        assert_eq!(
            t(
                "tool.annotations.readOnlyHint && !tool.annotations.destructiveHint \
                 && tool.annotations.title == 'Delete a file'",
                &given
            ),
            Ok(true)
        );
        // Anything but `true` or `false` is the default, never a truthy surprise.
        assert_eq!(
            t(
                "tool.annotations.readOnlyHint",
                &[("mcp.annotation.readOnlyHint", "yes")]
            ),
            Ok(false)
        );
        // Not a tool call: `tool` has no annotations, and reading them fails (closed).
        assert!(eval_tool("tool.annotations.readOnlyHint", "db.export", &[]).is_err());
        assert_eq!(eval_tool("size(tool) == 0", "db.export", &[]), Ok(true));
    }

    fn eval_sql(source: &str, kind: &str, params: serde_json::Value) -> Result<bool, String> {
        let env = env();
        let condition = Condition::compile(&env, source, &mut Vec::new())?;
        let regexes: Arc<[Regex]> = Vec::new().into();
        let p = principal();
        let a = Action {
            kind: kind.into(),
            ..action(params)
        };
        let bindings = Bindings::new(&p, &a, chrono::Utc::now(), None);
        condition
            .evaluate(&bindings.context(&env, &regexes))
            .map_err(|e| bindings.explain_error(e))
    }

    #[test]
    fn sql_holds_the_facts_of_params_sql_for_sql_executors() {
        let read = json!({"sql": "select * from public.customers limit 5"});
        for source in [
            "sql.statements == ['select'] && !sql.writes",
            "'customers' in sql.tables && 'public.customers' in sql.reads",
            "sql.limit == 5 && size(sql.writes_to) == 0 && size(sql.functions) == 0",
        ] {
            assert_eq!(
                eval_sql(source, "exec.sql.prod", read.clone()),
                Ok(true),
                "{source}"
            );
        }
        let write = json!({"sql": "insert into orders select * from staging"});
        assert_eq!(
            eval_sql(
                "sql.writes && sql.writes_to == ['orders'] && sql.limit == null",
                "exec.sql.prod",
                write
            ),
            Ok(true)
        );
        // Another kind, or no string `params.sql`: null.
        assert_eq!(eval_sql("sql == null", "db.query", read), Ok(true));
        assert_eq!(
            eval_sql("sql == null", "exec.sql.prod", json!({"sql": 5})),
            Ok(true)
        );
        // SQL without facts is an error that says why.
        let bad = json!({"sql": "selec 1"});
        let err = eval_sql("sql.writes", "exec.sql.prod", bad.clone()).expect_err("unparseable");
        assert!(err.starts_with("`sql`: the SQL cannot be parsed"), "{err}");
        assert!(eval_sql("sql == null", "exec.sql.prod", bad.clone()).is_err());
        // A condition that does not use `sql` never parses it.
        assert_eq!(eval_sql("params.sql != ''", "exec.sql.prod", bad), Ok(true));
    }

    #[test]
    fn reports_errors_instead_of_false() {
        let err = eval("params.rows > 1000", json!({})).expect_err("missing key");
        assert!(err.contains("rows"), "{err}");
        assert!(eval("params.rows > 1000", json!({"rows": "many"})).is_err());
        let err = eval("params.rows", json!({"rows": 1})).expect_err("not a bool");
        assert!(err.contains("instead of true or false"), "{err}");
    }

    #[test]
    fn numbers_compare_across_int_uint_and_double() {
        assert_eq!(eval("params.n > 5", json!({"n": 5.5})), Ok(true));
        assert_eq!(eval("params.n > 5", json!({"n": u64::MAX})), Ok(true));
        assert_eq!(eval("params.n > 5", json!({"n": -3})), Ok(false));
    }

    #[test]
    fn policy_evaluation_has_a_budget_for_comprehensions_and_run_time_patterns() {
        let env = env();
        let budgeted = |s: &str| {
            Condition::compile(&env, s, &mut Vec::new())
                .expect("compiles")
                .budgeted()
        };
        for linear in [
            "params.rows > 1000",
            "has(params.readonly) && params.readonly == true",
            r#"params.sql.matches("(?i)drop\\s+table")"#,
            "'x' in params.list && size(params.s + params.s) < 10",
            "principal.id.startsWith('agent:') ? params.a == [1, {'k': params.b}] : false",
        ] {
            assert!(!budgeted(linear), "{linear}");
        }
        for costly in [
            "params.items.all(x, x > 0)",
            "params.a.exists(x, params.b.exists(y, x == y))",
            "size(params.a.map(x, x * 2)) > 0",
            "[1, 2].filter(x, x > 1) == [2]",
            "params.a.exists_one(x, x == 1)",
            "params.s.matches(params.pattern)",
            "{'k': params.a.all(x, x)}.k",
        ] {
            assert!(budgeted(costly), "{costly}");
        }
    }

    #[test]
    fn refuses_unknown_variables_at_compile_time() {
        let env = env();
        let compile = |s: &str| Condition::compile(&env, s, &mut Vec::new());
        let err = compile("param.rows > 5").expect_err("unknown");
        assert!(
            err.contains("`param`") && err.contains("did you mean `params`"),
            "{err}"
        );
        assert!(compile("[1, 2].all(x, x > 0 && params.ok)").is_ok());
        assert!(compile("[1, 2].all(x, y > 0)").is_err());
        assert!(compile("params.rows >").is_err());
        assert!(compile("  ").is_err());
    }

    #[test]
    fn literal_patterns_are_compiled_at_load_and_behave_like_cel() {
        let sql = json!({"sql": "DROP  table users", "pattern": "^drop", "n": 3});
        assert_eq!(
            eval(r#"params.sql.matches("(?i)drop\\s+table")"#, sql.clone()),
            Ok(true)
        );
        assert_eq!(
            eval(r#"matches(params.sql, "^DROP")"#, sql.clone()),
            Ok(true)
        );
        assert_eq!(
            eval(r#"params.sql.matches("^table")"#, sql.clone()),
            Ok(false)
        );
        assert_eq!(
            eval(r#"['a', 'bb'].exists(x, x.matches("^b+$"))"#, sql.clone()),
            Ok(true)
        );
        // A pattern computed at run time is left to `cel`.
        assert_eq!(
            eval("params.sql.matches(params.pattern)", sql.clone()),
            Ok(false)
        );
        // A subject that is not a string is an error, as in `cel`.
        assert!(eval(r#"params.n.matches("3")"#, sql).is_err());
        let err = Condition::compile(&env(), r#"params.sql.matches("(")"#, &mut Vec::new())
            .expect_err("bad regex");
        assert!(err.contains("invalid regular expression"), "{err}");
    }
}
