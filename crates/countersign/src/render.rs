//! Human-readable output for requests: what an approver needs to see to decide, and what an
//! agent needs to see to go on.
//!
//! Invariant: text an agent or a person supplied (kind, resource, justification, params,
//! labels, run, names, comments, reasons, outcomes) cannot forge or control what the approver
//! sees. Every such string goes through [`shown`], the one place that escapes control
//! characters (C0, DEL, C1: newlines that would forge a field, ANSI and OSC sequences that
//! would drive the terminal) and bidirectional controls visibly; params go through the
//! gateway's masking (`countersign_app::mask`: only string leaves are masked, with their length and
//! a fingerprint, and the output says how many). `--json` prints the API's view unmasked.

use countersign_app::mask::{self, Masker};
use countersign_http::wire::RequestView;
use std::borrow::Cow;
use std::fmt::Write as _;

/// The one rendering of outside text for the terminal: control and bidirectional characters
/// escaped visibly (`\n`, `\x1b`, `\u{9b}`, `\u{202e}`).
pub fn shown(s: &str) -> Cow<'_, str> {
    countersign_core::text::visible(s)
}

fn needs(r: &RequestView) -> String {
    if r.remaining.is_empty() {
        return String::new();
    }
    r.remaining
        .iter()
        .map(|c| format!("{} of {}", c.count, shown(&c.group)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One line per request, for `ls`.
pub fn table(requests: &[RequestView]) -> String {
    if requests.is_empty() {
        return "no requests\n".into();
    }
    let mut out = format!(
        "{:<36}  {:<9}  {:<24}  {:<22}  {:<30}  {}\n",
        "ID", "STATE", "REQUESTER", "KIND", "RESOURCE", "NEEDS"
    );
    for r in requests {
        let _ = writeln!(
            out,
            "{:<36}  {:<9}  {:<24}  {:<22}  {:<30}  {}",
            shown(&r.id),
            r.state.as_str(),
            shown(r.requester.id.as_str()),
            shown(&r.action.kind),
            truncate(&shown(&r.action.resource), 30),
            needs(r)
        );
    }
    out
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

/// The full picture of one request, for `show`, `request` and before a vote.
pub fn detail(r: &RequestView) -> String {
    // The CLI holds no gateway key: fingerprints compare values within this output only.
    let masker = Masker::random();
    let mut masked = 0;
    let mut text = |s: &str| {
        let t = masker.text(s);
        masked += usize::from(t.is_masked());
        t.to_string()
    };
    let mut out = String::new();
    let held = if r.held {
        " (held: its run is paused)"
    } else {
        ""
    };
    let _ = writeln!(out, "request   {}", shown(&r.id));
    let _ = writeln!(out, "state     {}{held}", r.state.as_str());
    let owner = r
        .requester
        .owner
        .as_ref()
        .map(|o| format!(" (owner {})", shown(o.as_str())))
        .unwrap_or_default();
    let _ = writeln!(out, "requester {}{owner}", shown(r.requester.id.as_str()));
    let _ = writeln!(
        out,
        "action    {} on {}",
        shown(&r.action.kind),
        shown(&r.action.resource)
    );
    if let Some(j) = &r.action.justification {
        let _ = writeln!(out, "why       {}", text(j));
    }
    if let Some(run) = &r.action.run {
        let _ = writeln!(out, "run       {}", shown(run));
    }
    if !r.action.labels.is_empty() {
        let labels: Vec<String> = r
            .action
            .labels
            .iter()
            .map(|(k, v)| format!("{}={}", shown(k), shown(v)))
            .collect();
        let _ = writeln!(out, "labels    {}", labels.join(", "));
    }
    let params = masker.params(&r.action.params);
    let _ = writeln!(
        out,
        "params    {}",
        params.text().replace('\n', "\n          ")
    );
    let rule = r.decision.rule.as_deref().unwrap_or("(policy default)");
    let _ = writeln!(
        out,
        "rule      {}: {}",
        shown(rule),
        shown(&r.decision.reason)
    );
    let needs = needs(r);
    if !needs.is_empty() {
        let _ = writeln!(out, "needs     {needs}");
    }
    for v in &r.votes {
        let mfa = if v.mfa { " with MFA" } else { "" };
        let comment = v
            .comment
            .as_deref()
            .map(|c| format!(": {}", text(c)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "vote      {} {:?} via {}{mfa}{comment}",
            shown(v.approver.as_str()),
            v.decision,
            v.channel.as_str()
        );
    }
    if let Some(e) = &r.expires_at {
        let _ = writeln!(out, "expires   {}", shown(e));
    }
    if let Some(o) = &r.outcome {
        let _ = writeln!(out, "outcome   {}", text(o));
    }
    if let Some(g) = &r.grant {
        let _ = writeln!(
            out,
            "grant     {} ({} of {} uses, until {})",
            shown(&g.id),
            g.uses,
            g.max_uses,
            shown(&g.expires_at)
        );
    }
    let _ = writeln!(out, "digest    {}", shown(&r.digest));
    if let Some(u) = &r.review_url {
        let _ = writeln!(out, "review    {}", shown(u));
    }
    if let Some(n) = mask::notice(params.masked + masked) {
        let _ = writeln!(
            out,
            "masked    {n}; fingerprints compare within this output, --json shows all"
        );
    }
    out
}
