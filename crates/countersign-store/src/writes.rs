//! What each write does, backend-neutral: the steps of submitting, changing a request,
//! pausing, resuming or stopping a run, creating a key, enrolling or resetting second factors,
//! written once against [`WriteTx`], the handful of primitives a backend provides inside its
//! open transaction. SQLite's writer thread and PostgreSQL's per-call transactions both run
//! these.
//!
//! Every request whose review involves people (`decision.effect` is `review`) is marked in the
//! notification queue by the same write that inserts or saves it, so its channel messages are
//! updated even if the process dies right after the commit.
//!
//! Each function either succeeds with everything it wrote (rows, and audit entries staged in
//! the journal) or fails and is undone whole by the caller. A function that may write more
//! than one statement opens the savepoint first; a single statement is atomic on its own.
//!
//! Nothing here decides about requests: a change is a core `Transition` that `Request::apply`
//! carries out, a submission the caller's call of `Request::submit`, and the run
//! rules are the core's too (`RunGate::of`, `RunState::may_release`, `Request::pauses_run`,
//! `Request::free_held`).

use crate::audit_log::{Journal, Subject, at_of};
use crate::columns::{RequestColumns, request_from_body};
use crate::submission::{PreparedSubmission, guarded};
use crate::tree::{parse_seq_list, seq_list};
use crate::{FactorChange, FactorsRemoved, RunOf, StoreError, Submit, Updated};
use countersign_core::replay::{RECORDED_HASH, body_sha256};
use countersign_core::{
    Effect, Event, PrincipalId, Refusal, Request, Run, RunGate, RunState, Timestamp, Transition,
};

mod accounts;
mod runs;
pub(crate) use accounts::*;
pub(crate) use runs::*;

/// The primitives a backend offers inside one open write transaction.
pub(crate) trait WriteTx {
    /// Where this transaction's audit entries are staged.
    fn journal(&mut self) -> &mut Journal;
    /// Makes the rest of this write undoable on its own (once per write).
    async fn savepoint(&mut self) -> Result<(), StoreError>;
    /// The stored state of a run (`None`: never changed, so active), and whether a request of
    /// `requester` in the run pauses it (`None`: of anyone).
    async fn run_facts(
        &mut self,
        run: &str,
        requester: Option<&str>,
    ) -> Result<(Option<RunState>, bool), StoreError>;
    /// Request `id`'s row, locked for this transaction where the backend locks rows.
    async fn load_row(&mut self, id: &str) -> Result<Option<StoredRow>, StoreError>;
    /// The rows of pending, held requests of `run`, oldest first.
    async fn held_requests(&mut self, run: &str) -> Result<Vec<StoredRow>, StoreError>;
    /// The rows of pending requests of `run`, oldest first.
    async fn pending_requests(&mut self, run: &str) -> Result<Vec<StoredRow>, StoreError>;
    /// The stored bytes of committed audit entry `seq` (not those staged in the journal).
    async fn audit_entry(&mut self, seq: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// [`StoreError::Conflict`] when the id exists.
    async fn insert_request(&mut self, row: &RequestColumns) -> Result<(), StoreError>;
    /// Stores the request of `row` and appends `audit_seqs` (as [`seq_list`] writes them) to
    /// its list.
    async fn save_request(
        &mut self,
        row: &RequestColumns,
        audit_seqs: &str,
    ) -> Result<(), StoreError>;
    /// Queues `request`'s channel work, due at `now`: a new row with generation 1, or the
    /// existing row due at `now` with its generation increased.
    async fn mark_notify(&mut self, request: &str, now: Timestamp) -> Result<(), StoreError>;
    async fn upsert_run(&mut self, run: &Run) -> Result<(), StoreError>;
    /// [`StoreError::Conflict`] when the hash exists.
    async fn insert_key(
        &mut self,
        key_hash: &str,
        principal: &PrincipalId,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    async fn upsert_totp(
        &mut self,
        principal: &PrincipalId,
        secret: &[u8],
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// [`StoreError::Conflict`] when the credential id exists.
    async fn insert_passkey(&mut self, passkey: &crate::StoredPasskey) -> Result<(), StoreError>;
    /// Deletes every API key of `principal`; how many there were.
    async fn delete_keys(&mut self, principal: &PrincipalId) -> Result<u64, StoreError>;
    /// Deletes every console session of `principal`; how many there were.
    async fn delete_sessions(&mut self, principal: &PrincipalId) -> Result<u64, StoreError>;
    async fn insert_factor_change(&mut self, change: &FactorChange) -> Result<(), StoreError>;
    /// Deletes `principal`'s TOTP enrolment, passkeys and ceremonies; says what was removed.
    async fn delete_factors(
        &mut self,
        principal: &PrincipalId,
    ) -> Result<FactorsRemoved, StoreError>;
    /// The id of the request parked under (`requester`, `digest`: lower-case hex), if any.
    async fn parked_call(
        &mut self,
        requester: &str,
        digest: &str,
    ) -> Result<Option<String>, StoreError>;
    /// Parks `request` under the pair (replacing what was there) and forgets pairs parked
    /// before the retention (`crate::parked`).
    async fn park_call(
        &mut self,
        requester: &str,
        digest: &str,
        request: &str,
        at: Timestamp,
    ) -> Result<(), StoreError>;
    /// Forgets the pair if it names `request`.
    async fn unpark_call(
        &mut self,
        requester: &str,
        digest: &str,
        request: &str,
    ) -> Result<(), StoreError>;
    /// Parks `request` under the pair with `uses` to count (a standing approval); kept past the
    /// retention.
    async fn park_counted(
        &mut self,
        requester: &str,
        digest: &str,
        request: &str,
        uses: u32,
        at: Timestamp,
    ) -> Result<(), StoreError>;
    /// Takes one use counted under the pair, if one is left: the holder and the uses left.
    async fn take_use(
        &mut self,
        requester: &str,
        digest: &str,
    ) -> Result<Option<(String, u32)>, StoreError>;
    /// [`WriteTx::take_use`] only while the pair names `request`: true when a use was taken.
    async fn take_use_of(
        &mut self,
        requester: &str,
        digest: &str,
        request: &str,
    ) -> Result<bool, StoreError>;
    /// This write cannot be undone on its own (a statement meant to undo an earlier one
    /// failed): the whole transaction it is part of must be rolled back, nothing in it
    /// acknowledged. A transaction of this one write rolls back on the error anyway.
    fn abandon(&mut self, error: StoreError);
    /// Gives back the use [`WriteTx::take_use`] took.
    async fn give_back_use(&mut self, requester: &str, digest: &str) -> Result<(), StoreError>;
    /// The uses left of the approval `request` holds under the pair (`None`: none counted).
    async fn uses_left(
        &mut self,
        requester: &str,
        digest: &str,
        request: &str,
    ) -> Result<Option<u32>, StoreError>;
    /// No use left for the approval `request` holds under the pair (revoked).
    async fn end_uses(
        &mut self,
        requester: &str,
        digest: &str,
        request: &str,
    ) -> Result<(), StoreError>;
}

/// A submission waiting for the writer: prepared already (no run, so the gate is open), or to
/// be prepared once its run's gate is known.
pub(crate) enum Pending<'a> {
    Prepared(Box<PreparedSubmission>),
    Gated {
        run: RunOf<'a>,
        submit: Submit,
    },
    /// No run, and likely not needed: an earlier approval's request was built ahead
    /// ([`ParkedKey::prebuild`]), so this one is prepared only if that does not cover it.
    Unprepared(Submit),
}

/// A parking key as stored.
pub(crate) struct ParkedKey {
    pub requester: String,
    pub digest: String,
    pub attachable: fn(&Request) -> bool,
    /// The idempotency key as stored (a pair of `parked_calls` under its hash), and the digest
    /// of the action submitted with it.
    pub idempotency: Option<(String, countersign_core::Digest)>,
    /// Earlier approvals that may cover the submission ([`crate::Cover`]), in order.
    pub covers: Vec<CoverKey>,
}

/// [`crate::Cover`] as the write takes it.
pub(crate) struct CoverKey {
    pub key: String,
    pub counted: bool,
    pub known: Option<std::sync::Arc<Request>>,
    pub submit: crate::CoverSubmit,
    /// The covered request built from `known` and prepared ahead of the write, with the id of
    /// the holder it was built from ([`ParkedKey::prebuild`]).
    pub prebuilt: Option<(String, Box<PreparedSubmission>)>,
}

impl ParkedKey {
    /// The key of `parking`.
    pub fn of(parking: crate::Parking<'_>) -> Self {
        ParkedKey {
            requester: parking.requester.as_str().to_owned(),
            digest: crate::parked::digest_column(parking.key),
            attachable: parking.attachable,
            idempotency: parking
                .idempotency
                .map(|i| (crate::parked::digest_column(i.key), *i.action)),
            covers: parking
                .covers
                .into_iter()
                .map(|c| CoverKey {
                    key: crate::parked::digest_column(c.key),
                    counted: c.counted,
                    known: c.known,
                    submit: c.submit,
                    prebuilt: None,
                })
                .collect(),
        }
    }
}

impl ParkedKey {
    /// For a submission without a run (its gate is open), builds and prepares each counted
    /// cover's request from the holder the caller knows, here, in the caller's task: the write
    /// then only takes the use and inserts it. Nothing is written. True when one was built.
    pub fn prebuild(&mut self, now: Timestamp) -> Result<bool, StoreError> {
        for cover in &mut self.covers {
            let Some(holder) = cover.known.as_ref().filter(|_| cover.counted) else {
                continue;
            };
            let Some(built) = guarded("the cover closure", || (cover.submit)(holder))? else {
                continue;
            };
            let crate::Covering {
                request, events, ..
            } = built;
            let prepared = PreparedSubmission::new(
                None,
                RunGate::Open,
                now,
                Box::new(move |_| (request, events)),
            )?;
            cover.prebuilt = Some((holder.id().to_owned(), Box::new(prepared)));
        }
        Ok(self.covers.iter().any(|c| c.prebuilt.is_some()))
    }
}

/// Approves a submission at once with the earlier approval the pair names (its holder), if
/// the holder covers it, the run is open and the holder accepts the use: the use is recorded
/// on the holder and the covered request inserted, in this write. `None`: nothing was written.
async fn try_cover<T: WriteTx>(
    tx: &mut T,
    requester: &str,
    cover: CoverKey,
    run: Option<RunOf<'_>>,
    alone: bool,
    now: Timestamp,
) -> Result<Option<Request>, StoreError> {
    let (id, counted) = if cover.counted {
        // Built ahead from the holder the pair names: take a use from that holder only, then
        // insert. Two single statements, so no savepoint when nothing else is written (`alone`);
        // should the insert fail, the use is given back, and should that fail, the whole
        // transaction is abandoned.
        if let Some((built_from, prepared)) = cover.prebuilt {
            if !alone {
                tx.savepoint().await?;
            }
            if tx.take_use_of(requester, &cover.key, &built_from).await? {
                return match insert_prepared(tx, *prepared).await {
                    Ok(request) => Ok(Some(request)),
                    Err(e) => {
                        if let Err(undo) = tx.give_back_use(requester, &cover.key).await {
                            tx.abandon(undo);
                        }
                        Err(e)
                    }
                };
            }
        }
        // The use first: one conditional statement finds the holder and takes it. More
        // statements follow, so under the savepoint.
        tx.savepoint().await?;
        match tx.take_use(requester, &cover.key).await? {
            Some((id, left)) => (id, Some(left)),
            None => return Ok(None),
        }
    } else {
        match tx.parked_call(requester, &cover.key).await? {
            Some(id) => (id, None),
            None => return Ok(None),
        }
    };
    // A counted holder the caller saw verified is used as it was: it changes only by a
    // revocation, which ends the count (so `take_use` found none).
    let known = match (&counted, cover.known) {
        (Some(_), Some(holder)) if holder.id() == id => Some(Request::clone(&holder)),
        _ => None,
    };
    let loaded = match known {
        Some(holder) => Some(holder),
        None => match tx.load_row(&id).await? {
            Some(row) => Some(verified(tx, &row).await?),
            None => None,
        },
    };
    let built = match loaded {
        Some(mut holder) => {
            if let Some(left) = counted {
                holder.count_standing_uses(left);
            }
            let gate = match run {
                None => RunGate::Open,
                Some(of) => {
                    let (stored, paused) =
                        tx.run_facts(of.run, Some(of.requester.as_str())).await?;
                    RunGate::of(stored, paused)
                }
            };
            match gate {
                RunGate::Open => guarded("the cover closure", || (cover.submit)(&holder))?
                    .map(|built| (holder, built)),
                _ => None,
            }
        }
        None => None,
    };
    let Some((holder, built)) = built else {
        if counted.is_some() {
            tx.give_back_use(requester, &cover.key).await?;
        }
        return Ok(None);
    };
    let crate::Covering {
        request,
        events,
        holder_change,
    } = built;
    let prepared = PreparedSubmission::new(
        run,
        RunGate::Open,
        now,
        Box::new(move |_| (request, events)),
    )?;
    if let Some(change) = holder_change {
        let mut used = holder;
        let events = match guarded("the holder's change", || used.apply(&change, now))? {
            Ok(events) => events,
            Err(_) => return Ok(None),
        };
        tx.savepoint().await?;
        record_and_save(tx, &at_of(now), requester, &events, &used, now).await?;
    }
    Ok(Some(insert_prepared(tx, prepared).await?))
}

/// `Store::submit_parked`'s steps: attach to the parked request if the caller's rule allows,
/// else submit (parking the new request if it is pending).
pub(crate) async fn submit_parked<T: WriteTx>(
    tx: &mut T,
    mut key: ParkedKey,
    now: Timestamp,
    pending: Pending<'_>,
) -> Result<crate::Submission, StoreError> {
    if let Some((idempotency, action)) = &key.idempotency
        && let Some(id) = tx.parked_call(&key.requester, idempotency).await?
        && let Some(row) = tx.load_row(&id).await?
    {
        let request = request_from_body(&row.body)?;
        return Ok(if request.digest() == *action {
            crate::Submission::Replayed(request)
        } else {
            crate::Submission::KeyReused(request)
        });
    }
    let parked = tx.parked_call(&key.requester, &key.digest).await?;
    if let Some(id) = &parked
        && let Some(row) = tx.load_row(id).await?
    {
        let request = request_from_body(&row.body)?;
        if (key.attachable)(&request) {
            if let Some((idempotency, _)) = &key.idempotency {
                tx.savepoint().await?;
                tx.park_call(&key.requester, idempotency, request.id(), now)
                    .await?;
            }
            return Ok(crate::Submission::Attached(request));
        }
    }
    let run = match &pending {
        Pending::Prepared(_) | Pending::Unprepared(_) => None,
        Pending::Gated { run, .. } => Some(*run),
    };
    let mut covered = None;
    // A covered request written with nothing else (no pair to forget, no idempotency key to
    // park) may need no savepoint.
    let alone = parked.is_none() && key.idempotency.is_none();
    for cover in std::mem::take(&mut key.covers) {
        covered = try_cover(tx, &key.requester, cover, run, alone, now).await?;
        if covered.is_some() {
            break;
        }
    }
    if let Some(request) = covered {
        if let Some(id) = &parked {
            tx.unpark_call(&key.requester, &key.digest, id).await?;
        }
        if let Some((idempotency, _)) = &key.idempotency {
            tx.park_call(&key.requester, idempotency, request.id(), now)
                .await?;
        }
        return Ok(crate::Submission::New(request));
    }
    // More than one statement from here (forgetting the pair, parking the new request): undo
    // them all if one fails. An allowed call with nothing parked is one insert and needs none.
    let single = parked.is_none()
        && key.idempotency.is_none()
        && matches!(&pending, Pending::Prepared(p) if p.request.state() != countersign_core::State::Pending);
    if !single {
        tx.savepoint().await?;
    }
    if let Some(id) = &parked {
        tx.unpark_call(&key.requester, &key.digest, id).await?;
    }
    let request = match pending {
        Pending::Prepared(prepared) => insert_prepared(tx, *prepared).await?,
        Pending::Gated { run, submit } => submit_request(tx, Some(run), now, submit).await?,
        Pending::Unprepared(submit) => submit_request(tx, None, now, submit).await?,
    };
    if request.state() == countersign_core::State::Pending {
        tx.park_call(&key.requester, &key.digest, request.id(), now)
            .await?;
    }
    if let Some((idempotency, _)) = &key.idempotency {
        tx.park_call(&key.requester, idempotency, request.id(), now)
            .await?;
    }
    Ok(crate::Submission::New(request))
}

pub(crate) async fn submit_request<T: WriteTx>(
    tx: &mut T,
    run: Option<RunOf<'_>>,
    now: Timestamp,
    submit: Submit,
) -> Result<Request, StoreError> {
    let gate = match run {
        None => RunGate::Open,
        Some(of) => {
            let (stored, paused_by_request) =
                tx.run_facts(of.run, Some(of.requester.as_str())).await?;
            RunGate::of(stored, paused_by_request)
        }
    };
    insert_prepared(tx, PreparedSubmission::new(run, gate, now, submit)?).await
}

/// Inserts a prepared submission. For most requests that is one statement, so no savepoint is
/// needed; a reviewed request is also queued for its channels, and then the savepoint comes
/// first.
pub(crate) async fn insert_prepared<T: WriteTx>(
    tx: &mut T,
    prepared: PreparedSubmission,
) -> Result<Request, StoreError> {
    let reviewed = is_reviewed(&prepared.request);
    // The entries first, so the row can name their seqs; a failed insert undoes them too.
    let first = tx.journal().head().next_seq;
    for entry in &prepared.entries {
        tx.journal().append_prepared(entry);
    }
    let mut row = prepared.row;
    row.audit_seqs = seq_list(first..tx.journal().head().next_seq);
    if reviewed {
        tx.savepoint().await?;
    }
    tx.insert_request(&row).await?;
    if reviewed {
        tx.mark_notify(prepared.request.id(), prepared.now).await?;
    }
    Ok(prepared.request)
}

pub(crate) async fn update_request<T: WriteTx>(
    tx: &mut T,
    id: &str,
    actor: &str,
    now: Timestamp,
    change: Transition,
) -> Result<Result<Updated, Refusal>, StoreError> {
    let row = tx.load_row(id).await?.ok_or(StoreError::NotFound)?;
    let stored = verified(tx, &row).await?;
    let mut request = stored.clone();
    // A revocation records the uses made (counted beside the pair), then ends the count.
    let counted = match (&change, stored.standing()) {
        (Transition::RevokeStanding { .. }, Some(standing)) => {
            let requester = stored.requester().id.as_str();
            let key = crate::parked::digest_column(&standing.key);
            if let Some(left) = tx.uses_left(requester, &key, id).await? {
                request.count_standing_uses(left);
            }
            Some(key)
        }
        _ => None,
    };
    let events = match guarded("the request change", || request.apply(&change, now))? {
        Ok(events) => events,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if events.is_empty() {
        return Ok(Ok(Updated {
            request: stored,
            audit_entries: vec![],
            also_changed: vec![],
        }));
    }
    tx.savepoint().await?;
    let seqs = record_and_save(tx, &at_of(now), actor, &events, &request, now).await?;
    if let Some(key) = counted {
        tx.end_uses(request.requester().id.as_str(), &key, id)
            .await?;
    }
    let was_pending = stored.state() == countersign_core::State::Pending;
    park_formed(tx, stored.standing().is_some(), was_pending, &request, now).await?;
    let mut also_changed = vec![];
    if stored.pauses_run()
        && !request.pauses_run()
        && let Some(run) = request.action().run.as_deref()
    {
        let requester = request.requester().id.as_str();
        also_changed = release_held(tx, run, Some(requester), now).await?;
    }
    Ok(Ok(Updated {
        request,
        audit_entries: seqs.collect(),
        also_changed,
    }))
}

/// What a change of `request` formed that later submissions find by key, parked in this
/// write: a standing approval (it `had` none before), and an approved plan's reviewed steps
/// (it `was_pending`). The pair (requester, key) names `request`.
async fn park_formed<T: WriteTx>(
    tx: &mut T,
    had: bool,
    was_pending: bool,
    request: &Request,
    now: Timestamp,
) -> Result<(), StoreError> {
    let requester = request.requester().id.as_str();
    if !had && let Some(standing) = request.standing() {
        let key = crate::parked::digest_column(&standing.key);
        tx.park_counted(requester, &key, request.id(), standing.uses, now)
            .await?;
    }
    if was_pending
        && request.state() == countersign_core::State::Approved
        && let Some(plan) = request.plan()
    {
        for key in plan.keys() {
            let key = crate::parked::digest_column(&key);
            tx.park_call(requester, &key, request.id(), now).await?;
        }
    }
    Ok(())
}

/// Records `events` (one entry each, at `at`, by `actor`, each noting the hash of the body
/// about to be stored), stores the changed request with the seqs of those entries and, when
/// people review it, queues its channel work. Returns the seqs. The caller has opened the
/// savepoint.
async fn record_and_save<T: WriteTx>(
    tx: &mut T,
    at: &str,
    actor: &str,
    events: &[Event],
    request: &Request,
    now: Timestamp,
) -> Result<std::ops::Range<u64>, StoreError> {
    let row = RequestColumns::of(request)?;
    let hash = body_sha256(row.body.as_bytes());
    let seqs = record(
        tx.journal(),
        at,
        actor,
        events,
        Subject::Request(request, &hash),
    );
    tx.save_request(&row, &seq_list(seqs.clone())).await?;
    if is_reviewed(request) {
        tx.mark_notify(request.id(), now).await?;
    }
    Ok(seqs)
}

/// A request row as the write path loads it: the body exactly as stored (its hash is what the
/// audit entries record) and the seqs of its entries.
#[derive(Debug)]
pub(crate) struct StoredRow {
    pub body: String,
    pub audit_seqs: String,
}

/// Invariant 10 at the moment of acting: the request of `row`, if its body is exactly the one
/// its last audit entry recorded (`request_sha256`, written by the same transaction as the
/// body). Every transition that may approve, vote or redeem loads its request through here,
/// so a row edited in the database is refused ([`StoreError::Integrity`], logged as an error)
/// before anything is acted on, and a new entry never vouches for an edited row. Entries
/// written before the hash was recorded are trusted as they are.
///
/// The last entry is found through the row's own `audit_seqs`; `audit verify` finds every
/// entry from the log itself, so a row whose list was cut short is named there.
pub(crate) async fn verified<T: WriteTx>(
    tx: &mut T,
    row: &StoredRow,
) -> Result<Request, StoreError> {
    let request = request_from_body(&row.body)?;
    let refuse = |why: String| Err(integrity_error(request.id(), why));
    let Some(seq) = parse_seq_list(&row.audit_seqs)?.last().copied() else {
        return refuse("its row names no audit entries".into());
    };
    let staged = tx
        .journal()
        .staged()
        .iter()
        .find(|e| e.seq == seq)
        .map(|e| e.bytes.clone());
    let bytes = match staged {
        Some(bytes) => bytes,
        None => match tx.audit_entry(seq).await? {
            Some(bytes) => bytes,
            None => return refuse(format!("its last audit entry #{seq} does not exist")),
        },
    };
    let Ok(entry) = serde_json::from_slice::<RecordedEntry>(&bytes) else {
        return refuse(format!("its last audit entry #{seq} cannot be read"));
    };
    if entry.request.as_deref() != Some(request.id()) {
        return refuse(format!(
            "its last audit entry #{seq} is about another request"
        ));
    }
    if let Some(h) = entry.data.get(RECORDED_HASH).and_then(|h| h.as_str())
        && h != body_sha256(row.body.as_bytes())
    {
        return refuse(format!(
            "the stored row is not the one its last audit entry #{seq} recorded"
        ));
    }
    Ok(request)
}

/// The error for request `id` failing the check, logged as an error: someone edited the
/// database, and an operator must look.
fn integrity_error(id: &str, why: String) -> StoreError {
    tracing::error!(
        request = %id, problem = %why,
        "INTEGRITY: a stored request does not match its audit log; refusing to act on it"
    );
    StoreError::Integrity(format!("request {id}: {why}"))
}

/// The fields of an audit entry the check above reads.
#[derive(serde::Deserialize)]
struct RecordedEntry {
    request: Option<String>,
    data: serde_json::Value,
}

/// True when people review `request`, so channels show it and must follow its changes (not
/// one an earlier approval (standing, or a plan) approved at once: nobody was asked).
fn is_reviewed(request: &Request) -> bool {
    request.decision().effect == Effect::Review && !request.is_covered()
}

/// Stages one audit entry per event, all at `at`, by `actor`, about `subject`; returns their
/// seqs.
fn record(
    journal: &mut Journal,
    at: &str,
    actor: &str,
    events: &[Event],
    subject: Subject<'_>,
) -> std::ops::Range<u64> {
    let first = journal.head().next_seq;
    for event in events {
        journal.append(at, actor, event, subject);
    }
    first..journal.head().next_seq
}

/// Stages an event not tied to a request; returns its seq.
pub(crate) fn append_event(
    journal: &mut Journal,
    actor: &str,
    event: &Event,
    policy: Option<&str>,
    now: Timestamp,
) -> u64 {
    journal.append(&at_of(now), actor, event, Subject::None { policy })
}
