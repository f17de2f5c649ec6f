//! The writes about runs: pausing, resuming and stopping one (the core's `RunState` rules),
//! freeing the requests a run held, and denying a stopped run's pending requests, each recorded
//! as whoever did it.

use super::{WriteTx, park_formed, record_and_save, verified};
use crate::audit_log::{Subject, at_of};
use crate::columns::{request_from_body, to_millisecond};
use crate::{RunChange, StoreError};
use countersign_core::run::RunRefusal;
use countersign_core::{Event, PrincipalId, Request, Run, RunState, Timestamp};

/// Frees the held requests of `run` (only those of `only`, when given) when the run is active,
/// oldest first: for each requester, as long as no request of theirs pauses the run, stopping
/// after one that itself does. Recorded as `system`'s doing. The caller has opened the
/// savepoint.
pub(crate) async fn release_held<T: WriteTx>(
    tx: &mut T,
    run: &str,
    only: Option<&str>,
    now: Timestamp,
) -> Result<Vec<Request>, StoreError> {
    let (stored, _) = tx.run_facts(run, only).await?;
    if !RunState::may_release(stored) {
        return Ok(vec![]);
    }
    let held = tx.held_requests(run).await?;
    let at = at_of(now);
    let mut changed = vec![];
    // Requesters whose part of the run is (still, or again) paused by one of their requests.
    let mut paused: Vec<String> = vec![];
    for row in held {
        let requester = request_from_body(&row.body)?.requester().id.to_string();
        if only.is_some_and(|o| o != requester) || paused.contains(&requester) {
            continue;
        }
        if tx.run_facts(run, Some(requester.as_str())).await?.1 {
            paused.push(requester);
            continue;
        }
        // Releasing may approve: a row that is not what its log recorded is refused.
        let mut request = verified(tx, &row).await?;
        let events = request.free_held(now);
        if events.is_empty() {
            continue;
        }
        record_and_save(tx, &at, "system", &events, &request, now).await?;
        // Released with its review complete, it may have formed a standing approval (or
        // approved a plan).
        park_formed(tx, false, true, &request, now).await?;
        if request.pauses_run() {
            paused.push(requester);
        }
        changed.push(request);
    }
    Ok(changed)
}

pub(crate) async fn set_run_state<T: WriteTx>(
    tx: &mut T,
    run: String,
    target: RunState,
    actor: &PrincipalId,
    now: Timestamp,
) -> Result<Result<RunChange, RunRefusal>, StoreError> {
    let (stored_state, _) = tx.run_facts(&run, None).await?;
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
    tx.savepoint().await?;
    tx.upsert_run(&stored).await?;
    let at = at_of(now);
    let event = Event::RunChanged {
        run: stored.id.clone(),
        state,
    };
    let no_subject = Subject::None { policy: None };
    tx.journal().append(&at, actor.as_str(), &event, no_subject);
    let changed = match state {
        RunState::Stopped => stop_pending(tx, &stored.id, actor, now).await?,
        RunState::Active => release_held(tx, &stored.id, None, now).await?,
        RunState::Paused => vec![],
    };
    Ok(Ok(RunChange {
        run: stored,
        changed,
    }))
}

/// Denies every pending request of a stopped run, recorded as the doing of whoever stopped it.
pub(crate) async fn stop_pending<T: WriteTx>(
    tx: &mut T,
    run: &str,
    actor: &PrincipalId,
    now: Timestamp,
) -> Result<Vec<Request>, StoreError> {
    let pending = tx.pending_requests(run).await?;
    let at = at_of(now);
    let mut changed = Vec::with_capacity(pending.len());
    for row in pending {
        // Stopping only denies, which is safe whatever the row says: a row that does not match
        // its log is reported loudly but still denied, so a stop always takes effect.
        let mut request = match verified(tx, &row).await {
            Ok(request) => request,
            Err(StoreError::Integrity(_)) => request_from_body(&row.body)?,
            Err(e) => return Err(e),
        };
        let events = request.stop_with_run(now);
        if events.is_empty() {
            continue;
        }
        record_and_save(tx, &at, actor.as_str(), &events, &request, now).await?;
        changed.push(request);
    }
    Ok(changed)
}
