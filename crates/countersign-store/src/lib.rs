//! Where Countersign keeps what it knows: requests, runs, API keys, console sessions, TOTP
//! enrolments, passkeys (and their ceremonies' server-side state), parked tool calls and the
//! audit log, behind the [`Store`] trait. Every state change and the audit entries that record
//! it are written in one transaction, so the log never disagrees with the state it describes.
//!
//! The default implementation is [`SqliteStore`] (an embedded file, one writer thread with
//! group commit); [`PgStore`] keeps the same data in PostgreSQL. Backend-neutral steps (how a
//! row is made, how events become audit entries, how a submission is prepared, the steps of
//! each write) live in `columns`, `audit_log`, `submission` and `writes`, and the reads (their
//! SQL included) in `read`, so the two implementations differ only in their writes' SQL and in
//! how they serialise writes. The run rules (which
//! gate a new request meets, which requests a decision releases) are the core's.
//!
//! For the channels (Slack, Teams) it keeps a queue of requests whose messages need work,
//! marked in the same transaction as every change of a reviewed request so that no change goes
//! unposted after a crash, and claimed under a lease so several gateways share it; where each
//! request was posted, so any gateway updates the same message; and the conversation
//! references a channel learnt from verified inbound traffic (Teams' service URLs).
//!
//! Architecture invariant: the store decides nothing about requests. Every change to a request
//! is one of the core's closed set of transitions ([`countersign_core::Transition`]); the store
//! only applies it inside a transaction, persists what it returns and records its events. No SQL leaves this crate.
#![forbid(unsafe_code)]

mod audit_log;
mod columns;
mod error;
mod factors;
mod integrity;
mod parked;
mod postgres;
mod read;
mod sessions;
mod sqlite;
mod submission;
#[cfg(any(test, feature = "test-suite"))]
pub mod suite;
mod tasks;
mod tree;
mod webauthn;
mod writes;

use async_trait::async_trait;
use countersign_audit::merkle::{self, Frontier, Hash, NodeId};
use countersign_audit::{AuditReport, StoredEntry};
use countersign_core::{
    Digest, Event, PrincipalId, Refusal, Request, Run, RunGate, RunState, State, Timestamp,
    Transition,
};

pub use countersign_core::run::RunRefusal;
pub use error::StoreError;

/// This process's name, for what it holds or sends that others must tell apart (lease
/// holders, change notifications): its pid and start time, fixed for the process's life.
pub fn process_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        format!("{:x}-{nanos:x}", std::process::id())
    })
}

/// How long after its end a lease is kept (then the next lease taken deletes it).
pub const LEASE_RETENTION_MS: i64 = 3_600_000;

/// A change another process committed ([`Store::changes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChange {
    /// These requests changed (and perhaps no others).
    Requests(Vec<String>),
    /// Anything may have changed (notifications were missed, or too many to name).
    Everything,
}
pub use factors::{FactorChange, FactorChangeKind, FactorProof, FactorsRemoved};
pub use integrity::{RequestMismatch, RequestRow};
pub use parked::PARKED_RETENTION_MS;
pub use postgres::PgStore;
pub use sessions::ConsoleSession;
pub use sqlite::SqliteStore;
pub use tasks::{StoredTask, TASK_RETENTION_MS, TaskEnd, UNENDED_TASK_RETENTION_MS};
pub use webauthn::{
    CEREMONY_RETENTION_MS, Ceremony, CeremonyBinding, CeremonyKind, CeremonyRefusal, StoredPasskey,
};

/// A run as the requests of one requester see it. A request holds up, and is released with,
/// only the requests of its own requester's run of that name: one agent's requests never
/// pause another agent's run, whatever run id it names. (People pause, resume and stop runs
/// by name, across requesters: [`Store::set_run_state`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOf<'a> {
    pub run: &'a str,
    pub requester: &'a PrincipalId,
}

/// Builds a new request once the store knows its run gate (inside the transaction).
pub type Submit = Box<dyn FnOnce(RunGate) -> (Request, Vec<Event>) + Send>;

/// Where a submission of an MCP call may be parked (`Store::submit_parked`): the requester,
/// the call's parking key, and which parked requests a call may attach to (the caller's rule:
/// the store decides nothing about requests).
pub struct Parking<'a> {
    pub requester: &'a PrincipalId,
    pub key: &'a countersign_core::Digest,
    pub attachable: fn(&Request) -> bool,
    /// A client's idempotency key for this submission (`Idempotency-Key`), with the digest the
    /// new request will have: the first submission under the key is remembered, and a later
    /// one is answered with that request ([`Submission::Replayed`]) or refused when it asks for
    /// another action ([`Submission::KeyReused`]).
    pub idempotency: Option<Idempotency<'a>>,
    /// Earlier approvals that may approve this submission at once (a plan's step, a standing
    /// approval), tried in order; the first that covers it does.
    pub covers: Vec<Cover<'a>>,
}

/// An earlier approval that may approve a submission at once (a standing approval,
/// `countersign_core::standing`, or a plan's step, `countersign_core::plan`): in the
/// submission's transaction, the request the pair (requester, `key`) names (the holder) is
/// loaded, verified against its audit entries, and handed to `submit`; the covered request it
/// builds is stored only if the run is open and the holder accepts the change it names (one
/// more use, recorded on the holder in the same write); otherwise the submission is made as
/// usual.
pub struct Cover<'a> {
    /// The key the holder was parked under (`Request::standing_key_for`, `plan::step_key_for`).
    pub key: &'a countersign_core::Digest,
    /// The uses are counted beside the pair (a standing approval): one is taken before the
    /// holder is loaded (none left: nothing covers), handed to the holder with
    /// `Request::count_standing_uses`, and given back if the holder does not cover the
    /// submission; the holder itself is not written. Otherwise (a plan) the holder records the
    /// use with `Covering::holder_change`.
    pub counted: bool,
    /// The holder as the caller last saw it, verified (a standing approval's holder changes
    /// only by a revocation, which ends its count): with it, the covered request is built and
    /// prepared ahead of the write, in the caller's task (as an ordinary submission is), and the
    /// write only takes the use and inserts it when the pair names that holder.
    pub known: Option<std::sync::Arc<Request>>,
    /// Builds the covered request from the holder (`Request::submit_covered`,
    /// `Request::submit_planned`); `None`: it does not cover this submission.
    pub submit: CoverSubmit,
}

/// A covered request, its events, and the change that records the use on the holder.
pub struct Covering {
    pub request: Request,
    pub events: Vec<Event>,
    /// What records the use on the holder (none when the use is counted beside the pair).
    pub holder_change: Option<countersign_core::Transition>,
}

/// Builds a covered request from the holder. May be called twice: once ahead of the write
/// with [`Cover::known`], and again inside it with the holder as loaded if the pair names
/// another.
pub type CoverSubmit = Box<dyn Fn(&Request) -> Option<Covering> + Send>;

/// An idempotency key (hashed, so its text is never stored) and the digest of the action it
/// is sent with.
#[derive(Clone, Copy)]
pub struct Idempotency<'a> {
    pub key: &'a countersign_core::Digest,
    pub action: &'a countersign_core::Digest,
}

/// What [`Store::submit_parked`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Submission {
    /// Nothing was parked (or what was parked may not be attached to): the new request, as
    /// stored, parked if it is pending.
    New(Request),
    /// A request was parked under the key and may be attached to: nothing was written (but
    /// the idempotency key, if one was sent, now names it).
    Attached(Request),
    /// The idempotency key names a request for the same action: that request, as it stands;
    /// nothing was written.
    Replayed(Request),
    /// The idempotency key names a request for another action: nothing was written.
    KeyReused(Request),
}

/// The result of [`Store::update_request`].
#[derive(Debug, Clone, PartialEq)]
pub struct Updated {
    /// The request as stored after the change.
    pub request: Request,
    /// The seqs of the audit entries that record this change of `request` (empty when nothing
    /// changed), for receipts.
    pub audit_entries: Vec<u64>,
    /// Requests of the same run that changed as a consequence: held requests released (and
    /// approved, when allowed) because this one stopped pausing the run, or expired because
    /// their deadline passed while they were held.
    pub also_changed: Vec<Request>,
}

/// The result of [`Store::set_run_state`].
#[derive(Debug, Clone, PartialEq)]
pub struct RunChange {
    pub run: Run,
    /// Requests of the run that changed: denied because it stopped, or released because it
    /// resumed.
    pub changed: Vec<Request>,
}

/// The largest page [`Store::list_requests`] returns.
pub const MAX_PAGE: u32 = 500;

/// Which requests to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestQuery {
    pub state: Option<State>,
    pub run: Option<String>,
    /// A principal id.
    pub requester: Option<String>,
    /// At most this many; 0 or more than [`MAX_PAGE`] means [`MAX_PAGE`].
    pub limit: u32,
    /// Cursor: only requests older than this request id (the last id of the previous page).
    pub before: Option<String>,
}

impl RequestQuery {
    /// The page size actually used.
    pub fn page_size(&self) -> u32 {
        match self.limit {
            0 => MAX_PAGE,
            n => n.min(MAX_PAGE),
        }
    }
}

/// One person's TOTP enrolment. The secret is needed to check codes, so it cannot be hashed;
/// this type never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpState {
    pub secret: Vec<u8>,
    /// The last time step a code was accepted for; no code of this step or an earlier one is
    /// accepted again.
    pub last_step: Option<u64>,
}

impl std::fmt::Debug for TotpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpState")
            .field("secret", &"<redacted>")
            .field("last_step", &self.last_step)
            .finish()
    }
}

/// A request whose channel messages are due for work, claimed by one gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyClaim {
    pub request_id: String,
    /// How many changes of the request had been marked when it was claimed; hand it back to
    /// [`Store::finish_notification`] so a change made meanwhile is not forgotten.
    pub generation: i64,
}

/// Where a request was posted in a channel, so every replica can update the same message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelMessage {
    pub request_id: String,
    /// The channel target, e.g. `slack:#approvals`.
    pub target: String,
    /// The channel's own id of the conversation (a Slack channel id).
    pub conversation: String,
    /// The channel's own id of the message (a Slack message `ts`).
    pub ts: String,
    /// A hash of the content last sent, so an unchanged message is not sent again.
    pub rendered: String,
    /// When the last reminder was sent; stored to the millisecond.
    pub reminded_at: Option<Timestamp>,
}

/// How to reach one conversation of a channel that addresses conversations through a service
/// of its own (Teams: the Bot Connector `serviceUrl` of the conversation's region). Learnt only
/// from inbound traffic the channel authenticated, so credentials go only where it vouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRef {
    /// The channel, e.g. `teams`.
    pub channel: String,
    /// The channel's id of the conversation (a Teams conversation id `19:…@thread.tacv2`).
    pub conversation: String,
    /// Where the conversation is reached (the Bot Connector `serviceUrl`).
    pub service_url: String,
    /// The tenant the conversation belongs to.
    pub tenant: String,
    /// When this reference was last confirmed by inbound traffic; stored to the millisecond.
    pub updated_at: Timestamp,
}

/// A signed checkpoint as stored: the tree size and root it states, the signed note, and when
/// it was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub size: u64,
    pub root: Hash,
    /// The C2SP signed note (checkpoint text, blank line, signature line).
    pub note: String,
    /// Stored to the millisecond.
    pub signed_at: Timestamp,
}

/// Everything Countersign persists. Each method that changes state is one transaction that
/// also appends the audit entries recording the change; a method that returns an error or a
/// refusal has written nothing.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// In one transaction: computes the run gate for `run` (`None` → open; stopped if the run
    /// is stopped; paused if the run is paused or another request of the same requester's
    /// run is pending, not held, and pauses the run; else open), calls `submit(gate)`, inserts
    /// the request and appends its events (actor: the requester; with the request id, digest
    /// and policy hash). `run` must name the request's `action.run` and requester. Returns the
    /// stored request.
    async fn submit(
        &self,
        run: Option<RunOf<'_>>,
        now: Timestamp,
        submit: Submit,
    ) -> Result<Request, StoreError>;

    /// In one transaction: loads request `id` ([`StoreError::NotFound`] if absent) and applies
    /// `change` ([`Request::apply`]). On `Ok(events)`: writes nothing when `events` is empty; otherwise stores the
    /// request and appends the events (by `actor`). When the request was pausing its run and
    /// no longer is, the run's held requests are released in the same transaction (if the run
    /// is active and nothing else pauses it), recorded with actor `system`, and returned in
    /// `also_changed`. On `Err(refusal)` writes nothing and returns `Ok(Err(refusal))`.
    async fn update_request(
        &self,
        id: &str,
        actor: &str,
        now: Timestamp,
        change: Transition,
    ) -> Result<Result<Updated, Refusal>, StoreError>;

    /// [`Store::submit`] for a call that may be parked, in one transaction: when a request is
    /// parked under `parking`'s requester and key and `parking.attachable` accepts it, nothing
    /// is written and that request is returned ([`Submission::Attached`]); otherwise the pair
    /// is forgotten, the submission is made, and the new request is parked under the pair if
    /// it is pending ([`Submission::New`]). `run`, as for [`Store::submit`].
    async fn submit_parked(
        &self,
        run: Option<RunOf<'_>>,
        parking: Parking<'_>,
        now: Timestamp,
        submit: Submit,
    ) -> Result<Submission, StoreError>;

    async fn get_request(&self, id: &str) -> Result<Option<Request>, StoreError>;

    /// Requests matching `q`, newest first. An unknown `before` cursor is
    /// [`StoreError::NotFound`].
    async fn list_requests(&self, q: &RequestQuery) -> Result<Vec<Request>, StoreError>;

    /// Ids of pending requests whose deadline is at or before `now`, earliest deadline first.
    async fn due_requests(&self, now: Timestamp, limit: u32) -> Result<Vec<String>, StoreError>;

    /// Ids of requests whose execution still runs at `now`, past its deadline (the gateway that
    /// ran it died), earliest deadline first.
    async fn interrupted_executions(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<String>, StoreError>;

    /// In one transaction: applies [`RunState::transition`] (a refusal writes nothing),
    /// stores the run and appends `run.changed` (by `actor`). Stopping denies every pending
    /// request of the run (recorded as `actor`'s doing); resuming releases the held requests
    /// of each requester whose own requests do not pause the run (recorded as `system`'s).
    /// Returns the requests it changed.
    async fn set_run_state(
        &self,
        run: &str,
        target: RunState,
        actor: &PrincipalId,
        now: Timestamp,
    ) -> Result<Result<RunChange, RunRefusal>, StoreError>;

    async fn get_run(&self, run: &str) -> Result<Option<Run>, StoreError>;

    /// Stores an API key's hash (hex SHA-256 of the key) for `principal` and records
    /// `key.created` (the audit entry names the principal, never the key or its hash). A hash
    /// that is already stored is [`StoreError::Conflict`].
    async fn create_key(
        &self,
        key_hash: &str,
        principal: &PrincipalId,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    async fn principal_for_key(&self, key_hash: &str) -> Result<Option<PrincipalId>, StoreError>;

    async fn count_keys(&self) -> Result<u64, StoreError>;

    /// In one transaction: deletes every API key of `principal`, ends every console session of
    /// theirs (however they signed in), and records `key.revoked` with both counts (by
    /// `actor`). Returns `(keys, sessions)`.
    async fn revoke_keys(
        &self,
        principal: &PrincipalId,
        actor: &str,
        now: Timestamp,
    ) -> Result<(u64, u64), StoreError>;

    /// Stores a console session just signed in, and forgets sessions that expired before
    /// `session.created_at`. A hash that is already stored is [`StoreError::Conflict`].
    /// Records no audit entry.
    async fn session_start(&self, session: &ConsoleSession) -> Result<(), StoreError>;

    /// The session whose id hashes to `id_hash`, if it was started and has not been ended
    /// (expired ones may still be returned: the caller compares `expires_at`). One indexed
    /// read: the console does it on every request.
    async fn session_get(&self, id_hash: &str) -> Result<Option<ConsoleSession>, StoreError>;

    /// Ends one session (sign-out). False when it was not there. Records no audit entry.
    async fn session_end(&self, id_hash: &str) -> Result<bool, StoreError>;

    /// Records that a retry by `requester` of the action with `digest` attaches to `request`
    /// (replacing any request recorded before for that pair), and forgets pairs parked before
    /// `at` - [`PARKED_RETENTION_MS`] (7 days). The MCP gateway parks a tool call it answered
    /// "approval pending", so a retry finds its request on any replica and after a restart.
    /// Records no audit entry (parking is not a decision).
    async fn park_call(
        &self,
        requester: &PrincipalId,
        digest: &Digest,
        request: &str,
        at: Timestamp,
    ) -> Result<(), StoreError>;

    /// How many uses the standing approval held by `request` under (`requester`, `key`) has
    /// left, as counted beside its pair (`None`: not counted there). One indexed read.
    async fn standing_uses_left(
        &self,
        requester: &PrincipalId,
        key: &Digest,
        request: &str,
    ) -> Result<Option<u32>, StoreError>;

    /// The request a retry by `requester` of the action with `digest` attaches to, if any. One
    /// indexed read. The request named may since have been decided: the caller reads it.
    async fn parked_call(
        &self,
        requester: &PrincipalId,
        digest: &Digest,
    ) -> Result<Option<String>, StoreError>;

    /// Forgets the pair if it still names `request` (a retry replaced it otherwise). True when
    /// it did. Records no audit entry.
    async fn unpark_call(
        &self,
        requester: &PrincipalId,
        digest: &Digest,
        request: &str,
    ) -> Result<bool, StoreError>;

    /// Takes or renews the lease `name` for `holder` until `until`: true when `holder` holds it
    /// now (it was free, lapsed at `now`, or already `holder`'s). One statement, so two
    /// replicas never both hold it. Records no audit entry.
    async fn lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Records that the callback with replay key `key` was seen, until `until`: true the first
    /// time within that window (the key was unknown, or its window ended by `now`), false for
    /// a replay. Forgets keys whose window ended. Records no audit entry.
    async fn first_sight(
        &self,
        key: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Records a task begun (unless one is already recorded for its request: then nothing
    /// changes and the answer is false), and forgets tasks that ended more than
    /// [`TASK_RETENTION_MS`], or began more than [`UNENDED_TASK_RETENTION_MS`], before it began.
    /// Records no audit entry (the request's entries say what happened).
    async fn task_start(&self, task: &StoredTask) -> Result<bool, StoreError>;

    /// The task of request `id` if `owner` began it (others' tasks do not exist for them). One
    /// indexed read.
    async fn task_get(
        &self,
        id: &str,
        owner: &PrincipalId,
    ) -> Result<Option<StoredTask>, StoreError>;

    /// Takes the lease on carrying out task `id` until `until`, if it has not ended and nobody
    /// holds the lease at `now` (one statement). True when this call took it.
    async fn task_claim(
        &self,
        id: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Ends task `id` with `end` if it has not ended (the first ending wins). True when this
    /// call ended it. Records no audit entry.
    async fn task_end(&self, id: &str, end: &TaskEnd) -> Result<bool, StoreError>;

    async fn totp_get(&self, principal: &PrincipalId) -> Result<Option<TotpState>, StoreError>;

    /// Enrols (or re-enrols) `principal` with `secret`, forgetting the last used step, and
    /// records `mfa.enrolled` (with how it was proven) and a [`FactorChange`]. The caller has
    /// checked `proof`.
    async fn totp_enroll(
        &self,
        principal: &PrincipalId,
        secret: &[u8],
        proof: FactorProof,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Atomically sets the last used step to `step` if `step` is later than it (or none was
    /// used). False when the step (or a later one) was already used; [`StoreError::NotFound`]
    /// when `principal` is not enrolled.
    async fn totp_use_step(&self, principal: &PrincipalId, step: u64) -> Result<bool, StoreError>;

    /// The passkeys (WebAuthn credentials) of `principal`, oldest first.
    async fn passkeys(&self, principal: &PrincipalId) -> Result<Vec<StoredPasskey>, StoreError>;

    /// Stores a newly registered passkey and records `mfa.enrolled` (with how it was proven)
    /// and a [`FactorChange`]. A credential id that is already stored (for anyone) is
    /// [`StoreError::Conflict`]. The caller has checked `proof`.
    async fn passkey_enroll(
        &self,
        passkey: &StoredPasskey,
        proof: FactorProof,
    ) -> Result<(), StoreError>;

    /// In one transaction: removes every second factor of `principal` (TOTP, passkeys, and
    /// their ceremonies), records `mfa.reset` by `actor` and a [`FactorChange`], and says what
    /// was removed. A person without factors is reset all the same (and it is recorded).
    async fn mfa_reset(
        &self,
        principal: &PrincipalId,
        actor: &str,
        now: Timestamp,
    ) -> Result<FactorsRemoved, StoreError>;

    /// The changes to `principal`'s factors at or after `since`, oldest first (at most 20).
    async fn factor_changes(
        &self,
        principal: &PrincipalId,
        since: Timestamp,
    ) -> Result<Vec<FactorChange>, StoreError>;

    /// After a verified assertion: replaces the stored passkey JSON of `credential_id` (its
    /// signature counter moved) and sets its last use. [`StoreError::NotFound`] when
    /// `principal` has no such credential. Records no audit entry (the vote does).
    async fn passkey_used(
        &self,
        principal: &PrincipalId,
        credential_id: &str,
        passkey: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Stores the server-side state of a ceremony just begun, and forgets ceremonies that
    /// expired more than [`CEREMONY_RETENTION_MS`] before this one expires (until then, a late
    /// or replayed finish is still told `Expired` or `Used`). Records no audit entry.
    async fn ceremony_begin(&self, ceremony: &Ceremony) -> Result<(), StoreError>;

    /// Finishes ceremony `id` at most once: in one statement, marks it used if it is unused,
    /// not expired at `now`, and bound to exactly `binding`, and returns its state. Otherwise
    /// nothing changes and the refusal says why (unknown, already used, expired, or bound to
    /// another principal, kind, request, digest or decision).
    async fn ceremony_take(
        &self,
        id: &str,
        binding: &CeremonyBinding,
        now: Timestamp,
    ) -> Result<Result<String, CeremonyRefusal>, StoreError>;

    /// Appends an event not tied to a request (`policy.loaded`, ...). Returns its seq.
    async fn append_event(
        &self,
        actor: &str,
        event: Event,
        policy: Option<&str>,
        now: Timestamp,
    ) -> Result<u64, StoreError>;

    /// Up to `limit` audit entries from seq `from` on, in order. A row that cannot be read as
    /// an entry is [`StoreError::Corrupt`]; use [`Store::verify_audit`] to locate damage.
    async fn audit_entries(&self, from: u64, limit: u32) -> Result<Vec<StoredEntry>, StoreError>;

    /// Recomputes the whole audit log (streaming, in pages) with
    /// [`countersign_audit::Verifier`] and reports the first bad entry.
    async fn verify_audit(&self) -> Result<AuditReport, StoreError> {
        self.verify_audit_against(vec![]).await
    }

    /// [`Store::verify_audit`], also comparing the Merkle tree with each of `checkpoints`
    /// (already opened with a trusted key) at its size.
    async fn verify_audit_against(
        &self,
        checkpoints: Vec<countersign_audit::Checkpoint>,
    ) -> Result<AuditReport, StoreError>;

    /// Atomically claims up to `limit` requests whose channel work is due at `now` (those due
    /// longest), leasing each until `lease_until` so other gateways skip it meanwhile; a
    /// gateway that dies holding a claim thus loses it when the lease ends. A change to a
    /// claimed request makes it due at once again (with a new generation). The order of the
    /// returned claims is unspecified. Records no audit entry.
    ///
    /// Every request reviewed by people (`decision.effect` is `review`) is marked due, in the
    /// same transaction, whenever it is submitted or stored changed.
    async fn claim_notifications(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<NotifyClaim>, StoreError>;

    /// Ends the work on a claim. If the request has not changed since (its generation is
    /// still `generation`): `next == None` removes it from the queue, `Some(t)` makes it due
    /// again at `t` (a reminder). If it changed, it is made due at `now` so the change is
    /// handled soon. A request no longer queued is fine. Records no audit entry.
    async fn finish_notification(
        &self,
        request_id: &str,
        generation: i64,
        next: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// The channel messages posted for `request_id`, by target.
    async fn channel_messages(&self, request_id: &str) -> Result<Vec<ChannelMessage>, StoreError>;

    /// Stores (or replaces) the message of `message.request_id` in `message.target`.
    /// [`StoreError::NotFound`] when there is no such request. Records no audit entry.
    async fn save_channel_message(&self, message: &ChannelMessage) -> Result<(), StoreError>;

    /// Stores (or replaces) the reference of `reference.conversation` in `reference.channel`.
    /// Records no audit entry.
    async fn save_conversation(&self, reference: &ConversationRef) -> Result<(), StoreError>;

    /// The stored reference of `conversation` in `channel`, if any.
    async fn conversation(
        &self,
        channel: &str,
        conversation: &str,
    ) -> Result<Option<ConversationRef>, StoreError>;
    // --- the Merkle tree over the audit log, and what hangs off it ---

    /// How many audit entries are committed: the size of the tree.
    async fn audit_size(&self) -> Result<u64, StoreError>;

    /// The hashes of the perfect subtrees `ids`, in that order, in one read.
    /// [`StoreError::NotFound`] when one lies beyond the committed log.
    async fn audit_nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, StoreError>;

    /// Stores a signed checkpoint. One of the same size already stored is kept (it states the
    /// same root, or the log was rewritten: either way the first one stands).
    async fn save_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<(), StoreError>;

    /// The checkpoint of the largest size.
    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// Up to `limit` checkpoints of size greater than `after`, smallest first.
    async fn checkpoints(
        &self,
        after: u64,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>, StoreError>;

    /// The seqs of the audit entries about request `id`, in order; `None` when there is no
    /// such request.
    async fn request_audit_seqs(&self, id: &str) -> Result<Option<Vec<u64>>, StoreError>;

    /// Up to `limit` request rows exactly as stored, by id, after id `after` (`None`: from the
    /// first), for [`Store::verify_requests`].
    async fn request_rows(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RequestRow>, StoreError>;

    /// Invariant 10, checked from the whole log: replays every request's audit entries (found
    /// by reading the log, not the rows' own lists) and names each request whose stored state,
    /// votes, grant, digest, entry list or body differs from what its entries produce, or that
    /// the log records and no row holds. Empty: every row is what its log says.
    async fn verify_requests(&self) -> Result<Vec<RequestMismatch>, StoreError> {
        integrity::verify_requests(self).await
    }

    /// Where consumer `name` of the log is: the next seq to hand it (`None`: never set).
    async fn audit_cursor(&self, name: &str) -> Result<Option<u64>, StoreError>;

    /// Moves consumer `name` on to `next_seq`. Records no audit entry.
    async fn set_audit_cursor(&self, name: &str, next_seq: u64) -> Result<(), StoreError>;

    /// The number of committed audit entries as this process last saw it change: it moves on
    /// after every commit made through this store (changes by other processes are seen by
    /// [`Store::audit_size`] only).
    fn audit_watch(&self) -> tokio::sync::watch::Receiver<u64>;

    /// What other processes on the same database commit, as they commit it (their audit
    /// entries also move [`Store::audit_watch`]); `None` for a store only this process writes
    /// (SQLite). A lagging receiver may have missed changes: treat a lag as
    /// [`StoreChange::Everything`].
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<StoreChange>> {
        None
    }

    /// The tree root at `size` (at most [`Store::audit_size`]).
    async fn audit_root(&self, size: u64) -> Result<Hash, StoreError> {
        let ids = Frontier::subtrees(size);
        Ok(merkle::fold(&self.audit_nodes(&ids).await?))
    }

    /// The RFC 9162 inclusion proof of entry `index` in the tree of `size` entries.
    async fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
        let plan =
            merkle::inclusion_plan(index, size).map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.assemble(&plan).await
    }

    /// The RFC 9162 consistency proof from the tree of `from` entries to that of `to`.
    async fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, StoreError> {
        let plan =
            merkle::consistency_plan(from, to).map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.assemble(&plan).await
    }

    /// Reads every subtree a proof plan needs, in one read, and folds them into the proof.
    async fn assemble(&self, plan: &merkle::Plan) -> Result<Vec<Hash>, StoreError> {
        let ids = merkle::plan_nodes(plan);
        let hashes = self.audit_nodes(&ids).await?;
        let found: std::collections::HashMap<NodeId, Hash> = ids.into_iter().zip(hashes).collect();
        merkle::assemble(plan, |id| found.get(&id).copied())
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}
