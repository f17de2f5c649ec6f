//! Handlers for actions, requests, votes and grants.

use super::ApiState;
use super::error::ApiError;
use super::extract::{Caller, JsonBody};
use crate::wire::{
    ActionBody, AmendBody, ExecutedView, OutcomeBody, PlanBody, RedeemBody, RedeemView,
    RequestList, RequestView, VoteBody,
};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use countersign_app::gateway::once::Asked;
use countersign_app::limits::Held;
use countersign_core::{Channel, State as RequestState};
use countersign_store::RequestQuery;
use futures::Stream;
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;

/// The request as `viewer` may see it (an execution's output only for those
/// `Request::may_read_output` admits).
fn view(
    state: &ApiState,
    viewer: &countersign_core::Principal,
    req: &countersign_core::Request,
) -> RequestView {
    RequestView::new(
        req,
        viewer,
        &state.gateway.public_url,
        state.gateway.clock.now(),
    )
}

/// The view of a committed change with its receipt. The change is done whatever happens here:
/// a receipt that cannot be made is left out (and logged), not turned into an error.
async fn with_receipt(
    state: &ApiState,
    viewer: &countersign_core::Principal,
    req: &countersign_core::Request,
    entries: &[u64],
) -> RequestView {
    let mut v = view(state, viewer, req);
    if entries.is_empty() {
        return v;
    }
    match state
        .audit
        .evidence(entries, state.gateway.clock.now())
        .await
    {
        Ok(evidence) => v.receipt = Some(evidence.into()),
        Err(e) => tracing::warn!(request = %req.id(), error = %e, "could not make a receipt"),
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitQuery {
    /// `true`: answer with a receipt of the submission's audit entries.
    receipt: Option<bool>,
    /// `true` (executor actions): when policy allows the action at once, run it now and answer
    /// with its `execution`, the submission and the execution's start being one write.
    execute: Option<bool>,
}

/// The `Idempotency-Key` header, if sent (text that is not visible ASCII is refused by the
/// Gateway like any other bad key).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::bad_request(
                    "invalid_idempotency_key",
                    "`Idempotency-Key` must be printable ASCII (e.g. a UUID)",
                )
            })
        })
        .transpose()
}

pub async fn submit(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    q: Result<Query<SubmitQuery>, axum::extract::rejection::QueryRejection>,
    JsonBody(body): JsonBody<ActionBody>,
) -> Result<(StatusCode, Json<RequestView>), ApiError> {
    let q = query(q)?;
    let action = body.into_action()?;
    let asked = state
        .gateway
        .submit_once(
            &caller,
            action,
            idempotency_key(&headers)?,
            q.execute == Some(true),
        )
        .await?;
    // A repeat is not a creation: the original request, 200.
    let (status, coalesced) = match &asked {
        Asked::New(_) => (StatusCode::CREATED, false),
        Asked::Coalesced(_) => (StatusCode::OK, true),
        Asked::Replayed(_) => (StatusCode::OK, false),
    };
    let req = asked.request();
    let mut v = if q.receipt == Some(true) {
        let entries = state
            .audit
            .request_entries(req.id())
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        with_receipt(&state, &caller, req, &entries).await
    } else {
        view(&state, &caller, req)
    };
    v.coalesced = coalesced;
    Ok((status, Json(v)))
}

/// `POST /v1/plans`: the plan's request (201), or the one first made with the same
/// `Idempotency-Key` or an identical pending plan (200, `coalesced` for the latter).
pub async fn submit_plan(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PlanBody>,
) -> Result<(StatusCode, Json<RequestView>), ApiError> {
    let plan = body.into_plan()?;
    let asked = state
        .gateway
        .submit_plan(&caller, plan, idempotency_key(&headers)?)
        .await?;
    let (status, coalesced) = match &asked {
        Asked::New(_) => (StatusCode::CREATED, false),
        Asked::Coalesced(_) => (StatusCode::OK, true),
        Asked::Replayed(_) => (StatusCode::OK, false),
    };
    let mut v = view(&state, &caller, asked.request());
    v.coalesced = coalesced;
    Ok((status, Json(v)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShowQuery {
    wait: Option<String>,
}

/// `30s`, `2m`, or a bare number of seconds.
fn parse_wait(s: &str) -> Result<Duration, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_wait",
            format!("`wait={s}` is not a duration like 30s or 2m (at most 5m)"),
        )
    };
    let d = match s.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(s).map_err(|_| bad())?,
    };
    if d > countersign_app::gateway::MAX_WAIT {
        return Err(bad());
    }
    Ok(d)
}

fn query<T>(q: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
}

pub async fn show(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    q: Result<Query<ShowQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RequestView>, ApiError> {
    let q = query(q)?;
    let req = match q.wait.as_deref() {
        Some(w) => {
            let wait = parse_wait(w)?;
            let _slot = match wait.is_zero() {
                true => None,
                false => Some(state.gateway.hold(&caller.id, Held::Wait)?),
            };
            // A long-poll is the API's wait for people: a `countersign.wait` span.
            let mut span = state.gateway.telemetry.span("countersign.wait", || {
                vec![("countersign.request", id.clone())]
            });
            let req = state.gateway.wait(&caller, &id, wait).await?;
            span.set("countersign.outcome", req.state().as_str());
            span.end();
            req
        }
        None => state.gateway.get(&caller, &id).await?,
    };
    Ok(Json(view(&state, &caller, &req)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    state: Option<String>,
    run: Option<String>,
    limit: Option<u32>,
    before: Option<String>,
}

/// The most requests one page of `GET /v1/requests` holds.
pub const MAX_REQUESTS_PAGE: u32 = 500;

/// A list's `limit`: `default` when absent; outside 1..=`max` it is refused (400
/// `invalid_query`), never silently changed, so a client learns the page it asked for is not
/// the page it got.
pub(crate) fn page_size(limit: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    match limit.unwrap_or(default) {
        n @ 1.. if n <= max => Ok(n),
        n => Err(ApiError::bad_request(
            "invalid_query",
            format!("`limit` is a page size from 1 to {max}, not {n}"),
        )),
    }
}

pub async fn list(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RequestList>, ApiError> {
    let q = query(q)?;
    let wanted_state = match q.state.as_deref() {
        None | Some("all") => None,
        Some(s) => Some(RequestState::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!("`state={s}` is not one of pending, approved, denied, expired, cancelled, executed, failed, all"),
            )
        })?),
    };
    let limit = page_size(q.limit, 50, MAX_REQUESTS_PAGE)?;
    let requests = state
        .gateway
        .list(
            &caller,
            RequestQuery {
                state: wanted_state,
                run: q.run,
                requester: None,
                limit,
                before: q.before,
            },
        )
        .await?;
    let next = (requests.len() as u32 == limit)
        .then(|| requests.last().map(|r| r.id().to_owned()))
        .flatten();
    Ok(Json(RequestList {
        requests: requests.iter().map(|r| view(&state, &caller, r)).collect(),
        next,
    }))
}

pub async fn vote(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<VoteBody>,
) -> Result<Json<RequestView>, ApiError> {
    match state
        .gateway
        .vote_recorded(&caller, &id, body.into_vote()?, Channel::Api)
        .await
    {
        Ok(done) => Ok(Json(
            with_receipt(&state, &caller, &done.request, &done.audit_entries).await,
        )),
        Err(e) => {
            let e = ApiError::from(e);
            state.gateway.metrics.refusal(e.code);
            Err(e)
        }
    }
}

/// `POST /v1/requests/{id}/amend`: an approver's amended params, approved (`Gateway::amend`).
pub async fn amend(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<AmendBody>,
) -> Result<Json<RequestView>, ApiError> {
    let shown = match body.digest {
        Some(d) => d,
        None => state.gateway.get(&caller, &id).await?.digest().to_string(),
    };
    let vote = countersign_app::gateway::CastVote::parse(
        countersign_core::VoteDecision::Approve,
        &shown,
        body.comment,
        body.otp,
    )?;
    match state
        .gateway
        .amend(&caller, &id, vote, body.params, Channel::Api)
        .await
    {
        Ok(req) => Ok(Json(view(&state, &caller, &req))),
        Err(e) => {
            let e = ApiError::from(e);
            state.gateway.metrics.refusal(e.code);
            Err(e)
        }
    }
}

pub async fn cancel(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<RequestView>, ApiError> {
    let done = state.gateway.cancel_recorded(&caller, &id).await?;
    Ok(Json(
        with_receipt(&state, &caller, &done.request, &done.audit_entries).await,
    ))
}

pub async fn redeem(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RedeemBody>,
) -> Result<Json<RedeemView>, ApiError> {
    let req = state.gateway.redeem(&caller, &id, &body.digest).await?;
    let v = view(&state, &caller, &req);
    let grant = v.grant.ok_or_else(|| {
        ApiError::new(StatusCode::CONFLICT, "no_grant", "the request has no grant")
    })?;
    Ok(Json(RedeemView {
        grant,
        request: req.id().to_owned(),
        digest: v.digest,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecuteQuery {
    /// Wait this long for the decision first (`30s`, `2m`, at most 5m).
    wait: Option<String>,
}

/// Runs the request's *recorded* action with its executor (the requester only). The body must
/// be empty or `{}`: nothing sent now reaches the executor.
pub async fn execute(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    q: Result<Query<ExecuteQuery>, axum::extract::rejection::QueryRejection>,
    body: axum::body::Bytes,
) -> Result<Json<ExecutedView>, ApiError> {
    let q = query(q)?;
    let text = std::str::from_utf8(&body).unwrap_or("?").trim();
    if !(text.is_empty() || text.split_whitespace().collect::<String>() == "{}") {
        return Err(ApiError::bad_request(
            "invalid_body",
            "execute takes no body: the action recorded when it was approved is run, never \
             parameters sent now",
        ));
    }
    let wait = q.wait.as_deref().map(parse_wait).transpose()?;
    match state.gateway.execute(&caller, &id, wait).await {
        Ok(req) => Ok(Json(ExecutedView {
            outcome: req.execution_for(&caller).map(|e| e.outcome),
            request: view(&state, &caller, &req),
        })),
        Err(e) => {
            let used = e.code() == "grant_used";
            let mut err = ApiError::from(e);
            state.gateway.metrics.refusal(err.code);
            if used && let Ok(req) = state.gateway.get(&caller, &id).await {
                err.outcome = req.execution_for(&caller).map(|e| Box::new(e.outcome));
            }
            Err(err)
        }
    }
}

/// The requester reports how the action they ran after redeeming its grant went (once).
pub async fn report_outcome(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<OutcomeBody>,
) -> Result<Json<RequestView>, ApiError> {
    let outcome = body
        .into_outcome()
        .map_err(|(code, message)| ApiError::bad_request(code, message))?;
    let req = state.gateway.report(&caller, &id, outcome).await?;
    Ok(Json(view(&state, &caller, &req)))
}

/// Server-sent events: one `request` event with the request now, then one per change, until it
/// reaches a final state.
pub async fn events(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let slot = state.gateway.hold(&caller.id, Held::Stream)?;
    let first = state.gateway.get(&caller, &id).await?;
    let stream = futures::stream::unfold(
        (state, caller, id, Some(first), false, slot),
        |(state, caller, id, pending_first, done, slot)| async move {
            if done {
                return None;
            }
            let req = match pending_first {
                Some(r) => r,
                None => loop {
                    match state
                        .gateway
                        .wait(&caller, &id, countersign_app::gateway::MAX_WAIT)
                        .await
                    {
                        Ok(r) if r.state() == RequestState::Pending => continue,
                        Ok(r) => break r,
                        Err(e) => {
                            let err = ApiError::from(e);
                            let ev = Event::default()
                                .event("error")
                                .data(format!("{{\"code\":\"{}\"}}", err.code));
                            return Some((Ok(ev), (state, caller, id, None, true, slot)));
                        }
                    }
                },
            };
            // The stream ends with the decision; a pending request gets one more event.
            let finished = req.state() != RequestState::Pending;
            let body = serde_json::to_string(&view(&state, &caller, &req)).unwrap_or_default();
            let ev = Event::default()
                .event("request")
                .id(req.state().as_str())
                .data(body);
            Some((Ok(ev), (state, caller, id, None, finished, slot)))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
