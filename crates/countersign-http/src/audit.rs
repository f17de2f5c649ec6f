//! The audit log over HTTP: the latest signed checkpoint and the public key (text, for C2SP
//! tools and witnesses), inclusion and consistency proofs (JSON, base64 hashes), the entries
//! themselves (NDJSON, each line exactly the bytes of its leaf), a resumable server-sent event
//! stream of entries, and attestations of requests.
//!
//! Checkpoints, the key and proofs hold only hashes and need no key, so outside witnesses can
//! fetch them; entries, the stream and attestations show what was done and need a person's key
//! (an agent may see the attestation of its own request).

use super::ApiState;
use super::error::ApiError;
use super::extract::Caller;
use crate::wire::{ConsistencyProofView, InclusionProofView};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use countersign_app::limits::Held;
use countersign_store::StoreError;
use futures::Stream;
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;

fn store_error(e: StoreError) -> ApiError {
    ApiError::from(countersign_app::gateway::GatewayError::Store(e))
}

fn text(body: String) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body)
}

/// `GET /v1/audit/checkpoint`: the latest signed checkpoint, as a C2SP signed note.
pub async fn checkpoint(State(state): State<ApiState>) -> Result<impl IntoResponse, ApiError> {
    let now = state.gateway.clock.now();
    let latest = state.audit.latest(now).await.map_err(store_error)?;
    Ok(text(latest.note))
}

/// `GET /v1/audit/key`: the signed-note verifier key of the gateway's audit key.
pub async fn key(State(state): State<ApiState>) -> impl IntoResponse {
    text(format!("{}\n", state.audit.verifier()))
}

fn number(name: &str, value: Option<&str>) -> Result<Option<u64>, ApiError> {
    value
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                ApiError::bad_request(
                    "invalid_query",
                    format!("`{name}={v}` is not a whole number"),
                )
            })
        })
        .transpose()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofQuery {
    size: Option<String>,
}

fn query<T>(q: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
}

/// The tree size a proof is asked for: as given (at most the log's size), or the latest
/// checkpoint's.
async fn tree_size(state: &ApiState, asked: Option<u64>) -> Result<u64, ApiError> {
    let current = state.audit.size().await.map_err(store_error)?;
    match asked {
        Some(size) if size > current => Err(ApiError::bad_request(
            "size_beyond_log",
            format!("the log has {current} entries; no tree of size {size} exists yet"),
        )),
        Some(size) => Ok(size),
        None => {
            let now = state.gateway.clock.now();
            Ok(state.audit.latest(now).await.map_err(store_error)?.size)
        }
    }
}

/// `GET /v1/audit/entries/{index}/proof?size=N`.
pub async fn inclusion(
    State(state): State<ApiState>,
    Path(index): Path<String>,
    q: Result<Query<ProofQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<InclusionProofView>, ApiError> {
    let q = query(q)?;
    let index = number("index", Some(&index))?.unwrap_or(0);
    let size = tree_size(&state, number("size", q.size.as_deref())?).await?;
    if index >= size {
        return Err(ApiError::bad_request(
            "index_out_of_range",
            format!("entry {index} is not in the tree of size {size} (entries are 0..{size})"),
        ));
    }
    let (leaf, hashes) = state
        .audit
        .inclusion(index, size)
        .await
        .map_err(store_error)?;
    Ok(Json(InclusionProofView {
        index,
        size,
        leaf_hash: BASE64.encode(leaf),
        hashes: hashes.iter().map(|h| BASE64.encode(h)).collect(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    from: Option<String>,
    to: Option<String>,
}

/// `GET /v1/audit/consistency?from=M&to=N` (`to` defaults to the latest checkpoint's size).
pub async fn consistency(
    State(state): State<ApiState>,
    q: Result<Query<ConsistencyQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ConsistencyProofView>, ApiError> {
    let q = query(q)?;
    let from = number("from", q.from.as_deref())?.ok_or_else(|| {
        ApiError::bad_request(
            "invalid_query",
            "give `from`, the size of the tree you hold",
        )
    })?;
    let to = tree_size(&state, number("to", q.to.as_deref())?).await?;
    if from == 0 || from > to {
        return Err(ApiError::bad_request(
            "invalid_range",
            format!("a consistency proof needs 1 <= from <= to; got from={from}, to={to}"),
        ));
    }
    let hashes = state
        .audit
        .consistency(from, to)
        .await
        .map_err(store_error)?;
    Ok(Json(ConsistencyProofView {
        from,
        to,
        hashes: hashes.iter().map(|h| BASE64.encode(h)).collect(),
    }))
}

fn people_only(caller: &countersign_core::Principal) -> Result<(), ApiError> {
    match caller.is_person() {
        true => Ok(()),
        false => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "people_only",
            "only people may read the audit log's entries",
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntriesQuery {
    from: Option<String>,
    limit: Option<String>,
}

/// The most entries one page of `GET /v1/audit/entries` holds.
pub const MAX_ENTRIES_PAGE: u32 = 10_000;

/// `GET /v1/audit/entries?from=0&limit=1000`: NDJSON, each line exactly the entry's bytes.
pub async fn entries(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    q: Result<Query<EntriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    people_only(&caller)?;
    let q = query(q)?;
    let from = number("from", q.from.as_deref())?.unwrap_or(0);
    let limit = number("limit", q.limit.as_deref())?.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    let limit = crate::requests::page_size(limit, 1000, MAX_ENTRIES_PAGE)?;
    let rows = state
        .audit
        .entries(from, limit)
        .await
        .map_err(store_error)?;
    let mut body = Vec::with_capacity(rows.iter().map(|r| r.bytes.len() + 1).sum());
    for r in rows {
        body.extend_from_slice(&r.bytes);
        body.push(b'\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    after: Option<String>,
}

/// How many entries the stream reads from the store at a time.
const STREAM_PAGE: u32 = 500;

/// `GET /v1/audit/stream?after=N`: server-sent events, one `entry` per audit entry from
/// `after + 1` on (from 0 without `after`), its `id` the entry's seq and its data the entry's
/// bytes. A client that reconnects with `Last-Event-ID` resumes right after that entry.
pub async fn stream(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    q: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    people_only(&caller)?;
    let q = query(q)?;
    let last_id = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_last_event_id",
                        "Last-Event-ID is not an entry seq",
                    )
                })
        })
        .transpose()?;
    let after = match last_id {
        Some(id) => Some(id),
        None => number("after", q.after.as_deref())?,
    };
    let next = after.map_or(0, |a| a + 1);
    let slot = state.gateway.hold(&caller.id, Held::Stream)?;
    let store = state.audit.clone();
    let watch = store.watch();
    let stream = futures::stream::unfold(
        (store, watch, next, std::collections::VecDeque::new(), slot),
        |(store, mut watch, mut next, mut queue, slot)| async move {
            loop {
                if next == u64::MAX && queue.is_empty() {
                    return None;
                }
                if let Some(entry) = queue.pop_front() {
                    let entry: countersign_audit::StoredEntry = entry;
                    let data = String::from_utf8_lossy(&entry.bytes).into_owned();
                    let ev = Event::default()
                        .event("entry")
                        .id(entry.seq.to_string())
                        .data(data);
                    return Some((Ok(ev), (store, watch, next, queue, slot)));
                }
                match store.entries(next, STREAM_PAGE).await {
                    Ok(rows) if !rows.is_empty() => {
                        next = rows.last().map_or(next, |r| r.seq + 1);
                        queue.extend(rows);
                    }
                    Ok(_) => {
                        // Caught up: wait for a commit (or look again in a while, for writes
                        // made by another process).
                        let _ =
                            tokio::time::timeout(Duration::from_secs(15), watch.changed()).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "audit stream: cannot read the log");
                        let ev = Event::default()
                            .event("error")
                            .data(r#"{"code":"storage_unavailable"}"#);
                        return Some((Ok(ev), (store, watch, u64::MAX, queue, slot)));
                    }
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// `GET /v1/requests/{id}/attestation`: a DSSE envelope holding an in-toto statement about the
/// request, signed with the audit key.
pub async fn attestation(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<countersign_audit::dsse::Envelope>, ApiError> {
    let request = state.gateway.get(&caller, &id).await?;
    let now = state.gateway.clock.now();
    let envelope = state
        .audit
        .attestation(&request, now)
        .await
        .map_err(store_error)?;
    Ok(Json(envelope))
}
