//! Task-based tool calls (the MCP tasks extension): when the client declares it, a call that
//! must wait for people returns a task at once instead of holding the connection; the wait,
//! the redemption and the forwarding go on in the background, and the client polls
//! `tasks/get` (hours later, if approvals take hours) or cancels with `tasks/cancel`.
//!
//! The task id is the request id, so the console link and the audit trail name the same thing.
//! Tasks live in this process's memory: the request itself is durable, but after a restart a
//! task's result is gone (`tasks/get` answers "unknown task"), and finished tasks are forgotten
//! [`KEEP_FINISHED`] after they finish.

use super::authorize::{Cancelled, Hold};
use countersign_core::PrincipalId;
use futures::FutureExt as _;
use rmcp::model::{
    CallToolResult, DetailedTask, ErrorData, JsonObject, Task, TaskPayload, TaskStatus,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub const KEEP_FINISHED: Duration = Duration::from_secs(3600);
const POLL_INTERVAL_MS: u64 = 2000;

#[derive(Default)]
pub struct Tasks {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

pub struct Slot {
    owner: PrincipalId,
    created: String,
    pub cancel: CancellationToken,
    state: Mutex<SlotState>,
}

struct SlotState {
    payload: TaskPayload,
    message: Option<String>,
    updated: String,
    finished: Option<Instant>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Tasks {
    /// A new working task `id` owned by `owner`.
    pub fn start(&self, id: &str, owner: PrincipalId, message: String) -> Arc<Slot> {
        let created = now();
        let slot = Arc::new(Slot {
            owner,
            created: created.clone(),
            cancel: CancellationToken::new(),
            state: Mutex::new(SlotState {
                payload: TaskPayload::Working,
                message: Some(message),
                updated: created,
                finished: None,
            }),
        });
        let mut slots = lock(&self.slots);
        slots.retain(|_, s| {
            lock(&s.state)
                .finished
                .is_none_or(|at| at.elapsed() < KEEP_FINISHED)
        });
        slots.insert(id.to_string(), slot.clone());
        slot
    }

    /// The task `id`, if `who` started it (others' tasks do not exist for them).
    pub fn get(&self, id: &str, who: &PrincipalId) -> Option<Arc<Slot>> {
        lock(&self.slots)
            .get(id)
            .filter(|s| &s.owner == who)
            .cloned()
    }
}

impl Slot {
    fn set(&self, payload: TaskPayload, message: Option<String>) {
        let mut state = lock(&self.state);
        if state.finished.is_some() {
            return;
        }
        if !matches!(payload, TaskPayload::Working) {
            state.finished = Some(Instant::now());
        }
        state.payload = payload;
        state.message = message;
        state.updated = now();
    }

    pub fn complete(&self, result: &CallToolResult) {
        match serde_json::to_value(result) {
            Ok(serde_json::Value::Object(result)) => {
                self.set(TaskPayload::Completed { result }, None)
            }
            _ => self.fail(&ErrorData::internal_error(
                "the tool result could not be encoded",
                None,
            )),
        }
    }

    pub fn fail(&self, error: &ErrorData) {
        let error: JsonObject = match serde_json::to_value(error) {
            Ok(serde_json::Value::Object(e)) => e,
            _ => JsonObject::new(),
        };
        self.set(TaskPayload::Failed { error }, None);
    }

    pub fn cancelled(&self, message: String) {
        self.set(TaskPayload::Cancelled, Some(message));
    }

    /// The task as `tasks/get` shows it.
    pub fn detailed(&self, id: &str) -> DetailedTask {
        let state = lock(&self.state);
        let mut task = Task::new(id, TaskStatus::Working, &self.created, &state.updated)
            .with_poll_interval_ms(POLL_INTERVAL_MS);
        task.status_message = state.message.clone();
        DetailedTask::new(task, state.payload.clone())
    }

    /// The seed state returned by `tools/call`.
    pub fn seed(&self, id: &str) -> Task {
        self.detailed(id).task
    }
}

/// The wait behind a task: progress becomes the task's status message; `tasks/cancel` ends it.
pub struct TaskHold(pub Arc<Slot>);

impl Hold for TaskHold {
    async fn progress(&mut self, _step: u32, message: String) {
        self.0.set(TaskPayload::Working, Some(message));
    }

    fn cancelled(&self) -> impl std::future::Future<Output = Cancelled> + Send {
        self.0.cancel.cancelled().map(|()| Cancelled::ByCaller)
    }
}
