//! The decision flow, one method per step a caller can take: submit an action, read or wait for
//! a request, vote, cancel, redeem a grant, steer a run, expire what is due (enrolling second
//! factors is `factors`').
//!
//! Each method authenticates nothing (the HTTP layer hands it a `Principal`), decides nothing on
//! its own (the policy and the core state machine do), and writes only through the store, whose
//! transactions also append the audit entries. After every committed change it wakes the
//! waiters of the requests that changed.

use crate::directory::Directory;
use crate::metrics::{EffectLabel, Metrics, StateLabel, VoteLabel};
use crate::policy_source::PolicySource;
use crate::waiters::Waiters;
use countersign_core::request::RunGate;
use countersign_core::run::RunRefusal;
use countersign_core::{
    Action, ActionError, Channel, Digest, Principal, PrincipalId, Refusal, Request, RunState,
    State, Timestamp, Transition, mfa, request_id_for_grant,
};
use countersign_store::{Parking, Store, StoreError, Submission, Updated};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod amend;
pub mod authzen;
mod executions;
pub mod factors;
pub mod once;
pub mod passkeys;
pub mod plans;
mod reading;
mod standing;
mod submission;
mod tasks;
mod votes;

pub use executions::EXEC_GRACE;
pub(crate) use submission::{AtOnce, Decided, Park};

pub use votes::CastVote;

/// Wrong one-time codes allowed per person within `MFA_WINDOW` before further tries are refused.
const MFA_MAX_FAILURES: usize = 5;
const MFA_WINDOW: Duration = Duration::from_secs(300);
/// How often a waiter re-reads the store even without a local notification: a safety net for
/// changes this process did not make (another process on the same database). Local changes
/// wake waiters at once.
const WAIT_TICK: Duration = Duration::from_secs(15);
pub const MAX_WAIT: Duration = Duration::from_secs(300);

/// The clock is a port: the real one reads the system time; tests may supply their own.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    InvalidAction(#[from] ActionError),
    #[error("{0}")]
    BadInput(&'static str, String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{1}")]
    Forbidden(&'static str, String),
    #[error("{0}")]
    Run(#[from] RunRefusal),
    #[error("{0}")]
    Mfa(MfaFailure),
    #[error("{0}")]
    Passkey(crate::gateway::passkeys::PasskeyFailure),
    #[error("{0}")]
    Exec(crate::executors::ExecRefusal),
    /// The task running an execution stopped before it recorded the end (a panic).
    #[error("the execution stopped unexpectedly; it will be recorded as unknown, never retried")]
    ExecutionLost,
    /// An `Idempotency-Key` already used for another action (the request it names).
    #[error(
        "this Idempotency-Key was first sent with another action (request {0}); use a new key for a new action"
    )]
    IdempotencyMismatch(String),
    /// The caller holds all the streams or waits it may (`crate::limits`).
    #[error("{1}")]
    TooMany(&'static str, String),
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
}

impl From<crate::limits::LimitExceeded> for GatewayError {
    fn from(e: crate::limits::LimitExceeded) -> Self {
        GatewayError::TooMany(e.code, e.message)
    }
}

impl GatewayError {
    /// The stable machine code of this failure, the same on every edge (the HTTP API's
    /// `error.code`, the console's notice, a chat channel's refusal record).
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::Refused(r) => r.code(),
            GatewayError::InvalidAction(ActionError::UnsafeNumber(_)) => "imprecise_number",
            GatewayError::InvalidAction(_) => "invalid_action",
            GatewayError::BadInput(code, _)
            | GatewayError::Forbidden(code, _)
            | GatewayError::TooMany(code, _) => code,
            GatewayError::NotFound(_) | GatewayError::Store(StoreError::NotFound) => "not_found",
            GatewayError::Run(_) => "run_stopped",
            GatewayError::Mfa(m) => m.code(),
            GatewayError::Passkey(p) => p.code(),
            GatewayError::Exec(e) => e.code(),
            GatewayError::ExecutionLost => "execution_lost",
            GatewayError::IdempotencyMismatch(_) => "idempotency_mismatch",
            GatewayError::Store(StoreError::Integrity(_)) => "integrity_error",
            GatewayError::Store(_) => "storage_unavailable",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaFailure {
    NotEnrolled,
    Invalid,
    Reused,
    RateLimited,
}

impl MfaFailure {
    pub fn code(self) -> &'static str {
        match self {
            MfaFailure::NotEnrolled => "mfa_not_enrolled",
            MfaFailure::Invalid => "mfa_invalid",
            MfaFailure::Reused => "mfa_reused",
            MfaFailure::RateLimited => "mfa_rate_limited",
        }
    }
}

impl std::fmt::Display for MfaFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MfaFailure::NotEnrolled => {
                "you have no second factor enrolled; run `countersign mfa enroll` first"
            }
            MfaFailure::Invalid => "the one-time code is not valid",
            MfaFailure::Reused => "this one-time code was already used; wait for the next one",
            MfaFailure::RateLimited => {
                "too many wrong one-time codes; wait a few minutes and try again"
            }
        })
    }
}

/// A committed change and the seqs of the audit entries that record it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub request: Request,
    pub audit_entries: Vec<u64>,
}

pub struct Gateway {
    pub(crate) store: Arc<dyn Store>,
    pub policy: Arc<PolicySource>,
    pub directory: Arc<Directory>,
    pub waiters: Arc<Waiters>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub public_url: String,
    /// Woken after every committed change to a reviewed request: the channel notifier's cue.
    pub outbox_wake: Arc<tokio::sync::Notify>,
    mfa_failures: Mutex<HashMap<PrincipalId, Vec<Instant>>>,
    /// The WebAuthn relying party (id and origin from `public_url`); `None` when the public
    /// URL cannot name one (passkeys are then refused with `passkeys_unavailable`).
    pub(crate) passkeys: Option<crate::gateway::passkeys::RelyingParty>,
    /// Seals TOTP seeds before they are stored, and opens them to check a code.
    pub(crate) at_rest: crate::at_rest::Sealer,
    /// Masks what people are shown (chat messages, console pages); see `countersign_app::mask`.
    pub masker: crate::mask::Masker,
    /// Each committed change to someone's second factors, for whoever announces them
    /// (`factors::run_slack_announcer`).
    pub factor_news: tokio::sync::broadcast::Sender<countersign_store::FactorChange>,
    /// Evaluates the policy within its budget (invariant 11).
    evaluator: crate::evaluator::Evaluator,
    /// The actions the gateway carries out itself (`exec.*` kinds).
    executors: Arc<dyn crate::executors::Executors>,
    /// Standing approvals' holders as last seen (`submission::Holders`).
    holders: Arc<submission::Holders>,
    /// Where spans of submit, wait and forward go (`crate::telemetry`; none by default).
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    /// What one principal may hold open (`crate::limits`).
    pub limits: Arc<crate::limits::Limits>,
}

pub(crate) fn new_request_id() -> String {
    format!("req_{}", uuid::Uuid::now_v7().simple())
}

impl Gateway {
    pub fn new(
        store: Arc<dyn Store>,
        policy: Arc<PolicySource>,
        directory: Arc<Directory>,
        clock: Arc<dyn Clock>,
        public_url: String,
        at_rest: crate::at_rest::Sealer,
    ) -> Self {
        Self {
            at_rest,
            store,
            policy,
            directory,
            waiters: Arc::new(Waiters::default()),
            metrics: Arc::new(Metrics::default()),
            clock,
            outbox_wake: Arc::new(tokio::sync::Notify::new()),
            mfa_failures: Mutex::new(HashMap::new()),
            factor_news: tokio::sync::broadcast::channel(64).0,
            passkeys: crate::gateway::passkeys::RelyingParty::new(&public_url),
            public_url,
            masker: crate::mask::Masker::random(),
            evaluator: crate::evaluator::Evaluator::default(),
            executors: Arc::new(crate::executors::NoExecutors),
            holders: Arc::default(),
            telemetry: Arc::new(crate::telemetry::Telemetry::off()),
            limits: Arc::default(),
        }
    }

    /// A slot for one event stream or long-poll wait of `who` (`crate::limits`), or 429.
    pub fn hold(
        &self,
        who: &PrincipalId,
        kind: crate::limits::Held,
    ) -> Result<crate::limits::Slot, GatewayError> {
        Ok(self.limits.hold(who, kind)?)
    }

    /// The gateway with the configured `limits:` (defaults otherwise).
    pub fn with_limits(mut self, config: crate::limits::LimitsConfig) -> Self {
        self.limits = Arc::new(crate::limits::Limits::new(config));
        self
    }

    /// The gateway with its spans sent to `telemetry` (the configured OTLP exporter).
    pub fn with_telemetry(mut self, telemetry: crate::telemetry::Telemetry) -> Self {
        self.telemetry = Arc::new(telemetry);
        self
    }

    /// Uses `executors` (the configured ones) instead of none.
    pub fn with_executors(mut self, executors: Arc<dyn crate::executors::Executors>) -> Self {
        self.executors = executors;
        self
    }

    /// The executors this gateway holds (for MCP tools and listings).
    pub fn executors(&self) -> &Arc<dyn crate::executors::Executors> {
        &self.executors
    }

    /// The gateway with `masker` (serve gives every replica the same key, so a message renders
    /// the same wherever it is rendered).
    pub fn with_masker(mut self, masker: crate::mask::Masker) -> Self {
        self.masker = masker;
        self
    }

    /// Uses `evaluator` (the configured budget) instead of the default one.
    pub fn with_evaluator(mut self, evaluator: crate::evaluator::Evaluator) -> Self {
        self.evaluator = evaluator;
        self
    }

    /// Step 1-3 of the flow: validate, evaluate policy, record (with the run gate applied in the
    /// same transaction).
    pub async fn submit(
        &self,
        requester: &Principal,
        action: Action,
    ) -> Result<Request, GatewayError> {
        Ok(new_only(
            self.submit_with(requester, action, AtOnce::Record, None)
                .await?,
        ))
    }

    /// Like [`Gateway::submit`], for a caller that forwards the action itself the moment it may
    /// (the MCP gateway): when policy allows it at once, the grant is redeemed with the recorded
    /// action's digest in the same transaction, so the answer is `executed` after one durable
    /// write instead of two. The audit log still shows the approval and the redemption.
    pub async fn submit_redeeming(
        &self,
        requester: &Principal,
        action: Action,
    ) -> Result<Request, GatewayError> {
        Ok(new_only(
            self.submit_with(requester, action, AtOnce::Redeem, None)
                .await?,
        ))
    }

    /// Like [`Gateway::submit_redeeming`] (or [`Gateway::submit`] when not `redeeming`: an
    /// executor's action, which [`Gateway::execute`] redeems), for an MCP call that is parked
    /// under `key` while it is pending (see `mcp::authorize`): when a request of `requester` is
    /// parked under `key` and has not been carried out, nothing is submitted and that request
    /// is returned (expired first if it is due); checked and written in the submission's one
    /// transaction.
    pub async fn submit_parking(
        &self,
        requester: &Principal,
        action: Action,
        key: &Digest,
        redeeming: bool,
    ) -> Result<Submission, GatewayError> {
        let park = Park {
            key: *key,
            // Not one whose grant was used: the same call made again is a new action.
            attachable: |r| !matches!(r.state(), State::Executed | State::Failed),
            idempotency: None,
        };
        match self
            .submit_with(
                requester,
                action,
                if redeeming {
                    AtOnce::Redeem
                } else {
                    AtOnce::Record
                },
                Some(park),
            )
            .await?
        {
            Submission::Attached(req) if req.is_due(self.clock.now()) => {
                Ok(Submission::Attached(self.expire(req.id()).await?))
            }
            submitted => Ok(submitted),
        }
    }

    pub(crate) async fn submit_with(
        &self,
        requester: &Principal,
        action: Action,
        at_once: AtOnce,
        parking: Option<Park>,
    ) -> Result<Submission, GatewayError> {
        action.validate()?;
        // An action for an executor is checked whole before the policy sees it: bad input
        // records nothing.
        self.executors.check(&action).map_err(GatewayError::Exec)?;
        let now = self.clock.now();
        let policy = self.policy.current();
        let decision = self
            .evaluator
            .evaluate(&policy, requester, &action, now)
            .await;
        let decided = Decided {
            decision,
            plan: None,
            hold_timeout: policy.default_review_timeout_seconds(),
        };
        self.submit_decided(requester, action, decided, at_once, parking, now)
            .await
    }

    /// Records `action`, decided already (`decided`): the write of [`Gateway::submit_with`],
    /// also made for a plan's request.
    pub(crate) async fn submit_decided(
        &self,
        requester: &Principal,
        action: Action,
        decided: Decided,
        at_once: AtOnce,
        parking: Option<Park>,
        now: Timestamp,
    ) -> Result<Submission, GatewayError> {
        let mut span = self.telemetry.span("countersign.submit", || {
            vec![
                ("countersign.requester", requester.id.to_string()),
                ("countersign.kind", action.kind.clone()),
                (
                    "countersign.effect",
                    decided.decision.effect.as_str().into(),
                ),
            ]
        });
        let submitted = self
            .record_decided(requester, action, decided, at_once, parking, now)
            .await;
        if let Ok(
            Submission::New(req)
            | Submission::Attached(req)
            | Submission::Replayed(req)
            | Submission::KeyReused(req),
        ) = &submitted
        {
            span.set("countersign.request", req.id());
            span.set("countersign.state", req.state().as_str());
        }
        span.end();
        submitted
    }

    /// The write of [`Gateway::submit_decided`].
    async fn record_decided(
        &self,
        requester: &Principal,
        action: Action,
        decided: Decided,
        at_once: AtOnce,
        parking: Option<Park>,
        now: Timestamp,
    ) -> Result<Submission, GatewayError> {
        // **Invariant (a PEP never requests):** every submission is written here, and a
        // policy enforcement point asks only on behalf of its subjects (`authzen`), never in
        // its own name.
        if requester.kind() == countersign_core::PrincipalKind::Pep {
            return Err(GatewayError::Forbidden(
                "pep_cannot_request",
                "a policy enforcement point asks on behalf of agents and people through the \
                 AuthZEN endpoints (/access/v1/evaluation); it makes no requests of its own"
                    .into(),
            ));
        }
        let Decided {
            decision,
            plan,
            hold_timeout,
        } = decided;
        // An earlier approval may approve it at once (only where a submission may attach to
        // another: the transaction that decides that also finds the approval and counts the
        // use): an approved plan's step, or a standing approval. Nothing is read before the
        // write.
        let offers = match &parking {
            Some(_) => {
                submission::covers(requester, &action, &decision, &at_once, &self.holders, now)
            }
            None => vec![],
        };
        let cover_keys: Vec<Digest> = offers.iter().map(|o| o.key).collect();
        let trace = crate::trace::current();
        let run = action.run.clone();
        let requester_id = requester.id.clone();
        let requester = requester.clone();
        let submit = Box::new(move |gate: RunGate| {
            let id = new_request_id();
            let (mut req, mut events) = match plan {
                None => Request::submit(id, requester, action, decision, gate, hold_timeout, now),
                Some(plan) => Request::submit_plan(
                    id,
                    requester,
                    action,
                    decision,
                    plan,
                    gate,
                    hold_timeout,
                    now,
                ),
            };
            req.set_trace(trace);
            at_once.apply(&mut req, &mut events, now);
            (req, events)
        });
        let run_of = run.as_deref().map(|run| countersign_store::RunOf {
            run,
            requester: &requester_id,
        });
        let req = match parking {
            None => self.store.submit(run_of, now, submit).await?,
            Some(park) => {
                let parking = Parking {
                    requester: &requester_id,
                    key: &park.key,
                    attachable: park.attachable,
                    idempotency: park
                        .idempotency
                        .as_ref()
                        .map(|(key, action)| countersign_store::Idempotency { key, action }),
                    covers: cover_keys
                        .iter()
                        .zip(offers)
                        .map(|(key, o)| countersign_store::Cover {
                            key,
                            counted: o.counted,
                            known: o.known,
                            submit: o.submit,
                        })
                        .collect(),
                };
                match self
                    .store
                    .submit_parked(run_of, parking, now, submit)
                    .await?
                {
                    Submission::New(req) => req,
                    other => return Ok(other),
                }
            }
        };
        self.metrics
            .decisions
            .get_or_create(&EffectLabel {
                effect: req.decision().effect.as_str().to_string(),
            })
            .inc();
        if req.decision().effect == countersign_core::Effect::Review && !req.is_covered() {
            self.outbox_wake.notify_one();
        }
        if req.state() == State::Pending {
            self.metrics.pending.inc();
        } else {
            self.count_closed(&req);
        }
        tracing::info!(
            request = %req.id(), digest = %req.digest(), principal = %req.requester().id,
            kind = %req.action().kind, effect = req.decision().effect.as_str(), state = req.state().as_str(),
            rule = req.decision().rule.as_deref().unwrap_or("<default>"), "action submitted"
        );
        Ok(Submission::New(req))
    }

    fn count_closed(&self, req: &Request) {
        self.metrics
            .closed
            .get_or_create(&StateLabel {
                state: req.state().as_str().to_string(),
            })
            .inc();
    }

    /// Who may read a request: people may read all; agents only their own.
    fn visible(viewer: &Principal, req: &Request) -> bool {
        viewer.is_person() || viewer.id == req.requester().id
    }

    /// Whether the database answers a read (the health check).
    pub async fn storage_answers(&self) -> Result<(), StoreError> {
        self.store.count_keys().await.map(drop)
    }

    /// Records `event` by `actor` in the audit log, about no request (a policy load, a refused
    /// channel callback).
    pub async fn record(
        &self,
        actor: &str,
        event: countersign_core::Event,
        policy_hash: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        self.store
            .append_event(actor, event, policy_hash, now)
            .await
            .map(drop)
    }

    /// Book-keeping after a committed change: metrics for every request that left `pending`,
    /// and waking every waiter concerned.
    fn after_update(&self, updated: &Updated, before: Option<&Request>) {
        let main_was_pending = before.is_none_or(|b| b.state() == State::Pending);
        // Requests in `also_changed` were all pending (held) before this change.
        let changed = std::iter::once((&updated.request, main_was_pending))
            .chain(updated.also_changed.iter().map(|r| (r, true)));
        for (req, was_pending) in changed {
            if was_pending && req.state() != State::Pending {
                self.metrics.pending.dec();
                self.count_closed(req);
                if req.decision().effect == countersign_core::Effect::Review {
                    let closed = req.closed_at().unwrap_or_else(|| self.clock.now());
                    let waited =
                        (closed - req.created_at()).num_milliseconds().max(0) as f64 / 1000.0;
                    self.metrics.decision_wait_seconds.observe(waited);
                }
            }
            self.waiters.notify(req.id());
        }
        self.outbox_wake.notify_one();
    }

    pub async fn cancel(&self, who: &Principal, id: &str) -> Result<Request, GatewayError> {
        Ok(self.cancel_recorded(who, id).await?.request)
    }

    /// Cancels a request because the requester's client gave up or left, recording `reason`
    /// (see [`Request::cancel_for`]).
    pub async fn cancel_because(
        &self,
        who: &Principal,
        id: &str,
        why: countersign_core::Cancellation,
        reason: &str,
    ) -> Result<Request, GatewayError> {
        let reason = reason.to_owned();
        Ok(self
            .cancel_with(who, id, Some((why, reason)))
            .await?
            .request)
    }

    /// [`Gateway::cancel`], also saying which audit entries recorded it (for a receipt).
    pub async fn cancel_recorded(
        &self,
        who: &Principal,
        id: &str,
    ) -> Result<Recorded, GatewayError> {
        self.cancel_with(who, id, None).await
    }

    async fn cancel_with(
        &self,
        who: &Principal,
        id: &str,
        why: Option<(countersign_core::Cancellation, String)>,
    ) -> Result<Recorded, GatewayError> {
        let now = self.clock.now();
        let change = Transition::Cancel {
            by: who.id.clone(),
            why,
        };
        let before = self.store.get_request(id).await?;
        match before.as_ref() {
            Some(r) if Self::visible(who, r) => {}
            _ => return Err(GatewayError::NotFound("request")),
        }
        match self
            .store
            .update_request(id, who.id.as_str(), now, change)
            .await?
        {
            Ok(updated) => {
                self.after_update(&updated, before.as_ref());
                Ok(Recorded {
                    request: updated.request,
                    audit_entries: updated.audit_entries,
                })
            }
            Err(refusal) => Err(refusal.into()),
        }
    }

    /// Redeems a grant: only the requester, only for the approved digest, at most as often as the
    /// grant allows, never after it expires.
    pub async fn redeem(
        &self,
        who: &Principal,
        grant_id: &str,
        digest: &str,
    ) -> Result<Request, GatewayError> {
        let digest: Digest =
            digest
                .parse()
                .map_err(|e: countersign_core::digest::InvalidDigest| {
                    GatewayError::BadInput("invalid_digest", e.to_string())
                })?;
        let id = request_id_for_grant(grant_id).ok_or(GatewayError::NotFound("grant"))?;
        let before = self
            .store
            .get_request(&id)
            .await?
            .filter(|r| r.grant().is_some_and(|g| g.id == grant_id))
            .ok_or(GatewayError::NotFound("grant"))?;
        self.redeem_request(who, &before, digest).await
    }

    /// Redeems the grant of `before` (the request as the caller last read it) with `digest`.
    /// The store's transaction re-reads the request, so the core checks the grant, the digest
    /// and the expiry against what is current.
    pub async fn redeem_request(
        &self,
        who: &Principal,
        before: &Request,
        digest: Digest,
    ) -> Result<Request, GatewayError> {
        if before.requester().id != who.id {
            return Err(Refusal::NotGrantHolder.into());
        }
        let now = self.clock.now();
        let change = Transition::Redeem { digest };
        match self
            .store
            .update_request(before.id(), who.id.as_str(), now, change)
            .await?
        {
            Ok(updated) => {
                self.after_update(&updated, Some(before));
                Ok(updated.request)
            }
            Err(refusal) => Err(refusal.into()),
        }
    }

    /// Forgets that the call parked under `key` attaches to `req`: its caller has been
    /// answered for good.
    pub async fn unpark_call(
        &self,
        who: &Principal,
        key: &Digest,
        id: &str,
    ) -> Result<(), GatewayError> {
        self.store.unpark_call(&who.id, key, id).await?;
        Ok(())
    }

    /// Pauses, resumes or stops a run (people only).
    pub async fn set_run(
        &self,
        who: &Principal,
        run: &str,
        target: RunState,
    ) -> Result<(countersign_core::Run, Vec<String>), GatewayError> {
        if !who.is_person() {
            return Err(GatewayError::Forbidden(
                "people_only",
                "only people can pause, resume or stop a run".into(),
            ));
        }
        let probe = Action {
            kind: "run.control".into(),
            resource: "run".into(),
            params: serde_json::json!({}),
            justification: None,
            run: Some(run.to_string()),
            labels: Default::default(),
        };
        if probe.validate().is_err() {
            return Err(GatewayError::BadInput(
                "invalid_run",
                "a run id is 1-200 characters of letters, digits, `.`, `_`, `-`, `:`".into(),
            ));
        }
        let now = self.clock.now();
        let change = self
            .store
            .set_run_state(run, target, &who.id, now)
            .await??;
        let mut ids = Vec::with_capacity(change.changed.len());
        for req in &change.changed {
            if req.state() != State::Pending {
                self.metrics.pending.dec();
                self.count_closed(req);
            }
            self.waiters.notify(req.id());
            ids.push(req.id().to_owned());
        }
        self.outbox_wake.notify_one();
        tracing::info!(run, principal = %who.id, state = ?change.run.state, "run changed");
        Ok((change.run, ids))
    }

    pub async fn get_run(&self, run: &str) -> Result<countersign_core::Run, GatewayError> {
        self.store
            .get_run(run)
            .await?
            .ok_or(GatewayError::NotFound("run"))
    }

    /// Expires every pending request whose deadline has passed. Returns how many.
    pub async fn expire_due(&self) -> Result<usize, GatewayError> {
        let mut count = 0;
        loop {
            let due = self.store.due_requests(self.clock.now(), 100).await?;
            if due.is_empty() {
                return Ok(count);
            }
            let mut refused = 0;
            for id in &due {
                match self.expire(id).await {
                    Ok(_) => count += 1,
                    // A row that does not match its log (logged by the store) must not stop
                    // the others from expiring.
                    Err(GatewayError::Store(StoreError::Integrity(_))) => refused += 1,
                    Err(e) => return Err(e),
                }
            }
            if due.len() < 100 || refused == due.len() {
                return Ok(count);
            }
        }
    }
}

/// The request of a submission made without parking (it is always new).
fn new_only(submitted: Submission) -> Request {
    match submitted {
        Submission::New(req)
        | Submission::Attached(req)
        | Submission::Replayed(req)
        | Submission::KeyReused(req) => req,
    }
}
