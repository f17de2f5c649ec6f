//! The rules that tie requests to their run, backend-neutral: which gate a new request meets,
//! when a request pauses its run, and what happens to a held request when the run frees up.
//! Backends gather the facts (the run's stored state, whether a pausing request exists) with
//! their own SQL and ask these functions what they mean.

use countersign_core::{Event, Request, RunGate, RunState, State, Timestamp};

/// True while `r` holds up the rest of its run: pending, not itself held, and its review asks
/// for the run to pause.
pub(crate) fn pauses_run(r: &Request) -> bool {
    r.state == State::Pending
        && !r.held
        && r.decision
            .requirements
            .as_ref()
            .is_some_and(|req| req.pause_run)
}

/// The gate a new request of a run meets, given the run's stored state (none when the run has
/// never been paused or stopped) and whether another request of the run pauses it.
pub(crate) fn gate(stored: Option<RunState>, paused_by_request: bool) -> RunGate {
    match stored {
        Some(RunState::Stopped) => RunGate::Stopped,
        Some(RunState::Paused) => RunGate::Paused,
        _ if paused_by_request => RunGate::Paused,
        _ => RunGate::Open,
    }
}

/// True when held requests of a run in `stored` state may be released (once nothing else
/// pauses it).
pub(crate) fn may_release(stored: Option<RunState>) -> bool {
    matches!(stored, None | Some(RunState::Active))
}

/// Frees one held request: it expires if its deadline already passed while it waited (a
/// timeout never lets an action through), and is released otherwise.
pub(crate) fn free_held(r: &mut Request, now: Timestamp) -> Vec<Event> {
    if r.is_due(now) {
        r.expire_if_due(now)
    } else {
        r.release(now)
    }
}
