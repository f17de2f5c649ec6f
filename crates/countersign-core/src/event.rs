//! The domain events that state changes emit. Each becomes one audit entry, written in the same
//! transaction as the change itself.

use crate::execution::{ExecStatus, Execution};
use crate::{Effect, PrincipalId, RunState, State, Timestamp, VoteDecision};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RequestCreated {
        kind: String,
        resource: String,
        state: State,
        effect: Effect,
        rule: Option<String>,
        held: bool,
        /// The standing approval that approves it at once, when one does (in this entry, so a
        /// covered action costs no more entries than an allowed one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        standing: Option<StandingUse>,
    },
    VoteCast {
        approver: PrincipalId,
        decision: VoteDecision,
        channel: String,
        mfa: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mfa_method: Option<crate::request::MfaMethod>,
    },
    RequestApproved {
        grant: String,
        grant_expires_at: Timestamp,
    },
    RequestDenied {
        by: Option<PrincipalId>,
        reason: String,
    },
    RequestExpired,
    RequestCancelled {
        by: PrincipalId,
        /// Why, when the requester's client gave up or left (an MCP call abandoned).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    RequestReleased,
    GrantRedeemed {
        grant: String,
        uses: u32,
    },
    /// The gateway started carrying out an approved action (in the write that redeemed its
    /// grant); `deadline`: after it, the execution counts as interrupted.
    ExecutionStarted {
        executor: String,
        deadline: Timestamp,
    },
    /// How an execution ended: run by an executor (after `execution.started`), seen by the
    /// gateway that forwarded the action (an MCP request; no `execution.started`), or reported
    /// by the requester (`reported`). Never the output itself or a secret: its size, its
    /// SHA-256, the HTTP status or exit code.
    ExecutionFinished {
        status: ExecStatus,
        reported: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        http_status: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        bytes: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output_sha256: Option<String>,
        duration_ms: u64,
        truncated: bool,
    },
    /// An approver replaced the params (`patch`, RFC 6902) and approves the result; the
    /// request's digest is now `to_digest` and earlier votes no longer count.
    RequestAmended {
        by: PrincipalId,
        from_digest: String,
        to_digest: String,
        patch: serde_json::Value,
    },
    /// Every approving vote asked for a standing approval: it formed on this request.
    StandingGranted {
        until: Timestamp,
        uses: u32,
        scope: Vec<crate::standing::ScopeField>,
        approvers: Vec<PrincipalId>,
    },
    /// This request's standing approval was revoked after `used` uses.
    StandingRevoked {
        by: PrincipalId,
        used: u32,
    },
    /// A plan's request was recorded: what the policy decided for each step (numbered from 1).
    PlanRecorded {
        steps: Vec<crate::plan::StepDecided>,
    },
    /// Step `step` of this plan approved request `by_request` (each step once).
    PlanStepUsed {
        step: u32,
        by_request: String,
    },
    /// This request was approved at once by step `step` of the approved plan `plan`, approved
    /// by `approvers`.
    PlanCovered {
        plan: String,
        step: u32,
        approvers: Vec<PrincipalId>,
    },
    RunChanged {
        run: String,
        state: RunState,
    },
    KeyCreated {
        principal: PrincipalId,
    },
    /// Every API key of `principal` revoked, and every console session of theirs ended (keys
    /// and identity-provider sign-ins alike).
    KeyRevoked {
        principal: PrincipalId,
        keys: u64,
        sessions: u64,
    },
    /// A second factor enrolled: `factor` is `totp` or `passkey`; `proof` says how the change
    /// was authorised (`first_factor`: the person had none; `totp` or `passkey`: a current
    /// factor was verified for it).
    MfaEnrolled {
        principal: PrincipalId,
        factor: String,
        proof: String,
    },
    /// An operator removed every second factor of a person (`countersign mfa reset`).
    MfaReset {
        principal: PrincipalId,
        totp: bool,
        passkeys: u64,
    },
    PolicyLoaded {
        hash: String,
    },
    /// A vote attempt from a chat channel that was not counted (unknown person, not eligible,
    /// self-approval, ...). The core refuses such votes without writing; the channel records
    /// the attempt so an auditor sees it.
    VoteRefused {
        request: String,
        channel: String,
        /// The person's id in that channel (a Slack user id, a Teams AAD object id).
        external_user: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        principal: Option<PrincipalId>,
        code: String,
    },
    /// Inbound channel callbacks refused before anything was acted on (a signature or token
    /// that did not verify, a stale one, a tenant that is not allowed), counted: one entry
    /// stands for `count` refusals from one channel for one reason between `first` and
    /// `last`, so an unauthenticated flood adds a bounded number of entries.
    CallbackRefused {
        channel: String,
        /// Why, as a machine code (`invalid_token`, `tenant_not_allowed`, ...).
        code: String,
        count: u64,
        first: Timestamp,
        last: Timestamp,
        /// A few distinct tenants the callbacks came from, when their tokens verified (so the
        /// claim is vouched for by the channel); bounded in number and length.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tenants: Vec<String>,
    },
}

/// How a standing approval approved a new request at once: the request holding it
/// (`standing`), who formed it, and how many uses it allows in all (the entries naming it count
/// the uses made).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StandingUse {
    pub standing: String,
    pub approvers: Vec<PrincipalId>,
    pub uses: u32,
}

impl Event {
    /// The dotted event name stored in the audit log, e.g. `request.created`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::RequestCreated { .. } => "request.created",
            Event::VoteCast { .. } => "vote.cast",
            Event::RequestApproved { .. } => "request.approved",
            Event::RequestDenied { .. } => "request.denied",
            Event::RequestExpired => "request.expired",
            Event::RequestCancelled { .. } => "request.cancelled",
            Event::RequestReleased => "request.released",
            Event::GrantRedeemed { .. } => "grant.redeemed",
            Event::ExecutionStarted { .. } => "execution.started",
            Event::ExecutionFinished { .. } => "execution.finished",
            Event::RequestAmended { .. } => "request.amended",
            Event::StandingGranted { .. } => "standing.granted",
            Event::StandingRevoked { .. } => "standing.revoked",
            Event::PlanRecorded { .. } => "plan.recorded",
            Event::PlanStepUsed { .. } => "plan.step_used",
            Event::PlanCovered { .. } => "plan.covered",
            Event::RunChanged { .. } => "run.changed",
            Event::KeyCreated { .. } => "key.created",
            Event::KeyRevoked { .. } => "key.revoked",
            Event::MfaEnrolled { .. } => "mfa.enrolled",
            Event::MfaReset { .. } => "mfa.reset",
            Event::PolicyLoaded { .. } => "policy.loaded",
            Event::VoteRefused { .. } => "vote.refused",
            Event::CallbackRefused { .. } => "callback.refused",
        }
    }

    /// The `execution.finished` event of an execution that has ended.
    pub fn execution_finished(execution: &Execution) -> Event {
        let o = &execution.outcome;
        Event::ExecutionFinished {
            status: o.status,
            reported: execution.reported,
            http_status: o.http.as_ref().map(|h| h.status),
            exit_code: o.exit_code,
            bytes: o.bytes,
            output_sha256: o.output_sha256.clone(),
            duration_ms: o.duration_ms,
            truncated: o.truncated,
        }
    }

    /// The event's fields as a JSON object, without the tag.
    pub fn data(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = v.as_object_mut() {
            map.remove("event");
        }
        v
    }
}
