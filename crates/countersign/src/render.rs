//! Human-readable output for requests: what an approver needs to see to decide, and what an
//! agent needs to see to go on; and for executions: an outcome's output, rows and summary.
//!
//! Invariant: text an agent or a person supplied (kind, resource, justification, params,
//! labels, run, names, comments, reasons, outcomes) cannot forge or control what the approver
//! sees. Every such string goes through [`shown`], the one place that escapes control
//! characters (C0, DEL, C1: newlines that would forge a field, ANSI and OSC sequences that
//! would drive the terminal) and bidirectional controls visibly; params go through the
//! gateway's masking (`countersign_app::mask`: only string leaves are masked, with their length and
//! a fingerprint, and the output says how many). `--json` prints the API's view unmasked.
//! An execution's output (a body, stdout, stderr, cells) goes through [`output`]: the same
//! escapes, but its own line breaks and tabs kept, since they are its layout.

use countersign_app::mask::{self, Masker};
use countersign_core::Outcome;
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
/// One standing approval: its id and state, what it covers, who formed it, what is left.
pub fn standing(v: &countersign_http::wire::StandingView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}  {}", shown(&v.id), v.state);
    let _ = writeln!(
        out,
        "  for     {} under rule {}",
        shown(&v.requester),
        shown(v.rule.as_deref().unwrap_or("(policy default)"))
    );
    for (field, value) in &v.covers {
        let value = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let _ = writeln!(out, "  {:<7} {}", shown(field), shown(&value));
    }
    let _ = writeln!(out, "  by      {}", shown(&v.approvers.join(", ")));
    let _ = writeln!(
        out,
        "  uses    {} of {}, until {}",
        v.used,
        v.uses,
        shown(&v.until)
    );
    if let Some(by) = &v.revoked_by {
        let _ = writeln!(out, "  revoked by {}", shown(by));
    }
    out
}

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
    let steps = r.plan.as_ref().and_then(|p| {
        let decided: Vec<_> = p
            .steps
            .iter()
            .map(|s| mask::plan::StepDecision {
                effect: s.effect,
                rule: s.rule.as_deref(),
                used_by: s.used_by.as_deref(),
            })
            .collect();
        mask::plan::numbered(&r.action.params, &decided, &masker)
    });
    let params_masked = match &steps {
        Some((text, n)) => {
            let state = r.plan.as_ref().map_or("", |p| p.state.as_str());
            let _ = writeln!(out, "plan      {}", shown(state));
            let _ = writeln!(out, "steps     {}", text.replace('\n', "\n          "));
            *n
        }
        None => {
            let _ = writeln!(
                out,
                "params    {}",
                params.text().replace('\n', "\n          ")
            );
            params.masked
        }
    };
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
    if let Some(c) = &r.covered_by {
        let _ = writeln!(
            out,
            "approved  at once by standing approval {} (by {})",
            shown(&c.standing),
            shown(&c.approvers.join(", "))
        );
    }
    if let Some(p) = &r.planned_by {
        let _ = writeln!(
            out,
            "approved  at once by step {} of plan {} (by {})",
            p.step,
            shown(&p.plan),
            shown(&p.approvers.join(", "))
        );
    }
    if let Some(s) = &r.standing {
        let _ = writeln!(
            out,
            "standing  {} {}: {} of {} uses, until {}",
            shown(&s.id),
            s.state,
            s.used,
            s.uses,
            shown(&s.until)
        );
    }
    let _ = writeln!(out, "digest    {}", shown(&r.digest));
    if let Some(u) = &r.review_url {
        let _ = writeln!(out, "review    {}", shown(u));
    }
    if let Some(n) = mask::notice(params_masked + masked) {
        let _ = writeln!(
            out,
            "masked    {n}; fingerprints compare within this output, --json shows all"
        );
    }
    out
}

/// An execution's output for the terminal: every character [`shown`] escapes, except line
/// breaks and tabs, which are the output's own layout.
pub fn output(s: &str) -> Cow<'_, str> {
    if !s
        .chars()
        .any(|c| c != '\n' && c != '\t' && countersign_core::text::needs_escape(c))
    {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        for (j, cell) in line.split('\t').enumerate() {
            if j > 0 {
                out.push('\t');
            }
            out.push_str(&shown(cell));
        }
    }
    Cow::Owned(out)
}

/// A query's rows as a table under its columns: strings as they are, other values as JSON,
/// null as `NULL`; every cell on one line (line breaks escaped), columns padded to the widest.
pub fn rows(columns: &[String], rows: &[Vec<serde_json::Value>]) -> String {
    let cell = |v: &serde_json::Value| -> String {
        match v {
            serde_json::Value::String(s) => shown(s).into_owned(),
            serde_json::Value::Null => "NULL".into(),
            other => shown(&other.to_string()).into_owned(),
        }
    };
    let header: Vec<String> = columns.iter().map(|c| shown(c).into_owned()).collect();
    let body: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(cell).collect()).collect();
    let count = header
        .len()
        .max(body.iter().map(Vec::len).max().unwrap_or(0));
    let mut widths = vec![0; count];
    for line in std::iter::once(&header).chain(&body) {
        for (w, c) in widths.iter_mut().zip(line) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for line in std::iter::once(&header).chain(&body) {
        let padded: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    }
    out
}

/// One line on how an execution went: status, duration, size and SHA-256 of the whole output,
/// whether a copy was cut, the exit code, the row count, the error (an HTTP status has its own
/// line, before the body).
pub fn outcome_summary(o: &Outcome) -> String {
    let mut out = format!(
        "{} in {} ms: {} bytes, sha256 {}",
        o.status.as_str(),
        o.duration_ms,
        o.bytes,
        shown(o.output_sha256.as_deref().unwrap_or("-"))
    );
    if o.truncated {
        out.push_str(", truncated (--json shows what was kept)");
    }
    if let Some(code) = o.exit_code {
        let _ = write!(out, ", exit code {code}");
    }
    if let Some(rows) = &o.rows {
        let _ = write!(out, ", {} rows", rows.len());
    }
    if let Some(e) = &o.error {
        let _ = write!(out, ": {}", shown(e));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_keeps_its_lines_and_tabs_and_escapes_the_rest() {
        assert_eq!(output("a\tb\nc\n"), "a\tb\nc\n");
        assert_eq!(output("\x1b[31mred\r\n"), "\\x1b[31mred\\r\n");
        assert_eq!(output("x\u{202e}y"), "x\\u{202e}y");
    }

    #[test]
    fn rows_line_up_under_their_columns() {
        let table = rows(
            &["id".into(), "name".into()],
            &[
                vec![serde_json::json!(1), serde_json::json!("ada\nx")],
                vec![serde_json::json!(22), serde_json::Value::Null],
            ],
        );
        assert_eq!(table, "id  name\n1   ada\\nx\n22  NULL\n");
    }
}
