//! Handlers for actions, requests, votes and grants.

use super::ApiState;
use super::error::ApiError;
use super::extract::{Caller, JsonBody};
use super::openapi::{Refused, TooLarge};
use crate::wire::{
    ActionBody, AmendBody, ExecutedView, NoBody, OutcomeBody, PlanBody, RedeemBody, RedeemView,
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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

#[utoipa::path(
    post,
    path = "/v1/actions",
    operation_id = "submit_action",
    security(("bearer" = [])),
    params(SubmitQuery, ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Printable ASCII (e.g. a UUID): a retry with the same key and body answers the first request, 200")),
    request_body = ActionBody,
    responses(
        (status = 201, description = "The request the action made", body = RequestView),
        (status = 200, description = "The request first made with this `Idempotency-Key`, or an identical pending one (`coalesced`)", body = RequestView),
        Refused,
        TooLarge,
    )
)]
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
#[utoipa::path(
    post,
    path = "/v1/plans",
    operation_id = "submit_plan",
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Printable ASCII (e.g. a UUID): a retry with the same key and body answers the first request, 200")),
    request_body = PlanBody,
    responses(
        (status = 201, description = "The plan's request", body = RequestView),
        (status = 200, description = "The request first made with this `Idempotency-Key`, or an identical pending plan (`coalesced`)", body = RequestView),
        Refused,
        TooLarge,
    )
)]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ShowQuery {
    /// Long-poll: answer once the request is decided, or after this long (`30s`, `2m`,
    /// `1500ms` or a number of seconds; at most 5m; empty or `0`: answer now).
    #[param(
        pattern = "^(|0*([0-9]{1,2}|[12][0-9]{2}|300)s?|0*[0-5]m|0*([0-9]{1,5}|[12][0-9]{5}|300000)ms)$"
    )]
    wait: Option<String>,
}

/// A `wait=` value: empty, or a whole number of seconds (bare or with `s`), minutes (`m`) or
/// milliseconds (`ms`), leading zeros allowed, at most five minutes
/// (`countersign_app::gateway::MAX_WAIT`); empty is no wait. The OpenAPI document's `pattern`
/// for `wait` says the same, so a client can check a wait before sending it; a test holds the
/// two together.
fn parse_wait(s: &str) -> Result<Duration, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_wait",
            format!("`wait={s}` is not a duration like 30s, 2m or 1500ms (at most 5m)"),
        )
    };
    let (digits, unit_ms) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000)
    } else {
        (s, 1000)
    };
    if s.is_empty() {
        return Ok(Duration::ZERO);
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    // Leading zeros are allowed at any length; the value must fit the limit.
    let significant = digits.trim_start_matches('0');
    let n: u64 = match significant.is_empty() {
        true => 0,
        false => significant.parse().map_err(|_| bad())?,
    };
    let d = n
        .checked_mul(unit_ms)
        .map(Duration::from_millis)
        .ok_or_else(bad)?;
    if d > countersign_app::gateway::MAX_WAIT {
        return Err(bad());
    }
    Ok(d)
}

fn query<T>(q: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
}

#[utoipa::path(
    get,
    path = "/v1/requests/{id}",
    operation_id = "get_request",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The request (`req_…`)"), ShowQuery),
    responses(
        (status = 200, description = "The request (after `wait`, when given: decided, or still pending when the wait ran out)", body = RequestView),
        Refused,
    )
)]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only requests in this state (`all`: any, as without it).
    #[param(pattern = "^(pending|approved|denied|expired|cancelled|executed|failed|all)$")]
    state: Option<String>,
    /// Only requests of this run.
    run: Option<String>,
    /// The page size (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `next` of the previous page: requests older than this one.
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

#[utoipa::path(
    get,
    path = "/v1/requests",
    operation_id = "list_requests",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "Requests the caller may see, newest first", body = RequestList),
        Refused,
    )
)]
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

#[utoipa::path(
    post,
    path = "/v1/requests/{id}/votes",
    operation_id = "vote",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The request (`req_…`)")),
    request_body = VoteBody,
    responses(
        (status = 200, description = "The request after the vote, with the vote's receipt", body = RequestView),
        Refused,
        TooLarge,
    )
)]
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
#[utoipa::path(
    post,
    path = "/v1/requests/{id}/amend",
    operation_id = "amend_request",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The request (`req_…`)")),
    request_body = AmendBody,
    responses(
        (status = 200, description = "The request, approved with the amended params", body = RequestView),
        Refused,
        TooLarge,
    )
)]
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

#[utoipa::path(
    post,
    path = "/v1/requests/{id}/cancel",
    operation_id = "cancel_request",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The request (`req_…`)")),
    responses(
        (status = 200, description = "The cancelled request, with the receipt", body = RequestView),
        Refused,
    )
)]
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

#[utoipa::path(
    post,
    path = "/v1/grants/{id}/redeem",
    operation_id = "redeem_grant",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The grant (`grt_…`)")),
    request_body = RedeemBody,
    responses(
        (status = 200, description = "The grant, redeemed", body = RedeemView),
        Refused,
        TooLarge,
    )
)]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExecuteQuery {
    /// Wait this long for the decision first (`30s`, `2m`, `1500ms` or a number of seconds;
    /// at most 5m; empty or `0`: not at all).
    #[param(
        pattern = "^(|0*([0-9]{1,2}|[12][0-9]{2}|300)s?|0*[0-5]m|0*([0-9]{1,5}|[12][0-9]{5}|300000)ms)$"
    )]
    wait: Option<String>,
}

/// Runs the request's *recorded* action with its executor (the requester only). The body must
/// be empty, `{}` or `null`: nothing sent now reaches the executor.
#[utoipa::path(
    post,
    path = "/v1/requests/{id}/execute",
    operation_id = "execute_request",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The request (`req_…`)"), ExecuteQuery),
    request_body(content = Option<NoBody>, description = "Empty, `{}` or `null`: the action recorded when it was approved is run, never parameters sent now"),
    responses(
        (status = 200, description = "The request after its execution, and how it went", body = ExecutedView),
        Refused,
        TooLarge,
    )
)]
pub async fn execute(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    q: Result<Query<ExecuteQuery>, axum::extract::rejection::QueryRejection>,
    body: axum::body::Bytes,
) -> Result<Json<ExecutedView>, ApiError> {
    let q = query(q)?;
    let text = std::str::from_utf8(&body).unwrap_or("?").trim();
    let compact = text.split_whitespace().collect::<String>();
    if !(text.is_empty() || compact == "{}" || compact == "null") {
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
#[utoipa::path(
    post,
    path = "/v1/requests/{id}/outcome",
    operation_id = "report_outcome",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The request (`req_…`)")),
    request_body = OutcomeBody,
    responses(
        (status = 200, description = "The request with the reported execution", body = RequestView),
        Refused,
        TooLarge,
    )
)]
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
#[utoipa::path(
    get,
    path = "/v1/requests/{id}/events",
    operation_id = "request_events",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The request (`req_…`)")),
    responses(
        (status = 200, description = "Server-sent events: `request` (the request as JSON) now and on each change until it is decided; `error` (`{\"code\"}`) if it cannot be read", content_type = "text/event-stream", body = String),
        Refused,
    )
)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The `wait` parameter's pattern as the OpenAPI document shows it, for `Q`.
    fn wait_pattern_of<Q: utoipa::IntoParams>() -> String {
        let params = Q::into_params(|| None);
        let wait = params
            .iter()
            .find(|p| p.name == "wait")
            .expect("a wait parameter");
        let schema = serde_json::to_value(&wait.schema).expect("a schema");
        schema["pattern"].as_str().expect("a pattern").to_owned()
    }

    fn pattern() -> regex::Regex {
        let shown = wait_pattern_of::<ShowQuery>();
        assert_eq!(shown, wait_pattern_of::<ExecuteQuery>());
        regex::Regex::new(&shown).expect("the wait pattern is a regex")
    }

    /// The document's `pattern` for `wait` and the parser accept exactly the same values, so a
    /// value the document allows is never refused and one it refuses is never taken.
    #[test]
    fn the_wait_pattern_is_the_wait_parser() {
        let re = pattern();
        for (s, ok) in [
            ("", true),
            ("0", true),
            ("30", true),
            ("30s", true),
            ("300s", true),
            ("301", false),
            ("5m", true),
            ("6m", false),
            ("300000ms", true),
            ("300001ms", false),
            ("0000000000000000000000000000300s", true),
            ("1min", false),
            ("1m30s", false),
            ("-1", false),
            (" 1", false),
            ("s", false),
            ("ms", false),
            ("99999999999999999999999999s", false),
        ] {
            assert_eq!(re.is_match(s), ok, "pattern on {s:?}");
            assert_eq!(parse_wait(s).is_ok(), ok, "parser on {s:?}");
        }
    }

    proptest! {
        #[test]
        fn any_wait_is_accepted_by_both_or_neither(
            s in "(0{0,30}[0-9]{0,7}(ms|s|m|h|)|[0-9a-z ]{0,6})"
        ) {
            prop_assert_eq!(pattern().is_match(&s), parse_wait(&s).is_ok(), "{:?}", s);
        }
    }
}
