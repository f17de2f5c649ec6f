//! Invariant 10 over the whole database: every stored request is what its audit entries
//! produce. [`verify_requests`] reads the log once (in pages), replays each request's entries
//! with `countersign_core::replay`, then reads every request row (in pages) and compares.
//! Entries are found by reading the log, never through a row's own `audit_seqs`, so a row
//! edited together with its list is still named.
//!
//! The check at the moment of acting (before a vote, a release or a redemption) is
//! `crate::writes::verified`; this module is the offline one behind `countersign audit verify`.
//! It only reads.

use crate::{Store, StoreError};
use countersign_audit::AuditEntry;
use countersign_core::replay::{Replayed, body_sha256};
use std::collections::BTreeMap;

/// One request row exactly as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRow {
    pub id: String,
    pub body: String,
    /// The seqs of its entries as the row lists them (`5,6,9,`).
    pub audit_seqs: String,
}

impl From<(String, String, String)> for RequestRow {
    fn from((id, body, audit_seqs): (String, String, String)) -> Self {
        RequestRow {
            id,
            body,
            audit_seqs,
        }
    }
}

/// A request whose row is not what its audit entries produce, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestMismatch {
    pub request: String,
    pub problems: Vec<String>,
}

const PAGE: u32 = 1000;

pub(crate) async fn verify_requests<S: Store + ?Sized>(
    store: &S,
) -> Result<Vec<RequestMismatch>, StoreError> {
    let mut replayed: BTreeMap<String, Replayed> = BTreeMap::new();
    let mut from = 0u64;
    loop {
        let page = store.audit_entries(from, PAGE).await?;
        for stored in &page {
            from = stored.seq + 1;
            // An unreadable entry is the chain verification's to name.
            let Ok(entry) = serde_json::from_slice::<AuditEntry>(&stored.bytes) else {
                continue;
            };
            if let Some(id) = &entry.request {
                replayed.entry(id.clone()).or_default().apply(
                    stored.seq,
                    &entry.event,
                    entry.digest.as_deref(),
                    &entry.data,
                );
            }
        }
        if page.len() < PAGE as usize {
            break;
        }
    }
    let mut found = vec![];
    let mut after: Option<String> = None;
    loop {
        let rows = store.request_rows(after.as_deref(), PAGE).await?;
        for row in &rows {
            let log = replayed.remove(&row.id).unwrap_or_default();
            let problems = compare(row, &log);
            if !problems.is_empty() {
                found.push(RequestMismatch {
                    request: row.id.clone(),
                    problems,
                });
            }
        }
        match rows.last() {
            Some(last) if rows.len() == PAGE as usize => after = Some(last.id.clone()),
            _ => break,
        }
    }
    for (id, log) in replayed {
        if log.state.is_some() {
            found.push(RequestMismatch {
                request: id,
                problems: vec!["the log records it, but no row holds it".into()],
            });
        }
    }
    found.sort_by(|a, b| a.request.cmp(&b.request));
    Ok(found)
}

fn compare(row: &RequestRow, log: &Replayed) -> Vec<String> {
    let request = match crate::columns::request_from_body(&row.body) {
        Ok(r) => r,
        Err(e) => return vec![format!("its row cannot be read: {e}")],
    };
    let mut problems = vec![];
    if request.id() != row.id {
        problems.push(format!("its body is request {}", request.id()));
    }
    problems.extend(log.differences(&request, &body_sha256(row.body.as_bytes())));
    match crate::tree::parse_seq_list(&row.audit_seqs) {
        // Rows from before the list existed (schema 3) have none.
        Ok(seqs) if seqs.is_empty() || seqs == log.seqs => {}
        Ok(seqs) => problems.push(format!(
            "its row lists entries {seqs:?}, the log has {:?}",
            log.seqs
        )),
        Err(e) => problems.push(e.to_string()),
    }
    problems
}
