//! MCP tasks as the store keeps them: a row per tool call answered with a task, keyed by its
//! request (the task id is the request id), so a task outlives the gateway that started it and
//! is seen the same on every replica. Until the task ends its state is its request's; when it
//! ends, its status and the JSON the client is given are set, once (the first ending wins:
//! two replicas that both see it end cannot make it end twice).
//!
//! Must not: interpret the result, or decide when a task ends (the MCP gateway does).

use countersign_core::{PrincipalId, Timestamp};

/// How long an ended task is kept after its end (its result can be fetched until then).
pub const TASK_RETENTION_MS: i64 = 24 * 3_600_000;

/// How long a task that never ended is kept after it began (its request has long expired).
pub const UNENDED_TASK_RETENTION_MS: i64 = 30 * 24 * 3_600_000;

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTask {
    /// The request the task waits on; also the task's id.
    pub request_id: String,
    /// Who called the tool: only they see the task.
    pub owner: PrincipalId,
    /// What carries the call out once approved (`forward` or `executor`).
    pub carrier: String,
    /// The digest (`sha256:…`) the call is parked under, if it is.
    pub parked: Option<String>,
    /// Stored to the millisecond.
    pub created_at: Timestamp,
    pub ended: Option<TaskEnd>,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEnd {
    /// `completed`, `failed` or `cancelled`.
    pub status: String,
    /// What the client is given, as JSON text (a tool result, an error, or a message).
    pub result: String,
    /// Stored to the millisecond.
    pub at: Timestamp,
}

impl StoredTask {
    /// A task read back from its columns (times in milliseconds).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_columns(
        request_id: String,
        owner: String,
        carrier: String,
        parked: Option<String>,
        created_at: i64,
        status: Option<String>,
        result: Option<String>,
        finished_at: Option<i64>,
    ) -> Result<Self, crate::StoreError> {
        let ended = match (status, result, finished_at) {
            (Some(status), Some(result), Some(at)) => Some(TaskEnd {
                status,
                result,
                at: crate::columns::from_millis(at)?,
            }),
            _ => None,
        };
        Ok(StoredTask {
            request_id,
            owner: crate::columns::principal_from_column(owner)?,
            carrier,
            parked,
            created_at: crate::columns::from_millis(created_at)?,
            ended,
        })
    }
}
