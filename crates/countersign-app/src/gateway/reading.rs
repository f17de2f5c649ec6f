//! Reading requests: one as stored, one for a viewer (expired first if due), waiting for one
//! to be decided, listing them, and the pending gauge.

use super::{Gateway, GatewayError, MAX_WAIT, WAIT_TICK};
use countersign_core::{Principal, PrincipalId, Request, State, Transition};
use countersign_store::{RequestQuery, StoreError};
use std::time::Duration;

impl Gateway {
    /// Request `id` as stored, for a view made after the viewer was answered (a chat card
    /// brought up to date): no visibility check, no expiry.
    pub async fn stored_request(&self, id: &str) -> Result<Option<Request>, StoreError> {
        self.store.get_request(id).await
    }

    /// `req` with the uses of its standing approval as the store counts them (beside the
    /// pair that finds it), when it holds one in force.
    pub(crate) async fn with_uses(&self, mut req: Request) -> Result<Request, GatewayError> {
        if let Some(s) = req.standing()
            && s.revoked_at.is_none()
            && let Some(left) = self
                .store
                .standing_uses_left(&req.requester().id, &s.key, req.id())
                .await?
        {
            req.count_standing_uses(left);
        }
        Ok(req)
    }

    /// Wakes whoever waits on a change another replica committed, as the store hears of it
    /// (`Store::changes`: PostgreSQL's notifications): long-polls and held MCP calls and tasks
    /// (the waiters of the requests named, or all of them when anything may have changed), and
    /// the channel notifier. Runs until the store stops telling.
    pub async fn follow_other_replicas(
        self: std::sync::Arc<Self>,
        mut changes: tokio::sync::broadcast::Receiver<countersign_store::StoreChange>,
    ) {
        use countersign_store::StoreChange;
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match changes.recv().await {
                Ok(StoreChange::Requests(ids)) => {
                    self.metrics.replica_changes.inc();
                    for id in &ids {
                        self.waiters.notify(id);
                    }
                }
                Ok(StoreChange::Everything) | Err(RecvError::Lagged(_)) => {
                    self.metrics.replica_resyncs.inc();
                    self.waiters.notify_all();
                }
                Err(RecvError::Closed) => return,
            }
            self.outbox_wake.notify_one();
        }
    }

    /// Reads one request, expiring it first if its deadline has passed.
    pub async fn get(&self, viewer: &Principal, id: &str) -> Result<Request, GatewayError> {
        let req = self
            .store
            .get_request(id)
            .await?
            .filter(|r| Self::visible(viewer, r))
            .ok_or(GatewayError::NotFound("request"))?;
        if req.is_due(self.clock.now()) {
            return self.expire(id).await;
        }
        self.with_uses(req).await
    }

    /// Expires one request if due; returns it as it now stands.
    pub(crate) async fn expire(&self, id: &str) -> Result<Request, GatewayError> {
        let now = self.clock.now();
        let change = Transition::Expire;
        match self.store.update_request(id, "system", now, change).await? {
            Ok(updated) => {
                self.after_update(&updated, None);
                Ok(updated.request)
            }
            Err(refusal) => Err(refusal.into()),
        }
    }

    /// Waits until the request leaves `pending` or `wait` passes, then returns it.
    pub async fn wait(
        &self,
        viewer: &Principal,
        id: &str,
        wait: Duration,
    ) -> Result<Request, GatewayError> {
        let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        let watch = self.waiters.watch(id);
        self.metrics.waiting_clients.inc();
        let _gauge = GaugeGuard(&self.metrics.waiting_clients);
        loop {
            let notified = watch.notified();
            let req = self.get(viewer, id).await?;
            if req.state() != State::Pending || tokio::time::Instant::now() >= deadline {
                return Ok(req);
            }
            let next_due = req
                .expires_at()
                .and_then(|t| (t - self.clock.now()).to_std().ok())
                .map(|d| tokio::time::Instant::now() + d + Duration::from_millis(5));
            let tick = (tokio::time::Instant::now() + WAIT_TICK)
                .min(deadline)
                .min(next_due.unwrap_or(deadline));
            // Hold nothing but the registration while waiting: 10,000 waiters must stay small.
            drop(req);
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(tick) => {}
            }
        }
    }

    pub async fn list(
        &self,
        viewer: &Principal,
        mut q: RequestQuery,
    ) -> Result<Vec<Request>, GatewayError> {
        if !viewer.is_person() {
            q.requester = Some(viewer.id.to_string());
        }
        // A requester named by a person (a filter) is compared in its canonical form; text that
        // is no principal id matches nothing, as written.
        q.requester = q
            .requester
            .map(|r| PrincipalId::parse(&r).map(String::from).unwrap_or(r));
        q.limit = q.limit.clamp(1, 500);
        let now = self.clock.now();
        let mut out = Vec::with_capacity(q.limit as usize);
        for req in self.store.list_requests(&q).await? {
            if req.is_due(now) {
                let expired = self.expire(req.id()).await?;
                if q.state.is_none_or(|s| s == expired.state()) {
                    out.push(expired);
                }
            } else {
                out.push(self.with_uses(req).await?);
            }
        }
        Ok(out)
    }

    /// Sets the pending gauge from the store (at start, and periodically to correct drift).
    pub async fn refresh_pending_gauge(&self) -> Result<(), GatewayError> {
        let n = self
            .store
            .list_requests(&RequestQuery {
                state: Some(State::Pending),
                run: None,
                requester: None,
                limit: 500,
                before: None,
            })
            .await?
            .len();
        self.metrics.pending.set(n as i64);
        Ok(())
    }
}

struct GaugeGuard<'a>(&'a prometheus_client::metrics::gauge::Gauge);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
