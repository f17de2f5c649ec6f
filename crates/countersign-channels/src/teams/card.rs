//! How a request looks in Teams: the channel-neutral [`Review`] as an Adaptive Card (schema
//! 1.5), with `Action.Execute` buttons (Universal Actions: verbs `approve` / `deny`, data
//! carrying the request id and the digest shown) and an `Action.OpenUrl` to the console.
//! Built from the request alone, so every replica renders the same card, and re-rendering
//! after any change is how the card stays true. Pure: no I/O, no clock.
//!
//! Everything that comes from a request (kinds, resources, justifications, params, comments)
//! is shown in `TextRun`s, which Teams does not parse as Markdown: a justification cannot
//! smuggle a link or formatting into the card.

use crate::Rendered;
use crate::review::{Buttons, Review};
use countersign_app::mask::Masker;
use countersign_core::Request;
use serde_json::{Value, json};

/// The attachment content type of an Adaptive Card, and of an invoke response carrying one.
pub const CONTENT_TYPE: &str = "application/vnd.microsoft.card.adaptive";
pub const APPROVE: &str = "approve";
/// Approve, and ask for the standing approval the action's data names.
pub const APPROVE_STANDING: &str = "approve_standing";
pub const DENY: &str = "deny";
/// The id of the optional comment input; Teams merges input values into the action's data.
pub const COMMENT_INPUT: &str = "comment";
/// The longest comment the input accepts (the gateway accepts 4,096 bytes).
const COMMENT_MAX: u32 = 1000;

/// The card for `req`, and the message text for notifications.
pub fn render(req: &Request, public_url: &str, masker: &Masker) -> Rendered {
    let r = Review::of(req, public_url, masker);
    Rendered::new(r.text.clone(), card(&r, None))
}

/// The card for `req` with `notice` on top (why the clicker's vote did not count).
pub fn render_with_notice(req: &Request, public_url: &str, masker: &Masker, notice: &str) -> Value {
    card(&Review::of(req, public_url, masker), Some(notice))
}

/// A card that only says `text` (when there is no request to show).
pub fn notice_card(text: &str) -> Value {
    adaptive_card(vec![notice(text)], vec![])
}

fn card(r: &Review, notice_text: Option<&str>) -> Value {
    let mut body = vec![];
    if let Some(t) = notice_text {
        body.push(notice(t));
    }
    body.push(rich(vec![
        json!({"type": "TextRun", "text": r.title, "size": "Medium", "weight": "Bolder"}),
    ]));
    let agent = match &r.owner {
        Some(o) => format!("{} (owner {o})", r.requester),
        None => r.requester.clone(),
    };
    body.push(fact("Agent", &agent));
    body.push(fact("Action", &format!("{} on {}", r.kind, r.resource)));
    body.push(fact("Rule", &format!("{} — needs {}", r.rule, r.needs)));
    if let Some(exp) = r.expires_at {
        body.push(fact(
            "Expires",
            &exp.format("%Y-%m-%d %H:%M UTC").to_string(),
        ));
    }
    if let Some(run) = &r.run {
        body.push(fact("Run", run));
    }
    body.push(label("Why"));
    body.push(rich(vec![
        json!({"type": "TextRun", "text": r.why, "italic": true}),
    ]));
    if let Some(p) = &r.params {
        body.push(label(p.label));
        body.push(rich(vec![
            json!({"type": "TextRun", "text": p.json, "fontType": "Monospace"}),
        ]));
        if p.truncated {
            body.push(rich(vec![
                json!({"type": "TextRun", "isSubtle": true, "italic": true,
                "text": "Truncated: open the request for the full params."}),
            ]));
        }
    }
    if let Some(m) = &r.masked {
        body.push(rich(vec![
            json!({"type": "TextRun", "text": format!("🔒 {m}"), "isSubtle": true, "italic": true}),
        ]));
    }
    body.push(rich(vec![
        json!({"type": "TextRun", "text": r.progress.plain(),
        "isSubtle": true, "size": "Small"}),
    ]));
    let open = |title: &str| json!({"type": "Action.OpenUrl", "title": title, "url": r.url});
    let actions = match &r.buttons {
        Buttons::Decide {
            request_id,
            digest,
            standing,
        } => {
            body.push(
                json!({"type": "Input.Text", "id": COMMENT_INPUT, "isMultiline": true,
                "maxLength": COMMENT_MAX, "placeholder": "Comment or reason (optional)"}),
            );
            let data = json!({"request": request_id, "digest": digest});
            let mut actions = vec![json!({"type": "Action.Execute", "title": "Approve",
                "verb": APPROVE, "style": "positive", "data": data})];
            if let Some(offer) = standing {
                actions.push(json!({"type": "Action.Execute", "title": offer.title(),
                    "verb": APPROVE_STANDING,
                    "data": {"request": request_id, "digest": digest,
                             "standing": {"for": offer.for_, "uses": offer.uses}}}));
            }
            actions.push(
                json!({"type": "Action.Execute", "title": "Deny", "verb": DENY,
                "style": "destructive", "data": data}),
            );
            actions.push(open("Open"));
            actions
        }
        Buttons::StepUp => {
            body.push(rich(vec![json!({"type": "TextRun", "text": format!(
                "This rule requires a second factor: approve in the console, or run \
                 countersign approve {} --otp <code>.", r.progress.request_id)})]));
            let mut mfa = open("Approve with MFA");
            mfa["style"] = json!("positive");
            vec![mfa]
        }
        Buttons::ReadInFull => {
            body.push(rich(vec![json!({"type": "TextRun", "text": format!(
                "This action is too long to show here in full: read it and decide in the \
                 console, or run countersign show {}.", r.progress.request_id)})]));
            let mut full = open("Review in full");
            full["style"] = json!("positive");
            vec![full]
        }
        Buttons::None => vec![open("Open")],
    };
    adaptive_card(body, actions)
}

fn adaptive_card(body: Vec<Value>, actions: Vec<Value>) -> Value {
    json!({
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.5",
        "msteams": {"width": "Full"},
        "body": body,
        "actions": actions,
    })
}

fn rich(inlines: Vec<Value>) -> Value {
    json!({"type": "RichTextBlock", "inlines": inlines})
}

fn label(text: &str) -> Value {
    rich(vec![
        json!({"type": "TextRun", "text": text, "weight": "Bolder"}),
    ])
}

fn fact(name: &str, value: &str) -> Value {
    rich(vec![
        json!({"type": "TextRun", "text": format!("{name}: "), "weight": "Bolder"}),
        json!({"type": "TextRun", "text": value}),
    ])
}

fn notice(text: &str) -> Value {
    json!({"type": "Container", "style": "attention", "items": [rich(vec![
        json!({"type": "TextRun", "text": text, "weight": "Bolder"}),
    ])]})
}

/// The message activity that carries a card.
pub fn message_activity(rendered: &Rendered) -> Value {
    json!({
        "type": "message",
        "summary": rendered.text,
        "attachments": [{"contentType": CONTENT_TYPE, "content": rendered.body}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use countersign_core::{
        Action, Clause, Decision, Effect, OnTimeout, Principal, PrincipalId, Requirements, RunGate,
    };

    fn request(mfa: bool, justification: &str) -> Request {
        request_for(mfa, justification, |_| {})
    }

    /// A request for the usual action as `edit` changes it.
    fn request_for(mfa: bool, justification: &str, edit: impl FnOnce(&mut Action)) -> Request {
        let id = |s: &str| PrincipalId::parse(s).unwrap();
        let agent = Principal {
            id: id("agent:deploy-bot"),
            owner: Some(id("user:alice@example.com")),
            groups: vec![],
        };
        let mut action = Action {
            kind: "db.export".into(),
            resource: "postgres://prod/customers".into(),
            params: json!({"rows": 5000, "password": "hunter2"}),
            justification: Some(justification.into()),
            run: None,
            labels: Default::default(),
        };
        let decision = Decision {
            effect: Effect::Review,
            rule: Some("prod-export".into()),
            reason: "r".into(),
            requirements: Some(Requirements {
                approvers: vec![Clause {
                    group: "sre".into(),
                    count: 1,
                }],
                mfa,
                timeout_seconds: 900,
                on_timeout: OnTimeout::Deny,
                pause_run: false,
                grant_ttl_seconds: 300,
                notify: vec![],
                remind_seconds: None,
                escalate: None,
                require_comment: false,
                min_review_seconds: None,
                standing: None,
                amend: false,
            }),
            policy_hash: "sha256:00".into(),
            grant_ttl_seconds: 300,
        };
        edit(&mut action);
        let now = chrono::Utc::now();
        Request::submit(
            "req_1".into(),
            agent,
            action,
            decision,
            RunGate::Open,
            60,
            now,
        )
        .0
    }

    fn verbs(card: &Value) -> Vec<(String, String)> {
        card["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["type"].as_str().unwrap().to_string(),
                    a["verb"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn a_pending_card_is_adaptive_1_5_with_execute_buttons_carrying_the_digest() {
        let req = request(false, "quarterly report");
        let r = render(&req, "https://cs.example", &Masker::random());
        assert_eq!(r.body["version"], "1.5");
        assert_eq!(
            verbs(&r.body),
            [
                ("Action.Execute".into(), "approve".into()),
                ("Action.Execute".into(), "deny".into()),
                ("Action.OpenUrl".into(), String::new())
            ]
        );
        assert_eq!(r.body["actions"][0]["data"]["request"], "req_1");
        assert_eq!(
            r.body["actions"][0]["data"]["digest"],
            req.digest().to_string()
        );
        assert_eq!(
            r.body["actions"][2]["url"],
            "https://cs.example/console/requests/req_1"
        );
        let text = r.body.to_string();
        assert!(text.contains("agent:deploy-bot") && text.contains("user:alice@example.com"));
        assert!(!text.contains("hunter2"), "params masked: {text}");
    }

    #[test]
    fn an_mfa_card_only_opens_the_console() {
        let r = render(&request(true, "x"), "https://cs.example", &Masker::random());
        assert_eq!(verbs(&r.body), [("Action.OpenUrl".into(), String::new())]);
        assert!(r.body.to_string().contains("second factor"));
    }

    #[test]
    fn nothing_is_hidden_from_approvers_a_card_cut_short_has_no_approve() {
        let req = request_for(false, "x", |a| {
            a.params = json!({"padding": "x".repeat(2000), "zz": "rm -rf /"});
        });
        let r = render(&req, "https://cs.example", &Masker::random());
        assert_eq!(verbs(&r.body), [("Action.OpenUrl".into(), String::new())]);
        assert!(r.body.to_string().contains("too long to show here in full"));
        let req = request_for(false, "x", |a| {
            a.resource = format!("s3://{}", "b".repeat(300));
        });
        let r = render(&req, "https://cs.example", &Masker::random());
        assert_eq!(verbs(&r.body), [("Action.OpenUrl".into(), String::new())]);
    }

    #[test]
    fn the_card_says_what_was_masked() {
        let r = render(
            &request(false, "x"),
            "https://cs.example",
            &Masker::random(),
        );
        assert!(r.body.to_string().contains("1 value masked"), "{}", r.body);
    }

    #[test]
    fn request_text_is_never_markdown() {
        let r = render(
            &request(false, "**urgent** [click](https://evil.example)"),
            "u",
            &Masker::random(),
        );
        for block in r.body["body"].as_array().unwrap() {
            assert_ne!(
                block["type"], "TextBlock",
                "user text in a TextBlock: {block}"
            );
        }
    }
}
