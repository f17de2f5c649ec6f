//! How a request looks in Slack: a Block Kit message built from the request alone (so every
//! replica renders the same message, and re-rendering after any change is how the message
//! stays true). Pure: no I/O, no clock.

use crate::channels::mask;
use countersign_core::{Request, State, VoteDecision};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// Params shown in a message are cut at this many characters (the API has the full view).
const PARAMS_MAX: usize = 1_500;
/// Slack's limit for a section's text is 3,000 characters; user text is cut well below it.
const TEXT_MAX: usize = 1_000;

/// The `block_id` of the buttons, and the `action_id`s the interaction handler expects.
pub const ACTIONS_BLOCK: &str = "countersign_review";
pub const APPROVE: &str = "approve";
pub const DENY: &str = "deny";
/// The modal that asks for a reason before a deny.
pub const DENY_MODAL: &str = "countersign_deny";
pub const REASON_BLOCK: &str = "reason";
pub const REASON_INPUT: &str = "reason_input";

pub struct Rendered {
    /// Notification text (and what clients without blocks show).
    pub text: String,
    pub blocks: Value,
    /// Identifies the content, so an unchanged message is not sent again.
    pub hash: String,
}

/// The button value: which request, and the digest the person was shown (an approval covers
/// exactly that action).
pub fn button_value(req: &Request) -> String {
    format!("{}|{}", req.id, req.digest)
}

/// Splits a button value back into (request id, digest).
pub fn parse_button_value(value: &str) -> Option<(&str, &str)> {
    let (id, digest) = value.split_once('|')?;
    (id.starts_with("req_") && digest.starts_with("sha256:")).then_some((id, digest))
}

/// The link to the request for people: its console page (the API's `review_url`).
pub fn request_url(public_url: &str, req: &Request) -> String {
    format!("{public_url}/console/requests/{}", req.id)
}

pub fn render(req: &Request, public_url: &str) -> Rendered {
    let a = &req.action;
    let title = match req.state {
        State::Pending => format!("Approval needed: {}", a.kind),
        State::Approved => format!("✅ Approved: {}", a.kind),
        State::Denied => format!("⛔ Denied: {}", a.kind),
        State::Expired => format!("⌛ Expired: {}", a.kind),
        State::Cancelled => format!("Cancelled: {}", a.kind),
        State::Executed => format!("✅ Executed: {}", a.kind),
        State::Failed => format!("❗ Failed: {}", a.kind),
    };
    let owner = req
        .requester
        .owner
        .as_ref()
        .map(|o| format!(" (owner {})", code(o.as_str())))
        .unwrap_or_default();
    let requirements = req.decision.requirements.as_ref();
    let rule = req.decision.rule.as_deref().unwrap_or("default");
    let needs = requirements.map(|r| r.summary()).unwrap_or_default();
    let mut fields = vec![
        mrkdwn(format!(
            "*Agent*\n{}{owner}",
            code(req.requester.id.as_str())
        )),
        mrkdwn(format!(
            "*Action*\n{} on {}",
            code(&a.kind),
            code(&a.resource)
        )),
        mrkdwn(format!("*Rule*\n{} — needs {}", code(rule), escape(&needs))),
    ];
    if let Some(exp) = req.expires_at.filter(|_| req.state == State::Pending) {
        fields.push(mrkdwn(format!(
            "*Expires*\n<!date^{}^{{date_short_pretty}} {{time}}|{}>",
            exp.timestamp(),
            exp.format("%Y-%m-%d %H:%M UTC")
        )));
    }
    if let Some(run) = &a.run {
        fields.push(mrkdwn(format!("*Run*\n{}", code(run))));
    }
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": cut(&title, 150), "emoji": true}}),
        json!({"type": "section", "fields": fields}),
    ];
    let why = a
        .justification
        .as_deref()
        .filter(|j| !j.trim().is_empty())
        .unwrap_or("(no justification given)");
    blocks.push(section(format!(
        "*Why*\n>{}",
        escape(&cut(mask::mask_text(why), TEXT_MAX)).replace('\n', "\n>")
    )));
    if a.params.as_object().is_none_or(|o| !o.is_empty()) {
        let pretty = serde_json::to_string_pretty(&mask::mask(&a.params)).unwrap_or_default();
        let shown = if pretty.chars().count() > PARAMS_MAX {
            format!(
                "```{}\n…```\n_Truncated: <{}|full params>_",
                escape(&cut(&pretty, PARAMS_MAX)),
                request_url(public_url, req)
            )
        } else {
            format!("```{}```", escape(&pretty))
        };
        blocks.push(section(format!("*Params*\n{shown}")));
    }
    blocks.push(json!({"type": "context", "elements": [mrkdwn(progress(req))]}));
    let url = request_url(public_url, req);
    let open = json!({"type": "button", "action_id": "open", "url": url,
        "text": {"type": "plain_text", "text": "Open"}});
    if req.state == State::Pending && !req.held {
        if requirements.is_some_and(|r| r.mfa) {
            blocks.push(section(format!(
                "This rule requires a second factor: approve in the console, or run \
                 `countersign approve {} --otp <code>`.",
                req.id
            )));
            blocks.push(
                json!({"type": "actions", "block_id": ACTIONS_BLOCK, "elements": [
                {"type": "button", "action_id": "open_mfa", "url": url, "style": "primary",
                 "text": {"type": "plain_text", "text": "Approve with MFA"}}]}),
            );
        } else {
            let value = button_value(req);
            blocks.push(
                json!({"type": "actions", "block_id": ACTIONS_BLOCK, "elements": [
                {"type": "button", "action_id": APPROVE, "style": "primary", "value": value,
                 "text": {"type": "plain_text", "text": "Approve"}},
                {"type": "button", "action_id": DENY, "style": "danger", "value": value,
                 "text": {"type": "plain_text", "text": "Deny"}},
                open]}),
            );
        }
    } else {
        blocks.push(json!({"type": "actions", "block_id": ACTIONS_BLOCK, "elements": [open]}));
    }
    let text = match req.state {
        State::Pending => format!(
            "{} asks to run {} on {}: needs {}",
            req.requester.id, a.kind, a.resource, needs
        ),
        _ => format!("{title} ({} on {})", a.kind, a.resource),
    };
    let blocks = Value::Array(blocks);
    let mut h = Sha256::new();
    h.update(text.as_bytes());
    h.update(blocks.to_string().as_bytes());
    Rendered {
        text,
        blocks,
        hash: hex::encode(h.finalize()),
    }
}

/// "1 of 2 approvals: bob approved · still needs 1 of security", or how it ended.
pub fn progress(req: &Request) -> String {
    let needed: u32 = req
        .decision
        .requirements
        .as_ref()
        .map(|r| r.approvers.iter().map(|c| c.count).sum())
        .unwrap_or(0);
    let approvals = req
        .votes
        .iter()
        .filter(|v| v.decision == VoteDecision::Approve)
        .count();
    let votes: Vec<String> = req
        .votes
        .iter()
        .map(|v| {
            let verb = match v.decision {
                VoteDecision::Approve => "approved",
                VoteDecision::Deny => "denied",
            };
            let comment = v
                .comment
                .as_deref()
                .map(|c| format!(": “{}”", escape(&cut(c, 200))))
                .unwrap_or_default();
            format!(
                "{} {verb} via {}{comment}",
                code(v.approver.as_str()),
                v.channel.as_str()
            )
        })
        .collect();
    let mut parts = vec![];
    match req.state {
        State::Pending => {
            parts.push(format!("{approvals} of {needed} approvals"));
            if req.held {
                parts.push("held while its run is paused".into());
            }
            parts.extend(votes);
            let remaining = req.remaining();
            if !remaining.is_empty() {
                let r: Vec<String> = remaining
                    .iter()
                    .map(|c| format!("{} of {}", c.count, c.group))
                    .collect();
                parts.push(format!("still needs {}", escape(&r.join(", "))));
            }
        }
        state => {
            parts.push(format!("*{}*", state.as_str()));
            parts.extend(votes);
            if let Some(outcome) = &req.outcome {
                parts.push(escape(&cut(outcome, 300)));
            }
        }
    }
    parts.push(format!("`{}`", req.id));
    parts.join(" · ")
}

fn mrkdwn(text: String) -> Value {
    json!({"type": "mrkdwn", "text": text})
}

fn section(text: String) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

/// Slack's three control characters in text.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn code(s: &str) -> String {
    format!("`{}`", escape(&cut(s, 200)).replace('`', "'"))
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}
