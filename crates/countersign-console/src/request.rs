//! One request's page: who asks (agent and owner), the action, the justification, the params
//! (masked with `countersign_app::mask`, highlighted, with how many values were masked), the rule
//! and what it needs, the votes, the timeline from the audit log with each entry's leaf hash
//! and inclusion proof, and the Approve / Deny form. A vote from the form is `Gateway::vote`
//! with `Channel::Console`; a refusal is shown on the same page with its code. Live: the page
//! listens to server-sent events and refreshes its regions when anyone decides elsewhere.
//!
//! Must not: show params or free text other than through `countersign_app::mask`, or decide anything
//! itself.

use super::inbox::may_decide;
use super::layout::{json, page as chrome, state_badge, time_left, when};
use super::{ConsoleError, Viewer, html_with_code};
use crate::ConsoleState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use countersign_app::gateway::{CastVote, GatewayError};
use countersign_app::limits::Held;
use countersign_app::mask;
use countersign_core::{Channel, Request, State as RequestState, VoteDecision};
use countersign_http::error::ApiError;
use futures::Stream;
use maud::{Markup, html};
use serde::Deserialize;
use std::convert::Infallible;

/// A refusal shown above the decision form.
pub struct Notice {
    pub code: &'static str,
    pub message: String,
}

struct TimelineEntry {
    seq: u64,
    at: String,
    actor: String,
    event: String,
    detail: String,
    leaf: String,
}

async fn timeline(state: &ConsoleState, id: &str) -> Vec<TimelineEntry> {
    let seqs = state
        .audit
        .request_entries(id)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    let mut out = Vec::with_capacity(seqs.len());
    for seq in seqs.into_iter().take(200) {
        let Ok(entries) = state.audit.entries(seq, 1).await else {
            continue;
        };
        let Some(e) = entries.into_iter().find(|e| e.seq == seq) else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_slice(&e.bytes).unwrap_or_default();
        let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
        let data = &v["data"];
        let detail = [
            "decision",
            "channel",
            "mfa_method",
            "reason",
            "state",
            "effect",
            "rule",
            "comment",
        ]
        .iter()
        .filter_map(|k| {
            data.get(*k).and_then(|x| match x {
                serde_json::Value::String(s) => {
                    Some(format!("{k}: {}", state.gateway.masker.text(s)))
                }
                serde_json::Value::Bool(b) => Some(format!("{k}: {b}")),
                _ => None,
            })
        })
        .chain(
            data.get("mfa")
                .and_then(|m| m.as_bool())
                .filter(|m| *m)
                .map(|_| "mfa: verified".to_string()),
        )
        .collect::<Vec<_>>()
        .join(" · ");
        out.push(TimelineEntry {
            seq,
            at: s("at"),
            actor: s("actor"),
            event: s("event"),
            detail,
            leaf: hex::encode(e.leaf),
        });
    }
    out
}

fn fact(label: &str, value: Markup) -> Markup {
    html! { div.fact { dt { (label) } dd { (value) } } }
}

/// The whole request page.
pub async fn render(
    state: &ConsoleState,
    viewer: &Viewer,
    req: &Request,
    notice: Option<&Notice>,
) -> Markup {
    let now = state.gateway.clock.now();
    let a = &req.action();
    let requirements = req.decision().requirements.as_ref();
    let mfa = requirements.is_some_and(|r| r.mfa);
    let can = may_decide(req, viewer, now);
    let has_passkey = mfa
        && can.is_ok()
        && state
            .gateway
            .passkeys(&viewer.principal.id)
            .await
            .is_ok_and(|p| !p.is_empty());
    let tl = timeline(state, req.id()).await;
    let tree_size = state.audit.size().await.unwrap_or(0);
    let needs = req
        .remaining()
        .iter()
        .map(|c| format!("{} of {}", c.count, c.group))
        .collect::<Vec<_>>()
        .join(", ");
    let approvals = req
        .votes()
        .iter()
        .filter(|v| v.decision == VoteDecision::Approve)
        .count();
    let needed: u32 = requirements
        .map(|r| r.approvers.iter().map(|c| c.count).sum())
        .unwrap_or(0);
    let decide_key = format!(
        "{}-{}-{}",
        req.state().as_str(),
        req.held(),
        req.votes().len()
    );
    let masker = &state.gateway.masker;
    let why = a
        .justification
        .as_deref()
        .filter(|j| !j.trim().is_empty())
        .map(|j| masker.text_lines(j));
    let params = masker.params(&a.params);
    let plan = super::plan::card(req, masker);
    let outcome = req.outcome().map(|o| masker.text(o));
    let comments: Vec<_> = req
        .votes()
        .iter()
        .map(|v| v.comment.as_deref().map(|c| masker.text_lines(c)))
        .collect();
    let masked = plan.as_ref().map_or(params.masked, |(_, n)| *n)
        + [why.as_ref(), outcome.as_ref()]
            .into_iter()
            .chain(comments.iter().map(Option::as_ref))
            .flatten()
            .filter(|t| t.is_masked())
            .count();
    let body = html! {
        nav.crumbs aria-label="Breadcrumb" { a href="/console/" { "Inbox" } " / " span.mono { (req.id()) } }
        section.card.head-card {
            div.title-row {
                h1 { (a.kind) }
                span data-live-region="badge" id="badge" { (state_badge(req.state(), req.held())) }
            }
            p.resource.mono { (a.resource) }
            dl.facts {
                (fact("Asked by", html! { (req.requester().id.as_str()) }))
                (fact("Owner", html! { @match &req.requester().owner { Some(o) => (o.as_str()), None => span.muted { "—" } } }))
                (fact("Rule", html! { code { (req.decision().rule.as_deref().unwrap_or("default")) } }))
                (fact("Needs", html! {
                    @match requirements { Some(r) => { (r.summary()) @if r.mfa { " · " strong { "second factor" } } }, None => span.muted { "no review" } }
                }))
                (fact("Run", html! { @match &a.run { Some(run) => a href={ "/console/runs/" (run) } { code { (run) } }, None => span.muted { "—" } } }))
                (fact("Asked", when(&req.created_at())))
                @if req.state() == RequestState::Pending {
                    (fact("Time left", html! { (time_left(req.expires_at(), now)) }))
                }
                (fact("Digest", html! { code.digest title=(req.digest().to_string()) { (req.digest().to_string()) } }))
                @if let Some(trace) = req.trace() {
                    (fact("Trace", html! { code.trace title=(trace.as_str()) { (trace.trace_id()) } }))
                }
            }
        }
        div.cols {
            div.col-main {
                section.card {
                    h2 { "Why" }
                    @match &why { Some(w) => p.why { (w.to_string()) }, None => p.muted { "The agent gave no justification." } }
                }
                @if let Some((card, _)) = &plan { (card) } @else {
                section.card {
                    h2 { "Parameters" }
                    @match mask::notice(masked) {
                        Some(n) => p.hint data-masked=(masked) { "🔒 " (n) ". Only strings under secret-named keys, and credentials, are masked." },
                        None => p.hint data-masked="0" { "Nothing is masked." },
                    }
                    pre.json tabindex="0" { code { (json(&params)) } }
                }
                }
                @if let Some(card) = super::outcome::card(masker, &viewer.principal, req) { (card) }
                section.card data-live-region="timeline" id="timeline" {
                    h2 { "Timeline" }
                    p.hint { "From the audit log. Each entry's leaf hash is in the signed Merkle tree; "
                        "the proof link shows its inclusion proof." }
                    ol.timeline {
                        @for e in &tl {
                            li {
                                div.tl-head { span.tl-event { (e.event) } " by " span { (e.actor) } " · " span.muted { (e.at) } }
                                @if !e.detail.is_empty() { div.tl-detail { (e.detail) } }
                                div.tl-receipt.mono {
                                    "#" (e.seq) " · leaf " span title=(e.leaf) { (&e.leaf[..16]) "…" } " · "
                                    a href={ "/v1/audit/entries/" (e.seq) "/proof?size=" (tree_size.max(e.seq + 1)) } { "proof" }
                                }
                            }
                        }
                    }
                }
            }
            div.col-side {
                section.card data-live-region="progress" id="progress" {
                    h2 { "Progress" }
                    @if req.state() == RequestState::Pending {
                        p.big { (approvals) " of " (needed) " approvals" }
                        @if req.held() { p.notice { "Held while its run is paused." } }
                        @if !needs.is_empty() { p { "Still needs " strong { (needs) } } }
                    } @else {
                        p.big { (req.state().as_str()) }
                        @if let Some(o) = &outcome { p { (o.to_string()) } }
                    }
                    h3 { "Votes" }
                    @if req.votes().is_empty() { p.muted { "No votes yet." } }
                    ul.votes {
                        @for (v, comment) in req.votes().iter().zip(&comments) {
                            li class={ "vote " @if v.decision == VoteDecision::Approve { "v-approve" } @else { "v-deny" } } {
                                strong { (v.approver.as_str()) }
                                " " @if v.decision == VoteDecision::Approve { "approved" } @else { "denied" }
                                " via " (v.channel.as_str())
                                @if v.mfa { " · " span.mfa { "second factor verified" @if let Some(m) = v.mfa_method { " (" (m.as_str()) ")" } } }
                                br; span.muted { (when(&v.at)) }
                                @if let Some(c) = comment { blockquote { (c.to_string()) } }
                            }
                        }
                    }
                }
                section.card.decide data-live-region="decide" id="decide" data-key=(decide_key) {
                    h2 { "Your decision" }
                    @if let Some(n) = notice {
                        div.notice.error role="alert" data-error-code=(n.code) {
                            p { (n.message) } p.muted { "Code: " code { (n.code) } }
                        }
                    }
                    @match &can {
                        Ok(()) => {
                            form.stack method="post" action={ "/console/requests/" (req.id()) "/decide" }
                                data-passkey-begin={ "/console/requests/" (req.id()) "/passkey" } {
                                input type="hidden" name="csrf" value=(viewer.csrf);
                                input type="hidden" name="digest" value=(req.digest().to_string());
                                @if requirements.is_some_and(|r| r.require_comment) {
                                    label for="comment" { "Comment " strong { "(required to approve: say what you checked)" } }
                                } @else {
                                    label for="comment" { "Comment " span.muted { "(optional)" } }
                                }
                                textarea id="comment" name="comment" rows="3" maxlength="4096" {}
                                @if has_passkey {
                                    div.buttons {
                                        button.approve type="button" data-passkey="vote" data-decision="approve" data-status="passkey-status" { "Approve with passkey" }
                                        button.deny type="button" data-passkey="vote" data-decision="deny" data-status="passkey-status" { "Deny with passkey" }
                                    }
                                    p.notice.error id="passkey-status" role="alert" hidden {}
                                    p.hint { "Or use a one-time code:" }
                                }
                                @if mfa {
                                    label for="otp" { "One-time code" }
                                    input id="otp" name="otp" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required;
                                    p.hint { "This rule needs a second factor: the 6-digit code from your authenticator app ("
                                        a href="/console/mfa" { "enrol" } ")." }
                                }
                                @if let Some(rule) = requirements.and_then(|r| r.standing.as_ref()) {
                                    (standing_choice(rule))
                                }
                                @if let Some(min) = requirements.and_then(|r| r.min_review_seconds) {
                                    p.hint data-min-review=(min) { "This rule asks approvers to take at least " (min) " s to read the request before approving." }
                                }
                                p.hint { "You approve exactly the action shown: digest " code { (&req.digest().to_string()[..19]) "…" } }
                                div.buttons {
                                    button.approve type="submit" name="decision" value="approve" { "Approve" }
                                    button.deny type="submit" name="decision" value="deny" formnovalidate[!mfa] { "Deny" }
                                }
                            }
                        }
                        Err(refusal) => {
                            p.muted data-refusal=(refusal.code()) { (refusal.to_string()) }
                        }
                    }
                    @if can.is_ok() && requirements.is_some_and(|r| r.amend) {
                        details.amend {
                            summary { "Amend the params, then approve" }
                            form.stack method="post" action={ "/console/requests/" (req.id()) "/amend" } {
                                input type="hidden" name="csrf" value=(viewer.csrf);
                                input type="hidden" name="digest" value=(req.digest().to_string());
                                label for="amend_params" { "Params (JSON): the kind and resource stay" }
                                textarea id="amend_params" name="params" rows="8" class="mono" {
                                    (serde_json::to_string_pretty(&req.action().params).unwrap_or_default())
                                }
                                label for="amend_comment" { "Why" }
                                textarea id="amend_comment" name="comment" rows="2" maxlength="4096" {}
                                @if mfa {
                                    label for="amend_otp" { "One-time code" }
                                    input id="amend_otp" name="otp" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required;
                                }
                                p.hint { "Earlier approvals were of the params as they are: they will no longer count." }
                                div.buttons { button.approve type="submit" { "Amend and approve" } }
                            }
                        }
                    }
                }
            }
        }
    };
    chrome(
        &format!("{} · {}", a.kind, req.state().as_str()),
        Some(viewer),
        // Once decided, nothing a person does here changes it: nothing to listen to.
        (req.state() == RequestState::Pending)
            .then(|| format!("/console/requests/{}/events", req.id()))
            .as_deref(),
        body,
    )
}

pub async fn page_handler(
    state: &ConsoleState,
    headers: &HeaderMap,
    uri: &Uri,
    id: &str,
) -> Result<Response, ConsoleError> {
    let viewer = state.page_viewer(headers, uri).await?;
    let req = state.gateway.get(&viewer.principal, id).await?;
    Ok(super::html(render(state, &viewer, &req, None).await))
}

pub async fn page(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    page_handler(&state, &headers, &uri, &id).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideForm {
    #[allow(dead_code)]
    csrf: String,
    decision: String,
    digest: String,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    otp: Option<String>,
    /// With an approval, a standing approval: how long (empty: none) and how many uses.
    #[serde(default)]
    standing_for: Option<String>,
    #[serde(default)]
    standing_uses: Option<String>,
    /// With `credential`: a passkey assertion for the ceremony begun by [`passkey_begin`].
    #[serde(default)]
    ceremony: Option<String>,
    #[serde(default)]
    credential: Option<String>,
}

/// The `decision` field of a console form.
fn form_decision(field: &str) -> Result<VoteDecision, ConsoleError> {
    match field {
        "approve" => Ok(VoteDecision::Approve),
        "deny" => Ok(VoteDecision::Deny),
        other => Err(ConsoleError::bad_request(
            "invalid_form",
            format!("`decision={other}` is neither approve nor deny. Nothing was changed."),
        )),
    }
}

pub async fn decide(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let (viewer, f): (Viewer, DecideForm) = state.form_viewer(&headers, &body).await?;
    let decision = form_decision(&f.decision)?;
    let trimmed = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    // Parsed here, refused only where it is used: a form without both passkey fields is
    // `invalid_form` whatever its digest.
    let vote =
        CastVote::parse(decision, &f.digest, trimmed(f.comment), trimmed(f.otp)).and_then(|vote| {
            match trimmed(f.standing_for) {
                None => Ok(vote),
                Some(for_) => {
                    let uses = trimmed(f.standing_uses)
                        .and_then(|u| u.parse::<u32>().ok())
                        .ok_or_else(|| {
                            GatewayError::BadInput(
                            "invalid_standing",
                            "say how many actions the standing approval may approve (1 or more)"
                                .into(),
                        )
                        })?;
                    vote.standing(&for_, uses)
                }
            }
        });
    let outcome = match (f.ceremony, f.credential) {
        (Some(ceremony), Some(credential)) => {
            async {
                state
                    .gateway
                    .vote_with_passkey(
                        &viewer.principal,
                        &id,
                        vote?,
                        Channel::Console,
                        &ceremony,
                        &credential,
                    )
                    .await
            }
            .await
        }
        (None, None) => {
            async {
                state
                    .gateway
                    .vote(&viewer.principal, &id, vote?, Channel::Console)
                    .await
            }
            .await
        }
        _ => {
            return Err(ConsoleError::bad_request(
                "invalid_form",
                "A passkey answer needs both `ceremony` and `credential`. Nothing was changed.",
            ));
        }
    };
    match outcome {
        Ok(_) => Ok(Redirect::to(&format!("/console/requests/{id}")).into_response()),
        Err(e) => {
            let e = ApiError::from(e);
            state.gateway.metrics.refusal(e.code);
            if e.status == StatusCode::NOT_FOUND || e.status.is_server_error() {
                return Err(e.into());
            }
            let req = state.gateway.get(&viewer.principal, &id).await?;
            let notice = Notice {
                code: e.code,
                message: e.message,
            };
            Ok(html_with_code(
                e.status,
                e.code,
                render(&state, &viewer, &req, Some(&notice)).await,
            ))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasskeyBeginForm {
    #[allow(dead_code)]
    csrf: String,
    decision: String,
    digest: String,
}

/// Begins a passkey assertion for this request, the digest shown and the decision; answers
/// the options for `navigator.credentials.get` as JSON (`{ceremony, options}`).
pub async fn passkey_begin(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let (viewer, f): (Viewer, PasskeyBeginForm) = state.form_viewer(&headers, &body).await?;
    let decision = form_decision(&f.decision)?;
    let begun = state
        .gateway
        .passkey_vote_begin(&viewer.principal, &id, &f.digest, decision)
        .await?;
    Ok(
        axum::Json(serde_json::json!({"ceremony": begun.ceremony, "options": begun.options}))
            .into_response(),
    )
}

/// Server-sent events for one request page: a `change` event (data: the state) whenever its
/// state, votes or hold change, wherever the change came from; the stream ends once the
/// request is no longer pending.
pub async fn events(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ConsoleError> {
    let viewer = state
        .viewer(&headers)
        .await
        .ok_or_else(ConsoleError::no_session)?;
    let slot = state.gateway.hold(&viewer.principal.id, Held::Stream)?;
    let first = state.gateway.get(&viewer.principal, &id).await?;
    let key = |r: &Request| (r.state(), r.votes().len(), r.held());
    let watch = state.audit.watch();
    let init = (
        (state, viewer.session.sid, slot),
        viewer.principal,
        id,
        watch,
        key(&first),
        first.state() != RequestState::Pending,
    );
    let stream = futures::stream::unfold(
        init,
        move |((state, sid, slot), who, id, mut watch, last, done)| async move {
            if done {
                return None;
            }
            loop {
                // Also wake on the slow tick: the request may expire with no one writing.
                if let Ok(Err(_)) =
                    tokio::time::timeout(std::time::Duration::from_secs(15), watch.changed()).await
                {
                    return None;
                }
                // One re-read per burst of entries, not one per entry, for every open page.
                tokio::time::sleep(std::time::Duration::from_millis(150)).await;
                watch.borrow_and_update();
                let req = match state.gateway.get(&who, &id).await {
                    Ok(r) => r,
                    Err(_) => return None,
                };
                let now = key(&req);
                if now != last {
                    // A stream outlives no sign-out.
                    if !state.session_alive(&sid).await {
                        return None;
                    }
                    let ev = Event::default().event("change").data(req.state().as_str());
                    let done = req.state() != RequestState::Pending;
                    return Some((Ok(ev), ((state, sid, slot), who, id, watch, now, done)));
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The vote form's choice of a standing approval, within what `rule` allows.
fn standing_choice(rule: &countersign_core::standing::StandingRule) -> maud::Markup {
    use countersign_core::standing::ScopeField;
    let offered: Vec<u64> = [900, 3600, 8 * 3600]
        .into_iter()
        .filter(|s| *s < rule.max_seconds)
        .chain(std::iter::once(rule.max_seconds))
        .collect();
    let label = |s: u64| humantime::format_duration(std::time::Duration::from_secs(s)).to_string();
    let fields: Vec<&str> = rule
        .scope
        .iter()
        .map(|f| match f {
            ScopeField::Kind => "kind",
            ScopeField::Resource => "resource",
            ScopeField::Params => "params",
            ScopeField::Run => "run",
        })
        .collect();
    maud::html! {
        fieldset.standing data-standing-max=(rule.max_seconds) {
            legend { "Don't ask again for a while" span.muted { " (optional)" } }
            p.hint { "With your approval, also approve this agent's later actions under this rule that have the same "
                (fields.join(", ")) ". Every approver must choose it; the shortest wins." }
            label for="standing_for" { "For" }
            select id="standing_for" name="standing_for" {
                option value="" selected { "No: ask every time" }
                @for s in &offered { option value=(label(*s)) { (label(*s)) } }
            }
            label for="standing_uses" { "At most this many actions" }
            input id="standing_uses" name="standing_uses" type="number" min="1" max=(rule.max_uses)
                value=(rule.max_uses.min(10));
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmendForm {
    #[allow(dead_code)]
    csrf: String,
    digest: String,
    params: String,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    otp: Option<String>,
}

/// The editor's answer: the amended params, approved (`Gateway::amend`).
pub async fn amend(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let (viewer, f): (Viewer, AmendForm) = state.form_viewer(&headers, &body).await?;
    let params: serde_json::Value = serde_json::from_str(&f.params).map_err(|e| {
        ConsoleError::bad_request(
            "invalid_params",
            format!("The params are not JSON ({e}). Nothing was changed."),
        )
    })?;
    let trimmed = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let vote = CastVote::parse(
        countersign_core::VoteDecision::Approve,
        &f.digest,
        trimmed(f.comment),
        trimmed(f.otp),
    )?;
    state
        .gateway
        .amend(&viewer.principal, &id, vote, params, Channel::Console)
        .await?;
    Ok(Redirect::to(&format!("/console/requests/{id}")).into_response())
}
