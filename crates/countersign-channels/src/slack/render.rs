//! How a request looks in Slack: the channel-neutral [`Review`] of the request formatted as a
//! Block Kit message (so every replica renders the same message, and re-rendering after any
//! change is how the message stays true). Pure: no I/O, no clock.

use crate::Rendered;
use crate::review::{Buttons, Progress, Review, SHORT_MAX, cut};
use countersign_app::mask::Masker;
use countersign_core::{Request, State};
use serde_json::{Value, json};

/// The `block_id` of the buttons, and the `action_id`s the interaction handler expects.
pub const ACTIONS_BLOCK: &str = "countersign_review";
pub const APPROVE: &str = "approve";
/// Approve, and ask for the standing approval the button's value names.
pub const APPROVE_STANDING: &str = "approve_standing";
pub const DENY: &str = "deny";
/// The modal that asks for a reason before a deny.
pub const DENY_MODAL: &str = "countersign_deny";
pub const REASON_BLOCK: &str = "reason";
pub const REASON_INPUT: &str = "reason_input";

/// The button value: which request, and the digest the person was shown (an approval covers
/// exactly that action).
pub fn button_value(request_id: &str, digest: &str) -> String {
    format!("{request_id}|{digest}")
}

/// Splits a button value back into (request id, digest).
pub fn parse_button_value(value: &str) -> Option<(&str, &str)> {
    let (id, digest) = value.split_once('|')?;
    (id.starts_with("req_") && digest.starts_with("sha256:")).then_some((id, digest))
}

/// Splits the standing button's value (`req|digest|30m|20`) into (request id, digest, for,
/// uses).
pub fn parse_standing_value(value: &str) -> Option<(&str, &str, &str, u32)> {
    let mut parts = value.splitn(4, '|');
    let (id, digest) = (parts.next()?, parts.next()?);
    let (for_, uses) = (parts.next()?, parts.next()?.parse().ok()?);
    (id.starts_with("req_") && digest.starts_with("sha256:")).then_some((id, digest, for_, uses))
}

pub fn render(req: &Request, public_url: &str, masker: &Masker) -> Rendered {
    let r = Review::of(req, public_url, masker);
    let owner = r
        .owner
        .as_deref()
        .map(|o| format!(" (owner {})", code(o)))
        .unwrap_or_default();
    let mut fields = vec![
        mrkdwn(format!("*Agent*\n{}{owner}", code(&r.requester))),
        mrkdwn(format!(
            "*Action*\n{} on {}",
            code(&r.kind),
            code(&r.resource)
        )),
        mrkdwn(format!(
            "*Rule*\n{} — needs {}",
            code(&r.rule),
            escape(&r.needs)
        )),
    ];
    if let Some(exp) = r.expires_at {
        fields.push(mrkdwn(format!(
            "*Expires*\n<!date^{}^{{date_short_pretty}} {{time}}|{}>",
            exp.timestamp(),
            exp.format("%Y-%m-%d %H:%M UTC")
        )));
    }
    if let Some(run) = &r.run {
        fields.push(mrkdwn(format!("*Run*\n{}", code(run))));
    }
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": cut(&r.title, 150), "emoji": true}}),
        json!({"type": "section", "fields": fields}),
    ];
    blocks.push(section(format!(
        "*Why*\n>{}",
        escape(&r.why).replace('\n', "\n>")
    )));
    if let Some(p) = &r.params {
        let shown = if p.truncated {
            format!(
                "```{}\n…```\n_Truncated: <{}|full params>_",
                escape(&p.json),
                r.url
            )
        } else {
            format!("```{}```", escape(&p.json))
        };
        blocks.push(section(format!("*{}*\n{shown}", p.label)));
    }
    if let Some(m) = &r.masked {
        blocks.push(json!({"type": "context", "elements": [mrkdwn(format!("🔒 {}", escape(m)))]}));
    }
    blocks.push(json!({"type": "context", "elements": [mrkdwn(progress(&r.progress))]}));
    let open = json!({"type": "button", "action_id": "open", "url": r.url,
        "text": {"type": "plain_text", "text": "Open"}});
    match &r.buttons {
        Buttons::StepUp => {
            blocks.push(section(format!(
                "This rule requires a second factor: approve in the console, or run \
                 `countersign approve {} --otp <code>`.",
                req.id()
            )));
            blocks.push(
                json!({"type": "actions", "block_id": ACTIONS_BLOCK, "elements": [
                {"type": "button", "action_id": "open_mfa", "url": r.url, "style": "primary",
                 "text": {"type": "plain_text", "text": "Approve with MFA"}}]}),
            );
        }
        Buttons::ReadInFull => {
            blocks.push(section(format!(
                "This action is too long to show here in full: read it and decide in the \
                 console, or run `countersign show {}`.",
                req.id()
            )));
            blocks.push(
                json!({"type": "actions", "block_id": ACTIONS_BLOCK, "elements": [
                {"type": "button", "action_id": "open_full", "url": r.url, "style": "primary",
                 "text": {"type": "plain_text", "text": "Review in full"}}]}),
            );
        }
        Buttons::Decide {
            request_id,
            digest,
            standing,
        } => {
            let value = button_value(request_id, digest);
            let mut elements = vec![
                json!({"type": "button", "action_id": APPROVE, "style": "primary", "value": value,
                 "text": {"type": "plain_text", "text": "Approve"}}),
            ];
            if let Some(offer) = standing {
                elements.push(json!({"type": "button", "action_id": APPROVE_STANDING,
                    "value": format!("{value}|{}|{}", offer.for_, offer.uses),
                    "text": {"type": "plain_text", "text": offer.title()}}));
            }
            elements.push(
                json!({"type": "button", "action_id": DENY, "style": "danger", "value": value,
                 "text": {"type": "plain_text", "text": "Deny"}}),
            );
            elements.push(open);
            blocks
                .push(json!({"type": "actions", "block_id": ACTIONS_BLOCK, "elements": elements}));
        }
        Buttons::None => {
            blocks.push(json!({"type": "actions", "block_id": ACTIONS_BLOCK, "elements": [open]}));
        }
    }
    Rendered::new(r.text, Value::Array(blocks))
}

/// "1 of 2 approvals · `user:bob@example.com` approved via slack · still needs 1 of security",
/// or how it ended, in mrkdwn.
pub fn progress(p: &Progress) -> String {
    let mut parts = vec![];
    if p.state == State::Pending {
        parts.push(p.headline());
        if p.held {
            parts.push("held while its run is paused".into());
        }
    } else {
        parts.push(format!("*{}*", p.headline()));
    }
    parts.extend(p.votes.iter().map(|v| {
        let comment = v
            .comment
            .as_deref()
            .map(|c| format!(": “{}”", escape(c)))
            .unwrap_or_default();
        format!(
            "{} {} via {}{comment}",
            code(&v.approver),
            v.verb,
            v.channel
        )
    }));
    if let Some(n) = &p.still_needs {
        parts.push(format!("still needs {}", escape(n)));
    }
    if let Some(o) = &p.outcome {
        parts.push(escape(o));
    }
    parts.push(format!("`{}`", p.request_id));
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
    format!("`{}`", escape(&cut(s, SHORT_MAX)).replace('`', "'"))
}
