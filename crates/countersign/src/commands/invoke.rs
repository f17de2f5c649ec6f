//! `countersign invoke <executor>`: ask the gateway to run one of its executors, with
//! credentials this process never holds. Finds the executor (`GET /v1/executors`), builds its
//! action from the flags with the gateway's own rule (`ExecutorInfo::action`), submits it,
//! waits for the decision, executes it (`POST /v1/requests/{id}/execute`) and prints the
//! outcome. Exit 0 when the action succeeded, 6 when it ran and failed (or may not have taken
//! effect: `unknown`), the usual codes when it never ran.
//!
//! It never sends parameters at execution time: the gateway runs the action as recorded.

use super::remote::{client, wait_deadline, wait_for};
use crate::cli::{Global, InvokeArgs};
use crate::outcome::{self, Failure, exit_for_state};
use crate::render;
use countersign_app::executors::ExecutorInfo;
use countersign_core::{ExecStatus, Outcome, State};
use countersign_http::wire::{ActionBody, ExecutedView, ExecutorList, ExecutorView, RequestView};
use serde_json::{Map, Value};
use std::time::Duration;

/// The longest the CLI waits for an execution's answer. The gateway stops every executor at
/// its own timeout; past this the CLI gives up on the answer, and the execution still ends and
/// is recorded at the gateway.
const EXECUTE_TIMEOUT: Duration = Duration::from_secs(60 * 60);

pub async fn invoke(g: &Global, args: InvokeArgs) -> Result<u8, Failure> {
    let deadline = wait_deadline(args.wait.as_deref().unwrap_or("until-expiry"))?;
    let c = client(g)?;
    let list: ExecutorList = c.get("/v1/executors", Duration::from_secs(30)).await?;
    let info = find(list.executors, &args.executor)?;
    let params = params(&info, &args)?;
    let mut action = info.action(params, args.justification);
    action.run = args.run;
    let body = ActionBody {
        kind: action.kind,
        resource: action.resource,
        params: Some(action.params),
        justification: action.justification,
        run: action.run,
        labels: action.labels,
        requester: None,
    };
    let r: RequestView = c.post("/v1/actions", &body).await?;
    if r.state == State::Pending && !g.json {
        eprintln!(
            "countersign: waiting for approval of {} ({})…",
            render::shown(&r.id),
            render::shown(r.review_url.as_deref().unwrap_or(""))
        );
    }
    let r = wait_for(&c, r, deadline).await?;
    if r.state != State::Approved {
        if g.json {
            print_json(&ExecutedView {
                request: r.clone(),
                outcome: None,
            });
        } else {
            let why = r
                .outcome
                .clone()
                .unwrap_or_else(|| r.decision.reason.clone());
            eprintln!(
                "countersign: not running {}: request {} is {}: {}",
                render::shown(&info.name),
                render::shown(&r.id),
                r.state.as_str(),
                render::shown(&why)
            );
        }
        return Ok(exit_for_state(r.state));
    }
    let done: ExecutedView = c
        .post_within(
            &format!("/v1/requests/{}/execute", r.id),
            &serde_json::json!({}),
            EXECUTE_TIMEOUT,
        )
        .await?;
    if g.json {
        print_json(&done);
    }
    let Some(o) = &done.outcome else {
        return Err(Failure::other(format!(
            "the gateway executed {} but answered without an outcome; see `countersign show {}`",
            done.request.id, done.request.id
        )));
    };
    if !g.json {
        print_outcome(o);
        eprintln!(
            "countersign: {} {}",
            render::shown(&done.request.id),
            render::outcome_summary(o)
        );
    }
    Ok(match o.status {
        ExecStatus::Succeeded => outcome::OK,
        ExecStatus::Failed | ExecStatus::Unknown => outcome::ACTION_FAILED,
        ExecStatus::Running => outcome::FAILURE,
    })
}

fn print_json(v: &ExecutedView) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// The executor named `name`; an unknown name is bad usage, and the error lists the names.
fn find(executors: Vec<ExecutorView>, name: &str) -> Result<ExecutorInfo, Failure> {
    let names: Vec<String> = executors.iter().map(|e| e.name.clone()).collect();
    match executors.into_iter().find(|e| e.name == name) {
        Some(e) => Ok(e.into()),
        None if names.is_empty() => Err(Failure::usage(format!(
            "no executor named `{name}`: this gateway has no executors configured"
        ))),
        None => Err(Failure::usage(format!(
            "no executor named `{name}`; this gateway has: {}",
            names.join(", ")
        ))),
    }
}

/// The action's params from `--param`, `--sql` and `--args`. A value is a string unless the
/// executor's schema declares its parameter as something else than a string (or nothing at
/// all, like an HTTP `body`): then it is JSON when it parses as JSON, else the string.
fn params(info: &ExecutorInfo, args: &InvokeArgs) -> Result<Value, Failure> {
    let mut params = Map::new();
    let mut set = |key: &str, value: Value, flag: &str| {
        if params.insert(key.to_owned(), value).is_some() {
            return Err(Failure::usage(format!(
                "{flag}: the parameter `{key}` is given twice"
            )));
        }
        Ok(())
    };
    for p in &args.params {
        let Some((key, text)) = p.split_once('=') else {
            return Err(Failure::usage(format!("--param {p}: expected KEY=VALUE")));
        };
        let value = if declared_string(info, key) {
            Value::String(text.to_owned())
        } else {
            json_or_string(text, &format!("--param {key}"))?
        };
        set(key, value, "--param")?;
    }
    if let Some(sql) = &args.sql {
        set("sql", Value::String(sql.clone()), "--sql")?;
    }
    if let Some(text) = &args.args {
        let value = strict_json(text, "--args")?
            .ok_or_else(|| Failure::usage("--args is not valid JSON"))?;
        if !value.is_array() {
            return Err(Failure::usage(
                "--args must be a JSON array, e.g. '[42, \"x\"]'",
            ));
        }
        set("args", value, "--args")?;
    }
    Ok(Value::Object(params))
}

/// Whether the executor's schema declares `key` a string, or does not declare it at all (the
/// gateway then refuses it by name, as it was typed).
fn declared_string(info: &ExecutorInfo, key: &str) -> bool {
    match info
        .params_schema
        .get("properties")
        .and_then(|p| p.get(key))
    {
        None => true,
        Some(schema) => schema.get("type").and_then(Value::as_str) == Some("string"),
    }
}

/// `text` as JSON when it parses as JSON, else as a string.
fn json_or_string(text: &str, flag: &str) -> Result<Value, Failure> {
    Ok(strict_json(text, flag)?.unwrap_or_else(|| Value::String(text.to_owned())))
}

/// `text` parsed as JSON (`None`: it is not JSON). JSON whose numbers or keys would mean two
/// things is refused: the gateway would approve what was parsed, not what was typed
/// (invariant 9).
fn strict_json(text: &str, flag: &str) -> Result<Option<Value>, Failure> {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return Ok(None);
    };
    countersign_core::json_text::check(text.as_bytes())
        .map_err(|e| Failure::usage(format!("{flag}: {e}")))?;
    Ok(Some(value))
}

/// The outcome's output: an HTTP status line (stderr) and body (stdout), a command's stdout
/// and stderr to ours, a query's rows as a table (stdout). Every control character but line
/// breaks and tabs is escaped; `--json` shows the outcome as recorded.
fn print_outcome(o: &Outcome) {
    if let Some(http) = &o.http {
        eprintln!("HTTP {}", http.status);
        print_text(&http.body, false);
    }
    if let Some(out) = &o.stdout {
        print_text(out, false);
    }
    if let Some(err) = &o.stderr {
        print_text(err, true);
    }
    if let Some(columns) = &o.columns {
        print!(
            "{}",
            render::rows(columns, o.rows.as_deref().unwrap_or_default())
        );
    }
}

fn print_text(text: &str, to_stderr: bool) {
    if text.is_empty() {
        return;
    }
    let mut shown = render::output(text).into_owned();
    if !shown.ends_with('\n') {
        shown.push('\n');
    }
    if to_stderr {
        eprint!("{shown}");
    } else {
        print!("{shown}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(kind: &str, schema: Value) -> ExecutorInfo {
        ExecutorInfo {
            name: "x".into(),
            kind: kind.into(),
            description: String::new(),
            params_schema: schema,
            resource: "https://api.example/v1".into(),
        }
    }

    fn invoke_args(params: &[&str], sql: Option<&str>, args: Option<&str>) -> InvokeArgs {
        InvokeArgs {
            executor: "x".into(),
            params: params.iter().map(|p| p.to_string()).collect(),
            sql: sql.map(str::to_owned),
            args: args.map(str::to_owned),
            justification: None,
            run: None,
            wait: None,
        }
    }

    fn http() -> ExecutorInfo {
        info(
            "exec.http.x",
            serde_json::json!({"properties": {
                "method": {"type": "string"}, "path": {"type": "string"},
                "query": {"type": "object"}, "body": {"description": "any"}
            }}),
        )
    }

    #[test]
    fn strings_stay_strings_and_the_rest_is_json_when_it_parses() {
        let p = params(
            &http(),
            &invoke_args(
                &[
                    "method=POST",
                    "path=/a?b=1",
                    "body={\"v\": 1}",
                    "query={\"page\": 2}",
                    "other=[1]",
                ],
                None,
                None,
            ),
        )
        .unwrap();
        assert_eq!(
            p,
            serde_json::json!({
                "method": "POST", "path": "/a?b=1", "body": {"v": 1},
                "query": {"page": 2}, "other": "[1]"
            })
        );
        let p = params(&http(), &invoke_args(&["body=plain text"], None, None)).unwrap();
        assert_eq!(p["body"], "plain text");
        assert_eq!(
            http().action(p.clone(), None).resource,
            "https://api.example/v1"
        );
    }

    #[test]
    fn ambiguous_json_twice_given_params_and_bad_args_are_refused() {
        for bad in [
            invoke_args(&["body={\"a\":1,\"a\":2}"], None, None),
            invoke_args(&["method=GET", "method=POST"], None, None),
            invoke_args(&["sql=select 1"], Some("select 2"), None),
            invoke_args(&["nokey"], None, None),
            invoke_args(&[], Some("select $1"), Some("{\"a\": 1}")),
            invoke_args(&[], Some("select $1"), Some("[1")),
        ] {
            let e = params(&http(), &bad).unwrap_err();
            assert_eq!(e.exit, outcome::USAGE, "{}", e.message);
        }
        let p = params(&http(), &invoke_args(&[], Some("select $1"), Some("[42]"))).unwrap();
        assert_eq!(p, serde_json::json!({"sql": "select $1", "args": [42]}));
    }

    #[test]
    fn an_unknown_executor_lists_the_names() {
        let view = ExecutorView::from(&http());
        let e = find(vec![view], "nope").unwrap_err();
        assert_eq!(e.exit, outcome::USAGE);
        assert!(e.message.contains("has: x"), "{}", e.message);
        let e = find(vec![], "nope").unwrap_err();
        assert!(e.message.contains("no executors"), "{}", e.message);
    }
}
