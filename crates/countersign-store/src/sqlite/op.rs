//! What one write to SQLite is, for the writer and the modules that carry writes out: the
//! [`Op`] queued for the writer thread with the channel its answer goes back on, the [`Tx`] it
//! works with inside the group's transaction, and how its answer is held until the group
//! commits. Runs nothing itself (`writer` runs the group, `ops` dispatches each op).

use crate::audit_log::Journal;
use crate::submission::PreparedSubmission;
use crate::{ChannelMessage, ConversationRef, NotifyClaim, RunChange, StoreError, Submit, Updated};
use countersign_core::run::RunRefusal;
use countersign_core::{Event, PrincipalId, Refusal, Request, RunState, Timestamp, Transition};
use rusqlite::Connection;
use tokio::sync::oneshot;

pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// One write, with the channel its answer goes back on.
pub(super) enum Op {
    Submit {
        /// The run and its requester.
        run: Option<(String, PrincipalId)>,
        now: Timestamp,
        submit: Submit,
        reply: Reply<Request>,
    },
    /// `Store::submit_parked`: `prepared` when there is no run, else `run` and `submit`.
    SubmitParked {
        key: crate::writes::ParkedKey,
        run: Option<(String, PrincipalId)>,
        prepared: Option<Box<PreparedSubmission>>,
        submit: Option<Submit>,
        now: Timestamp,
        reply: Reply<crate::Submission>,
    },
    /// A submission prepared by the caller (see `crate::submission`).
    Insert {
        prepared: Box<PreparedSubmission>,
        reply: Reply<Request>,
    },
    Update {
        id: String,
        actor: String,
        now: Timestamp,
        change: Transition,
        reply: Reply<Result<Updated, Refusal>>,
    },
    SetRun {
        run: String,
        target: RunState,
        actor: PrincipalId,
        now: Timestamp,
        reply: Reply<Result<RunChange, RunRefusal>>,
    },
    CreateKey {
        key_hash: String,
        principal: PrincipalId,
        now: Timestamp,
        reply: Reply<()>,
    },
    RevokeKeys {
        principal: PrincipalId,
        actor: String,
        now: Timestamp,
        reply: Reply<(u64, u64)>,
    },
    SessionStart {
        session: Box<crate::ConsoleSession>,
        reply: Reply<()>,
    },
    SessionEnd {
        id_hash: String,
        reply: Reply<bool>,
    },
    FirstSight {
        key: String,
        now: Timestamp,
        until: Timestamp,
        reply: Reply<bool>,
    },
    Lease {
        name: String,
        holder: String,
        now: Timestamp,
        until: Timestamp,
        reply: Reply<bool>,
    },
    TaskStart {
        task: Box<crate::StoredTask>,
        reply: Reply<bool>,
    },
    TaskClaim {
        id: String,
        now: Timestamp,
        until: Timestamp,
        reply: Reply<bool>,
    },
    TaskEnd {
        id: String,
        end: Box<crate::TaskEnd>,
        reply: Reply<bool>,
    },
    /// Requester, lower-case hex digest and request id of a parked call.
    Park {
        requester: String,
        digest: String,
        request: String,
        at: Timestamp,
        reply: Reply<()>,
    },
    Unpark {
        requester: String,
        digest: String,
        request: String,
        reply: Reply<bool>,
    },
    TotpEnroll {
        principal: PrincipalId,
        secret: Vec<u8>,
        proof: crate::FactorProof,
        now: Timestamp,
        reply: Reply<()>,
    },
    MfaReset {
        principal: PrincipalId,
        actor: String,
        now: Timestamp,
        reply: Reply<crate::FactorsRemoved>,
    },
    TotpUseStep {
        principal: PrincipalId,
        step: u64,
        reply: Reply<bool>,
    },
    Append {
        actor: String,
        event: Event,
        policy: Option<String>,
        now: Timestamp,
        reply: Reply<u64>,
    },
    ClaimNotifications {
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
        reply: Reply<Vec<NotifyClaim>>,
    },
    FinishNotification {
        request_id: String,
        generation: i64,
        next: Option<Timestamp>,
        now: Timestamp,
        reply: Reply<()>,
    },
    SaveChannelMessage {
        message: Box<ChannelMessage>,
        reply: Reply<()>,
    },
    SaveConversation {
        reference: Box<ConversationRef>,
        reply: Reply<()>,
    },
    PasskeyEnroll {
        passkey: Box<crate::StoredPasskey>,
        proof: crate::FactorProof,
        reply: Reply<()>,
    },
    PasskeyUsed {
        principal: PrincipalId,
        credential_id: String,
        passkey: String,
        now: Timestamp,
        reply: Reply<()>,
    },
    CeremonyBegin {
        ceremony: Box<crate::Ceremony>,
        reply: Reply<()>,
    },
    CeremonyTake {
        id: String,
        binding: Box<crate::CeremonyBinding>,
        now: Timestamp,
        reply: Reply<Result<String, crate::CeremonyRefusal>>,
    },
    SaveCheckpoint {
        checkpoint: Box<crate::StoredCheckpoint>,
        reply: Reply<()>,
    },
    SetCursor {
        name: String,
        next_seq: u64,
        reply: Reply<()>,
    },
}

impl Op {
    /// Answers an op that was never run.
    pub(super) fn reject(self, e: StoreError) {
        // A caller that stopped waiting has nobody to tell; ignoring the send error is right.
        match self {
            Op::Submit { reply, .. } => drop(reply.send(Err(e))),
            Op::Insert { reply, .. } => drop(reply.send(Err(e))),
            Op::SubmitParked { reply, .. } => drop(reply.send(Err(e))),
            Op::Update { reply, .. } => drop(reply.send(Err(e))),
            Op::SetRun { reply, .. } => drop(reply.send(Err(e))),
            Op::CreateKey { reply, .. } => drop(reply.send(Err(e))),
            Op::RevokeKeys { reply, .. } => drop(reply.send(Err(e))),
            Op::SessionStart { reply, .. } => drop(reply.send(Err(e))),
            Op::SessionEnd { reply, .. } => drop(reply.send(Err(e))),
            Op::FirstSight { reply, .. } => drop(reply.send(Err(e))),
            Op::Lease { reply, .. } => drop(reply.send(Err(e))),
            Op::TaskStart { reply, .. } => drop(reply.send(Err(e))),
            Op::TaskClaim { reply, .. } => drop(reply.send(Err(e))),
            Op::TaskEnd { reply, .. } => drop(reply.send(Err(e))),
            Op::Park { reply, .. } => drop(reply.send(Err(e))),
            Op::Unpark { reply, .. } => drop(reply.send(Err(e))),
            Op::TotpEnroll { reply, .. } => drop(reply.send(Err(e))),
            Op::TotpUseStep { reply, .. } => drop(reply.send(Err(e))),
            Op::MfaReset { reply, .. } => drop(reply.send(Err(e))),
            Op::Append { reply, .. } => drop(reply.send(Err(e))),
            Op::ClaimNotifications { reply, .. } => drop(reply.send(Err(e))),
            Op::FinishNotification { reply, .. } => drop(reply.send(Err(e))),
            Op::SaveChannelMessage { reply, .. } => drop(reply.send(Err(e))),
            Op::SaveConversation { reply, .. } => drop(reply.send(Err(e))),
            Op::PasskeyEnroll { reply, .. } => drop(reply.send(Err(e))),
            Op::PasskeyUsed { reply, .. } => drop(reply.send(Err(e))),
            Op::CeremonyBegin { reply, .. } => drop(reply.send(Err(e))),
            Op::CeremonyTake { reply, .. } => drop(reply.send(Err(e))),
            Op::SaveCheckpoint { reply, .. } => drop(reply.send(Err(e))),
            Op::SetCursor { reply, .. } => drop(reply.send(Err(e))),
        }
    }
}

/// An op's result, held back until its group has committed (`None`) or failed (`Some`).
pub(super) type Answer = Box<dyn FnOnce(Option<&StoreError>) + Send>;

/// Holds `result` for `reply`; the flag says whether the op succeeded (and so keeps its
/// writes) or must roll back to its savepoint.
pub(super) fn hold<T: Send + 'static>(
    reply: Reply<T>,
    result: Result<T, StoreError>,
) -> (Answer, bool) {
    let ok = result.is_ok();
    let answer = Box::new(move |group_failed: Option<&StoreError>| {
        let result = match (result, group_failed) {
            (Ok(_), Some(e)) => Err(e.clone()),
            (result, _) => result,
        };
        // The caller may have given up waiting; the outcome is durable (or not) either way.
        let _ = reply.send(result);
    });
    (answer, ok)
}

/// What an op works with: the connection inside the open transaction, and the journal its
/// audit entries go to. An op that may write more than one statement opens its savepoint
/// (with [`Tx::savepoint`]) before the first; a single statement is atomic on its own, so the
/// common ops (a submission, a key) pay for no savepoint at all.
pub(super) struct Tx<'a> {
    pub conn: &'a Connection,
    pub journal: &'a mut Journal,
    /// True once the op opened its savepoint.
    pub savepoint: bool,
    /// Set when the op's writes cannot be undone on their own ([`crate::writes::WriteTx::abandon`]):
    /// the group is rolled back whole.
    pub broken: Option<StoreError>,
}

/// True when SQLite refused a write because the key already exists.
pub(super) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error().map(|f| f.extended_code),
        Some(rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY | rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
    )
}
