//! Attestations of a decision: an in-toto Statement v1 whose subject is the action's digest and
//! whose predicate says what was asked, by whom, under which policy rule, who voted how (channel,
//! second factor, time), how it ended and where each of its audit entries sits in the Merkle log
//! (with an inclusion proof against a signed checkpoint) and how its execution went (outcome and
//! output digest), wrapped in a DSSE envelope signed with the gateway's key.

use crate::dsse::{self, Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::entry::format_at;
use crate::note::NoteSigner;
use countersign_core::{Execution, Request, State, VoteDecision};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// in-toto's statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";

/// Our predicate: a decision taken by Countersign, version 1.
pub const PREDICATE_TYPE: &str = "https://countersign.dev/attestation/decision/v1";

/// Where one audit entry sits in the log, and the proof of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryProof {
    pub index: u64,
    /// base64 of the entry's leaf hash.
    pub leaf_hash: String,
    /// base64 hashes of the inclusion proof in the tree of the checkpoint's size.
    pub inclusion_proof: Vec<String>,
}

/// The audit part of the predicate: the checkpoint the proofs lead to, and the entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvidence {
    /// The signed checkpoint (a C2SP signed note).
    pub checkpoint: String,
    pub tree_size: u64,
    pub entries: Vec<EntryProof>,
}

/// The in-toto statement about `request`.
pub fn statement(request: &Request, audit: &AuditEvidence) -> Value {
    let hex_digest = request
        .digest()
        .to_string()
        .trim_start_matches("sha256:")
        .to_owned();
    let votes: Vec<Value> = request
        .votes()
        .iter()
        .map(|v| {
            json!({
                "approver": v.approver.as_str(),
                "decision": match v.decision {
                    VoteDecision::Approve => "approve",
                    VoteDecision::Deny => "deny",
                },
                "channel": v.channel.as_str(),
                // The method that verified the vote; votes from before methods were recorded
                // could only have used TOTP.
                "mfa": match (v.mfa_method, v.mfa) {
                    (Some(m), _) => m.as_str(),
                    (None, true) => "totp",
                    (None, false) => "none",
                },
                "at": format_at(v.at),
                "comment": v.comment,
            })
        })
        .collect();
    let execution = match request.state() {
        State::Executed | State::Failed => json!({
            "state": request.state().as_str(),
            "outcome": request.outcome(),
            "outcome_code": request.outcome_code(),
            "grant": request.grant().map(|g| json!({"id": g.id, "uses": g.uses})),
            "outcome": request.execution().map(outcome_summary),
        }),
        _ => Value::Null,
    };
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [{
            "name": format!("countersign:request/{}", request.id()),
            "digest": {"sha256": hex_digest},
        }],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "request": request.id(),
            "action": request.action(),
            "requester": request.requester(),
            "policy": {
                "rule": request.decision().rule,
                "hash": request.decision().policy_hash,
                "effect": request.decision().effect.as_str(),
                "reason": request.decision().reason,
            },
            "votes": votes,
            "state": request.state().as_str(),
            "created_at": format_at(request.created_at()),
            "closed_at": request.closed_at().map(format_at),
            "outcome": request.outcome(),
            "execution": execution,
            "audit": audit,
        },
    })
}

/// What an auditor needs of an execution: who ran it, when, how it ended, and the digest of its
/// whole output. The bounded copies of the output (body, stdout, rows) stay out: the digest
/// vouches for them, and the statement stays small.
fn outcome_summary(e: &Execution) -> Value {
    let o = &e.outcome;
    json!({
        "executor": e.executor,
        "reported": e.reported,
        "started_at": format_at(e.started_at),
        "finished_at": e.finished_at.map(format_at),
        "status": o.status.as_str(),
        "duration_ms": o.duration_ms,
        "bytes": o.bytes,
        "output_sha256": o.output_sha256,
        "truncated": o.truncated,
        "http_status": o.http.as_ref().map(|h| h.status),
        "exit_code": o.exit_code,
        "error": o.error,
    })
}

/// The statement about `request`, signed as a DSSE envelope.
pub fn attest(signer: &NoteSigner, request: &Request, audit: &AuditEvidence) -> Envelope {
    let payload =
        serde_json::to_vec(&statement(request, audit)).expect("a JSON value always serializes");
    dsse::sign(signer, IN_TOTO_PAYLOAD_TYPE, &payload)
}
