//! What happened when an approved action was carried out: by the gateway itself (an executor
//! holds the credentials), or by the requester, who reports it.
//!
//! An execution starts in the same write that redeems the grant, so it happens at most once: the
//! grant is used up before anything runs. A running execution carries a deadline after which no
//! gateway can still be running it (every executor is stopped at its timeout); one found past
//! it was interrupted (the gateway died) and is closed as `unknown`, never run again.

use crate::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where an execution stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ExecStatus {
    /// Started and not yet finished.
    Running,
    Succeeded,
    Failed,
    /// The action may or may not have taken effect (the gateway died while it ran, or lost
    /// touch with the upstream after sending it). Never retried.
    Unknown,
}

impl ExecStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecStatus::Running => "running",
            ExecStatus::Succeeded => "succeeded",
            ExecStatus::Failed => "failed",
            ExecStatus::Unknown => "unknown",
        }
    }
}

/// An HTTP executor's answer: the status, the headers that carry no credentials, the body (a
/// bounded copy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HttpOutcome {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// How an execution ended (or that it runs). `bytes` and `output_sha256` cover the whole output
/// as received; `http.body`, `stdout`, `stderr` and `rows` are bounded copies, and `truncated`
/// says when a copy (or the output itself, at the executor's limit) was cut.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Outcome {
    pub status: ExecStatus,
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_sha256: Option<String>,
    #[serde(default)]
    pub truncated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<Vec<Vec<serde_json::Value>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Outcome {
    /// An outcome with only a status and an error sentence.
    pub fn with_error(status: ExecStatus, error: impl Into<String>) -> Outcome {
        Outcome {
            error: Some(error.into()),
            ..Outcome::with_status(status)
        }
    }

    /// An outcome with only a status.
    pub fn with_status(status: ExecStatus) -> Outcome {
        Outcome {
            status,
            duration_ms: 0,
            bytes: 0,
            output_sha256: None,
            truncated: false,
            http: None,
            exit_code: None,
            stdout: None,
            stderr: None,
            columns: None,
            rows: None,
            error: None,
        }
    }

    /// The outcome recorded for an execution found running past its deadline.
    pub fn interrupted() -> Outcome {
        Outcome::with_error(ExecStatus::Unknown, "interrupted; not retried")
    }
}

/// One request's execution: who carried it out, when, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Execution {
    /// The executor's name, or absent when the requester ran the action and reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub started_at: Timestamp,
    /// After this, no gateway can still be running it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub deadline: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub finished_at: Option<Timestamp>,
    /// True when the requester reported the outcome (`POST /v1/requests/{id}/outcome`).
    #[serde(default)]
    pub reported: bool,
    pub outcome: Outcome,
}

impl Execution {
    pub fn is_running(&self) -> bool {
        self.outcome.status == ExecStatus::Running
    }

    /// The execution without the copies of its output (HTTP headers and body, stdout, stderr,
    /// columns, rows): what it did and the digest of what it answered, for a viewer who may not
    /// read the output itself.
    pub fn without_output(&self) -> Execution {
        let mut e = self.clone();
        let o = &mut e.outcome;
        if let Some(http) = &mut o.http {
            http.headers.clear();
            http.body.clear();
        }
        o.stdout = None;
        o.stderr = None;
        o.columns = None;
        o.rows = None;
        e
    }
}
