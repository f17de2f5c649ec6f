//! A request as a database row, backend-neutral: the JSON body (serde of the core's `Request`,
//! the source of truth) and the columns copied out of it so queries can use indexes. Times in
//! columns are milliseconds since the Unix epoch; the body keeps them exactly.
//!
//! Nothing here knows SQL; each backend binds these values in its own dialect.

use crate::StoreError;
use countersign_core::{PrincipalId, Request, Run, RunState, Timestamp};

/// The indexed columns and the body of one request row.
#[derive(Debug)]
pub(crate) struct RequestColumns {
    pub id: String,
    pub state: &'static str,
    pub run: Option<String>,
    pub requester: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub held: bool,
    /// True while the request is pending, not held, and its review pauses its run.
    pub pauses_run: bool,
    /// The deadline of the request's running execution, if one runs (see
    /// `Request::is_interrupted`).
    pub exec_deadline: Option<i64>,
    pub body: String,
    /// The seqs of the request's audit entries (see `crate::tree::seq_list`); filled in by
    /// the insert, once the entries have their numbers.
    pub audit_seqs: String,
}

impl RequestColumns {
    pub fn of(r: &Request) -> Result<Self, StoreError> {
        let body = serde_json::to_string(r).map_err(|e| {
            StoreError::Invalid(format!("request {} does not serialize: {e}", r.id()))
        })?;
        Ok(RequestColumns {
            id: r.id().to_owned(),
            state: r.state().as_str(),
            run: r.action().run.clone(),
            requester: r.requester().id.to_string(),
            created_at: millis(r.created_at()),
            expires_at: r.expires_at().map(millis),
            held: r.held(),
            pauses_run: r.pauses_run(),
            exec_deadline: r
                .execution()
                .filter(|e| e.is_running())
                .and_then(|e| e.deadline)
                .map(millis),
            body,
            audit_seqs: String::new(),
        })
    }
}

/// A stored request body back as a request.
pub(crate) fn request_from_body(body: &str) -> Result<Request, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt(format!("a stored request: {e}")))
}

pub(crate) fn millis(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("{ms} is not a time in milliseconds")))
}

/// `now` cut to the millisecond precision that storage keeps for runs.
pub(crate) fn to_millisecond(now: Timestamp) -> Timestamp {
    Timestamp::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

pub(crate) fn run_state_str(s: RunState) -> &'static str {
    match s {
        RunState::Active => "active",
        RunState::Paused => "paused",
        RunState::Stopped => "stopped",
    }
}

pub(crate) fn parse_run_state(s: &str) -> Result<RunState, StoreError> {
    match s {
        "active" => Ok(RunState::Active),
        "paused" => Ok(RunState::Paused),
        "stopped" => Ok(RunState::Stopped),
        other => Err(StoreError::Corrupt(format!("unknown run state {other:?}"))),
    }
}

/// A run row back as a run.
pub(crate) fn run_from_row(
    id: String,
    state: &str,
    updated_by: String,
    updated_at: i64,
) -> Result<Run, StoreError> {
    Ok(Run {
        state: parse_run_state(state)?,
        updated_by: principal_from_column(updated_by)?,
        updated_at: from_millis(updated_at)?,
        id,
    })
}

pub(crate) fn principal_from_column(s: String) -> Result<PrincipalId, StoreError> {
    PrincipalId::try_from(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A count or step read from a signed column.
pub(crate) fn unsigned(n: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("{what} is {n}")))
}

/// A count or step to bind into a signed column.
pub(crate) fn signed(n: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Invalid(format!("{what} {n} is too large to store")))
}

/// A `channel_messages` row back as a [`ChannelMessage`](crate::ChannelMessage).
pub(crate) fn channel_message_from_row(
    request_id: String,
    target: String,
    conversation: String,
    ts: String,
    rendered: String,
    reminded_at: Option<i64>,
) -> Result<crate::ChannelMessage, StoreError> {
    Ok(crate::ChannelMessage {
        request_id,
        target,
        conversation,
        ts,
        rendered,
        reminded_at: reminded_at.map(from_millis).transpose()?,
    })
}

/// A `channel_conversations` row back as a [`ConversationRef`](crate::ConversationRef).
pub(crate) fn conversation_from_row(
    channel: String,
    conversation: String,
    service_url: String,
    tenant: String,
    updated_at: i64,
) -> Result<crate::ConversationRef, StoreError> {
    Ok(crate::ConversationRef {
        channel,
        conversation,
        service_url,
        tenant,
        updated_at: from_millis(updated_at)?,
    })
}
