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
use super::openapi::{BadQuery, Refused};
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
#[utoipa::path(
    get,
    path = "/v1/audit/checkpoint",
    operation_id = "audit_checkpoint",
    responses((status = 200, description = "The latest checkpoint (C2SP signed note)", content_type = "text/plain; charset=utf-8", body = String))
)]
pub async fn checkpoint(State(state): State<ApiState>) -> Result<impl IntoResponse, ApiError> {
    let now = state.gateway.clock.now();
    let latest = state.audit.latest(now).await.map_err(store_error)?;
    Ok(text(latest.note))
}

/// `GET /v1/audit/key`: the signed-note verifier key of the gateway's audit key.
#[utoipa::path(
    get,
    path = "/v1/audit/key",
    operation_id = "audit_key",
    responses((status = 200, description = "The audit key's signed-note verifier key", content_type = "text/plain; charset=utf-8", body = String))
)]
pub async fn key(State(state): State<ApiState>) -> impl IntoResponse {
    text(format!("{}\n", state.audit.verifier()))
}

/// A position or size in the log: a whole number from 0 to 2^63 - 1 (the store's range, and
/// the document's `int64`).
fn number(name: &str, value: Option<&str>) -> Result<Option<u64>, ApiError> {
    value
        .map(|v| {
            v.parse::<i64>()
                .ok()
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_query",
                        format!("`{name}={v}` is not a whole number from 0 to 2^63 - 1"),
                    )
                })
        })
        .transpose()
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProofQuery {
    /// The tree size (default: the latest checkpoint's); at most the log's size.
    #[param(value_type = Option<i64>, minimum = 1)]
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
#[utoipa::path(
    get,
    path = "/v1/audit/entries/{index}/proof",
    operation_id = "audit_inclusion_proof",
    params(
        ("index" = i64, Path, minimum = 0, description = "The entry's index, from 0"),
        ProofQuery,
    ),
    responses((status = 200, description = "The entry's inclusion proof", body = InclusionProofView), BadQuery)
)]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    /// The size of the tree the client holds (required).
    #[param(value_type = i64, minimum = 1)]
    from: Option<String>,
    /// The newer size (default: the latest checkpoint's); at most the log's size.
    #[param(value_type = Option<i64>, minimum = 1)]
    to: Option<String>,
}

/// `GET /v1/audit/consistency?from=M&to=N` (`to` defaults to the latest checkpoint's size).
#[utoipa::path(
    get,
    path = "/v1/audit/consistency",
    operation_id = "audit_consistency_proof",
    params(ConsistencyQuery),
    responses((status = 200, description = "The consistency proof from `from` to `to`", body = ConsistencyProofView), BadQuery)
)]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EntriesQuery {
    /// The first entry's index (default 0).
    #[param(value_type = Option<i64>, minimum = 0)]
    from: Option<String>,
    /// The page size (default 1000).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 10000)]
    limit: Option<String>,
}

/// The most entries one page of `GET /v1/audit/entries` holds.
pub const MAX_ENTRIES_PAGE: u32 = 10_000;

/// `GET /v1/audit/entries?from=0&limit=1000`: NDJSON, each line exactly the entry's bytes.
#[utoipa::path(
    get,
    path = "/v1/audit/entries",
    operation_id = "audit_entries",
    security(("bearer" = [])),
    params(EntriesQuery),
    responses((status = 200, description = "The entries, one per line, each exactly its leaf's bytes", content_type = "application/x-ndjson", body = String), Refused)
)]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Start after this entry (default: from the first).
    #[param(value_type = Option<i64>, minimum = 0)]
    after: Option<String>,
}

/// How many entries the stream reads from the store at a time.
const STREAM_PAGE: u32 = 500;

/// `GET /v1/audit/stream?after=N`: server-sent events, one `entry` per audit entry from
/// `after + 1` on (from 0 without `after`), its `id` the entry's seq and its data the entry's
/// bytes. A client that reconnects with `Last-Event-ID` resumes right after that entry.
#[utoipa::path(
    get,
    path = "/v1/audit/stream",
    operation_id = "audit_stream",
    security(("bearer" = [])),
    params(
        StreamQuery,
        ("Last-Event-ID" = Option<i64>, Header, minimum = 0, description = "Resume after this entry (an SSE client's reconnect)"),
    ),
    responses((status = 200, description = "Server-sent events: `entry` per audit entry (`id` its seq, `data` its bytes)", content_type = "text/event-stream", body = String), Refused)
)]
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
                .and_then(|s| s.trim().parse::<i64>().ok())
                .and_then(|n| u64::try_from(n).ok())
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
#[utoipa::path(
    get,
    path = "/v1/requests/{id}/attestation",
    operation_id = "get_attestation",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The request (`req_…`)")),
    responses((status = 200, description = "A DSSE envelope of an in-toto statement about the request, signed with the audit key", body = countersign_audit::dsse::Envelope), Refused)
)]
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
