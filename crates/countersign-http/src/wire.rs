//! The wire types of the HTTP API: what clients send (`bodies`) and what they get back. The CLI reuses
//! them, so the two can never disagree about a field.

mod bodies;

pub use bodies::*;
use countersign_app::executors::ExecutorInfo;
use countersign_core::{Action, Clause, Decision, Outcome, Principal, Request, State, Vote};
use serde::{Deserialize, Serialize};

/// A standing approval (`GET /v1/standing`): what it covers, who formed it, how long and how
/// many more uses it lasts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StandingView {
    /// `std_…`; revoke with `POST /v1/standing/{id}/revoke`.
    pub id: String,
    /// The request whose approval formed it.
    pub request: String,
    pub requester: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    pub policy_hash: String,
    /// The action fields that must stay equal, and their approved values.
    pub scope: Vec<countersign_core::standing::ScopeField>,
    pub covers: serde_json::Map<String, serde_json::Value>,
    pub approvers: Vec<String>,
    pub until: String,
    pub uses: u32,
    pub used: u32,
    /// `active`, `revoked`, `expired` or `used_up`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

impl StandingView {
    /// The standing approval `req` holds, as of `now`.
    pub fn of(req: &Request, now: countersign_core::Timestamp) -> Option<Self> {
        use countersign_core::standing::ScopeField;
        let s = req.standing()?;
        let action = req.action();
        let covers = s
            .scope
            .iter()
            .map(|f| match f {
                ScopeField::Kind => ("kind".to_owned(), action.kind.clone().into()),
                ScopeField::Resource => ("resource".to_owned(), action.resource.clone().into()),
                ScopeField::Params => ("params".to_owned(), action.params.clone()),
                ScopeField::Run => ("run".to_owned(), action.run.clone().into()),
            })
            .collect();
        Some(StandingView {
            id: countersign_core::standing::standing_id_for(req.id()),
            request: req.id().to_owned(),
            requester: req.requester().id.to_string(),
            rule: req.decision().rule.clone(),
            policy_hash: req.decision().policy_hash.clone(),
            scope: s.scope.clone(),
            covers,
            approvers: s.approvers.iter().map(|a| a.to_string()).collect(),
            until: timestamp(&s.until),
            uses: s.uses,
            used: s.used,
            state: s.status(now).to_owned(),
            revoked_by: s.revoked_by.as_ref().map(|p| p.to_string()),
            revoked_at: s.revoked_at.as_ref().map(timestamp),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StandingList {
    pub standing: Vec<StandingView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GrantView {
    pub id: String,
    pub expires_at: String,
    pub max_uses: u32,
    pub uses: u32,
}

/// A request as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RequestView {
    pub id: String,
    pub digest: String,
    pub state: State,
    pub held: bool,
    pub requester: Principal,
    pub action: Action,
    pub decision: Decision,
    /// What is still needed before approval (pending reviews only).
    pub remaining: Vec<Clause>,
    pub votes: Vec<Vote>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<GrantView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_url: Option<String>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_code: Option<String>,
    /// The W3C `traceparent` the call that made this request carried (HTTP header, or MCP
    /// `_meta.traceparent`), when it carried a valid one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// How the approved action was carried out, once it was: by an executor
    /// (`POST /v1/requests/{id}/execute`) or as its requester reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<countersign_core::Execution>,
    /// Proof that this change is in the audit log: on vote and cancel responses, and on
    /// submissions made with `?receipt=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
    /// On a submission: the action is identical to one of the requester's pending requests,
    /// and this is that request (nobody is asked twice).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub coalesced: bool,
    /// The standing approval this request's approval formed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standing: Option<StandingView>,
    /// The standing approval that approved this request at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covered_by: Option<CoveredByView>,
    /// Amendments by approvers, oldest first: who, when, the digests before and after, and
    /// the RFC 6902 patch of the params.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amendments: Vec<countersign_core::request::Amendment>,
    /// On a plan's request (`POST /v1/plans`): its steps and how far it is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanView>,
    /// The plan whose approval approved this request at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_by: Option<PlannedByView>,
}

/// A plan's steps as its request shows them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct PlanView {
    /// `pending`, `active` (approved; reviewed steps left to submit), `done`, `expired`, or
    /// the request's state when it was refused (`denied`, `expired`, `cancelled`).
    pub state: String,
    pub steps: Vec<PlanStepView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct PlanStepView {
    /// From 1.
    pub step: u32,
    pub kind: String,
    pub resource: String,
    /// The step's digest as an action of the requester (with the plan's justification and
    /// run).
    pub digest: String,
    /// What the policy decided for it: `allow`, `review` (covered by the plan's approval) or
    /// `deny`.
    pub effect: countersign_core::Effect,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The request the plan's approval approved for this step, once one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_by: Option<String>,
}

impl PlanView {
    pub fn of(req: &Request, now: countersign_core::Timestamp) -> Option<Self> {
        let plan = req.plan()?;
        Some(PlanView {
            state: req.plan_status(now).to_owned(),
            steps: plan
                .steps
                .iter()
                .enumerate()
                .map(|(i, s)| PlanStepView {
                    step: u32::try_from(i + 1).unwrap_or(u32::MAX),
                    kind: s.kind.clone(),
                    resource: s.resource.clone(),
                    digest: s.digest.to_string(),
                    effect: s.effect,
                    rule: s.rule.clone(),
                    used_by: s.used_by.clone(),
                })
                .collect(),
        })
    }
}

/// Which plan approved a request at once: its request, the step, and who approved it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct PlannedByView {
    pub plan: String,
    pub step: u32,
    pub approvers: Vec<String>,
}

/// Which standing approval approved a request at once, and who formed it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct CoveredByView {
    /// `std_…`.
    pub standing: String,
    /// The request whose approval formed it.
    pub request: String,
    pub approvers: Vec<String>,
}

/// Where the audit entries recording a change sit in the Merkle log: each entry's index, leaf
/// hash and inclusion proof (base64) in the tree of `tree_size` entries, and the signed
/// checkpoint (a C2SP signed note) of that tree.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Receipt {
    pub entries: Vec<ReceiptEntry>,
    pub tree_size: u64,
    pub checkpoint: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ReceiptEntry {
    pub index: u64,
    pub leaf_hash: String,
    pub inclusion_proof: Vec<String>,
}

impl From<countersign_audit::attestation::AuditEvidence> for Receipt {
    fn from(e: countersign_audit::attestation::AuditEvidence) -> Self {
        Receipt {
            entries: e
                .entries
                .into_iter()
                .map(|p| ReceiptEntry {
                    index: p.index,
                    leaf_hash: p.leaf_hash,
                    inclusion_proof: p.inclusion_proof,
                })
                .collect(),
            tree_size: e.tree_size,
            checkpoint: e.checkpoint,
        }
    }
}

/// `GET /v1/audit/entries/{index}/proof`: the inclusion proof of one entry.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InclusionProofView {
    pub index: u64,
    pub size: u64,
    /// base64 of the entry's leaf hash.
    pub leaf_hash: String,
    /// base64 hashes, leaf-most first (RFC 9162 §2.1.3).
    pub hashes: Vec<String>,
}

/// `GET /v1/audit/consistency`: the consistency proof between two tree sizes.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsistencyProofView {
    pub from: u64,
    pub to: u64,
    /// base64 hashes (RFC 9162 §2.1.4).
    pub hashes: Vec<String>,
}

pub fn timestamp(t: &countersign_core::Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl RequestView {
    /// The view of `req` for `viewer` at `now` (the gateway's clock: a standing approval's and
    /// a plan's state depend on it).
    pub fn new(
        req: &Request,
        viewer: &countersign_core::Principal,
        public_url: &str,
        now: countersign_core::Timestamp,
    ) -> Self {
        Self {
            id: req.id().to_owned(),
            digest: req.digest().to_string(),
            state: req.state(),
            held: req.held(),
            requester: req.requester().clone(),
            action: req.action().clone(),
            decision: req.decision().clone(),
            remaining: req.remaining(),
            votes: req.votes().to_vec(),
            grant: req.grant().map(|g| GrantView {
                id: g.id.clone(),
                expires_at: timestamp(&g.expires_at),
                max_uses: g.max_uses,
                uses: g.uses,
            }),
            review_url: (req.decision().effect == countersign_core::Effect::Review)
                .then(|| format!("{public_url}/console/requests/{}", req.id())),
            created_at: timestamp(&req.created_at()),
            expires_at: req.expires_at().as_ref().map(timestamp),
            closed_at: req.closed_at().as_ref().map(timestamp),
            outcome: req.outcome().map(str::to_owned),
            outcome_code: req.outcome_code().map(str::to_owned),
            traceparent: req.trace().map(|t| t.as_str().to_owned()),
            execution: req.execution_for(viewer),
            receipt: None,
            coalesced: false,
            standing: StandingView::of(req, now),
            amendments: req.amendments().to_vec(),
            covered_by: req.covered_by().map(|c| CoveredByView {
                standing: countersign_core::standing::standing_id_for(&c.standing),
                request: c.standing.clone(),
                approvers: c.approvers.iter().map(|a| a.to_string()).collect(),
            }),
            plan: PlanView::of(req, now),
            planned_by: req.planned_by().map(|p| PlannedByView {
                plan: p.plan.clone(),
                step: p.step,
                approvers: p.approvers.iter().map(|a| a.to_string()).collect(),
            }),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RequestList {
    pub requests: Vec<RequestView>,
    /// Pass as `before` to get the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RedeemView {
    pub grant: GrantView,
    pub request: String,
    pub digest: String,
}

/// `POST /v1/requests/{id}/execute`: the request after its execution, and how it went.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExecutedView {
    pub request: RequestView,
    pub outcome: Option<Outcome>,
}

/// One executor as `GET /v1/executors` shows it: never a secret (an `ExecutorInfo` holds none).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ExecutorView {
    pub name: String,
    /// The action kind that names it (`exec.http.github`).
    pub kind: String,
    pub description: String,
    /// The JSON Schema of its actions' `params`.
    pub params_schema: serde_json::Value,
    /// The resource its actions name (`command://rollback`), or the base URL an HTTP
    /// executor's resources start with (the action's resource adds `params.path`).
    pub resource: String,
}

impl From<&ExecutorInfo> for ExecutorView {
    fn from(e: &ExecutorInfo) -> Self {
        ExecutorView {
            name: e.name.clone(),
            kind: e.kind.clone(),
            description: e.description.clone(),
            params_schema: e.params_schema.clone(),
            resource: e.resource.clone(),
        }
    }
}

impl From<ExecutorView> for ExecutorInfo {
    fn from(e: ExecutorView) -> Self {
        ExecutorInfo {
            name: e.name,
            kind: e.kind,
            description: e.description,
            params_schema: e.params_schema,
            resource: e.resource,
        }
    }
}

/// `GET /v1/executors`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExecutorList {
    pub executors: Vec<ExecutorView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunView {
    pub id: String,
    pub state: countersign_core::RunState,
    pub updated_by: String,
    pub updated_at: String,
    /// Requests whose state changed because of this run change.
    #[serde(default)]
    pub changed: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WhoAmI {
    pub principal: Principal,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MfaEnrollment {
    pub otpauth_uri: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
    /// On `409 grant_used` from `POST /v1/requests/{id}/execute`: the recorded outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}
