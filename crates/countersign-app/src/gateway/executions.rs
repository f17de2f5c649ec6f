//! Carrying out approved actions: the gateway runs an executor's action itself
//! ([`Gateway::execute`]), records what it saw of an action it forwarded itself (an MCP request,
//! [`Gateway::observe`]), or the requester reports how the action they ran went
//! ([`Gateway::report`]); executions whose gateway died are closed as `unknown`
//! ([`Gateway::interrupt_due`]).
//!
//! **Invariant (an execution runs at most once, and exactly as recorded):** the write that
//! starts an execution redeems the grant with the *recorded* digest (`Transition::Execute`),
//! and only then is the *recorded* action run; nothing sent at execution time reaches the
//! executor. A second call finds the grant used. Nothing here ever starts an execution again.

use super::{Gateway, GatewayError};
use crate::executors::Checked;
use countersign_core::{ExecStatus, Outcome, Principal, Refusal, Request, Timestamp, Transition};
use std::sync::Arc;
use std::time::Duration;

/// How long after an executor's own timeout a running execution counts as interrupted: the
/// time to record its end (one write, well under a second even on a busy machine).
pub const EXEC_GRACE: Duration = Duration::from_secs(10);

/// When an execution starting `now` counts as interrupted: the executor's timeout and the grace.
pub(super) fn deadline(
    now: countersign_core::Timestamp,
    checked: &Checked,
) -> countersign_core::Timestamp {
    let allowed = checked.timeout + EXEC_GRACE;
    now + chrono::Duration::from_std(allowed).unwrap_or(chrono::Duration::MAX)
}

impl Gateway {
    /// Carries out request `id`'s approved action with its executor, as the requester `who`,
    /// waiting up to `wait` for a decision first. Answers with the request as it stands after
    /// the execution (its `execution` says how it went).
    pub async fn execute(
        self: &Arc<Self>,
        who: &Principal,
        id: &str,
        wait: Option<Duration>,
    ) -> Result<Request, GatewayError> {
        let before = match wait {
            Some(w) => self.wait(who, id, w).await?,
            None => self.get(who, id).await?,
        };
        if before.requester().id != who.id {
            return Err(Refusal::NotGrantHolder.into());
        }
        if before.grant().is_some_and(|g| g.uses_left() == 0) {
            return Err(Refusal::GrantUsed.into());
        }
        let checked = self.executable(before.action())?;
        let now = self.clock.now();
        let start = Transition::Execute {
            by: who.id.clone(),
            digest: before.digest(),
            executor: checked.executor.clone(),
            deadline: deadline(now, &checked),
        };
        let started = match self
            .store
            .update_request(id, who.id.as_str(), now, start)
            .await?
        {
            Ok(updated) => {
                self.after_update(&updated, Some(&before));
                updated.request
            }
            Err(refusal) => return Err(refusal.into()),
        };
        self.run_started(started).await
    }

    /// The executor's check of `action`, or why it cannot be executed.
    pub(super) fn executable(
        &self,
        action: &countersign_core::Action,
    ) -> Result<Checked, GatewayError> {
        self.executors
            .check(action)
            .map_err(GatewayError::Exec)?
            .ok_or_else(|| {
                GatewayError::BadInput(
                    "not_executable",
                    format!(
                        "`{}` is not an executor's action: redeem the grant and run it yourself, \
                         then report its outcome",
                        action.kind
                    ),
                )
            })
    }

    /// Runs the action of `started` (its execution just began) and records its end.
    pub(super) async fn run_started(
        self: &Arc<Self>,
        started: Request,
    ) -> Result<Request, GatewayError> {
        let id = started.id().to_owned();
        tracing::info!(
            request = %id, digest = %started.digest(), principal = %started.requester().id,
            executor = started.execution().and_then(|e| e.executor.as_deref()).unwrap_or(""),
            "execution started"
        );
        // The action runs, and its end is recorded, on a task of its own: a client that leaves
        // does not stop an action under way or lose its outcome.
        let gateway = Arc::clone(self);
        let task = tokio::spawn(async move {
            let outcome = gateway.executors.run(started.action()).await;
            gateway.finish(&started, outcome).await
        });
        match task.await {
            Ok(result) => result,
            Err(e) => {
                tracing::error!(request = %id, error = %e, "the execution task failed");
                Err(GatewayError::ExecutionLost)
            }
        }
    }

    /// Records how the execution of `started` ended.
    async fn finish(&self, started: &Request, outcome: Outcome) -> Result<Request, GatewayError> {
        let status = outcome.status;
        let now = self.clock.now();
        let change = Transition::Finish {
            outcome: Box::new(outcome),
        };
        match self
            .store
            .update_request(started.id(), "system", now, change)
            .await
        {
            Ok(Ok(updated)) => {
                self.after_update(&updated, Some(started));
                self.count_execution(status);
                tracing::info!(request = %started.id(), status = status.as_str(), "execution finished");
                Ok(updated.request)
            }
            Ok(Err(refusal)) => Err(refusal.into()),
            Err(e) => {
                // The execution stays `running` until its deadline, then becomes `unknown`.
                tracing::error!(request = %started.id(), error = %e, "could not record an execution's end");
                Err(e.into())
            }
        }
    }

    /// Records how an action the caller forwarded itself after redeeming its grant went, as the
    /// gateway saw it (`executor`: what it went to, e.g. `mcp:<upstream>`; `started_at`: when it
    /// was sent): once, never as the requester's report. The MCP gateway calls this after it
    /// has answered its agent; nothing a requester sends reaches it. A failure to record is
    /// logged here, with the status that was lost.
    pub async fn observe(
        &self,
        redeemed: &Request,
        executor: &str,
        started_at: Timestamp,
        outcome: Outcome,
    ) -> Result<Request, GatewayError> {
        let status = outcome.status;
        let now = self.clock.now();
        let change = Transition::Observe {
            executor: executor.to_owned(),
            started_at,
            outcome: Box::new(outcome),
        };
        let failed = |e: &dyn std::fmt::Display| {
            tracing::error!(
                request = %redeemed.id(), executor, status = status.as_str(), error = %e,
                "could not record the outcome of a forwarded request; it stays executed without one"
            );
        };
        match self
            .store
            .update_request(redeemed.id(), "system", now, change)
            .await
        {
            Ok(Ok(updated)) => {
                self.after_update(&updated, Some(redeemed));
                self.count_execution(status);
                Ok(updated.request)
            }
            Ok(Err(refusal)) => {
                failed(&refusal);
                Err(refusal.into())
            }
            Err(e) => {
                failed(&e);
                Err(e.into())
            }
        }
    }

    /// The requester reports how the action they ran after redeeming the grant went (once).
    pub async fn report(
        &self,
        who: &Principal,
        id: &str,
        outcome: Outcome,
    ) -> Result<Request, GatewayError> {
        let before = self.get(who, id).await?;
        let status = outcome.status;
        let now = self.clock.now();
        let change = Transition::Report {
            by: who.id.clone(),
            outcome: Box::new(outcome),
        };
        match self
            .store
            .update_request(id, who.id.as_str(), now, change)
            .await?
        {
            Ok(updated) => {
                self.after_update(&updated, Some(&before));
                self.count_execution(status);
                Ok(updated.request)
            }
            Err(refusal) => Err(refusal.into()),
        }
    }

    /// Closes every execution found running past its deadline as `unknown` ("interrupted; not
    /// retried"). Returns how many.
    pub async fn interrupt_due(&self) -> Result<usize, GatewayError> {
        let mut count = 0;
        loop {
            let due = self
                .store
                .interrupted_executions(self.clock.now(), 100)
                .await?;
            let mut refused = 0;
            for id in &due {
                let now = self.clock.now();
                match self
                    .store
                    .update_request(id, "system", now, Transition::Interrupt)
                    .await
                {
                    Ok(Ok(updated)) => {
                        if !updated.audit_entries.is_empty() {
                            tracing::warn!(request = %id, "an execution was interrupted; recorded as unknown, not retried");
                            self.count_execution(ExecStatus::Unknown);
                            count += 1;
                        }
                        self.after_update(&updated, None);
                    }
                    Ok(Err(_)) | Err(countersign_store::StoreError::Integrity(_)) => refused += 1,
                    Err(e) => return Err(e.into()),
                }
            }
            if due.len() < 100 || refused == due.len() {
                return Ok(count);
            }
        }
    }

    fn count_execution(&self, status: ExecStatus) {
        self.metrics
            .executions
            .get_or_create(&crate::metrics::StatusLabel {
                status: status.as_str().to_owned(),
            })
            .inc();
    }
}
