//! What each write does, in SQLite's SQL, inside the writer's open transaction and the op's
//! savepoint. Each function either succeeds with everything it wrote (the request or run and
//! the audit entries recording the change) or fails and is rolled back whole by the writer.
//!
//! These functions decide nothing about requests: closures call the core's state machine, and
//! the run rules come from `crate::runs`.

use super::writer::{Answer, Op, hold};
use crate::audit_log::{AuditHead, Subject, at_of};
use crate::columns::{
    RequestColumns, millis, parse_run_state, request_from_body, run_state_str, signed,
    to_millisecond,
};
use crate::runs::{self, pauses_run};
use crate::{RequestChange, RunChange, StoreError, Submit, Updated};
use countersign_audit::StoredEntry;
use countersign_core::run::RunRefusal;
use countersign_core::{Event, PrincipalId, Refusal, Request, Run, RunGate, RunState, Timestamp};
use sqlx::{Row, SqliteConnection};
use std::panic::{AssertUnwindSafe, catch_unwind};

type Conn = SqliteConnection;

/// Runs `op` and holds its answer until the group commits.
pub(super) async fn execute(op: Op, conn: &mut Conn, head: &mut AuditHead) -> (Answer, bool) {
    match op {
        Op::Submit {
            run,
            now,
            submit,
            reply,
        } => hold(
            reply,
            submit_request(conn, head, run.as_deref(), now, submit).await,
        ),
        Op::Update {
            id,
            actor,
            now,
            change,
            reply,
        } => hold(
            reply,
            update_request(conn, head, &id, &actor, now, change).await,
        ),
        Op::SetRun {
            run,
            target,
            actor,
            now,
            reply,
        } => hold(
            reply,
            set_run_state(conn, head, run, target, &actor, now).await,
        ),
        Op::CreateKey {
            key_hash,
            principal,
            now,
            reply,
        } => hold(
            reply,
            create_key(conn, head, &key_hash, principal, now).await,
        ),
        Op::TotpEnroll {
            principal,
            secret,
            now,
            reply,
        } => hold(
            reply,
            totp_enroll(conn, head, principal, &secret, now).await,
        ),
        Op::TotpUseStep {
            principal,
            step,
            reply,
        } => hold(reply, totp_use_step(conn, &principal, step).await),
        Op::Append {
            actor,
            event,
            policy,
            now,
            reply,
        } => {
            let subject = Subject::None {
                policy: policy.as_deref(),
            };
            let at = at_of(now);
            hold(
                reply,
                record_one(conn, head, &at, &actor, &event, subject).await,
            )
        }
    }
}

/// The head after the last stored audit entry.
pub(super) async fn load_head(conn: &mut Conn) -> Result<AuditHead, StoreError> {
    let last = sqlx::query("SELECT seq, chain FROM audit ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    match last {
        None => Ok(AuditHead::empty()),
        Some(row) => AuditHead::after_row(row.try_get(0)?, row.try_get::<&[u8], _>(1)?)
            .map_err(StoreError::Corrupt),
    }
}

/// Calls a caller's closure, turning a panic into an error instead of killing the writer.
fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, StoreError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| StoreError::Invalid(format!("{what} panicked")))
}

async fn submit_request(
    conn: &mut Conn,
    head: &mut AuditHead,
    run: Option<&str>,
    now: Timestamp,
    submit: Submit,
) -> Result<Request, StoreError> {
    let gate = match run {
        None => RunGate::Open,
        Some(run) => {
            let stored = run_state(conn, run).await?;
            let paused_by_request = match stored {
                Some(RunState::Paused | RunState::Stopped) => false,
                _ => run_is_paused_by_a_request(conn, run).await?,
            };
            runs::gate(stored, paused_by_request)
        }
    };
    let (request, events) = guarded("the submit closure", || submit(gate))?;
    if request.action.run.as_deref() != run {
        return Err(StoreError::Invalid(format!(
            "request {} belongs to run {:?} but was submitted for run {run:?}",
            request.id, request.action.run
        )));
    }
    insert_request(conn, &request).await?;
    let actor = request.requester.id.as_str();
    record(
        conn,
        head,
        &at_of(now),
        actor,
        &events,
        Subject::Request(&request),
    )
    .await?;
    Ok(request)
}

async fn update_request(
    conn: &mut Conn,
    head: &mut AuditHead,
    id: &str,
    actor: &str,
    now: Timestamp,
    change: RequestChange,
) -> Result<Result<Updated, Refusal>, StoreError> {
    let stored = load_request(conn, id).await?.ok_or(StoreError::NotFound)?;
    let mut request = stored.clone();
    let events = match guarded("the request change", || change(&mut request))? {
        Ok(events) => events,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if events.is_empty() {
        return Ok(Ok(Updated {
            request: stored,
            also_changed: vec![],
        }));
    }
    if request.id != stored.id {
        return Err(StoreError::Invalid(format!(
            "a change turned request {} into request {}",
            stored.id, request.id
        )));
    }
    save_request(conn, &request).await?;
    record(
        conn,
        head,
        &at_of(now),
        actor,
        &events,
        Subject::Request(&request),
    )
    .await?;
    let mut also_changed = vec![];
    if pauses_run(&stored)
        && !pauses_run(&request)
        && let Some(run) = request.action.run.as_deref()
    {
        also_changed = release_held(conn, head, run, now).await?;
    }
    Ok(Ok(Updated {
        request,
        also_changed,
    }))
}

/// Frees the held requests of `run` when it is active and no request pauses it, oldest first,
/// stopping after one that itself pauses the run. Recorded as `system`'s doing.
async fn release_held(
    conn: &mut Conn,
    head: &mut AuditHead,
    run: &str,
    now: Timestamp,
) -> Result<Vec<Request>, StoreError> {
    if !runs::may_release(run_state(conn, run).await?)
        || run_is_paused_by_a_request(conn, run).await?
    {
        return Ok(vec![]);
    }
    let held = load_requests(
        conn,
        "SELECT body FROM requests WHERE run = ?1 AND state = 'pending' AND held = 1 \
         ORDER BY created_at, id",
        run,
    )
    .await?;
    let at = at_of(now);
    let mut changed = vec![];
    for mut request in held {
        let events = runs::free_held(&mut request, now);
        if events.is_empty() {
            continue;
        }
        save_request(conn, &request).await?;
        record(
            conn,
            head,
            &at,
            "system",
            &events,
            Subject::Request(&request),
        )
        .await?;
        let now_pauses = pauses_run(&request);
        changed.push(request);
        if now_pauses {
            break;
        }
    }
    Ok(changed)
}

async fn set_run_state(
    conn: &mut Conn,
    head: &mut AuditHead,
    run: String,
    target: RunState,
    actor: &PrincipalId,
    now: Timestamp,
) -> Result<Result<RunChange, RunRefusal>, StoreError> {
    let current = run_state(conn, &run).await?.unwrap_or_default();
    let state = match current.transition(target) {
        Ok(state) => state,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let stored = Run {
        id: run,
        state,
        updated_by: actor.clone(),
        updated_at: to_millisecond(now),
    };
    sqlx::query(
        "INSERT INTO runs (id, state, updated_by, updated_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (id) DO UPDATE SET state = excluded.state, \
         updated_by = excluded.updated_by, updated_at = excluded.updated_at",
    )
    .bind(&stored.id)
    .bind(run_state_str(state))
    .bind(actor.as_str())
    .bind(millis(stored.updated_at))
    .execute(&mut *conn)
    .await?;
    let at = at_of(now);
    let event = Event::RunChanged {
        run: stored.id.clone(),
        state,
    };
    let no_subject = Subject::None { policy: None };
    record_one(conn, head, &at, actor.as_str(), &event, no_subject).await?;
    let changed = match state {
        RunState::Stopped => stop_pending(conn, head, &stored.id, actor, now).await?,
        RunState::Active => release_held(conn, head, &stored.id, now).await?,
        RunState::Paused => vec![],
    };
    Ok(Ok(RunChange {
        run: stored,
        changed,
    }))
}

/// Denies every pending request of a stopped run, recorded as the doing of whoever stopped it.
async fn stop_pending(
    conn: &mut Conn,
    head: &mut AuditHead,
    run: &str,
    actor: &PrincipalId,
    now: Timestamp,
) -> Result<Vec<Request>, StoreError> {
    let pending = load_requests(
        conn,
        "SELECT body FROM requests WHERE run = ?1 AND state = 'pending' ORDER BY created_at, id",
        run,
    )
    .await?;
    let at = at_of(now);
    let mut changed = Vec::with_capacity(pending.len());
    for mut request in pending {
        let events = request.stop_with_run(now);
        if events.is_empty() {
            continue;
        }
        save_request(conn, &request).await?;
        record(
            conn,
            head,
            &at,
            actor.as_str(),
            &events,
            Subject::Request(&request),
        )
        .await?;
        changed.push(request);
    }
    Ok(changed)
}

async fn create_key(
    conn: &mut Conn,
    head: &mut AuditHead,
    key_hash: &str,
    principal: PrincipalId,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO api_keys (key_hash, principal, created_at) VALUES (?1, ?2, ?3)")
        .bind(key_hash)
        .bind(principal.as_str())
        .bind(millis(now))
        .execute(&mut *conn)
        .await
        .map_err(|e| match StoreError::is_unique_violation(&e) {
            true => StoreError::Conflict("an API key with this hash".into()),
            false => e.into(),
        })?;
    let event = Event::KeyCreated { principal };
    let no_subject = Subject::None { policy: None };
    record_one(conn, head, &at_of(now), "system", &event, no_subject).await?;
    Ok(())
}

async fn totp_enroll(
    conn: &mut Conn,
    head: &mut AuditHead,
    principal: PrincipalId,
    secret: &[u8],
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO totp (principal, secret, last_step, enrolled_at) VALUES (?1, ?2, NULL, ?3) \
         ON CONFLICT (principal) DO UPDATE SET secret = excluded.secret, last_step = NULL, \
         enrolled_at = excluded.enrolled_at",
    )
    .bind(principal.as_str())
    .bind(secret)
    .bind(millis(now))
    .execute(&mut *conn)
    .await?;
    let actor = principal.to_string();
    let event = Event::MfaEnrolled { principal };
    let no_subject = Subject::None { policy: None };
    record_one(conn, head, &at_of(now), &actor, &event, no_subject).await?;
    Ok(())
}

async fn totp_use_step(
    conn: &mut Conn,
    principal: &PrincipalId,
    step: u64,
) -> Result<bool, StoreError> {
    let step = signed(step, "TOTP step")?;
    let used = sqlx::query(
        "UPDATE totp SET last_step = ?2 WHERE principal = ?1 \
         AND (last_step IS NULL OR last_step < ?2)",
    )
    .bind(principal.as_str())
    .bind(step)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if used == 1 {
        return Ok(true);
    }
    let enrolled: Option<i64> = sqlx::query_scalar("SELECT 1 FROM totp WHERE principal = ?1")
        .bind(principal.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    match enrolled {
        Some(_) => Ok(false),
        None => Err(StoreError::NotFound),
    }
}

/// The stored state of a run; `None` when nobody ever changed it (it is active).
async fn run_state(conn: &mut Conn, run: &str) -> Result<Option<RunState>, StoreError> {
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM runs WHERE id = ?1")
        .bind(run)
        .fetch_optional(&mut *conn)
        .await?;
    state.as_deref().map(parse_run_state).transpose()
}

async fn run_is_paused_by_a_request(conn: &mut Conn, run: &str) -> Result<bool, StoreError> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM requests WHERE run = ?1 AND pauses_run = 1 LIMIT 1")
            .bind(run)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(found.is_some())
}

async fn load_request(conn: &mut Conn, id: &str) -> Result<Option<Request>, StoreError> {
    let body: Option<String> = sqlx::query_scalar("SELECT body FROM requests WHERE id = ?1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    body.as_deref().map(request_from_body).transpose()
}

/// The requests a one-parameter query selects (by their `body`).
async fn load_requests(
    conn: &mut Conn,
    sql: &'static str,
    param: &str,
) -> Result<Vec<Request>, StoreError> {
    let bodies: Vec<String> = sqlx::query_scalar(sql)
        .bind(param)
        .fetch_all(&mut *conn)
        .await?;
    bodies.iter().map(|b| request_from_body(b)).collect()
}

async fn insert_request(conn: &mut Conn, r: &Request) -> Result<(), StoreError> {
    let c = RequestColumns::of(r)?;
    sqlx::query(
        "INSERT INTO requests \
         (id, state, run, requester, created_at, expires_at, held, pauses_run, body) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .bind(c.id)
    .bind(c.state)
    .bind(c.run)
    .bind(c.requester)
    .bind(c.created_at)
    .bind(c.expires_at)
    .bind(c.held)
    .bind(c.pauses_run)
    .bind(c.body)
    .execute(&mut *conn)
    .await
    .map_err(|e| match StoreError::is_unique_violation(&e) {
        true => StoreError::Conflict(format!("request {}", r.id)),
        false => e.into(),
    })?;
    Ok(())
}

async fn save_request(conn: &mut Conn, r: &Request) -> Result<(), StoreError> {
    let c = RequestColumns::of(r)?;
    let updated = sqlx::query(
        "UPDATE requests SET state = ?2, run = ?3, requester = ?4, created_at = ?5, \
         expires_at = ?6, held = ?7, pauses_run = ?8, body = ?9 WHERE id = ?1",
    )
    .bind(c.id)
    .bind(c.state)
    .bind(c.run)
    .bind(c.requester)
    .bind(c.created_at)
    .bind(c.expires_at)
    .bind(c.held)
    .bind(c.pauses_run)
    .bind(c.body)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    match updated {
        1 => Ok(()),
        _ => Err(StoreError::NotFound),
    }
}

/// Appends one audit entry per event, all at `at`, by `actor`, about `subject`.
async fn record(
    conn: &mut Conn,
    head: &mut AuditHead,
    at: &str,
    actor: &str,
    events: &[Event],
    subject: Subject<'_>,
) -> Result<(), StoreError> {
    for event in events {
        record_one(conn, head, at, actor, event, subject).await?;
    }
    Ok(())
}

/// Appends one audit entry and returns its seq.
async fn record_one(
    conn: &mut Conn,
    head: &mut AuditHead,
    at: &str,
    actor: &str,
    event: &Event,
    subject: Subject<'_>,
) -> Result<u64, StoreError> {
    let entry = head.seal(at, actor, event, subject);
    insert_audit(conn, &entry).await?;
    Ok(entry.seq)
}

async fn insert_audit(conn: &mut Conn, e: &StoredEntry) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO audit (seq, bytes, leaf, chain) VALUES (?1, ?2, ?3, ?4)")
        .bind(signed(e.seq, "audit seq")?)
        .bind(e.bytes.as_slice())
        .bind(e.leaf.as_slice())
        .bind(e.chain.as_slice())
        .execute(&mut *conn)
        .await?;
    Ok(())
}
