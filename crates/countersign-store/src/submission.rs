//! A submission made ready for storage, backend-neutral: the request built by the caller's
//! closure, its row, and its audit entries in canonical form, waiting only for their sequence
//! numbers. Preparing is the costly part of a submission (a digest, a JSON body, canonical
//! JSON for each entry); doing it before the single writer lets many callers do it at once.
//!
//! Only a submission whose run gate needs no database (one with no run: the gate is open) can
//! be prepared outside the writer; the others are prepared inside it, once the gate is known.

use crate::StoreError;
use crate::audit_log::{Subject, at_of, prepare};
use crate::columns::RequestColumns;
use countersign_audit::UnsequencedEntry;
use countersign_core::replay::body_sha256;
use countersign_core::{Event, Request, RunGate, Timestamp};
use std::panic::{AssertUnwindSafe, catch_unwind};

#[derive(Debug)]
pub(crate) struct PreparedSubmission {
    pub request: Request,
    pub row: RequestColumns,
    pub entries: Vec<UnsequencedEntry>,
    /// When it was submitted.
    pub now: Timestamp,
}

impl PreparedSubmission {
    /// Calls `submit(gate)` and prepares what it returns for a submission to `run`.
    pub fn new(
        run: Option<crate::RunOf<'_>>,
        gate: RunGate,
        now: Timestamp,
        submit: crate::Submit,
    ) -> Result<Self, StoreError> {
        let (request, events) = guarded("the submit closure", || submit(gate))?;
        let given = run.map(|of| (of.run, of.requester));
        let actual = request
            .action()
            .run
            .as_deref()
            .map(|r| (r, &request.requester().id));
        if actual != given {
            return Err(StoreError::Invalid(format!(
                "request {} belongs to run {:?} of {} but was submitted for {given:?}",
                request.id(),
                request.action().run,
                request.requester().id
            )));
        }
        let row = RequestColumns::of(&request)?;
        let entries = entries_for(&request, &row.body, &events, now);
        Ok(PreparedSubmission {
            request,
            row,
            entries,
            now,
        })
    }
}

/// The requester's audit entries for a new request's events.
fn entries_for(
    request: &Request,
    body: &str,
    events: &[Event],
    now: Timestamp,
) -> Vec<UnsequencedEntry> {
    let at = at_of(now);
    let actor = request.requester().id.as_str();
    let hash = body_sha256(body.as_bytes());
    events
        .iter()
        .map(|e| prepare(&at, actor, e, Subject::Request(request, &hash)))
        .collect()
}

/// Calls a caller's closure, turning a panic into an error instead of killing the writer (or
/// the caller's task).
pub(crate) fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, StoreError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| StoreError::Invalid(format!("{what} panicked")))
}
