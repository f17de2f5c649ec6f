//! One MCP request as a Countersign action: submitted under policy, held (with progress) while
//! people decide, and, once allowed, its grant redeemed with the digest of exactly what will be
//! forwarded. Nothing here knows about HTTP; the `Hold` port is how the waiting is reported.

use crate::gateway::{Gateway, GatewayError};
use crate::wire::ActionBody;
use countersign_core::{Digest, Principal, Request, State};
use futures::FutureExt as _;
use std::time::{Duration, Instant};

/// How a waiting caller hears about the wait, and how it says it gave up.
pub trait Hold: Send {
    /// Called as soon as the action is held, then every `progress_interval`.
    fn progress(
        &mut self,
        step: u32,
        message: String,
    ) -> impl std::future::Future<Output = ()> + Send;
    /// Completes when the caller cancelled, or went away, saying which.
    fn cancelled(&self) -> impl std::future::Future<Output = Cancelled> + Send;
}

/// Why a held request stopped waiting on its caller's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// The caller asked (`notifications/cancelled`, `tasks/cancel`).
    ByCaller,
    /// The caller can no longer receive the answer: its response stream closed before the call
    /// was answered (it timed out, crashed or disconnected), or its session ended.
    Abandoned,
}

impl Cancelled {
    /// The reason recorded with the cancellation.
    pub fn reason(self) -> &'static str {
        match self {
            Cancelled::ByCaller => "the MCP client cancelled the call",
            Cancelled::Abandoned => {
                "the MCP client's connection closed before the call was answered; \
                 nothing was forwarded"
            }
        }
    }
}

/// Why an action may not go ahead, in words for the model, with the request it concerns.
#[derive(Debug)]
pub struct Refused {
    pub message: String,
    pub request: Option<String>,
    pub state: Option<State>,
}

impl Refused {
    fn about(req: &Request, message: String) -> Self {
        Refused {
            message,
            request: Some(req.id.clone()),
            state: Some(req.state),
        }
    }
}

/// Submits `body` as `who`, waits while it is pending, and redeems its grant. On success the
/// returned request is `executed` and its recorded `action.params` are what must be forwarded.
pub async fn authorize(
    gateway: &Gateway,
    who: &Principal,
    body: ActionBody,
    every: Duration,
    hold: &mut impl Hold,
) -> Result<Request, Refused> {
    let req = submit(gateway, who, body).await?;
    settle(gateway, who, req, every, hold).await
}

/// Records the action and its decision (pending, or already closed). An action policy allows at
/// once comes back `executed`: its grant was redeemed, with the recorded action's digest, in the
/// transaction that recorded it (one durable write on the hot path of every allowed call).
pub async fn submit(
    gateway: &Gateway,
    who: &Principal,
    body: ActionBody,
) -> Result<Request, Refused> {
    gateway.submit_redeeming(who, body).await.map_err(refusal)
}

/// Waits while `req` (as [`submit`] returned it) is pending, then redeems its grant or says why
/// not. A request `submit` already redeemed is returned as it is; one that became `executed`
/// while waiting was redeemed by someone else and is refused (never forwarded twice).
pub async fn settle(
    gateway: &Gateway,
    who: &Principal,
    req: Request,
    every: Duration,
    hold: &mut impl Hold,
) -> Result<Request, Refused> {
    let req = match req.state {
        State::Pending => wait(gateway, who, req, every, hold).await?,
        State::Executed => return Ok(req),
        _ => req,
    };
    match req.state {
        State::Approved => {
            // Approved while the caller was leaving: it is not there to receive the result, so
            // the call is not forwarded (no forwarding without a caller).
            if let Some(why) = hold.cancelled().now_or_never() {
                return Err(give_up(gateway, who, &req, why).await);
            }
            redeem(gateway, who, &req).await
        }
        State::Denied => {
            let by = match &req.decision.rule {
                Some(rule) if req.votes.is_empty() => format!(" (policy rule `{rule}`)"),
                _ => String::new(),
            };
            let why = req
                .outcome
                .clone()
                .unwrap_or_else(|| req.decision.reason.clone());
            Err(Refused::about(
                &req,
                format!("Denied by Countersign{by}: {why}"),
            ))
        }
        State::Expired => Err(Refused::about(
            &req,
            format!(
                "approval expired: nobody decided in time (request {}); ask again later or ask a person to review it sooner",
                req.id
            ),
        )),
        State::Cancelled => Err(Refused::about(
            &req,
            format!("request {} was cancelled", req.id),
        )),
        other => Err(Refused::about(
            &req,
            format!("request {} is {}, not approved", req.id, other.as_str()),
        )),
    }
}

async fn wait(
    gateway: &Gateway,
    who: &Principal,
    mut req: Request,
    every: Duration,
    hold: &mut impl Hold,
) -> Result<Request, Refused> {
    let link = format!("{}/console/requests/{}", gateway.public_url, req.id);
    let needs = req
        .decision
        .requirements
        .as_ref()
        .map(|r| format!(" (needs {})", r.summary()))
        .unwrap_or_default();
    let first = if req.held {
        format!(
            "Held: run {} is paused; waiting for it to resume. Review: {link}",
            req.action.run.as_deref().unwrap_or("?")
        )
    } else {
        format!("Waiting for approval{needs}: {link}")
    };
    hold.progress(0, first).await;
    let started = Instant::now();
    let mut step = 0;
    while req.state == State::Pending {
        tokio::select! {
            waited = gateway.wait(who, &req.id, every) => {
                req = waited.map_err(refusal)?;
            }
            why = hold.cancelled() => {
                return Err(give_up(gateway, who, &req, why).await);
            }
        }
        if req.state == State::Pending {
            step += 1;
            let message = format!(
                "Still waiting for approval{needs} after {}s: {link}",
                started.elapsed().as_secs()
            );
            hold.progress(step, message).await;
        }
    }
    Ok(req)
}

/// Cancels `req` because its caller cancelled or left, recording why.
async fn give_up(gateway: &Gateway, who: &Principal, req: &Request, why: Cancelled) -> Refused {
    let cancellation = match why {
        Cancelled::ByCaller => countersign_core::Cancellation::Asked,
        Cancelled::Abandoned => countersign_core::Cancellation::Abandoned,
    };
    let cancelled = gateway
        .cancel_because(who, &req.id, cancellation, why.reason())
        .await;
    tracing::info!(
        request = %req.id, ok = cancelled.is_ok(), reason = why.reason(),
        "held MCP request cancelled"
    );
    let message = match why {
        Cancelled::ByCaller => format!("request {} was cancelled by the client", req.id),
        Cancelled::Abandoned => format!("request {} was abandoned: {}", req.id, why.reason()),
    };
    Refused::about(req, message)
}

/// Redeems the grant with the digest of the recorded action: what is forwarded next is exactly
/// what was approved, checked at the moment of forwarding.
async fn redeem(gateway: &Gateway, who: &Principal, req: &Request) -> Result<Request, Refused> {
    let digest = Digest::of_action(&req.action, &req.requester.id);
    gateway
        .redeem_request(who, req, digest)
        .await
        .map_err(refusal)
}

fn refusal(e: GatewayError) -> Refused {
    if let GatewayError::Store(e) = &e {
        tracing::error!(error = %e, "storage failed while authorizing an MCP request");
    }
    Refused {
        message: format!("Countersign refused the request: {e}"),
        request: None,
        state: None,
    }
}
