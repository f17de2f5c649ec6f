//! The request page's "Outcome" card: how an executed action went (who ran it, when, status,
//! HTTP status or exit code, bytes and the SHA-256 of the whole output), and, for the viewers
//! `Request::may_read_output` admits, the bounded copy of the output (body, stdout and stderr,
//! rows as a table). Every text shown goes through the masker, as parameters do.

use super::layout::when;
use countersign_app::mask::Masker;
use countersign_core::{ExecStatus, Principal, Request};
use maud::{Markup, html};

/// The card, or nothing when the action was not carried out (or not yet reported).
pub fn card(masker: &Masker, viewer: &Principal, req: &Request) -> Option<Markup> {
    let e = req.execution_for(viewer)?;
    let o = &e.outcome;
    let readable = req.may_read_output(viewer);
    let status_class = match o.status {
        ExecStatus::Succeeded => "s-executed",
        ExecStatus::Running => "s-pending",
        ExecStatus::Failed | ExecStatus::Unknown => "s-failed",
    };
    let by = match (&e.executor, e.reported) {
        (Some(executor), _) => format!("the gateway, with executor {executor}"),
        (None, true) => format!("{} (reported)", req.requester().id.as_str()),
        (None, false) => "the gateway".to_owned(),
    };
    let text = |s: &str| masker.text_lines(s).to_string();
    Some(html! {
        section.card data-live-region="outcome" id="outcome" {
            h2 { "Outcome" }
            p { span.badge class=(status_class) data-exec-status=(o.status.as_str()) { (o.status.as_str()) }
                " · run by " (by) }
            dl.facts {
                div.fact { dt { "Started" } dd { (when(&e.started_at)) } }
                @if let Some(f) = &e.finished_at { div.fact { dt { "Finished" } dd { (when(f)) } } }
                div.fact { dt { "Duration" } dd { (o.duration_ms) " ms" } }
                @if let Some(h) = &o.http { div.fact { dt { "HTTP status" } dd { (h.status) } } }
                @if let Some(c) = o.exit_code { div.fact { dt { "Exit code" } dd { (c) } } }
                div.fact { dt { "Output" } dd { (o.bytes) " bytes" @if o.truncated { " · " strong { "truncated" } } } }
                @if let Some(d) = &o.output_sha256 { div.fact { dt { "SHA-256" } dd { code.digest title=(d) { (d) } } } }
            }
            @if let Some(err) = &o.error { p.notice.error { (text(err)) } }
            @if !readable {
                p.hint data-output="hidden" { "The output is shown only to the requester and the approvers." }
            } @else {
                @if let Some(h) = &o.http {
                    @if !h.headers.is_empty() {
                        h3 { "Response headers" }
                        pre.note tabindex="0" { @for (k, v) in &h.headers { (k) ": " (text(v)) "\n" } }
                    }
                    @if !h.body.is_empty() { h3 { "Body" } pre.note data-output="body" tabindex="0" { (text(&h.body)) } }
                }
                @if let Some(out) = o.stdout.as_deref().filter(|s| !s.is_empty()) {
                    h3 { "Standard output" } pre.note data-output="stdout" tabindex="0" { (text(out)) }
                }
                @if let Some(err) = o.stderr.as_deref().filter(|s| !s.is_empty()) {
                    h3 { "Standard error" } pre.note data-output="stderr" tabindex="0" { (text(err)) }
                }
                @if let (Some(columns), Some(rows)) = (&o.columns, &o.rows) {
                    h3 { (rows.len()) " rows" }
                    div.table-wrap {
                        table.list data-output="rows" {
                            thead { tr { @for c in columns { th { (c) } } } }
                            tbody { @for row in rows { tr { @for v in row { td.mono { (cell(masker, v)) } } } } }
                        }
                    }
                }
            }
        }
    })
}

fn cell(masker: &Masker, v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => masker.text(s).to_string(),
        serde_json::Value::Null => "NULL".to_owned(),
        other => masker.text(&other.to_string()).to_string(),
    }
}
