//! Human-readable output for requests: what an approver needs to see to decide, and what an
//! agent needs to see to go on.

use countersign_server::wire::RequestView;
use std::fmt::Write as _;

fn needs(r: &RequestView) -> String {
    if r.remaining.is_empty() {
        return String::new();
    }
    r.remaining
        .iter()
        .map(|c| format!("{} of {}", c.count, c.group))
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
            r.id,
            r.state.as_str(),
            r.requester.id.as_str(),
            r.action.kind,
            truncate(&r.action.resource, 30),
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
    let mut out = String::new();
    let held = if r.held {
        " (held: its run is paused)"
    } else {
        ""
    };
    let _ = writeln!(out, "request   {}", r.id);
    let _ = writeln!(out, "state     {}{held}", r.state.as_str());
    let owner = r
        .requester
        .owner
        .as_ref()
        .map(|o| format!(" (owner {o})"))
        .unwrap_or_default();
    let _ = writeln!(out, "requester {}{owner}", r.requester.id);
    let _ = writeln!(out, "action    {} on {}", r.action.kind, r.action.resource);
    if let Some(j) = &r.action.justification {
        let _ = writeln!(out, "why       {j}");
    }
    if let Some(run) = &r.action.run {
        let _ = writeln!(out, "run       {run}");
    }
    let params = serde_json::to_string_pretty(&r.action.params).unwrap_or_default();
    let _ = writeln!(out, "params    {}", params.replace('\n', "\n          "));
    let rule = r.decision.rule.as_deref().unwrap_or("(policy default)");
    let _ = writeln!(out, "rule      {rule}: {}", r.decision.reason);
    let needs = needs(r);
    if !needs.is_empty() {
        let _ = writeln!(out, "needs     {needs}");
    }
    for v in &r.votes {
        let mfa = if v.mfa { " with MFA" } else { "" };
        let comment = v
            .comment
            .as_deref()
            .map(|c| format!(": {c}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "vote      {} {:?} via {}{mfa}{comment}",
            v.approver,
            v.decision,
            v.channel.as_str()
        );
    }
    if let Some(e) = &r.expires_at {
        let _ = writeln!(out, "expires   {e}");
    }
    if let Some(o) = &r.outcome {
        let _ = writeln!(out, "outcome   {o}");
    }
    if let Some(g) = &r.grant {
        let _ = writeln!(
            out,
            "grant     {} ({} of {} uses, until {})",
            g.id, g.uses, g.max_uses, g.expires_at
        );
    }
    let _ = writeln!(out, "digest    {}", r.digest);
    if let Some(u) = &r.review_url {
        let _ = writeln!(out, "review    {u}");
    }
    out
}
