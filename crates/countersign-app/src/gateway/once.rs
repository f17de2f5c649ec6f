//! One question per action (issue 18): a submission sent again with the same `Idempotency-Key`
//! returns the request the first one made, and an action identical (same digest) to one of the
//! same requester's pending requests returns that request instead of asking people again.
//!
//! **Invariant (one question per action):** both are decided inside the submission's one
//! transaction (`Store::submit_parked`), so concurrent identical submissions make one request:
//! the store's writes are serialized (SQLite's one writer, PostgreSQL's audit head lock), and
//! the first commits the pairs the others then find.

use super::executions::deadline;
use super::{AtOnce, Decided, Gateway, GatewayError, Park};
use countersign_core::{Action, Digest, Principal, Request, State};
use countersign_store::Submission;
use std::sync::Arc;

/// The longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// How a submission was answered.
#[derive(Debug)]
pub enum Asked {
    /// A new request.
    New(Request),
    /// The same requester's pending request for the same action: nobody is asked again.
    Coalesced(Request),
    /// The request first made with the same idempotency key, as it stands now.
    Replayed(Request),
}

impl Asked {
    pub fn request(&self) -> &Request {
        match self {
            Asked::New(r) | Asked::Coalesced(r) | Asked::Replayed(r) => r,
        }
    }
}

/// The idempotency key as stored: its hash, under a label of its own (the pairs share
/// `parked_calls` with MCP parking keys and coalescing digests, which hash other things).
pub(crate) fn idempotency_digest(key: &str) -> Result<Digest, GatewayError> {
    let printable = key.bytes().all(|b| b.is_ascii_graphic());
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN || !printable {
        return Err(GatewayError::BadInput(
            "invalid_idempotency_key",
            format!(
                "`Idempotency-Key` must be 1-{MAX_IDEMPOTENCY_KEY_LEN} printable ASCII \
                 characters without spaces (e.g. a UUID)"
            ),
        ));
    }
    let mut bytes = b"countersign idempotency-key v1\0".to_vec();
    bytes.extend_from_slice(key.as_bytes());
    Ok(Digest::of_bytes(&bytes))
}

/// **Invariant (what the gateway records of a tool, only the gateway says):** labels under
/// `countersign_core::action::RESERVED_LABEL_PREFIXES` (an MCP tool's annotations, which the
/// policy reads as `tool.annotations`; the AuthZEN policy enforcement point that asked) are set
/// by the gateway itself; an action or plan submitted with one is refused here, the one entry
/// that takes labels from a client.
pub(crate) fn refuse_reserved_labels(action: &Action) -> Result<(), GatewayError> {
    use countersign_core::action::{RESERVED_LABEL_PREFIXES, is_reserved_label};
    match action.labels.keys().find(|k| is_reserved_label(k)) {
        Some(key) => Err(GatewayError::BadInput(
            "reserved_label",
            format!(
                "label `{}` is reserved: labels starting with {} are set by the gateway alone",
                countersign_core::text::visible(key),
                RESERVED_LABEL_PREFIXES
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        )),
        None => Ok(()),
    }
}

impl Gateway {
    /// Submits `action` as `requester`, once (see the module): with `idempotency_key`, a
    /// repeat is answered with the first request (refused with `idempotency_mismatch` when it
    /// asks for another action); an action identical to a pending one of the same requester is
    /// answered with that request. `execute` (an executor's action): when policy allows it at
    /// once, its execution starts in the submission's write (recording, approving, redeeming)
    /// and it runs now, so an allowed action costs two durable writes, the record and the
    /// outcome; a repeat never runs anything again.
    pub async fn submit_once(
        self: &Arc<Self>,
        requester: &Principal,
        action: Action,
        idempotency_key: Option<&str>,
        execute: bool,
    ) -> Result<Asked, GatewayError> {
        let idempotency = idempotency_key.map(idempotency_digest).transpose()?;
        action.validate()?;
        if action.kind == countersign_core::plan::PLAN_KIND {
            return Err(GatewayError::BadInput(
                "reserved_kind",
                format!(
                    "`{}` is the kind of a plan's request: send a plan to POST /v1/plans",
                    countersign_core::plan::PLAN_KIND
                ),
            ));
        }
        refuse_reserved_labels(&action)?;
        let at_once = if execute {
            let checked = self.executable(&action)?;
            AtOnce::Execute {
                deadline: deadline(self.clock.now(), &checked),
                executor: checked.executor,
            }
        } else {
            AtOnce::Record
        };
        self.ask_once(requester, action, None, idempotency, at_once)
            .await
    }

    /// The one-question loop of [`Gateway::submit_once`], also for a plan's request (decided
    /// already: `planned`).
    pub(crate) async fn ask_once(
        self: &Arc<Self>,
        requester: &Principal,
        action: Action,
        planned: Option<&Decided>,
        idempotency: Option<Digest>,
        at_once: AtOnce,
    ) -> Result<Asked, GatewayError> {
        let digest = Digest::of_action(&action, &requester.id);
        let park = || Park {
            key: digest,
            attachable: |r: &Request| r.state() == State::Pending,
            idempotency: idempotency.map(|k| (k, digest)),
        };
        let mut tries = 0;
        loop {
            tries += 1;
            let submitted = match planned {
                None => {
                    self.submit_with(requester, action.clone(), at_once.clone(), Some(park()))
                        .await?
                }
                Some(decided) => {
                    let now = self.clock.now();
                    let (action, decided) = (action.clone(), decided.clone());
                    self.submit_decided(
                        requester,
                        action,
                        decided,
                        at_once.clone(),
                        Some(park()),
                        now,
                    )
                    .await?
                }
            };
            return Ok(match submitted {
                Submission::New(req) if req.execution().is_some_and(|e| e.is_running()) => {
                    Asked::New(self.run_started(req).await?)
                }
                Submission::New(req) => Asked::New(req),
                // A pending request past its deadline is expired, then asked about anew.
                Submission::Attached(req) if req.is_due(self.clock.now()) && tries == 1 => {
                    self.expire(req.id()).await?;
                    continue;
                }
                Submission::Attached(req) => Asked::Coalesced(req),
                Submission::Replayed(req) => Asked::Replayed(req),
                Submission::KeyReused(req) => {
                    return Err(GatewayError::IdempotencyMismatch(req.id().to_owned()));
                }
            });
        }
    }
}
