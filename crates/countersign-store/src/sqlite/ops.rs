//! What each write does, in SQLite's SQL, inside the writer's open transaction. Each function
//! either succeeds with everything it wrote (the request or run, and the audit entries staged
//! in the journal) or fails and is undone whole by the writer: a function that may write more
//! than one statement opens its savepoint before the first.
//!
//! These functions decide nothing about requests: closures call the core's state machine, and
//! the run rules come from `crate::runs`.

use super::writer::{Answer, Op, Tx, hold};
use crate::audit_log::{AuditHead, Subject, at_of};
use crate::columns::{
    RequestColumns, millis, parse_run_state, request_from_body, run_state_str, signed,
    to_millisecond,
};
use crate::runs::{self, pauses_run};
use crate::submission::{PreparedSubmission, guarded};
use crate::{RequestChange, RunChange, StoreError, Submit, Updated};
use countersign_audit::StoredEntry;
use countersign_core::run::RunRefusal;
use countersign_core::{Event, PrincipalId, Refusal, Request, Run, RunGate, RunState, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};

type Conn = Connection;

/// Runs `op` and holds its answer until the group commits.
pub(super) fn execute(op: Op, tx: &mut Tx<'_>) -> (Answer, bool) {
    match op {
        Op::Submit {
            run,
            now,
            submit,
            reply,
        } => hold(reply, submit_request(tx, run.as_deref(), now, submit)),
        Op::Insert { prepared, reply } => hold(reply, insert_prepared(tx, *prepared)),
        Op::Update {
            id,
            actor,
            now,
            change,
            reply,
        } => hold(reply, update_request(tx, &id, &actor, now, change)),
        Op::SetRun {
            run,
            target,
            actor,
            now,
            reply,
        } => hold(reply, set_run_state(tx, run, target, &actor, now)),
        Op::CreateKey {
            key_hash,
            principal,
            now,
            reply,
        } => hold(reply, create_key(tx, &key_hash, principal, now)),
        Op::TotpEnroll {
            principal,
            secret,
            now,
            reply,
        } => hold(reply, totp_enroll(tx, principal, &secret, now)),
        Op::TotpUseStep {
            principal,
            step,
            reply,
        } => hold(reply, totp_use_step(tx, &principal, step)),
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
            let seq = tx.journal.append(&at_of(now), &actor, &event, subject);
            hold(reply, Ok(seq))
        }
    }
}

/// The head after the last stored audit entry.
pub(super) fn load_head(conn: &Conn) -> Result<AuditHead, StoreError> {
    let last = conn
        .prepare_cached("SELECT seq, chain FROM audit ORDER BY seq DESC LIMIT 1")?
        .query_row([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
        })
        .optional()?;
    match last {
        None => Ok(AuditHead::empty()),
        Some((seq, chain)) => AuditHead::after_row(seq, &chain).map_err(StoreError::Corrupt),
    }
}

fn submit_request(
    tx: &mut Tx<'_>,
    run: Option<&str>,
    now: Timestamp,
    submit: Submit,
) -> Result<Request, StoreError> {
    let gate = match run {
        None => RunGate::Open,
        Some(run) => {
            let (stored, paused_by_request) = run_facts(tx.conn, run)?;
            runs::gate(stored, paused_by_request)
        }
    };
    insert_prepared(tx, PreparedSubmission::new(run, gate, now, submit)?)
}

/// Inserts a prepared submission: one statement, so no savepoint is needed.
fn insert_prepared(tx: &mut Tx<'_>, prepared: PreparedSubmission) -> Result<Request, StoreError> {
    insert_request(tx.conn, &prepared.row)?;
    for entry in &prepared.entries {
        tx.journal.append_prepared(entry);
    }
    Ok(prepared.request)
}

fn update_request(
    tx: &mut Tx<'_>,
    id: &str,
    actor: &str,
    now: Timestamp,
    change: RequestChange,
) -> Result<Result<Updated, Refusal>, StoreError> {
    let stored = load_request(tx.conn, id)?.ok_or(StoreError::NotFound)?;
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
    tx.savepoint()?;
    save_request(tx.conn, &request)?;
    record(tx, &at_of(now), actor, &events, Subject::Request(&request));
    let mut also_changed = vec![];
    if pauses_run(&stored)
        && !pauses_run(&request)
        && let Some(run) = request.action.run.as_deref()
    {
        also_changed = release_held(tx, run, now)?;
    }
    Ok(Ok(Updated {
        request,
        also_changed,
    }))
}

/// Frees the held requests of `run` when it is active and no request pauses it, oldest first,
/// stopping after one that itself pauses the run. Recorded as `system`'s doing. The caller has
/// opened the savepoint.
fn release_held(tx: &mut Tx<'_>, run: &str, now: Timestamp) -> Result<Vec<Request>, StoreError> {
    let (stored, paused_by_request) = run_facts(tx.conn, run)?;
    if !runs::may_release(stored) || paused_by_request {
        return Ok(vec![]);
    }
    let held = load_requests(
        tx.conn,
        "SELECT body FROM requests WHERE run = ?1 AND state = 'pending' AND held = 1 \
         ORDER BY created_at, id",
        run,
    )?;
    let at = at_of(now);
    let mut changed = vec![];
    for mut request in held {
        let events = runs::free_held(&mut request, now);
        if events.is_empty() {
            continue;
        }
        save_request(tx.conn, &request)?;
        record(tx, &at, "system", &events, Subject::Request(&request));
        let now_pauses = pauses_run(&request);
        changed.push(request);
        if now_pauses {
            break;
        }
    }
    Ok(changed)
}

fn set_run_state(
    tx: &mut Tx<'_>,
    run: String,
    target: RunState,
    actor: &PrincipalId,
    now: Timestamp,
) -> Result<Result<RunChange, RunRefusal>, StoreError> {
    let (stored_state, _) = run_facts(tx.conn, &run)?;
    let state = match stored_state.unwrap_or_default().transition(target) {
        Ok(state) => state,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let stored = Run {
        id: run,
        state,
        updated_by: actor.clone(),
        updated_at: to_millisecond(now),
    };
    tx.savepoint()?;
    tx.conn
        .prepare_cached(
            "INSERT INTO runs (id, state, updated_by, updated_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (id) DO UPDATE SET state = excluded.state, \
             updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        )?
        .execute(params![
            stored.id,
            run_state_str(state),
            actor.as_str(),
            millis(stored.updated_at)
        ])?;
    let at = at_of(now);
    let event = Event::RunChanged {
        run: stored.id.clone(),
        state,
    };
    let no_subject = Subject::None { policy: None };
    tx.journal.append(&at, actor.as_str(), &event, no_subject);
    let changed = match state {
        RunState::Stopped => stop_pending(tx, &stored.id, actor, now)?,
        RunState::Active => release_held(tx, &stored.id, now)?,
        RunState::Paused => vec![],
    };
    Ok(Ok(RunChange {
        run: stored,
        changed,
    }))
}

/// Denies every pending request of a stopped run, recorded as the doing of whoever stopped it.
fn stop_pending(
    tx: &mut Tx<'_>,
    run: &str,
    actor: &PrincipalId,
    now: Timestamp,
) -> Result<Vec<Request>, StoreError> {
    let pending = load_requests(
        tx.conn,
        "SELECT body FROM requests WHERE run = ?1 AND state = 'pending' ORDER BY created_at, id",
        run,
    )?;
    let at = at_of(now);
    let mut changed = Vec::with_capacity(pending.len());
    for mut request in pending {
        let events = request.stop_with_run(now);
        if events.is_empty() {
            continue;
        }
        save_request(tx.conn, &request)?;
        record(tx, &at, actor.as_str(), &events, Subject::Request(&request));
        changed.push(request);
    }
    Ok(changed)
}

fn create_key(
    tx: &mut Tx<'_>,
    key_hash: &str,
    principal: PrincipalId,
    now: Timestamp,
) -> Result<(), StoreError> {
    tx.conn
        .prepare_cached(
            "INSERT INTO api_keys (key_hash, principal, created_at) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![key_hash, principal.as_str(), millis(now)])
        .map_err(|e| match is_unique_violation(&e) {
            true => StoreError::Conflict("an API key with this hash".into()),
            false => e.into(),
        })?;
    let event = Event::KeyCreated { principal };
    let no_subject = Subject::None { policy: None };
    tx.journal.append(&at_of(now), "system", &event, no_subject);
    Ok(())
}

fn totp_enroll(
    tx: &mut Tx<'_>,
    principal: PrincipalId,
    secret: &[u8],
    now: Timestamp,
) -> Result<(), StoreError> {
    tx.conn
        .prepare_cached(
            "INSERT INTO totp (principal, secret, last_step, enrolled_at) \
             VALUES (?1, ?2, NULL, ?3) \
             ON CONFLICT (principal) DO UPDATE SET secret = excluded.secret, \
             last_step = NULL, enrolled_at = excluded.enrolled_at",
        )?
        .execute(params![principal.as_str(), secret, millis(now)])?;
    let actor = principal.to_string();
    let event = Event::MfaEnrolled { principal };
    let no_subject = Subject::None { policy: None };
    tx.journal.append(&at_of(now), &actor, &event, no_subject);
    Ok(())
}

fn totp_use_step(tx: &mut Tx<'_>, principal: &PrincipalId, step: u64) -> Result<bool, StoreError> {
    let step = signed(step, "TOTP step")?;
    let used = tx
        .conn
        .prepare_cached(
            "UPDATE totp SET last_step = ?2 WHERE principal = ?1 \
             AND (last_step IS NULL OR last_step < ?2)",
        )?
        .execute(params![principal.as_str(), step])?;
    if used == 1 {
        return Ok(true);
    }
    let enrolled = tx
        .conn
        .prepare_cached("SELECT 1 FROM totp WHERE principal = ?1")?
        .query_row([principal.as_str()], |row| row.get::<_, i64>(0))
        .optional()?;
    match enrolled {
        Some(_) => Ok(false),
        None => Err(StoreError::NotFound),
    }
}

/// In one query: the stored state of a run (`None` when nobody ever changed it: it is active),
/// and whether a request of the run pauses it.
fn run_facts(conn: &Conn, run: &str) -> Result<(Option<RunState>, bool), StoreError> {
    let (state, paused_by_request) = conn
        .prepare_cached(
            "SELECT (SELECT state FROM runs WHERE id = ?1), \
             EXISTS (SELECT 1 FROM requests WHERE run = ?1 AND pauses_run = 1)",
        )?
        .query_row([run], |row| {
            Ok((row.get::<_, Option<String>>(0)?, row.get::<_, bool>(1)?))
        })?;
    Ok((
        state.as_deref().map(parse_run_state).transpose()?,
        paused_by_request,
    ))
}

fn load_request(conn: &Conn, id: &str) -> Result<Option<Request>, StoreError> {
    let body = conn
        .prepare_cached("SELECT body FROM requests WHERE id = ?1")?
        .query_row([id], |row| row.get::<_, String>(0))
        .optional()?;
    body.as_deref().map(request_from_body).transpose()
}

/// The requests a one-parameter query selects (by their `body`).
fn load_requests(conn: &Conn, sql: &'static str, param: &str) -> Result<Vec<Request>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let bodies = stmt.query_map([param], |row| row.get::<_, String>(0))?;
    bodies.map(|body| request_from_body(&body?)).collect()
}

fn insert_request(conn: &Conn, c: &RequestColumns) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO requests \
         (id, state, run, requester, created_at, expires_at, held, pauses_run, body) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        c.id,
        c.state,
        c.run,
        c.requester,
        c.created_at,
        c.expires_at,
        c.held,
        c.pauses_run,
        c.body
    ])
    .map_err(|e| match is_unique_violation(&e) {
        true => StoreError::Conflict(format!("request {}", c.id)),
        false => e.into(),
    })?;
    Ok(())
}

fn save_request(conn: &Conn, r: &Request) -> Result<(), StoreError> {
    let c = RequestColumns::of(r)?;
    let updated = conn
        .prepare_cached(
            "UPDATE requests SET state = ?2, run = ?3, requester = ?4, created_at = ?5, \
             expires_at = ?6, held = ?7, pauses_run = ?8, body = ?9 WHERE id = ?1",
        )?
        .execute(params![
            c.id,
            c.state,
            c.run,
            c.requester,
            c.created_at,
            c.expires_at,
            c.held,
            c.pauses_run,
            c.body
        ])?;
    match updated {
        1 => Ok(()),
        _ => Err(StoreError::NotFound),
    }
}

/// Stages one audit entry per event, all at `at`, by `actor`, about `subject`.
fn record(tx: &mut Tx<'_>, at: &str, actor: &str, events: &[Event], subject: Subject<'_>) {
    for event in events {
        tx.journal.append(at, actor, event, subject);
    }
}

/// Writes the staged audit entries, in order.
pub(super) fn write_audit(conn: &Conn, entries: &[StoredEntry]) -> Result<(), StoreError> {
    let mut insert =
        conn.prepare_cached("INSERT INTO audit (seq, bytes, leaf, chain) VALUES (?1, ?2, ?3, ?4)")?;
    for e in entries {
        insert.execute(params![
            signed(e.seq, "audit seq")?,
            e.bytes,
            e.leaf.as_slice(),
            e.chain.as_slice()
        ])?;
    }
    Ok(())
}

/// True when SQLite refused a write because the key already exists.
fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error().map(|f| f.extended_code),
        Some(rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY | rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
    )
}
