//! Where people are asked: chat channels (Slack, Microsoft Teams). The store keeps a durable
//! queue of reviewed requests whose messages need work, written in the same transaction as each
//! change (see `countersign_store::Store::claim_notifications`); the [`Notifier`] drains it:
//! claims due requests (a lease, so replicas share the work), brings every channel up to date
//! for each, and finishes the claim or schedules the next visit (a reminder, an escalation, the
//! expiry, or a retry after a failure). Nothing is lost: an unfinished claim comes back when its
//! lease ends, a crash included.
//!
//! Every chat channel is one [`ChatChannel`]: it renders a request (from the shared `review`
//! content), posts, replaces and reminds. When, where and how often is decided once, in
//! `delivery`, for all of them. Clicks come back through each channel's own inbound endpoint
//! and become votes through `Gateway::vote`, like every other vote.
//!
//! Architecture invariant: no channel decides anything. A click is a vote through the gateway,
//! with the same refusals as the API; a channel only formats, sends and identifies people.

pub mod config;
pub mod delivery;
pub mod refusals;
pub mod review;
pub mod slack;
pub mod teams;
pub mod webhooks;

use async_trait::async_trait;
use countersign_app::gateway::Gateway;
use countersign_core::{Request, Timestamp};
use countersign_store::{ChannelMessage, NotifyClaim, Store};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use slack::Slack;
use std::sync::Arc;
use std::time::Duration;
use teams::Teams;

/// How long a claim is ours before another replica may take it.
const LEASE: Duration = Duration::from_secs(60);
/// How many requests are claimed at a time.
const BATCH: u32 = 32;
/// How often the queue is polled without a local wake-up (changes made by other replicas).
const POLL: Duration = Duration::from_secs(1);
/// Retry delays after a failure (doubling, capped).
const RETRY_FIRST: Duration = Duration::from_secs(2);

/// Callbacks already handled, remembered for a replay window in the store, so a retried or
/// replayed click is acted on once whichever replica it reaches. Keys must be canonical (the
/// same request gives the same key however it is encoded): Slack's is the MAC we computed
/// (`slack::signature::Verified::replay_key`), Teams' the lowercased tenant and the activity
/// id; each channel's keys are apart (`namespace`). Only verified callbacks add keys.
pub struct Replays {
    namespace: &'static str,
    window: Duration,
    store: Arc<dyn countersign_store::Store>,
}

impl Replays {
    pub fn new(
        namespace: &'static str,
        window: Duration,
        store: Arc<dyn countersign_store::Store>,
    ) -> Self {
        Replays {
            namespace,
            window,
            store,
        }
    }

    /// True the first time `key` is seen within the window, on any replica. When the store
    /// cannot say, the callback counts as seen: it is dropped, not acted on twice (the sender
    /// retries, or the person clicks again).
    pub async fn first_sight(&self, key: &str) -> bool {
        let now = chrono::Utc::now();
        let until = now + chrono::Duration::from_std(self.window).unwrap_or_default();
        let key = format!("{}:{key}", self.namespace);
        match self.store.first_sight(&key, now, until).await {
            Ok(first) => first,
            Err(e) => {
                tracing::warn!(error = %e, "cannot check a callback's replay key; dropping it");
                false
            }
        }
    }
}

/// Records in the audit log a vote attempt from `channel` that was refused (unknown person,
/// not eligible, self-approval, ...). The actor is the principal when known, else
/// `<channel>:<the channel's user id>`.
pub async fn record_refused_vote(
    gateway: &Gateway,
    channel: &'static str,
    external_user: &str,
    principal: Option<&countersign_core::PrincipalId>,
    request: &str,
    code: &str,
) {
    let event = countersign_core::Event::VoteRefused {
        request: request.to_string(),
        channel: channel.into(),
        external_user: external_user.to_string(),
        principal: principal.cloned(),
        code: code.to_string(),
    };
    let actor = match principal {
        Some(p) => p.to_string(),
        None => format!("{channel}:{external_user}"),
    };
    if let Err(e) = gateway.record(&actor, event, None).await {
        tracing::error!(error = %e, channel, "could not record a refused vote");
    }
}

/// A review message rendered for one channel, ready to send.
pub struct Rendered {
    /// Notification text (and what clients without rich messages show).
    pub text: String,
    /// The channel's rich message: Slack blocks, a Teams Adaptive Card.
    pub body: Value,
    /// Identifies the content, so an unchanged message is not sent again.
    pub hash: String,
}

impl Rendered {
    pub fn new(text: String, body: Value) -> Rendered {
        let mut h = Sha256::new();
        h.update(text.as_bytes());
        h.update(body.to_string().as_bytes());
        Rendered {
            text,
            body,
            hash: hex::encode(h.finalize()),
        }
    }
}

/// Where a message was posted, in the channel's own ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// The conversation (a Slack channel id, a Teams conversation id).
    pub conversation: String,
    /// The message (a Slack `ts`, a Teams activity id).
    pub ts: String,
}

/// The outcome of replacing a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    Done,
    /// The message no longer exists (someone deleted it).
    Gone,
}

/// A delivery that failed; it is retried, after `retry_after` when the channel asked for a wait.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl DeliveryError {
    pub fn new(message: impl Into<String>) -> Self {
        DeliveryError {
            message: message.into(),
            retry_after: None,
        }
    }

    fn store(e: countersign_store::StoreError) -> Self {
        DeliveryError::new(format!("store: {e}"))
    }
}

/// One chat channel, as the notifier drives it. Targets are `<name>:<rest>` (`slack:#approvals`,
/// `teams:approvals`); `delivery` decides which to post to, when to replace and when to remind.
#[async_trait]
pub trait ChatChannel: Send + Sync {
    /// The channel's name, which is also the prefix of its targets.
    fn name(&self) -> &'static str;
    /// The targets asked when a rule names no audience.
    fn default_audience(&self) -> &[String];
    /// The message for `req` as it stands (pure; the same on every replica).
    fn render(&self, req: &Request) -> Rendered;
    /// Posts a new message to `target`. `Ok(None)` when the channel cannot address that target
    /// at all (a configuration mistake, logged by the channel): there is nothing to retry.
    async fn post(
        &self,
        req: &Request,
        target: &str,
        rendered: &Rendered,
    ) -> Result<Option<Posted>, DeliveryError>;
    /// Replaces the message `message` with `rendered`.
    async fn update(
        &self,
        message: &ChannelMessage,
        rendered: &Rendered,
    ) -> Result<Edit, DeliveryError>;
    /// Reminds the audience of `message` that `req` still waits (in its thread, where the
    /// channel has threads).
    async fn remind(&self, req: &Request, message: &ChannelMessage) -> Result<(), DeliveryError>;
}

/// The configured channels.
#[derive(Clone, Default)]
pub struct Channels {
    pub slack: Option<Arc<Slack>>,
    pub teams: Option<Arc<Teams>>,
}

impl Channels {
    /// Every configured chat channel, for the notifier.
    pub fn all(&self) -> Vec<Arc<dyn ChatChannel>> {
        let mut out: Vec<Arc<dyn ChatChannel>> = vec![];
        if let Some(s) = &self.slack {
            out.push(s.clone());
        }
        if let Some(t) = &self.teams {
            out.push(t.clone());
        }
        out
    }
}

pub struct Notifier {
    gateway: Arc<Gateway>,
    /// The outbox and the message references are the notifier's own tables.
    store: Arc<dyn Store>,
    channels: Channels,
    /// Consecutive failures per request, for backoff.
    failures: std::collections::HashMap<String, u32>,
}

impl Notifier {
    pub fn new(gateway: Arc<Gateway>, store: Arc<dyn Store>, channels: Channels) -> Self {
        Self {
            gateway,
            store,
            channels,
            failures: Default::default(),
        }
    }

    /// Runs until the task is aborted.
    pub async fn run(mut self) {
        let wake = self.gateway.outbox_wake.clone();
        loop {
            let woken = wake.notified();
            match self.drain().await {
                Ok(more) if more => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "notification queue unavailable; will retry"),
            }
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Works one batch; `Ok(true)` when there may be more due.
    async fn drain(&mut self) -> Result<bool, countersign_store::StoreError> {
        let now = self.gateway.clock.now();
        let lease = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
        let claims = self.store.claim_notifications(now, lease, BATCH).await?;
        let full = claims.len() as u32 == BATCH;
        let work = claims.into_iter().map(|claim| {
            let gateway = self.gateway.clone();
            let store = self.store.clone();
            let channels = self.channels.clone();
            async move {
                let outcome = deliver(&gateway, store.as_ref(), &channels, &claim).await;
                (claim, outcome)
            }
        });
        // Requests are independent: deliver a batch concurrently (bounded by BATCH).
        let done = futures::future::join_all(work).await;
        for (claim, outcome) in done {
            let now = self.gateway.clock.now();
            let next = match outcome {
                Ok(next) => {
                    self.failures.remove(&claim.request_id);
                    next
                }
                Err(retry) => {
                    let n = self.failures.entry(claim.request_id.clone()).or_default();
                    *n += 1;
                    let backoff = RETRY_FIRST * 2u32.saturating_pow((*n - 1).min(8));
                    let wait = retry.unwrap_or(backoff).max(Duration::from_millis(100));
                    Some(now + chrono::Duration::from_std(wait).unwrap_or_default())
                }
            };
            self.store
                .finish_notification(&claim.request_id, claim.generation, next, now)
                .await?;
        }
        Ok(full)
    }
}

/// Brings every channel up to date for one request. `Ok(next visit)`, or `Err(wait asked for)`
/// after a failure (`None`: use the backoff).
async fn deliver(
    gateway: &Gateway,
    store: &dyn Store,
    channels: &Channels,
    claim: &NotifyClaim,
) -> Result<Option<Timestamp>, Option<Duration>> {
    let Some(req) = store.get_request(&claim.request_id).await.map_err(|e| {
        tracing::warn!(error = %e, "could not read a request to notify");
        None
    })?
    else {
        return Ok(None);
    };
    let now = gateway.clock.now();
    let mut next: Option<Timestamp> = None;
    let mut failed: Option<Option<Duration>> = None;
    // Every channel is worked even when another fails; a retry redoes only what changed (an
    // unchanged message is not sent again).
    for channel in channels.all() {
        match delivery::deliver(channel.as_ref(), store, &req, now).await {
            Ok(n) => {
                if let Some(n) = n {
                    next = Some(next.map_or(n, |t| t.min(n)));
                }
            }
            Err(e) => {
                failed = Some(match (failed.flatten(), e.retry_after) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                });
            }
        }
    }
    match failed {
        Some(wait) => Err(wait),
        None => Ok(next),
    }
}

/// The chat channels' inbound endpoints (each 404 `not_configured` unless configured), and
/// their OpenAPI paths.
pub fn routes(channels: Channels) -> utoipa_axum::router::OpenApiRouter {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(slack_interactions))
        .routes(utoipa_axum::routes!(teams_messages))
        .with_state(channels)
}

/// The refusals of a chat platform's callback.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only its responses are read.
enum CallbackRefused {
    /// The body is not what the platform sends (`invalid_payload`, `invalid_activity`, …).
    #[response(status = 400)]
    BadRequest(countersign_http::wire::ErrorBody),
    /// The platform's signature or token is missing or does not verify.
    #[response(status = 401)]
    Unauthenticated(countersign_http::wire::ErrorBody),
    /// The token is valid but not for this bot or tenant.
    #[response(status = 403)]
    Forbidden(countersign_http::wire::ErrorBody),
    /// The body is larger than the gateway accepts (`body_too_large`).
    #[response(status = 413)]
    TooLarge(countersign_http::wire::ErrorBody),
    /// This channel is not configured on this gateway (`not_configured`).
    #[response(status = 404)]
    NotConfigured(countersign_http::wire::ErrorBody),
    /// The platform's signing keys cannot be fetched now.
    #[response(status = 503)]
    Unavailable(countersign_http::wire::ErrorBody),
}

/// Slack's interactivity requests: a form with one field, `payload` (JSON), signed with the
/// app's signing secret (`X-Slack-Signature`, `X-Slack-Request-Timestamp`).
#[utoipa::path(
    post,
    path = "/v1/channels/slack/interactions",
    operation_id = "slack_interactions",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`payload=<JSON>`"),
    params(
        ("X-Slack-Signature" = String, Header, description = "`v0=` HMAC-SHA256 of the request"),
        ("X-Slack-Request-Timestamp" = String, Header, description = "Unix seconds"),
    ),
    responses(
        (status = 200, description = "Handled (a modal's answer, when it has one)", body = Object),
        CallbackRefused,
    )
)]
async fn slack_interactions(
    axum::extract::State(channels): axum::extract::State<Channels>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match &channels.slack {
        Some(slack) => slack::interactions::http(slack.clone(), headers, body).await,
        None => countersign_http::not_configured(
            "Slack is not configured on this gateway (channels.slack)",
        )
        .into_response(),
    }
}

/// The Teams bot endpoint: Bot Connector activities, with the Bot Framework's bearer token.
#[utoipa::path(
    post,
    path = "/v1/channels/teams/messages",
    operation_id = "teams_messages",
    request_body(content = Object, description = "A Bot Framework activity"),
    params(("Authorization" = String, Header, description = "`Bearer` and the Bot Framework's JWT")),
    responses(
        (status = 200, description = "Handled (an invoke's answer, when it has one)", body = Object),
        CallbackRefused,
    )
)]
async fn teams_messages(
    axum::extract::State(channels): axum::extract::State<Channels>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match &channels.teams {
        Some(teams) => teams::activity::http(teams.clone(), headers, body).await,
        None => countersign_http::not_configured(
            "Microsoft Teams is not configured on this gateway (channels.teams)",
        )
        .into_response(),
    }
}
