//! Task-based tool calls (the MCP tasks extension, SEP-2663): when the client declares it, a
//! call that must wait for people is answered at once with a task; the client polls `tasks/get`
//! (hours later, if approvals take hours) or cancels with `tasks/cancel`.
//!
//! The task id is the request id, so the console link and the audit trail name the same thing.
//! A task lives in the store (`Gateway::task_start`), not in this process: until it ends its
//! state is its request's, and when it ends its result (the upstream's answer, or the refusal)
//! is stored once. So `tasks/get` and `tasks/cancel` answer the same after a restart and on any
//! replica, and a task whose gateway stopped is carried on by the next `tasks/get`.
//!
//! Carrying a task out: whoever drives it (the process that began it, or the one a later
//! `tasks/get` reaches, if nobody drives it there) waits while the request is pending; once it
//! is approved, the driver takes the task's lease in the store (`Gateway::task_claim`: one
//! replica at a time, until the upstream's call timeout and a grace have passed), redeems the
//! grant and forwards the recorded call (or has the executor run it), and stores the answer. A
//! lease that lapsed on a request already redeemed means the gateway that held it stopped while
//! forwarding: the task ends `failed`, saying the upstream may or may not have run the call;
//! it is never forwarded again.

use super::Mcp;
use super::answers::{refused_meta, unknown_task};
use super::authorize::{
    Cancelled, Carrier, Hold, Holding, Refused, Submitted, conclude, refusal, review_url,
    until_decided,
};
use super::builtin;
use super::conform;
use super::forward::forward_call;
use countersign_core::{Digest, Principal, Request, State, Timestamp};
use countersign_store::StoredTask;
use futures::FutureExt as _;
use rmcp::model::{
    CallToolResponse, CallToolResult, ContentBlock, CreateTaskResult, DetailedTask, ErrorData,
    JsonObject, Task, TaskPayload, TaskStatus,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const POLL_INTERVAL_MS: u64 = 2000;

/// How long past the upstream's call timeout the driver of an approved task keeps its lease.
const LEASE_GRACE: Duration = Duration::from_secs(60);

/// How long the driver of an approved executor task keeps its lease (an execution has its own
/// deadline, and one whose gateway stopped is ended as interrupted: `Gateway::interrupt_due`).
const EXECUTOR_LEASE: Duration = Duration::from_secs(3600);

/// The tasks this process is driving now, with their latest status message and how
/// `tasks/cancel` reaches their wait. Everything else about a task is in the store.
#[derive(Default)]
pub struct Tasks {
    live: Mutex<HashMap<String, Arc<Live>>>,
}

pub struct Live {
    cancel: CancellationToken,
    /// The latest progress message and when it was set.
    message: Mutex<Option<(String, Timestamp)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn rfc3339(t: Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Tasks {
    /// Marks task `id` as driven here; `None` when it already is.
    fn drive_here(&self, id: &str) -> Option<Arc<Live>> {
        let mut live = lock(&self.live);
        if live.contains_key(id) {
            return None;
        }
        let slot = Arc::new(Live {
            cancel: CancellationToken::new(),
            message: Mutex::new(None),
        });
        live.insert(id.to_owned(), slot.clone());
        Some(slot)
    }

    fn live(&self, id: &str) -> Option<Arc<Live>> {
        lock(&self.live).get(id).cloned()
    }

    fn done(&self, id: &str) {
        lock(&self.live).remove(id);
    }
}

/// Stored task endings.
const COMPLETED: &str = "completed";
const FAILED: &str = "failed";
const CANCELLED: &str = "cancelled";

fn carrier_name(carrier: Carrier) -> &'static str {
    match carrier {
        Carrier::Forward => "forward",
        Carrier::Executor => "executor",
    }
}

/// Answers a held call with a task (recorded in the store, once per request: the same call
/// made again while it runs is the same task), and drives it here.
pub async fn begin(mcp: &Arc<Mcp>, who: &Principal, submitted: Submitted) -> CallToolResponse {
    let carrier = carrier_name(submitted.carrier);
    let task = match mcp
        .gateway
        .task_start(who, &submitted.request, carrier, submitted.parked.as_ref())
        .await
    {
        Ok(task) => task,
        Err(e) => {
            let refused = refusal(e);
            let mut result =
                CallToolResult::error(vec![ContentBlock::text(refused.message.clone())]);
            result.meta = refused_meta(&refused);
            return CallToolResponse::Complete(result);
        }
    };
    drive_unless_driven(mcp, who, &task);
    let view = view(mcp, &task, Some(&submitted.request));
    CallToolResponse::Task(CreateTaskResult::new(view.task))
}

/// `tasks/get`: the task as it stands (its request's state until it ends). A task nobody
/// drives in this process (after a restart, or begun on another replica) is driven from here
/// on.
pub async fn get(mcp: &Arc<Mcp>, who: &Principal, id: &str) -> Result<DetailedTask, ErrorData> {
    let task = stored(mcp, who, id).await?;
    if task.ended.is_none() {
        drive_unless_driven(mcp, who, &task);
    }
    let req = match &task.ended {
        Some(_) => None,
        None => mcp.gateway.get(who, id).await.ok(),
    };
    Ok(view(mcp, &task, req.as_ref()))
}

/// `tasks/result` (the tasks of protocol 2025-11-25, which SEP-2663 folded into `tasks/get`):
/// waits until the task ends, then answers what the call would have: its result once
/// completed, its error once failed, an error naming the request once cancelled. Polls the
/// stored task, so it works the same after a restart and on any replica; `hold` ends the wait
/// when the client goes.
pub async fn result(
    mcp: &Arc<Mcp>,
    who: &Principal,
    id: &str,
    hold: &impl Hold,
) -> Result<JsonObject, ErrorData> {
    loop {
        let task = get(mcp, who, id).await?;
        match task.payload {
            TaskPayload::Completed { result } => return Ok(result),
            TaskPayload::Failed { error } => {
                return Err(
                    serde_json::from_value(Value::Object(error)).unwrap_or_else(|_| {
                        ErrorData::internal_error(format!("task `{id}` failed"), None)
                    }),
                );
            }
            TaskPayload::Cancelled => {
                let message = task.task.status_message.unwrap_or_default();
                return Err(ErrorData::invalid_request(
                    format!("task `{id}` was cancelled: {message}"),
                    Some(json!({"io.countersign/request": id})),
                ));
            }
            _ => {}
        }
        tokio::select! {
            () = tokio::time::sleep(RESULT_POLL) => {}
            _ = hold.cancelled() => {
                return Err(ErrorData::invalid_request("the client left", None));
            }
        }
    }
}

/// How often `tasks/result` looks at a task that has not ended.
const RESULT_POLL: Duration = Duration::from_millis(250);

/// `tasks/cancel`: cancels the request behind a task that has not ended. The wait driven here
/// ends at once; elsewhere (after a restart, another replica) the request is cancelled in the
/// store and the task ends `cancelled`. A request already approved and carried out cannot be
/// cancelled: that is an error, and the task ends with its result.
pub async fn cancel(mcp: &Arc<Mcp>, who: &Principal, id: &str) -> Result<(), ErrorData> {
    let task = stored(mcp, who, id).await?;
    if task.ended.is_some() {
        return Err(ErrorData::invalid_params(
            format!("task `{id}` has already ended"),
            None,
        ));
    }
    if let Some(live) = mcp.tasks.live(id) {
        live.cancel.cancel();
        return Ok(());
    }
    let reason = Cancelled::ByCaller.reason();
    match mcp
        .gateway
        .cancel_because(who, id, countersign_core::Cancellation::Asked, reason)
        .await
    {
        Ok(req) => {
            end_cancelled(
                mcp,
                who,
                &task,
                &req,
                format!("request {id} was cancelled by the client"),
            )
            .await;
            Ok(())
        }
        Err(e) => Err(ErrorData::invalid_params(
            format!("task `{id}` cannot be cancelled: {e}"),
            None,
        )),
    }
}

async fn stored(mcp: &Mcp, who: &Principal, id: &str) -> Result<StoredTask, ErrorData> {
    match mcp.gateway.task(who, id).await {
        Ok(Some(task)) => Ok(task),
        Ok(None) => Err(unknown_task(id)),
        Err(e) => Err(ErrorData::internal_error(
            format!("the task could not be read: {e}"),
            None,
        )),
    }
}

/// The task as the client sees it: its ending once ended, else working, with the latest
/// progress message (or one said from its request's state).
fn view(mcp: &Mcp, task: &StoredTask, req: Option<&Request>) -> DetailedTask {
    let id = &task.request_id;
    let created = rfc3339(task.created_at);
    if let Some(end) = &task.ended {
        let result: Value = serde_json::from_str(&end.result).unwrap_or(Value::Null);
        let object = |v: Value| match v {
            Value::Object(o) => o,
            _ => JsonObject::new(),
        };
        let (payload, message) = match end.status.as_str() {
            COMPLETED => (
                TaskPayload::Completed {
                    result: object(result),
                },
                None,
            ),
            CANCELLED => (
                TaskPayload::Cancelled,
                result["message"].as_str().map(str::to_owned),
            ),
            _ => (
                TaskPayload::Failed {
                    error: object(result),
                },
                None,
            ),
        };
        let mut shown = Task::new(id, TaskStatus::Working, &created, rfc3339(end.at))
            .with_poll_interval_ms(POLL_INTERVAL_MS);
        shown.status_message = message;
        return DetailedTask::new(shown, payload);
    }
    let live = mcp.tasks.live(id).and_then(|l| lock(&l.message).clone());
    let (message, updated) = match live {
        Some((message, at)) => (message, at),
        None => (said(mcp, id, req), task.created_at),
    };
    let mut shown = Task::new(id, TaskStatus::Working, &created, rfc3339(updated))
        .with_poll_interval_ms(POLL_INTERVAL_MS);
    shown.status_message = Some(message);
    DetailedTask::new(shown, TaskPayload::Working)
}

/// A working task's message, from its request's state.
fn said(mcp: &Mcp, id: &str, req: Option<&Request>) -> String {
    let link = review_url(&mcp.gateway, id);
    match req.map(Request::state) {
        Some(State::Pending) | None => format!("Waiting for approval: {link}"),
        Some(State::Approved) => format!("Approved; carrying it out: {link}"),
        Some(state) => format!("Request is {}; finishing: {link}", state.as_str()),
    }
}

/// Drives `task` in the background unless this process already does.
fn drive_unless_driven(mcp: &Arc<Mcp>, who: &Principal, task: &StoredTask) {
    let Some(live) = mcp.tasks.drive_here(&task.request_id) else {
        return;
    };
    let (mcp, who, task) = (mcp.clone(), who.clone(), task.clone());
    // The task goes on in the trace of the call that drives it.
    let trace = countersign_app::trace::current();
    tokio::spawn(countersign_app::trace::scope(trace, async move {
        drive(&mcp, &who, &task, &live).await;
        mcp.tasks.done(&task.request_id);
    }));
}

/// The wait behind a task: progress becomes the task's status message; `tasks/cancel` ends it.
struct TaskHold(Arc<Live>, Arc<dyn countersign_app::gateway::Clock>);

impl Hold for TaskHold {
    async fn progress(&mut self, _step: u32, message: String) {
        *lock(&self.0.message) = Some((message, self.1.now()));
    }

    fn cancelled(&self) -> impl std::future::Future<Output = Cancelled> + Send {
        self.0.cancel.cancelled().map(|()| Cancelled::ByCaller)
    }
}

/// Carries `task` to its end (see the module's documentation), or leaves it to whoever holds
/// its lease.
async fn drive(mcp: &Arc<Mcp>, who: &Principal, task: &StoredTask, live: &Arc<Live>) {
    let id = task.request_id.as_str();
    let request = match mcp.gateway.get(who, id).await {
        Ok(req) => req,
        Err(e) => {
            tracing::warn!(request = %id, error = %e, "an MCP task's request could not be read");
            return;
        }
    };
    let carrier = match task.carrier.as_str() {
        "executor" => Carrier::Executor,
        _ => Carrier::Forward,
    };
    let parked = task
        .parked
        .as_deref()
        .and_then(|d| d.parse::<Digest>().ok());
    let submitted = Submitted {
        request,
        parked,
        carrier,
    };
    let mut hold = TaskHold(live.clone(), mcp.gateway.clock.clone());
    // A task is never answered "pending": it waits until decided.
    let holding = Holding {
        hold_for: None,
        ..mcp.holding(&who.id)
    };
    let decided = match until_decided(&mcp.gateway, who, submitted, holding, &mut hold).await {
        Ok(decided) => decided,
        Err(refused) => return end_refused(mcp, who, task, live, refused).await,
    };
    if decided.request.state() == State::Approved || decided.request.state().is_terminal() {
        // Only the lease holder redeems, forwards and stores the answer; refusals end the
        // same whoever ends them, but they too wait for a lapsed lease (a holder may be
        // about to store the answer).
        let lease = match carrier {
            Carrier::Forward => mcp.call_timeout + LEASE_GRACE,
            Carrier::Executor => EXECUTOR_LEASE,
        };
        match mcp.gateway.task_claim(id, lease).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(request = %id, error = %e, "an MCP task's lease could not be taken");
                return;
            }
        }
    }
    // Read again under the lease: a request redeemed by now was carried out by a holder that
    // stopped (or by a call that was not a task), and is never forwarded again.
    let request = match mcp.gateway.get(who, id).await {
        Ok(req) => req,
        Err(e) => {
            tracing::warn!(request = %id, error = %e, "an MCP task's request could not be read");
            return;
        }
    };
    if matches!(request.state(), State::Executed | State::Failed) {
        let error = ErrorData::internal_error(
            format!(
                "request {id} was carried out, but its answer is not known here: the gateway \
                 forwarding it stopped (or another call took it); the upstream may or may not \
                 have run it, and it will not be forwarded again"
            ),
            Some(json!({"io.countersign/request": id})),
        );
        return end(mcp, who, task, FAILED, json!(error)).await;
    }
    let decided = Submitted { request, ..decided };
    let approved = match conclude(&mcp.gateway, who, decided, &mut hold).await {
        Ok(approved) => approved,
        Err(refused) => return end_refused(mcp, who, task, live, refused).await,
    };
    let (status, result) = if carrier == Carrier::Executor {
        let result = builtin::execute(&mcp.gateway, who, &approved).await;
        (COMPLETED, json!(result))
    } else {
        match forward_call(mcp, approved, None).await {
            Ok(CallToolResponse::Complete(result)) => (COMPLETED, json!(result)),
            Ok(_) => (
                FAILED,
                json!(ErrorData::internal_error(conform::INPUT_REQUIRED, None)),
            ),
            Err(e) => (FAILED, json!(e)),
        }
    };
    end(mcp, who, task, status, result).await;
}

/// Ends a task whose call was refused: `cancelled` when its request was cancelled, else
/// completed with the refusal as an error result naming the request (as a live call hears it).
async fn end_refused(mcp: &Mcp, who: &Principal, task: &StoredTask, live: &Live, refused: Refused) {
    let id = &task.request_id;
    if live.cancel.is_cancelled() || refused.state == Some(State::Cancelled) {
        let message = match live.cancel.is_cancelled() {
            true => format!("request {id} was cancelled by the client"),
            false => refused.message,
        };
        let cancelled = json!({"message": message, "io.countersign/request": id});
        return end(mcp, who, task, CANCELLED, cancelled).await;
    }
    let mut result = CallToolResult::error(vec![ContentBlock::text(refused.message.clone())]);
    result.meta = refused_meta(&refused);
    end(mcp, who, task, COMPLETED, json!(result)).await;
}

async fn end_cancelled(
    mcp: &Mcp,
    who: &Principal,
    task: &StoredTask,
    req: &Request,
    message: String,
) {
    let cancelled = json!({"message": message, "io.countersign/request": req.id()});
    end(mcp, who, task, CANCELLED, cancelled).await;
}

/// Stores how the task ended (the first ending wins) and forgets its parked call: the client
/// has its answer, so the same call made again is a new action.
async fn end(mcp: &Mcp, who: &Principal, task: &StoredTask, status: &str, result: Value) {
    let id = &task.request_id;
    if let Err(e) = mcp.gateway.task_end(id, status, &result).await {
        tracing::error!(request = %id, error = %e, "an MCP task's ending could not be stored");
        return;
    }
    if let Some(key) = task
        .parked
        .as_deref()
        .and_then(|d| d.parse::<Digest>().ok())
        && let Err(e) = mcp.gateway.unpark_call(who, &key, id).await
    {
        tracing::warn!(request = %id, error = %e, "could not unpark an ended MCP task");
    }
}
