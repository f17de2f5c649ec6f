//! The inbox: first the pending requests the signed-in person may decide (what each still
//! needs, the time left), then all requests with filters (state, agent, kind, run, time) and
//! a text search. "May decide" is the core's own answer: the vote is tried on a copy of the
//! request (`Request::vote` is pure), so the inbox never disagrees with what voting would do.
//!
//! Must not: change anything (GET only), or show a request the viewer may not read.

use super::layout::{page as chrome, state_badge, time_left, when};
use super::{ConsoleError, Viewer};
use crate::ConsoleState;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::response::sse::{Event, KeepAlive, Sse};
use countersign_app::limits::Held;
use countersign_core::{
    Ballot, Channel, Refusal, Request, State as RequestState, Timestamp, VoteDecision,
};
use countersign_store::RequestQuery;
use futures::Stream;
use maud::{Markup, html};
use serde::Deserialize;
use std::convert::Infallible;

/// Whether `viewer` could cast a vote on `req` now, and if not, the core's reason. What a
/// rule asks of the vote itself (a comment, time spent reading) is not asked here: the form
/// says so, and the vote is refused if it lacks them.
pub fn may_decide(req: &Request, viewer: &Viewer, now: Timestamp) -> Result<(), Refusal> {
    let mut probe = req.clone();
    let ballot = Ballot {
        voter: &viewer.principal,
        decision: VoteDecision::Approve,
        digest: req.digest(),
        channel: Channel::Console,
        mfa: Some(countersign_core::MfaMethod::Totp),
        comment: Some("read".into()),
        standing: None,
    };
    match probe.vote(&ballot, now) {
        Ok(_) | Err(Refusal::TooFast { .. }) => Ok(()),
        Err(refusal) => Err(refusal),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    state: Option<String>,
    agent: Option<String>,
    kind: Option<String>,
    run: Option<String>,
    /// How far back: `1h`, `24h`, `7d`.
    since: Option<String>,
    /// Text searched in the id, kind, resource, requester, run and justification.
    q: Option<String>,
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl Filters {
    fn matches(&self, req: &Request, since: Option<Timestamp>) -> bool {
        let a = &req.action();
        if let Some(k) = nonempty(&self.kind)
            && !(a.kind == k || a.kind.starts_with(&format!("{k}.")))
        {
            return false;
        }
        if since.is_some_and(|t| req.created_at() < t) {
            return false;
        }
        if let Some(q) = nonempty(&self.q) {
            let q = q.to_lowercase();
            let hay = [
                req.id(),
                a.kind.as_str(),
                a.resource.as_str(),
                req.requester().id.as_str(),
                a.run.as_deref().unwrap_or(""),
                a.justification.as_deref().unwrap_or(""),
            ];
            if !hay.iter().any(|h| h.to_lowercase().contains(&q)) {
                return false;
            }
        }
        true
    }
}

fn summary_row(req: &Request, now: Timestamp) -> Markup {
    let needs = req
        .remaining()
        .iter()
        .map(|c| format!("{} of {}", c.count, c.group))
        .collect::<Vec<_>>()
        .join(", ");
    html! {
        tr {
            td { a href={ "/console/requests/" (req.id()) } { strong { (req.action().kind) } } br; span.muted.mono { (req.action().resource) } }
            td { (req.requester().id.as_str()) }
            td { (state_badge(req.state(), req.held())) }
            td { @if req.state() == RequestState::Pending { (needs) } }
            td { @if req.state() == RequestState::Pending { (time_left(req.expires_at(), now)) } @else { (when(&req.created_at())) } }
        }
    }
}

fn table(rows: Markup, empty: bool, empty_text: &str) -> Markup {
    html! {
        @if empty {
            p.empty { (empty_text) }
        } @else {
            div.table-wrap {
                table.list {
                    thead { tr { th scope="col" { "Action" } th scope="col" { "Asked by" } th scope="col" { "State" } th scope="col" { "Still needs" } th scope="col" { "Time" } } }
                    tbody { (rows) }
                }
            }
        }
    }
}

pub async fn inbox(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Result<Response, ConsoleError> {
    let viewer = state.page_viewer(&headers, &uri).await?;
    let f: Filters = super::parse_query(raw.as_deref())?;
    let wanted_state = match nonempty(&f.state) {
        None | Some("all") => None,
        Some(s) => Some(RequestState::parse(s).ok_or_else(|| {
            ConsoleError::bad_request(
                "invalid_query",
                format!("`state={s}` is not one of pending, approved, denied, expired, cancelled, executed, failed, all."),
            )
        })?),
    };
    let now = state.gateway.clock.now();
    let since = match nonempty(&f.since) {
        None => None,
        Some(s) => {
            let d = humantime::parse_duration(s).map_err(|_| {
                ConsoleError::bad_request(
                    "invalid_query",
                    format!("`since={s}` is not a duration like 1h, 24h or 7d."),
                )
            })?;
            Some(now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(3650)))
        }
    };
    let pending = state
        .gateway
        .list(
            &viewer.principal,
            RequestQuery {
                state: Some(RequestState::Pending),
                run: None,
                requester: None,
                limit: 500,
                before: None,
            },
        )
        .await?;
    let mine: Vec<&Request> = pending
        .iter()
        .filter(|r| r.state() == RequestState::Pending && may_decide(r, &viewer, now).is_ok())
        .collect();
    let all = state
        .gateway
        .list(
            &viewer.principal,
            RequestQuery {
                state: wanted_state,
                run: nonempty(&f.run).map(str::to_string),
                requester: nonempty(&f.agent).map(str::to_string),
                limit: 500,
                before: None,
            },
        )
        .await?;
    let shown: Vec<&Request> = all
        .iter()
        .filter(|r| f.matches(r, since))
        .take(200)
        .collect();
    let opt = |v: &str, cur: Option<&str>| -> Markup {
        html! { option value=(v) selected[cur == Some(v)] { (v) } }
    };
    let body = html! {
        section.card data-live-region="mine" id="mine" {
            h1 { "Waiting for you" span.count { (mine.len()) } }
            (table(html! { @for r in &mine { (summary_row(r, now)) } }, mine.is_empty(),
                "Nothing waits for your decision. New requests appear here as they arrive."))
        }
        section.card data-live-region="all" id="all" {
            h2 { "All requests" }
            form.filters method="get" action="/console/" role="search" {
                label { "State" select name="state" {
                    (opt("all", nonempty(&f.state).or(Some("all"))))
                    @for s in ["pending", "approved", "denied", "expired", "cancelled", "executed", "failed"] { (opt(s, nonempty(&f.state))) }
                } }
                label { "Agent" input name="agent" value=[nonempty(&f.agent)] placeholder="agent:deploy-bot"; }
                label { "Kind" input name="kind" value=[nonempty(&f.kind)] placeholder="db.export"; }
                label { "Run" input name="run" value=[nonempty(&f.run)]; }
                label { "Since" select name="since" {
                    option value="" { "any time" }
                    @for s in ["1h", "24h", "7d", "30d"] { (opt(s, nonempty(&f.since))) }
                } }
                label.grow { "Search" input type="search" name="q" value=[nonempty(&f.q)] placeholder="id, resource, justification…"; }
                button type="submit" { "Filter" }
            }
            (table(html! { @for r in &shown { (summary_row(r, now)) } }, shown.is_empty(), "No request matches these filters."))
        }
    };
    Ok(super::html(chrome(
        "Inbox",
        Some(&viewer),
        Some("/console/events"),
        body,
    )))
}

/// Server-sent events for the inbox: a `change` event whenever the audit log grows (every
/// state change is an audit entry), at most one a second; the page then refreshes its lists.
pub async fn events(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ConsoleError> {
    let viewer = state
        .viewer(&headers)
        .await
        .ok_or_else(ConsoleError::no_session)?;
    let slot = state.gateway.hold(&viewer.principal.id, Held::Stream)?;
    let watch = state.audit.watch();
    let init = (state, viewer.session.sid, watch, slot);
    let stream = futures::stream::unfold(init, |(state, sid, mut watch, slot)| async move {
        watch.changed().await.ok()?;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let size = *watch.borrow_and_update();
        // A stream outlives no sign-out.
        if !state.session_alive(&sid).await {
            return None;
        }
        Some((
            Ok(Event::default().event("change").data(size.to_string())),
            (state, sid, watch, slot),
        ))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
