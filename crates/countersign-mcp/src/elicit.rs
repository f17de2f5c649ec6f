//! URL-mode elicitation for held calls: a client that can show its user a link (it declares
//! `elicitation.url`) and does not take tasks is, for a call that waits for people, pointed at
//! the request's console page (`<public_url>/console/requests/{id}`), where the user sees what
//! is asked, of whom, and how it goes.
//!
//! - On a session (protocols up to 2025-11-25) the gateway sends `elicitation/create` (mode
//!   `url`, `elicitationId` = the request id) while the call waits as any held call does, and
//!   `notifications/elicitation/complete` once people have decided; the call then completes
//!   (or is refused).
//! - On protocol 2026-07-28 (no requests from server to client) the call is answered
//!   `input_required` with the same elicitation and `requestState` naming the request; the
//!   client's retry carries the user's answer and waits on that request, so it is answered from
//!   the existing request and never asks people again.
//!
//! The user's answer: `decline` cancels the request (the person at the agent's side refused
//! it); `accept` or `cancel` (dismissed) leave the call waiting.
//!
//! Invariant (a retry carries no approval of its own): a retry naming a request through
//! `requestState` is answered from that request only if the request is the caller's and
//! records exactly the call retried (same action digest); otherwise it is refused and nothing
//! changes. Enforced in one place, [`resume`].

use super::actions;
use super::authorize::{Cancelled, Hold, review_url};
use countersign_app::gateway::Gateway;
use countersign_core::{Action, Digest, Principal, Request};
use rmcp::model::{
    CustomNotification, ElicitRequest, ElicitRequestParams, ElicitationAction, InputRequest,
    InputRequests, InputRequiredResult, InputResponses, ProtocolVersion, ServerNotification,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, Peer, RoleServer};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The key of the gateway's elicitation among a `tools/call`'s input requests.
pub const INPUT_KEY: &str = "io.countersign/review";

/// How a held call may point its client's user at the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The client cannot show a link.
    Off,
    /// A session: the gateway sends `elicitation/create` itself.
    Session,
    /// Protocol 2026-07-28: the call is answered `input_required`.
    Rounds,
}

/// What the client declared for this request.
pub fn mode(ctx: &RequestContext<RoleServer>) -> Mode {
    let url = ctx
        .client_capabilities()
        .and_then(|c| c.elicitation)
        .is_some_and(|e| e.url.is_some());
    match (url, ctx.protocol_version()) {
        (false, _) => Mode::Off,
        (true, Some(v)) if v == ProtocolVersion::V_2026_07_28 => Mode::Rounds,
        (true, _) => Mode::Session,
    }
}

fn message(req: &Request) -> String {
    format!(
        "Countersign holds this call ({}) until a person approves it (request {}). Open the \
         link to see what is asked and of whom; decline to cancel the call.",
        req.action().kind,
        req.id()
    )
}

fn params(gateway: &Gateway, req: &Request, id: &str) -> ElicitRequestParams {
    ElicitRequestParams::UrlElicitationParams {
        meta: None,
        message: message(req),
        url: review_url(gateway, req.id()),
        elicitation_id: id.to_owned(),
    }
}

/// The answer to a held call on protocol 2026-07-28: the elicitation, and the request to
/// come back to.
pub fn input_required(gateway: &Gateway, req: &Request) -> InputRequiredResult {
    let mut asks = InputRequests::new();
    asks.insert(
        INPUT_KEY.to_owned(),
        InputRequest::Elicitation(ElicitRequest::new(params(gateway, req, req.id()))),
    );
    InputRequiredResult::new(Some(asks), Some(req.id().to_owned()))
}

/// A session's elicitation under way: its answer, as a wait's cancellation.
pub struct Asking {
    declined: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    peer: Peer<RoleServer>,
    id: String,
}

impl Asking {
    /// Sends the elicitation for `req` to the session's client, without waiting for its answer.
    pub fn start(gateway: &Gateway, peer: &Peer<RoleServer>, req: &Request) -> Asking {
        let declined = CancellationToken::new();
        let (sent_peer, on_decline) = (peer.clone(), declined.clone());
        let params = params(gateway, req, req.id());
        let id = req.id().to_owned();
        let task = tokio::spawn(async move {
            match sent_peer.create_elicitation(params).await {
                Ok(answer) if answer.action == ElicitationAction::Decline => on_decline.cancel(),
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(request = %id, error = %e, "URL elicitation not answered")
                }
            }
        });
        Asking {
            declined,
            task,
            peer: peer.clone(),
            id: req.id().to_owned(),
        }
    }

    /// Cancelled when the user declines the elicitation (for [`ElicitHold::new`]).
    pub fn declined(&self) -> CancellationToken {
        self.declined.clone()
    }

    /// The wait is over: tells the client the out-of-band step completed (when people
    /// decided), and stops waiting for an answer to the elicitation.
    pub async fn finish(self, decided: bool) {
        self.task.abort();
        if decided {
            let done = CustomNotification::new(
                "notifications/elicitation/complete",
                Some(json!({"elicitationId": self.id})),
            );
            if let Err(e) = self
                .peer
                .send_notification(ServerNotification::CustomNotification(done))
                .await
            {
                tracing::debug!(request = %self.id, error = %e, "elicitation/complete not sent");
            }
        }
    }
}

/// A call's hold that also ends when the user declined the elicitation.
pub struct ElicitHold<H> {
    inner: H,
    declined: CancellationToken,
}

impl<H> ElicitHold<H> {
    /// `inner`, also ended (as [`Cancelled::Declined`]) when `declined` is cancelled.
    pub fn new(inner: H, declined: CancellationToken) -> Self {
        ElicitHold { inner, declined }
    }
}

impl<H: Hold + Sync> Hold for ElicitHold<H> {
    async fn progress(&mut self, step: u32, message: String) {
        self.inner.progress(step, message).await;
    }

    async fn cancelled(&self) -> Cancelled {
        tokio::select! {
            why = self.inner.cancelled() => why,
            () = self.declined.cancelled() => Cancelled::Declined,
        }
    }
}

/// The user's answer a retry on protocol 2026-07-28 carries, and the request it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    pub request: String,
    pub declined: bool,
}

/// Reads a retry's `inputResponses` and `requestState`: both absent is a first call (`None`);
/// the answer to the gateway's own elicitation with the state it gave is a retry; anything
/// else (other keys, state alone) cannot be part of an action and is refused
/// (`actions::refuse_unrecorded`).
pub fn answered(
    responses: Option<&InputResponses>,
    state: Option<&str>,
) -> Result<Option<Answered>, ErrorData> {
    let (Some(responses), Some(state)) = (responses, state) else {
        actions::refuse_unrecorded(responses, state)?;
        return Ok(None);
    };
    let ours = responses.len() == 1 && responses.contains_key(INPUT_KEY);
    if !ours || !state.starts_with("req_") {
        actions::refuse_unrecorded(Some(responses), Some(state))?;
    }
    let action = responses
        .get(INPUT_KEY)
        .and_then(|r| r.get("action"))
        .and_then(Value::as_str);
    Ok(Some(Answered {
        request: state.to_owned(),
        declined: action == Some("decline"),
    }))
}

/// The request a retry names, if it may be answered from it: the caller's own, recording
/// exactly the call retried (`action`, compared as the parking key compares calls, so a run
/// made up per connection does not count). The one check of the module's invariant.
pub async fn resume(
    gateway: &Gateway,
    who: &Principal,
    answered: &Answered,
    action: &Action,
    session_run: bool,
) -> Result<Request, ErrorData> {
    let refused = || {
        ErrorData::invalid_params(
            "requestState does not name a request of yours for exactly this call; send the call \
             again without inputResponses and requestState",
            None,
        )
    };
    let req = gateway
        .get(who, &answered.request)
        .await
        .map_err(|_| refused())?;
    let same = |a: &Action| {
        let mut a = a.clone();
        if session_run {
            a.run = None;
        }
        Digest::of_action(&a, &who.id)
    };
    if req.requester().id != who.id || same(req.action()) != same(action) {
        return Err(refused());
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept() -> InputResponses {
        [(INPUT_KEY.to_owned(), json!({"action": "accept"}))]
            .into_iter()
            .collect()
    }

    #[test]
    fn only_the_answer_to_the_gateways_own_elicitation_is_taken() {
        assert_eq!(answered(None, None).unwrap(), None);
        let ok = answered(Some(&accept()), Some("req_1")).unwrap().unwrap();
        assert_eq!(ok.request, "req_1");
        assert!(!ok.declined);
        let declined: InputResponses = [(INPUT_KEY.to_owned(), json!({"action": "decline"}))]
            .into_iter()
            .collect();
        assert!(
            answered(Some(&declined), Some("req_1"))
                .unwrap()
                .unwrap()
                .declined
        );
        // Anything an upstream would have to see is refused.
        let mut more = accept();
        more.insert("upstream".into(), json!({"action": "accept"}));
        assert!(answered(Some(&more), Some("req_1")).is_err());
        let other: InputResponses = [("upstream".to_owned(), json!({}))].into_iter().collect();
        assert!(answered(Some(&other), Some("req_1")).is_err());
        assert!(answered(Some(&accept()), None).is_err());
        assert!(answered(None, Some("req_1")).is_err());
        assert!(answered(Some(&accept()), Some("opaque-upstream-state")).is_err());
    }
}
