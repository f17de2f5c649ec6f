//! One MCP request as a Countersign action: submitted under policy, held (with progress) while
//! people decide, and, once allowed, its grant redeemed with the digest of exactly what will be
//! forwarded ([`Carrier::Forward`]), or left for the executor that carries it out
//! ([`Carrier::Executor`]: `Gateway::execute` redeems it as the execution starts). Nothing here
//! knows about HTTP; the `Hold` port is how the waiting is reported.
//!
//! Bounded holds (`mcp.hold_for`): a call still pending after `hold_for` is answered "approval
//! pending", and its request is *parked* in the store under (requester, digest), so that the
//! same call made again, on any replica and after a restart, attaches to the same request
//! instead of asking people again: it waits again while pending, is forwarded once approved,
//! and hears the refusal once denied, expired or cancelled; then the pair is forgotten. A
//! client that leaves while parked detaches (the request stays for a retry) and nothing is
//! forwarded until a caller is there to receive the result. Without `hold_for` (`off`), a call
//! waits until decided and a client that leaves cancels its request (`abandoned`).

use countersign_app::gateway::{Gateway, GatewayError};
use countersign_core::Action;
use countersign_core::{Digest, Principal, Request, State};
use countersign_store::Submission;
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
    /// The client's user declined to have the call reviewed (a URL elicitation answered
    /// `decline`: `elicit`).
    Declined,
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
            Cancelled::Declined => "the MCP client's user declined to have the call reviewed",
        }
    }
}

/// What carries out an allowed action, and so where its grant is redeemed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    /// The MCP gateway forwards the recorded request to an upstream: the grant is redeemed
    /// here (in the submission itself when policy allows at once), with the digest of the
    /// recorded action.
    Forward,
    /// One of the gateway's executors (a `countersign__<executor>` tool): the grant is left
    /// for `Gateway::execute`, which redeems it in the write that starts the execution.
    Executor,
}

/// How a call waits for people.
#[derive(Debug, Clone, Copy)]
pub struct Holding {
    /// How often progress is reported.
    pub every: Duration,
    /// After how long a pending call is answered "approval pending"; `None`: until decided.
    pub hold_for: Option<Duration>,
    /// Whether calls are parked for retries to attach to (`mcp.hold_for` is not `off`; task
    /// calls park too, though they are never answered "pending").
    pub parks: bool,
}

/// Why an action may not go ahead (or not yet), in words for the model, with the request it
/// concerns.
#[derive(Debug)]
pub struct Refused {
    pub message: String,
    /// The machine code of a refusal before anything was recorded (`invalid_params`, ...).
    pub code: Option<&'static str>,
    pub request: Option<String>,
    pub state: Option<State>,
    /// The request's page in the console.
    pub review: Option<String>,
}

impl Refused {
    fn about(gateway: &Gateway, req: &Request, message: String) -> Self {
        Refused {
            message,
            code: None,
            request: Some(req.id().to_owned()),
            state: Some(req.state()),
            review: Some(review_url(gateway, req.id())),
        }
    }
}

/// The console page where people decide request `id`.
pub fn review_url(gateway: &Gateway, id: &str) -> String {
    format!("{}/console/requests/{id}", gateway.public_url)
}

/// Submits `action` as `who`, waits while it is pending, and redeems its grant
/// ([`Carrier::Forward`]). On success the returned request is `executed` and its recorded
/// `action.params` are what must be forwarded.
pub async fn authorize(
    gateway: &Gateway,
    who: &Principal,
    action: Action,
    holding: Holding,
    session_run: bool,
    hold: &mut impl Hold,
) -> Result<Request, Refused> {
    let key = parking_key(holding, who, &action, session_run);
    let submitted = submit(gateway, who, action, key, Carrier::Forward).await?;
    settle(gateway, who, submitted, holding, hold).await
}

/// Whether, and under which key, a call is parked: the digest of its action as the requester
/// would make it again, so without a run the gateway made up for the session (`mcp:<session
/// id>`; a client that reconnects, or opens a session per call, makes the same call in another
/// session). `None`: calls are not parked (`hold_for: off`).
pub fn parking_key(
    holding: Holding,
    who: &Principal,
    action: &Action,
    session_run: bool,
) -> Option<Digest> {
    holding.parks.then(|| {
        let mut action = action.clone();
        if session_run {
            action.run = None;
        }
        Digest::of_action(&action, &who.id)
    })
}

/// A request as [`submit`] left it: new or attached to, the key it is parked under, if it is
/// (the same call made again attaches to it until its caller is answered for good), and what
/// carries it out.
#[derive(Debug)]
pub struct Submitted {
    pub request: Request,
    pub parked: Option<Digest>,
    pub carrier: Carrier,
}

/// Records the action and its decision (pending, or already closed), or, when the call has a
/// [`parking_key`] and a request is parked under it, attaches to that request instead. A
/// forwarded action policy allows at once comes back `executed`: its grant was redeemed, with
/// the recorded action's digest, in the transaction that recorded it (one durable write on the
/// hot path of every allowed call); an executor's comes back `approved`.
pub async fn submit(
    gateway: &Gateway,
    who: &Principal,
    action: Action,
    key: Option<Digest>,
    carrier: Carrier,
) -> Result<Submitted, Refused> {
    let redeeming = carrier == Carrier::Forward;
    let Some(key) = key else {
        let request = if redeeming {
            gateway.submit_redeeming(who, action).await
        } else {
            gateway.submit(who, action).await
        }
        .map_err(refusal)?;
        return Ok(Submitted {
            request,
            parked: None,
            carrier,
        });
    };
    match gateway
        .submit_parking(who, action, &key, redeeming)
        .await
        .map_err(refusal)?
    {
        // Replayed and KeyReused need an idempotency key, which MCP calls never send.
        Submission::Attached(request)
        | Submission::Replayed(request)
        | Submission::KeyReused(request) => {
            tracing::info!(
                request = %request.id(), state = request.state().as_str(),
                "MCP call attached to its parked request"
            );
            Ok(Submitted {
                request,
                parked: Some(key),
                carrier,
            })
        }
        Submission::New(request) => {
            let parked = (request.state() == State::Pending).then_some(key);
            Ok(Submitted {
                request,
                parked,
                carrier,
            })
        }
    }
}

/// Waits while the request [`submit`] returned is pending (at most `hold_for`: then the answer
/// is "approval pending"), then redeems its grant (or, for an executor, returns it approved)
/// or says why not. A request `submit` already redeemed is returned as it is; one that became
/// `executed` while waiting was redeemed by someone else and is refused (never forwarded
/// twice).
pub async fn settle(
    gateway: &Gateway,
    who: &Principal,
    submitted: Submitted,
    holding: Holding,
    hold: &mut impl Hold,
) -> Result<Request, Refused> {
    if submitted.request.state() == State::Executed && submitted.carrier == Carrier::Forward {
        // Redeemed by `submit` itself (policy allowed it at once).
        return Ok(submitted.request);
    }
    let decided = until_decided(gateway, who, submitted, holding, hold).await?;
    conclude(gateway, who, decided, hold).await
}

/// The first half of [`settle`]: waits while the request is pending, and returns it decided
/// (or the refusal: still pending after `hold_for`, the caller left, the store failed).
pub async fn until_decided(
    gateway: &Gateway,
    who: &Principal,
    submitted: Submitted,
    holding: Holding,
    hold: &mut impl Hold,
) -> Result<Submitted, Refused> {
    if submitted.request.state() != State::Pending {
        return Ok(submitted);
    }
    let Submitted {
        request: req,
        parked,
        carrier,
    } = submitted;
    match waited(gateway, who, req, holding, hold).await {
        Waited::Decided(request) => Ok(Submitted {
            request,
            parked,
            carrier,
        }),
        Waited::StillPending(req) => Err(pending(gateway, &req)),
        Waited::Left(req, why) => Err(leave(gateway, who, &req, why, parked).await),
        Waited::Failed(refused) => Err(refused),
    }
}

/// The second half of [`settle`], for a request no longer pending: redeems its grant (or
/// leaves it for the executor) or says why not (a request already redeemed is refused: never
/// forwarded twice), then forgets the parked call (its caller has
/// its answer).
pub async fn conclude(
    gateway: &Gateway,
    who: &Principal,
    decided: Submitted,
    hold: &mut impl Hold,
) -> Result<Request, Refused> {
    let Submitted {
        request: req,
        parked,
        carrier,
    } = decided;
    // Approved while the caller was leaving: it is not there to receive the result, so the
    // call is not forwarded (no forwarding without a caller).
    if req.state() == State::Approved
        && let Some(why) = hold.cancelled().now_or_never()
    {
        return Err(leave(gateway, who, &req, why, parked).await);
    }
    let answer = answer(gateway, who, &req, carrier).await;
    if let Some(key) = &parked {
        // The caller has its answer: the same call made again is a new action.
        if let Err(e) = gateway.unpark_call(who, key, req.id()).await {
            tracing::warn!(request = %req.id(), error = %e, "could not unpark an answered MCP call");
        }
    }
    answer
}

/// The final answer about `req` once it is no longer pending: its grant redeemed (or left for
/// the executor), or the refusal.
async fn answer(
    gateway: &Gateway,
    who: &Principal,
    req: &Request,
    carrier: Carrier,
) -> Result<Request, Refused> {
    match req.state() {
        State::Approved => match carrier {
            Carrier::Forward => redeem(gateway, who, req).await,
            Carrier::Executor => Ok(req.clone()),
        },
        State::Denied => {
            let by = match &req.decision().rule {
                Some(rule) if req.votes().is_empty() => format!(" (policy rule `{rule}`)"),
                _ => String::new(),
            };
            let why = req
                .outcome()
                .map(str::to_owned)
                .unwrap_or_else(|| req.decision().reason.clone());
            Err(Refused::about(
                gateway,
                req,
                format!("Denied by Countersign{by}: {why}"),
            ))
        }
        State::Expired => Err(Refused::about(
            gateway,
            req,
            format!(
                "approval expired: nobody decided in time (request {}); ask again later or ask a person to review it sooner",
                req.id()
            ),
        )),
        State::Cancelled => Err(Refused::about(
            gateway,
            req,
            format!("request {} was cancelled", req.id()),
        )),
        other => Err(Refused::about(
            gateway,
            req,
            format!("request {} is {}, not approved", req.id(), other.as_str()),
        )),
    }
}

/// How a wait on a pending request ended.
enum Waited {
    /// People (or the clock) decided.
    Decided(Request),
    /// `hold_for` passed first.
    StillPending(Request),
    /// The caller cancelled or left first.
    Left(Request, Cancelled),
    /// The store failed.
    Failed(Refused),
}

/// [`wait`] in a `countersign.wait` span (how long people took, and how it ended).
async fn waited(
    gateway: &Gateway,
    who: &Principal,
    req: Request,
    holding: Holding,
    hold: &mut impl Hold,
) -> Waited {
    let mut span = gateway.telemetry.span("countersign.wait", || {
        vec![("countersign.request", req.id().to_owned())]
    });
    let waited = wait(gateway, who, req, holding, hold).await;
    let ended = match &waited {
        Waited::Decided(req) => req.state().as_str(),
        Waited::StillPending(_) => "still_pending",
        Waited::Left(..) => "left",
        Waited::Failed(_) => "failed",
    };
    span.set("countersign.outcome", ended);
    span.end();
    waited
}

async fn wait(
    gateway: &Gateway,
    who: &Principal,
    mut req: Request,
    holding: Holding,
    hold: &mut impl Hold,
) -> Waited {
    let started = Instant::now();
    let deadline = holding.hold_for.map(|d| started + d);
    if deadline.is_some_and(|d| d <= started) {
        return Waited::StillPending(req);
    }
    let link = review_url(gateway, req.id());
    let needs = needs(&req);
    let first = if req.held() {
        format!(
            "Held: run {} is paused; waiting for it to resume. Review: {link}",
            req.action().run.as_deref().unwrap_or("?")
        )
    } else {
        format!("Waiting for approval{needs}: {link}")
    };
    hold.progress(0, first).await;
    let mut step = 0;
    while req.state() == State::Pending {
        let mut every = holding.every;
        if let Some(deadline) = deadline {
            match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => every = every.min(left),
                _ => return Waited::StillPending(req),
            }
        }
        tokio::select! {
            waited = gateway.wait(who, req.id(), every) => match waited {
                Ok(now) => req = now,
                Err(e) => return Waited::Failed(refusal(e)),
            },
            why = hold.cancelled() => return Waited::Left(req, why),
        }
        if req.state() == State::Pending {
            step += 1;
            let message = format!(
                "Still waiting for approval{needs} after {}s: {link}",
                started.elapsed().as_secs()
            );
            hold.progress(step, message).await;
        }
    }
    Waited::Decided(req)
}

/// What `req` still needs, as " (needs …)", or nothing.
fn needs(req: &Request) -> String {
    req.decision()
        .requirements
        .as_ref()
        .map(|r| format!(" (needs {})", r.summary()))
        .unwrap_or_default()
}

/// The answer to a call whose request is still pending after `hold_for`, in words a model acts
/// on: nothing ran, a person is asked, and the same call made again picks up the decision.
fn pending(gateway: &Gateway, req: &Request) -> Refused {
    let link = review_url(gateway, req.id());
    let message = if req.held() {
        format!(
            "Approval pending: run {} is paused, so this call waits for a person to resume it \
             (request {}; review: {link}). It has NOT run. Call this tool again with exactly the \
             same arguments later: that call picks up the same request and runs once it may.",
            req.action().run.as_deref().unwrap_or("?"),
            req.id()
        )
    } else {
        format!(
            "Approval pending: Countersign is waiting for a person to approve this call{} \
             (request {}; review: {link}). It has NOT run. Call this tool again with exactly the \
             same arguments in a little while: once approved, that call runs it and returns its \
             result; if it is denied or expires, that call says so.",
            needs(req),
            req.id()
        )
    };
    Refused::about(gateway, req, message)
}

/// The caller stopped waiting on `req` (pending, or approved but not yet redeemed). A caller
/// that asked to cancel cancels the request. One that left cancels it too (`abandoned`), unless
/// it is parked: then the request stays for a retry to attach to, and nothing is forwarded
/// until a caller is there to receive the result.
async fn leave(
    gateway: &Gateway,
    who: &Principal,
    req: &Request,
    why: Cancelled,
    parked: Option<Digest>,
) -> Refused {
    if parked.is_some() && why == Cancelled::Abandoned {
        tracing::info!(
            request = %req.id(), state = req.state().as_str(),
            "MCP client left a held call; its request stays for a retry to attach to"
        );
        return Refused::about(
            gateway,
            req,
            format!("the client left; request {} waits for a retry", req.id()),
        );
    }
    let refused = give_up(gateway, who, req, why).await;
    if let Some(key) = &parked
        && let Err(e) = gateway.unpark_call(who, key, req.id()).await
    {
        tracing::warn!(request = %req.id(), error = %e, "could not unpark a cancelled MCP call");
    }
    refused
}

/// Cancels `req` because its caller cancelled or left, recording why.
async fn give_up(gateway: &Gateway, who: &Principal, req: &Request, why: Cancelled) -> Refused {
    let cancellation = match why {
        Cancelled::ByCaller | Cancelled::Declined => countersign_core::Cancellation::Asked,
        Cancelled::Abandoned => countersign_core::Cancellation::Abandoned,
    };
    let cancelled = gateway
        .cancel_because(who, req.id(), cancellation, why.reason())
        .await;
    tracing::info!(
        request = %req.id(), ok = cancelled.is_ok(), reason = why.reason(),
        "held MCP request cancelled"
    );
    let message = match why {
        Cancelled::ByCaller => format!("request {} was cancelled by the client", req.id()),
        Cancelled::Abandoned => format!("request {} was abandoned: {}", req.id(), why.reason()),
        Cancelled::Declined => format!("request {} was cancelled: {}", req.id(), why.reason()),
    };
    Refused::about(gateway, req, message)
}

/// Redeems the grant with the digest of the recorded action: what is forwarded next is exactly
/// what was approved, checked at the moment of forwarding.
async fn redeem(gateway: &Gateway, who: &Principal, req: &Request) -> Result<Request, Refused> {
    let digest = Digest::of_action(req.action(), &req.requester().id);
    gateway
        .redeem_request(who, req, digest)
        .await
        .map_err(refusal)
}

/// A failure of the Gateway as a refusal the caller reads, with its machine code.
pub fn refusal(e: GatewayError) -> Refused {
    if let GatewayError::Store(e) = &e {
        tracing::error!(error = %e, "storage failed while authorizing an MCP request");
    }
    let code = e.code();
    Refused {
        message: format!("Countersign refused the request ({code}): {e}"),
        code: Some(code),
        request: None,
        state: None,
        review: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use countersign_core::PrincipalId;

    fn body(run: Option<&str>, justification: Option<&str>, a: i64) -> Action {
        Action {
            kind: "mcp.tool.everything.get-sum".into(),
            resource: "mcp://everything/get-sum".into(),
            params: serde_json::json!({"a": a, "b": 1}),
            justification: justification.map(str::to_string),
            run: run.map(str::to_string),
            labels: Default::default(),
        }
    }

    fn who(id: &str) -> Principal {
        Principal {
            id: PrincipalId::parse(id).unwrap(),
            owner: None,
            groups: vec![],
        }
    }

    #[test]
    fn the_parking_key_is_the_call_as_made_again() {
        let on = Holding {
            every: Duration::from_secs(5),
            hold_for: Some(Duration::from_secs(50)),
            parks: true,
        };
        let bot = who("agent:bot");
        let key = |b: &Action, session_run| parking_key(on, &bot, b, session_run).unwrap();
        // A run made up per session or per bridge launch is not part of the call.
        assert_eq!(
            key(&body(Some("mcp:one"), None, 1), true),
            key(&body(Some("mcp:two"), None, 1), true)
        );
        assert_eq!(
            key(&body(Some("mcp:one"), None, 1), true),
            key(&body(None, None, 1), false)
        );
        // The arguments, a run the agent named, the justification and the requester are.
        let base = key(&body(Some("deploy-7"), Some("why"), 1), false);
        assert_ne!(base, key(&body(Some("deploy-7"), Some("why"), 2), false));
        assert_ne!(base, key(&body(Some("deploy-8"), Some("why"), 1), false));
        assert_ne!(base, key(&body(Some("deploy-7"), Some("other"), 1), false));
        assert_ne!(
            base,
            parking_key(
                on,
                &who("agent:other"),
                &body(Some("deploy-7"), Some("why"), 1),
                false
            )
            .unwrap()
        );
        // Without parking there is no key.
        let off = Holding {
            hold_for: None,
            parks: false,
            ..on
        };
        assert_eq!(parking_key(off, &bot, &body(None, None, 1), false), None);
    }
}
