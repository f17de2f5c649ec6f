//! The audit page: the latest signed checkpoint, the verification status of the whole log
//! (recomputed on request: every leaf, the chain, the tree, every checkpoint), the verifier
//! key, and an export of the entries as JSON lines (each line exactly the bytes of its leaf).
//!
//! Must not: write to the log (verification and export only read).

use super::ConsoleError;
use super::layout::page as chrome;
use crate::ConsoleState;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    verify: Option<String>,
}

pub async fn page(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Result<Response, ConsoleError> {
    let viewer = state.page_viewer(&headers, &uri).await?;
    let q: AuditQuery = super::parse_query(raw.as_deref())?;
    let store_error = countersign_app::gateway::GatewayError::from;
    let size = state.audit.size().await.map_err(store_error)?;
    let checkpoint = state.audit.latest_signed().await.map_err(store_error)?;
    // Invariant 10: every request row is what its entries produce.
    let (report, mismatches) = if q.verify.is_some() {
        let (report, mismatches) = state.audit.verify().await.map_err(store_error)?;
        (Some(report), mismatches)
    } else {
        (None, vec![])
    };
    let intact = |r: &countersign_audit::AuditReport| r.is_intact() && mismatches.is_empty();
    let body = html! {
        section.card {
            h1 { "Audit log" }
            p { "Every state change is an entry, appended in the same transaction as the change. "
                "The entries are the leaves of an RFC 9162 Merkle tree whose checkpoints the gateway signs." }
            dl.facts {
                div.fact { dt { "Entries" } dd { (size) } }
                div.fact { dt { "Verifier key" } dd { code.wrap { (state.audit.verifier().to_string()) } } }
            }
        }
        section.card {
            h2 { "Latest checkpoint" }
            @match &checkpoint {
                Some(c) => {
                    p.muted { "Tree size " (c.size) ", signed " (super::layout::when(&c.signed_at)) }
                    pre.note tabindex="0" { (c.note) }
                }
                None => p.muted { "No checkpoint is signed yet." }
            }
        }
        section.card data-verify=[report.as_ref().map(|r| if intact(r) { "intact" } else { "broken" })] {
            h2 { "Verification" }
            @match &report {
                None => {
                    p { "Recompute every hash, the chain, the tree and every signed checkpoint." }
                    form method="get" action="/console/audit" { input type="hidden" name="verify" value="1"; button.secondary type="submit" { "Verify now" } }
                }
                Some(r) if intact(r) => {
                    p.notice.ok role="status" { "Intact: " (r.entries) " entries verified, "
                        (r.checkpoints_matched) " signed checkpoints matched." }
                }
                Some(r) => {
                    p.notice.error role="alert" { "Not intact: "
                        @if let Some(f) = &r.first_bad { "entry " (f.seq) ": " (f.problem) }
                        @else { (mismatches.len()) " stored request(s) do not match their audit log." } }
                    @if !mismatches.is_empty() {
                        ul { @for m in &mismatches { li { code { (m.request) } ": " (m.problems.join("; ")) } } }
                    }
                }
            }
        }
        section.card {
            h2 { "Export" }
            p { a href="/console/audit/entries.jsonl" download="entries.jsonl" { "Download every entry (JSON lines)" }
                " · " a href="/v1/audit/checkpoint" { "latest checkpoint" } " · " a href="/v1/audit/key" { "verifier key" } }
            p.hint { "Check offline: " code { "countersign audit verify --bundle DIR --key audit.vkey" }
                " (or " code { "countersign audit export" } " for a full bundle with every checkpoint)." }
        }
    };
    Ok(super::html(chrome("Audit", Some(&viewer), None, body)))
}

/// Every entry as JSON lines, each line exactly the bytes its leaf hash covers.
pub async fn export(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ConsoleError> {
    state.page_viewer(&headers, &uri).await?;
    let audit = state.audit.clone();
    let stream = futures::stream::unfold(Some(0u64), move |from| {
        let audit = audit.clone();
        async move {
            let from = from?;
            match audit.entries(from, 1000).await {
                Ok(entries) if entries.is_empty() => None,
                Ok(entries) => {
                    let next = entries.last().map(|e| e.seq + 1);
                    let mut chunk = Vec::new();
                    for e in entries {
                        chunk.extend_from_slice(&e.bytes);
                        chunk.push(b'\n');
                    }
                    Some((Ok::<_, std::io::Error>(chunk), next))
                }
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"entries.jsonl\"",
            ),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}
