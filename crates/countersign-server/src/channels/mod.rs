//! Where people are asked: chat channels (Slack now; Teams next). The store keeps a durable
//! queue of reviewed requests whose messages need work, written in the same transaction as each
//! change (see `countersign_store::Store::claim_notifications`); the [`Notifier`] drains it:
//! claims due requests (a lease, so replicas share the work), brings every channel up to date
//! for each, and finishes the claim or schedules the next visit (a reminder, an escalation, the
//! expiry, or a retry after a failure). Nothing is lost: an unfinished claim comes back when its
//! lease ends, a crash included.

pub mod mask;
pub mod slack;

use crate::gateway::Gateway;
use countersign_core::Timestamp;
use countersign_store::NotifyClaim;
use slack::Slack;
use std::sync::Arc;
use std::time::Duration;

/// How long a claim is ours before another replica may take it.
const LEASE: Duration = Duration::from_secs(60);
/// How many requests are claimed at a time.
const BATCH: u32 = 32;
/// How often the queue is polled without a local wake-up (changes made by other replicas).
const POLL: Duration = Duration::from_secs(1);
/// Retry delays after a failure (doubling, capped).
const RETRY_FIRST: Duration = Duration::from_secs(2);

/// The configured channels.
#[derive(Clone, Default)]
pub struct Channels {
    pub slack: Option<Arc<Slack>>,
}

pub struct Notifier {
    gateway: Arc<Gateway>,
    channels: Channels,
    /// Consecutive failures per request, for backoff.
    failures: std::collections::HashMap<String, u32>,
}

impl Notifier {
    pub fn new(gateway: Arc<Gateway>, channels: Channels) -> Self {
        Self {
            gateway,
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
        let claims = self
            .gateway
            .store
            .claim_notifications(now, lease, BATCH)
            .await?;
        let full = claims.len() as u32 == BATCH;
        let work = claims.into_iter().map(|claim| {
            let gateway = self.gateway.clone();
            let channels = self.channels.clone();
            async move {
                let outcome = deliver(&gateway, &channels, &claim).await;
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
            self.gateway
                .store
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
    channels: &Channels,
    claim: &NotifyClaim,
) -> Result<Option<Timestamp>, Option<Duration>> {
    let Some(req) = gateway
        .store
        .get_request(&claim.request_id)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "could not read a request to notify");
            None
        })?
    else {
        return Ok(None);
    };
    let mut next = None;
    if let Some(slack) = &channels.slack {
        match slack.deliver(&req, gateway.clock.now()).await {
            Ok(n) => next = n,
            Err(e) => return Err(e.retry_after()),
        }
    }
    Ok(next)
}
