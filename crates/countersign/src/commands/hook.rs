//! `countersign hook claude-code`: Countersign as a Claude Code `PreToolUse` or
//! `PermissionRequest` hook. It reads the tool call Claude is about to make, asks the gateway as
//! the agent, waits for people when the policy says so, and answers Claude Code with `allow` or
//! `deny` on stdout, in the shape of the event it was given. `PreToolUse` fires for every tool
//! call; `PermissionRequest` only when Claude Code would show its permission prompt, so the
//! tools its own settings allow cost nothing (docs/claude-code.md says when to choose which).
//!
//! It must never exit non-zero once it has a valid event: Claude Code treats exit 2 as a block
//! but any other non-zero code as a non-blocking error and runs the tool anyway. So every failure
//! after the event is read (no key, gateway down or refusing, no decision in time) becomes a
//! `deny` with the reason, and the details go to stderr: it fails closed. A bad event exits 2,
//! which also blocks. It must also finish within `--timeout`, because a hook that Claude Code
//! kills is not a block either.
//!
//! The mapping from an event to an action (documented in docs/claude-code.md):
//! - kind: `claude.tool.<tool_name>`, each character other than an ASCII letter, digit, `_` or
//!   `-` replaced by `_`, so the tool name is one segment of a valid kind (`Bash`,
//!   `mcp__github__create_issue`; an MCP server named `my.server` gives `mcp__my_server__…`);
//! - resource: `file://<path>` when the input has a string `file_path` or `notebook_path` (as
//!   given, not percent-encoded; Claude Code sends absolute paths), else the input's `url` when
//!   it is http(s) (WebFetch, browser tools), else `claude-code://<tool name as in the kind>`;
//! - params: the tool input, unchanged; justification: the input's `description` (Bash has one);
//! - run: `claude-code:<session_id>` (sanitized like the tool name), so people can pause or stop
//!   one Claude session;
//! - labels: `cwd` and `tool_use_id`, each left out when longer than the core's 200-byte limit.

use crate::cli::Global;
use crate::client::Client;
use crate::commands::remote::wait_for;
use crate::outcome::{self, Failure};
use countersign_core::{State, VoteDecision};
use countersign_http::wire::{ActionBody, RedeemBody, RedeemView, RequestView};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

/// Kept back from `--timeout` to cancel an undecided request and answer before the deadline.
const RESERVE: Duration = Duration::from_secs(2);

/// Longest label value the core accepts.
const MAX_LABEL_LEN: usize = 200;

/// The part of Claude Code's `PreToolUse` and `PermissionRequest` events we use (both carry the
/// same tool call). Unknown fields (`transcript_path`, `permission_mode`,
/// `permission_suggestions`, and whatever later versions add) are ignored: this is Claude
/// Code's format, not ours, and a new field must not block every tool call.
#[derive(Debug, Deserialize)]
struct PreToolUse {
    session_id: String,
    hook_event_name: String,
    tool_name: String,
    tool_input: Map<String, Value>,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    tool_use_id: Option<String>,
}

/// The events the hook answers.
const EVENTS: [&str; 2] = ["PreToolUse", "PermissionRequest"];

/// What the hook tells Claude Code.
struct Verdict {
    allow: bool,
    reason: String,
}

impl Verdict {
    fn allow(reason: String) -> Self {
        Self {
            allow: true,
            reason,
        }
    }

    fn deny(reason: String) -> Self {
        Self {
            allow: false,
            reason,
        }
    }

    /// The decision as Claude Code reads it on stdout (with exit code 0), for `event`: a
    /// `PreToolUse` permission decision with its reason, or a `PermissionRequest` decision
    /// (`behavior`; a denial's `message` is shown to Claude).
    fn to_json(&self, event: &str) -> Value {
        let behavior = if self.allow { "allow" } else { "deny" };
        if event == "PermissionRequest" {
            let mut decision = json!({"behavior": behavior});
            if !self.allow {
                decision["message"] = json!(self.reason);
            }
            return json!({"hookSpecificOutput": {
                "hookEventName": "PermissionRequest",
                "decision": decision,
            }});
        }
        json!({"hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": behavior,
            "permissionDecisionReason": self.reason,
        }})
    }
}

pub async fn claude_code(g: &Global, timeout: u64) -> Result<u8, Failure> {
    let started = Instant::now();
    let budget = Duration::from_secs(timeout);
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| Failure::usage(format!("cannot read the hook event on stdin: {e}")))?;
    let event = parse_event(&input)?;
    let deadline = tokio::time::Instant::from_std(started + budget);
    // The tool input becomes the action's params: a number or key that means two things is
    // denied here, since parsing has already picked one meaning (invariant 9).
    let checked = countersign_core::json_text::check(input.as_bytes());
    let verdict = match checked {
        Err(e) => fail_closed(&e.to_string()),
        Ok(()) => {
            match tokio::time::timeout_at(deadline, decide(g, &event, started, timeout)).await {
                Ok(Ok(verdict)) => verdict,
                Ok(Err(f)) => fail_closed(&f.message),
                Err(_) => fail_closed(&format!("the gateway did not answer within {timeout} s")),
            }
        }
    };
    // Exit 2 if the answer cannot be written: Claude Code blocks the call on 2 only.
    let mut stdout = std::io::stdout().lock();
    if verdict.allow {
        eprintln!("countersign: {}", verdict.reason);
    }
    writeln!(stdout, "{}", verdict.to_json(&event.hook_event_name))
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::usage(format!("cannot write the decision on stdout: {e}")))?;
    Ok(outcome::OK)
}

fn fail_closed(why: &str) -> Verdict {
    eprintln!("countersign: {why}");
    Verdict::deny(format!(
        "Countersign could not get a decision, so this call is blocked: {why}"
    ))
}

fn parse_event(input: &str) -> Result<PreToolUse, Failure> {
    let event: PreToolUse = serde_json::from_str(input).map_err(|e| {
        Failure::usage(format!(
            "stdin is not a Claude Code PreToolUse or PermissionRequest event: {e}"
        ))
    })?;
    if !EVENTS.contains(&event.hook_event_name.as_str()) {
        return Err(Failure::usage(format!(
            "`countersign hook claude-code` handles PreToolUse and PermissionRequest events, got {:?}; register it under hooks.PreToolUse or hooks.PermissionRequest",
            event.hook_event_name
        )));
    }
    Ok(event)
}

/// `s` with each character a kind or run id cannot hold replaced by `_`.
fn segment(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn action_for(event: &PreToolUse) -> ActionBody {
    let tool = segment(&event.tool_name);
    let input = &event.tool_input;
    let text = |key: &str| input.get(key).and_then(Value::as_str);
    let resource = if let Some(path) = text("file_path").or_else(|| text("notebook_path")) {
        format!("file://{path}")
    } else if let Some(url) =
        text("url").filter(|u| u.starts_with("https://") || u.starts_with("http://"))
    {
        url.to_string()
    } else {
        format!("claude-code://{tool}")
    };
    let labels: BTreeMap<String, String> =
        [("cwd", &event.cwd), ("tool_use_id", &event.tool_use_id)]
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), v.clone()?)))
            .filter(|(_, v)| v.len() <= MAX_LABEL_LEN)
            .collect();
    ActionBody {
        kind: format!("claude.tool.{tool}"),
        resource,
        params: Some(Value::Object(input.clone())),
        justification: text("description").map(str::to_string),
        run: Some(format!("claude-code:{}", segment(&event.session_id))),
        labels,
        requester: None,
    }
}

/// Submits the action, waits for a decision until shortly before the budget runs out, and
/// turns the request's end state into a verdict. A still-pending request is cancelled.
async fn decide(
    g: &Global,
    event: &PreToolUse,
    started: Instant,
    timeout: u64,
) -> Result<Verdict, Failure> {
    let c = Client::new(&g.url, g.token.clone())?;
    let submitted: RequestView = c.post("/v1/actions", &action_for(event)).await?;
    let id = submitted.id.clone();
    let wait_end = started + Duration::from_secs(timeout).saturating_sub(RESERVE);
    // The last long-poll may overrun `wait_end` by up to a second; cut it off there.
    let decided = tokio::time::timeout_at(
        tokio::time::Instant::from_std(wait_end),
        wait_for(&c, submitted, Some(wait_end)),
    )
    .await
    .ok()
    .transpose()?;
    let r = match decided {
        Some(r) if r.state != State::Pending => r,
        _ => return Ok(cancel(&c, &id, timeout).await),
    };
    let id = &r.id;
    let why = r.outcome.as_deref().unwrap_or(&r.decision.reason);
    Ok(match r.state {
        State::Approved => {
            if let Some(grant) = &r.grant {
                let redeem = RedeemBody {
                    digest: r.digest.clone(),
                };
                let _: RedeemView = c
                    .post(&format!("/v1/grants/{}/redeem", grant.id), &redeem)
                    .await?;
            }
            Verdict::allow(approval(&r))
        }
        State::Denied if r.outcome_code.as_deref() == Some("policy_denied") => {
            let rule = r.decision.rule.as_deref().unwrap_or("the policy default");
            Verdict::deny(format!(
                "Countersign denied request {id} by policy rule `{rule}`: {why}"
            ))
        }
        State::Denied | State::Failed => {
            Verdict::deny(format!("Countersign denied request {id}: {why}"))
        }
        State::Expired => Verdict::deny(format!("Countersign request {id} expired: {why}")),
        State::Cancelled => Verdict::deny(format!("Countersign request {id} was cancelled: {why}")),
        State::Executed => Verdict::deny(format!(
            "Countersign request {id} was already executed; its grant is used up"
        )),
        State::Pending => cancel(&c, id, timeout).await,
    })
}

/// Who let an approved request through: the people who approved it, or the policy rule.
fn approval(r: &RequestView) -> String {
    let approvers: Vec<&str> = r
        .votes
        .iter()
        .filter(|v| v.decision == VoteDecision::Approve)
        .map(|v| v.approver.as_str())
        .collect();
    if approvers.is_empty() {
        let rule = r.decision.rule.as_deref().unwrap_or("the policy default");
        format!(
            "Countersign allowed request {} by policy rule `{rule}`: {}",
            r.id, r.decision.reason
        )
    } else {
        format!(
            "Countersign request {} approved by {}",
            r.id,
            approvers.join(", ")
        )
    }
}

/// Gives up on a request nobody decided in time: cancels it, so a late approval cannot be
/// used, and denies.
async fn cancel(c: &Client, id: &str, timeout: u64) -> Verdict {
    let path = format!("/v1/requests/{id}/cancel");
    match c.post::<_, RequestView>(&path, &json!({})).await {
        Ok(_) => Verdict::deny(format!(
            "Countersign: no decision within {timeout} s (request {id} cancelled); ask again or approve faster"
        )),
        Err(f) => fail_closed(&format!(
            "no decision within {timeout} s, and cancelling request {id} failed: {}",
            f.message
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(tool: &str, input: Value) -> PreToolUse {
        parse_event(
            &json!({
                "session_id": "abc123",
                "transcript_path": "/home/user/.claude/projects/p/abc123.jsonl",
                "cwd": "/home/user/project",
                "permission_mode": "default",
                "hook_event_name": "PreToolUse",
                "tool_name": tool,
                "tool_input": input,
                "tool_use_id": "toolu_01ABC123",
            })
            .to_string(),
        )
        .expect("a valid event")
    }

    fn valid(body: ActionBody) -> ActionBody {
        body.clone()
            .into_action()
            .expect("no requester")
            .validate()
            .expect("a valid action");
        body
    }

    #[test]
    fn a_bash_call_is_a_claude_tool_action_with_its_description_as_justification() {
        let input =
            json!({"command": "npm test", "description": "Run the test suite", "timeout": 120000});
        let a = valid(action_for(&event("Bash", input.clone())));
        assert_eq!(a.kind, "claude.tool.Bash");
        assert_eq!(a.resource, "claude-code://Bash");
        assert_eq!(a.params, Some(input));
        assert_eq!(a.justification.as_deref(), Some("Run the test suite"));
        assert_eq!(a.run.as_deref(), Some("claude-code:abc123"));
        assert_eq!(a.labels["cwd"], "/home/user/project");
        assert_eq!(a.labels["tool_use_id"], "toolu_01ABC123");
    }

    #[test]
    fn file_tools_name_the_file_and_web_fetch_the_url() {
        let write = event(
            "Write",
            json!({"file_path": "/home/user/project/a.txt", "content": "hi"}),
        );
        assert_eq!(
            valid(action_for(&write)).resource,
            "file:///home/user/project/a.txt"
        );
        let fetch = event(
            "WebFetch",
            json!({"url": "https://example.com/x", "prompt": "summarize"}),
        );
        assert_eq!(valid(action_for(&fetch)).resource, "https://example.com/x");
        let odd = event("mcp__x__open", json!({"url": "javascript:alert(1)"}));
        assert_eq!(
            valid(action_for(&odd)).resource,
            "claude-code://mcp__x__open"
        );
    }

    #[test]
    fn tool_and_session_names_are_sanitized_into_valid_kinds_and_runs() {
        let mut e = event("mcp__my.server__do it", json!({"description": 3}));
        e.session_id = "weird id/with:stuff".into();
        e.cwd = Some("/".repeat(201));
        let a = valid(action_for(&e));
        assert_eq!(a.kind, "claude.tool.mcp__my_server__do_it");
        assert_eq!(a.resource, "claude-code://mcp__my_server__do_it");
        assert_eq!(a.run.as_deref(), Some("claude-code:weird_id_with_stuff"));
        assert_eq!(a.justification, None);
        assert!(!a.labels.contains_key("cwd"));
    }

    #[test]
    fn other_events_and_bad_json_are_refused_as_usage_errors() {
        assert_eq!(parse_event("{").unwrap_err().exit, outcome::USAGE);
        let post = r#"{"session_id":"s","hook_event_name":"PostToolUse","tool_name":"Bash","tool_input":{}}"#;
        let err = parse_event(post).unwrap_err();
        assert_eq!(err.exit, outcome::USAGE);
        assert!(err.message.contains("PostToolUse"), "{}", err.message);
        let not_object = r#"{"session_id":"s","hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":[1]}"#;
        assert!(parse_event(not_object).is_err());
    }

    #[test]
    fn the_verdict_has_claude_codes_shape() {
        assert_eq!(
            Verdict::deny("no".into()).to_json("PreToolUse"),
            json!({"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny", "permissionDecisionReason": "no"}})
        );
        assert_eq!(
            Verdict::allow("yes".into()).to_json("PreToolUse")["hookSpecificOutput"]["permissionDecision"],
            "allow"
        );
        assert_eq!(
            Verdict::deny("no".into()).to_json("PermissionRequest"),
            json!({"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": {"behavior": "deny", "message": "no"}}})
        );
        assert_eq!(
            Verdict::allow("yes".into()).to_json("PermissionRequest"),
            json!({"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": {"behavior": "allow"}}})
        );
    }

    #[test]
    fn a_permission_request_is_the_same_action_as_its_pre_tool_use() {
        let input = json!({"command": "git push", "description": "Push the branch"});
        let pre = event("Bash", input.clone());
        let mut asked = json!({
            "session_id": "abc123",
            "cwd": "/home/user/project",
            "permission_mode": "default",
            "hook_event_name": "PermissionRequest",
            "tool_name": "Bash",
            "tool_input": input,
            "tool_use_id": "toolu_01ABC123",
            "permission_suggestions": [{"type": "addRules", "behavior": "allow"}],
        });
        let permission = parse_event(&asked.to_string()).expect("a PermissionRequest");
        let (a, b) = (action_for(&pre), action_for(&permission));
        assert_eq!(
            (a.kind, a.resource, a.params, a.run),
            (b.kind, b.resource, b.params, b.run)
        );
        asked["hook_event_name"] = json!("PermissionDenied");
        assert_eq!(
            parse_event(&asked.to_string()).unwrap_err().exit,
            outcome::USAGE
        );
    }
}
