//! The single writer with group commit. Every write of a [`super::SqliteStore`] is an [`Op`]
//! sent to one task that owns the only writing connection. The task takes whatever is queued
//! (up to [`MAX_GROUP`] ops), runs them in one `BEGIN IMMEDIATE` transaction with a savepoint
//! around each (an op that fails rolls back to its savepoint only), commits once, and only then
//! answers every op. One fsync thus acknowledges the whole group: durability without paying a
//! disk flush per request.
//!
//! The audit head (next sequence number, last chain hash) lives here in memory, so appending
//! needs no read. It advances with each op, is restored when an op rolls back, and is reloaded
//! from the database when a commit fails. Nothing else may write to the database while the
//! writer runs.

use super::ops;
use crate::audit_log::AuditHead;
use crate::{RequestChange, RunChange, StoreError, Submit, Updated};
use countersign_core::run::RunRefusal;
use countersign_core::{Event, PrincipalId, Refusal, Request, RunState, Timestamp};
use sqlx::SqliteConnection;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// The most ops committed together.
pub(super) const MAX_GROUP: usize = 256;

/// How many ops may wait for the writer before senders wait too (back-pressure).
const QUEUE: usize = 4 * MAX_GROUP;

pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// One write, with the channel its answer goes back on.
pub(super) enum Op {
    Submit {
        run: Option<String>,
        now: Timestamp,
        submit: Submit,
        reply: Reply<Request>,
    },
    Update {
        id: String,
        actor: String,
        now: Timestamp,
        change: RequestChange,
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
    TotpEnroll {
        principal: PrincipalId,
        secret: Vec<u8>,
        now: Timestamp,
        reply: Reply<()>,
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
}

impl Op {
    /// Answers an op that was never run.
    fn reject(self, e: StoreError) {
        // A caller that stopped waiting has nobody to tell; ignoring the send error is right.
        match self {
            Op::Submit { reply, .. } => drop(reply.send(Err(e))),
            Op::Update { reply, .. } => drop(reply.send(Err(e))),
            Op::SetRun { reply, .. } => drop(reply.send(Err(e))),
            Op::CreateKey { reply, .. } => drop(reply.send(Err(e))),
            Op::TotpEnroll { reply, .. } => drop(reply.send(Err(e))),
            Op::TotpUseStep { reply, .. } => drop(reply.send(Err(e))),
            Op::Append { reply, .. } => drop(reply.send(Err(e))),
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

/// Starts the writer on `conn`, a connection to a migrated database.
pub(super) async fn spawn(
    mut conn: SqliteConnection,
) -> Result<(mpsc::Sender<Op>, JoinHandle<()>), StoreError> {
    let head = ops::load_head(&mut conn).await?;
    let (tx, rx) = mpsc::channel(QUEUE);
    let task = tokio::spawn(
        Writer {
            conn,
            head,
            rx,
            stopped: None,
        }
        .run(),
    );
    Ok((tx, task))
}

struct Writer {
    conn: SqliteConnection,
    head: AuditHead,
    rx: mpsc::Receiver<Op>,
    /// Set when the writer can no longer append safely; every later op gets this error.
    stopped: Option<StoreError>,
}

impl Writer {
    async fn run(mut self) {
        let mut group = Vec::with_capacity(MAX_GROUP);
        while self.rx.recv_many(&mut group, MAX_GROUP).await > 0 {
            self.commit_group(&mut group).await;
        }
        if let Err(e) = sqlx::Connection::close(self.conn).await {
            tracing::warn!(error = %e, "closing the SQLite writer connection failed");
        }
    }

    async fn commit_group(&mut self, group: &mut Vec<Op>) {
        if let Some(e) = &self.stopped {
            group.drain(..).for_each(|op| op.reject(e.clone()));
            return;
        }
        if let Err(e) = self.exec("BEGIN IMMEDIATE").await {
            tracing::error!(error = %e, ops = group.len(), "could not begin a write transaction");
            group.drain(..).for_each(|op| op.reject(e.clone()));
            return;
        }
        let mut answers = Vec::with_capacity(group.len());
        let mut broken = None;
        for op in group.drain(..) {
            if let Some(e) = &broken {
                op.reject(StoreError::clone(e));
                continue;
            }
            let (answer, error) = self.run_op(op).await;
            answers.extend(answer);
            broken = error;
        }
        let outcome = match broken {
            Some(e) => Err(e),
            None => self.exec("COMMIT").await,
        };
        match outcome {
            Ok(()) => answers.into_iter().for_each(|answer| answer(None)),
            Err(e) => {
                tracing::error!(error = %e, ops = answers.len(), "a write group failed to commit");
                if let Err(rollback) = self.exec("ROLLBACK").await {
                    tracing::error!(error = %rollback, "rolling back the failed group failed");
                }
                self.reload_head().await;
                answers.into_iter().for_each(|answer| answer(Some(&e)));
            }
        }
    }

    /// Runs one op inside its own savepoint. Returns its held answer (none if it never ran),
    /// and an error when the savepoint machinery failed and the group must be abandoned.
    async fn run_op(&mut self, op: Op) -> (Option<Answer>, Option<StoreError>) {
        if let Err(e) = self.exec("SAVEPOINT op").await {
            op.reject(e.clone());
            return (None, Some(e));
        }
        let before = self.head;
        let (answer, ok) = ops::execute(op, &mut self.conn, &mut self.head).await;
        let end = if ok {
            self.exec("RELEASE op").await
        } else {
            self.head = before;
            match self.exec("ROLLBACK TO op").await {
                Ok(()) => self.exec("RELEASE op").await,
                Err(e) => Err(e),
            }
        };
        (Some(answer), end.err())
    }

    async fn exec(&mut self, sql: &'static str) -> Result<(), StoreError> {
        sqlx::query(sql).execute(&mut self.conn).await?;
        Ok(())
    }

    /// After a failed commit the database holds the last committed head; so must we.
    async fn reload_head(&mut self) {
        match ops::load_head(&mut self.conn).await {
            Ok(head) => self.head = head,
            Err(e) => {
                // Without a trustworthy head every later append would break the chain; stop
                // accepting writes rather than record a log that does not verify.
                tracing::error!(error = %e, "could not reload the audit head; the writer stops");
                self.stopped = Some(StoreError::Unavailable(format!(
                    "the writer stopped after a failed commit: {e}"
                )));
            }
        }
    }
}
