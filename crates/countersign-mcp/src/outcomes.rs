//! What became of a request the gateway forwarded: the upstream's answer (or the failure to get
//! one) recorded as the request's outcome (`Gateway::observe`: executor `mcp:<upstream>`, never
//! `reported`), with how long it took and the size and SHA-256 of the answer, never its
//! content. The built-in executor tools are not recorded here: `Gateway::execute` records
//! their outcomes itself.
//!
//! The record is written on a task of its own, right after the answer is handed back, so the
//! allowed-call path keeps one durable write in front of the agent. A failure to write it is
//! logged (by `Gateway::observe`, with the status that was lost). A gateway that dies between
//! the answer and the record leaves the request `executed` without an outcome, as a redeemed
//! grant nobody reported: it is never forwarded again, and nothing marks it `unknown` later.

use super::naming;
use super::upstream::UpstreamError;
use countersign_app::gateway::Gateway;
use countersign_core::{ExecStatus, Outcome, Request, Timestamp};
use rmcp::ErrorData;
use rmcp::model::{CallToolResponse, CompleteResult, GetPromptResponse, ReadResourceResponse};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest error sentence an outcome keeps.
const ERROR_LIMIT: usize = 1000;

/// An upstream's answer to a forwarded request, as its outcome sees it.
pub trait Answer: Clone + Send + 'static {
    /// The answer as JSON (the JSON-RPC `result` as the gateway parsed it).
    fn json(&self) -> Result<Value, serde_json::Error>;

    /// Why the answer says the request did not succeed, if it does.
    fn failure(&self) -> Option<(ExecStatus, &'static str)> {
        None
    }
}

impl Answer for CallToolResponse {
    fn json(&self) -> Result<Value, serde_json::Error> {
        match self {
            CallToolResponse::Complete(r) => serde_json::to_value(r),
            CallToolResponse::InputRequired(r) => serde_json::to_value(r),
            CallToolResponse::Task(r) => serde_json::to_value(r),
            _ => Ok(Value::Null),
        }
    }

    fn failure(&self) -> Option<(ExecStatus, &'static str)> {
        match self {
            CallToolResponse::Complete(r) if r.is_error == Some(true) => {
                Some((ExecStatus::Failed, "the tool answered with isError: true"))
            }
            CallToolResponse::Complete(_) => None,
            CallToolResponse::Task(_) => Some((
                ExecStatus::Unknown,
                "the MCP server answered with a task, whose end the gateway does not see",
            )),
            _ => Some((ExecStatus::Failed, INPUT_REQUIRED)),
        }
    }
}

const INPUT_REQUIRED: &str = "the MCP server asked for more input; nothing was relayed";

impl Answer for ReadResourceResponse {
    fn json(&self) -> Result<Value, serde_json::Error> {
        match self {
            ReadResourceResponse::Complete(r) => serde_json::to_value(r),
            ReadResourceResponse::InputRequired(r) => serde_json::to_value(r),
            _ => Ok(Value::Null),
        }
    }

    fn failure(&self) -> Option<(ExecStatus, &'static str)> {
        match self {
            ReadResourceResponse::Complete(_) => None,
            _ => Some((ExecStatus::Failed, INPUT_REQUIRED)),
        }
    }
}

impl Answer for GetPromptResponse {
    fn json(&self) -> Result<Value, serde_json::Error> {
        match self {
            GetPromptResponse::Complete(r) => serde_json::to_value(r),
            GetPromptResponse::InputRequired(r) => serde_json::to_value(r),
            _ => Ok(Value::Null),
        }
    }

    fn failure(&self) -> Option<(ExecStatus, &'static str)> {
        match self {
            GetPromptResponse::Complete(_) => None,
            _ => Some((ExecStatus::Failed, INPUT_REQUIRED)),
        }
    }
}

impl Answer for CompleteResult {
    fn json(&self) -> Result<Value, serde_json::Error> {
        serde_json::to_value(self)
    }
}

/// `resources/subscribe` and `unsubscribe` answer an empty result.
impl Answer for () {
    fn json(&self) -> Result<Value, serde_json::Error> {
        Ok(Value::Object(Default::default()))
    }
}

/// What came back from the upstream, kept for the record.
enum Seen<T> {
    Answer(T),
    Error(ErrorData),
    /// No answer: the status and why.
    Lost(ExecStatus, String),
}

/// A redeemed request on its way to its upstream; [`Forwarding::finish`] records its outcome.
pub struct Forwarding {
    gateway: Arc<Gateway>,
    request: Request,
    executor: String,
    started_at: Timestamp,
    started: Instant,
}

impl Forwarding {
    /// `request` (redeemed) is about to be sent to `upstream`.
    pub fn start(gateway: &Arc<Gateway>, request: Request, upstream: &str) -> Forwarding {
        Forwarding {
            started_at: gateway.clock.now(),
            gateway: gateway.clone(),
            request,
            executor: naming::forwarded_to(upstream),
            started: Instant::now(),
        }
    }

    /// Records `answer` as the request's outcome, on a task of its own: the caller answers its
    /// agent without waiting for the write.
    pub fn finish<T: Answer>(self, answer: &Result<T, UpstreamError>) {
        let duration = self.started.elapsed();
        let seen = match answer {
            Ok(answer) => Seen::Answer(answer.clone()),
            Err(UpstreamError::Protocol(e)) => Seen::Error(e.clone()),
            // Never sent: the connection could not be made.
            Err(e @ UpstreamError::Unavailable(..)) => {
                Seen::Lost(ExecStatus::Failed, e.to_string())
            }
            // Sent, and then no answer: it may or may not have taken effect.
            Err(e @ (UpstreamError::Timeout(..) | UpstreamError::Closed(_))) => {
                Seen::Lost(ExecStatus::Unknown, e.to_string())
            }
        };
        tokio::spawn(async move {
            let outcome = outcome(seen, duration);
            // A failure is logged by `observe`, with the status it could not record.
            let _ = self
                .gateway
                .observe(&self.request, &self.executor, self.started_at, outcome)
                .await;
        });
    }
}

/// The outcome of what was seen. `bytes` and `output_sha256` are over the RFC 8785 canonical
/// JSON of the upstream's answer (its JSON-RPC `result`, or its `error` object) as the gateway
/// parsed it, not the bytes on the wire: the same answer always hashes the same, whatever the
/// transport or the upstream's formatting, and anyone holding the answer can recompute it.
fn outcome<T: Answer>(seen: Seen<T>, duration: Duration) -> Outcome {
    let (status, error, json) = match seen {
        Seen::Answer(answer) => {
            let (status, error) = match answer.failure() {
                Some((status, why)) => (status, Some(why.to_owned())),
                None => (ExecStatus::Succeeded, None),
            };
            (status, error, answer.json().ok())
        }
        Seen::Error(e) => {
            let error = format!("the MCP server answered error {}: {}", e.code.0, e.message);
            (
                ExecStatus::Failed,
                Some(error),
                serde_json::to_value(&e).ok(),
            )
        }
        Seen::Lost(status, why) => (status, Some(why), None),
    };
    let mut outcome = Outcome::with_status(status);
    outcome.duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if let Some(json) = json {
        let bytes = countersign_core::canonical::to_vec(&json);
        outcome.bytes = bytes.len() as u64;
        outcome.output_sha256 = Some(countersign_core::digest::hex32_string(
            &Sha256::digest(&bytes).into(),
        ));
    }
    outcome.error = error.map(|mut e| {
        if e.len() > ERROR_LIMIT {
            let mut cut = ERROR_LIMIT;
            while !e.is_char_boundary(cut) {
                cut -= 1;
            }
            e.truncate(cut);
            outcome.truncated = true;
        }
        e
    });
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{CallToolResult, ContentBlock};

    fn of(answer: Result<CallToolResponse, UpstreamError>) -> Outcome {
        let seen = match answer {
            Ok(a) => Seen::Answer(a),
            Err(UpstreamError::Protocol(e)) => Seen::Error(e),
            Err(e) => Seen::Lost(ExecStatus::Unknown, e.to_string()),
        };
        outcome(seen, Duration::from_millis(7))
    }

    #[test]
    fn an_upstream_answer_becomes_an_outcome_without_its_content() {
        let ok = of(Ok(
            CallToolResult::success(vec![ContentBlock::text("hi")]).into()
        ));
        assert_eq!(ok.status, ExecStatus::Succeeded);
        assert_eq!(ok.duration_ms, 7);
        let json = serde_json::to_value(CallToolResult::success(vec![ContentBlock::text("hi")]))
            .expect("json");
        let bytes = countersign_core::canonical::to_vec(&json);
        assert_eq!(ok.bytes, bytes.len() as u64);
        assert_eq!(
            ok.output_sha256.as_deref(),
            Some(countersign_core::digest::hex32_string(&Sha256::digest(&bytes).into()).as_str())
        );
        assert!(ok.http.is_none() && ok.stdout.is_none() && ok.error.is_none());

        let is_error = of(Ok(
            CallToolResult::error(vec![ContentBlock::text("no")]).into()
        ));
        assert_eq!(is_error.status, ExecStatus::Failed);
        assert!(is_error.output_sha256.is_some());

        let refused = of(Err(UpstreamError::Protocol(ErrorData::invalid_params(
            "no such tool",
            None,
        ))));
        assert_eq!(refused.status, ExecStatus::Failed);
        assert!(refused.error.as_deref().unwrap().contains("no such tool"));
        assert!(refused.bytes > 0);

        let lost = of(Err(UpstreamError::Timeout(
            "e".into(),
            Duration::from_secs(1),
        )));
        assert_eq!(lost.status, ExecStatus::Unknown);
        assert_eq!((lost.bytes, lost.output_sha256), (0, None));
    }
}
