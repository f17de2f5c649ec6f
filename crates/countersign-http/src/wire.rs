//! The wire types of the HTTP API: what clients send and what they get back. The CLI reuses
//! them, so the two can never disagree about a field.

use countersign_app::executors::ExecutorInfo;
use countersign_app::gateway::{CastVote, GatewayError};
use countersign_core::{
    Action, Clause, Decision, ExecStatus, Outcome, Principal, Request, State, Vote,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `labels`: at most 64, each key and value at most 200 characters, no key under a reserved
/// prefix.
fn labels_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .max_properties(Some(countersign_core::action::MAX_LABELS))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(200))
                // `RESERVED_LABEL_PREFIXES`: set by the gateway alone.
                .pattern(Some("^(?!mcp\\.|authzen\\.)")),
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(200))
                .into(),
        )))
        .build()
}

/// `POST /v1/actions`. The requester is whoever authenticated; a body that tries to name one is
/// refused (`requester` is accepted only to be rejected with a clear message).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    #[schema(pattern = "^[A-Za-z0-9_-]([A-Za-z0-9._-]{0,198}[A-Za-z0-9_-])?$")]
    pub kind: String,
    #[schema(
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]+$",
        max_length = 2048
    )]
    pub resource: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub params: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 8192)]
    pub justification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,200}$")]
    pub run: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(schema_with = labels_schema)]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing)]
    #[schema(ignore)]
    pub requester: Option<serde_json::Value>,
}

impl ActionBody {
    /// The action to submit. Refuses a body that names its own requester
    /// (`requester_not_allowed`): the requester is whoever authenticates.
    pub fn into_action(self) -> Result<Action, GatewayError> {
        if self.requester.is_some() {
            return Err(GatewayError::Forbidden(
                "requester_not_allowed",
                "the requester is whoever authenticates; remove `requester` from the body".into(),
            ));
        }
        Ok(Action {
            kind: self.kind,
            resource: self.resource,
            params: self
                .params
                .unwrap_or_else(|| serde_json::Value::Object(Default::default())),
            justification: self.justification,
            run: self.run,
            labels: self.labels,
        })
    }
}

/// `POST /v1/requests/{id}/votes`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoteBody {
    pub decision: countersign_core::VoteDecision,
    /// The digest the approver was shown; must equal the request's.
    #[schema(pattern = "^sha256:[0-9a-f]{64}$")]
    pub digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 4096)]
    pub comment: Option<String>,
    /// A TOTP code, when the rule requires MFA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp: Option<String>,
    /// With an approval: also approve the same requester's matching actions for a while
    /// (bounded by the rule's `review.standing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standing: Option<StandingAskBody>,
}

/// `POST /v1/requests/{id}/amend`: the params the approver approves instead (the kind,
/// resource, justification and run stay), why, and optionally the digest they were shown and a
/// second factor.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmendBody {
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 4096)]
    pub comment: Option<String>,
    /// The digest shown before amending; when given, it must be the request's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^sha256:[0-9a-f]{64}$")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp: Option<String>,
}

/// `standing` on a vote: `{"for": "30m", "uses": 20}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StandingAskBody {
    #[serde(rename = "for")]
    pub for_: String,
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "whole::required")]
    pub uses: u32,
}

impl VoteBody {
    /// The vote to cast (`CastVote::parse`: the digest must be one, the comment not too long;
    /// `CastVote::standing`: the duration must be one).
    pub fn into_vote(self) -> Result<CastVote, GatewayError> {
        let vote = CastVote::parse(self.decision, &self.digest, self.comment, self.otp)?;
        match self.standing {
            None => Ok(vote),
            Some(ask) => vote.standing(&ask.for_, ask.uses),
        }
    }
}

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

/// `POST /v1/grants/{id}/redeem`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemBody {
    #[schema(pattern = "^sha256:[0-9a-f]{64}$")]
    pub digest: String,
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

/// `POST /v1/plans`: the steps in order (each `{kind, resource, params}`), and what applies
/// to all of them.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanBody {
    #[schema(min_items = 1, max_items = 50)]
    pub steps: Vec<countersign_core::plan::StepInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 8192)]
    pub justification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,200}$")]
    pub run: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(schema_with = labels_schema)]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing)]
    #[schema(ignore)]
    pub requester: Option<serde_json::Value>,
}

impl PlanBody {
    /// The plan to submit (refused, like an action, when it names its own requester).
    pub fn into_plan(self) -> Result<countersign_app::gateway::plans::PlanInput, GatewayError> {
        if self.requester.is_some() {
            return Err(GatewayError::Forbidden(
                "requester_not_allowed",
                "the requester is whoever authenticates; remove `requester` from the body".into(),
            ));
        }
        Ok(countersign_app::gateway::plans::PlanInput {
            steps: self.steps,
            justification: self.justification,
            run: self.run,
            labels: self.labels,
        })
    }
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

/// How a reported execution ended (`running` cannot be reported).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportedStatus {
    Succeeded,
    Failed,
    Unknown,
}

/// Whole numbers in request bodies, however written (`484`, `484.0`, `4.84e2`): what JSON
/// Schema calls an `integer`, and so what the OpenAPI document promises. serde alone takes
/// only the first form. Written here because no serde helper crate reads JSON's integers by
/// value.
mod whole {
    use serde::{Deserialize, Deserializer, de::Error};

    fn value<T: TryFrom<i128>, E: Error>(n: &serde_json::Number) -> Result<T, E> {
        let whole = if let Some(u) = n.as_u64() {
            Some(i128::from(u))
        } else if let Some(i) = n.as_i64() {
            Some(i128::from(i))
        } else {
            // Within ±2^63 and without a fraction, the cast is exact.
            n.as_f64()
                .filter(|f| f.is_finite() && f.fract() == 0.0 && f.abs() < 9.3e18)
                .map(|f| f as i128)
        };
        whole
            .and_then(|w| T::try_from(w).ok())
            .ok_or_else(|| E::custom(format!("{n} is not a whole number in range")))
    }

    pub fn required<'de, D: Deserializer<'de>, T: TryFrom<i128>>(d: D) -> Result<T, D::Error> {
        value(&serde_json::Number::deserialize(d)?)
    }

    pub fn optional<'de, D: Deserializer<'de>, T: TryFrom<i128>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        Option::<serde_json::Number>::deserialize(d)?
            .map(|n| value(&n))
            .transpose()
    }
}

/// The body of an operation that takes none but accepts `{}` (`POST /v1/requests/{id}/execute`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoBody {}

/// `POST /v1/requests/{id}/outcome`: the requester reports how the action they ran went.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeBody {
    /// Required (an `Option` so that its absence gets a clear message).
    #[schema(value_type = ReportedStatus, required = true)]
    pub status: Option<ReportedStatus>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole::optional"
    )]
    #[schema(maximum = 9007199254740991_u64)]
    pub duration_ms: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole::optional"
    )]
    #[schema(maximum = 9007199254740991_u64)]
    pub bytes: Option<u64>,
    /// Lower-case hex SHA-256 of the action's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub output_sha256: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole::optional"
    )]
    pub exit_code: Option<i32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole::optional"
    )]
    #[schema(minimum = 100, maximum = 599)]
    pub http_status: Option<u16>,
    /// A sentence, at most 1,000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1000, pattern = "^[^\\x00-\\x09\\x0b-\\x1f\\x7f-\\x9f]*$")]
    pub error: Option<String>,
}

impl OutcomeBody {
    /// The outcome to record, or why this report is not one.
    pub fn into_outcome(self) -> Result<Outcome, (&'static str, String)> {
        let bad = |m: &str| ("invalid_outcome", m.to_owned());
        let status = match self.status {
            Some(ReportedStatus::Succeeded) => ExecStatus::Succeeded,
            Some(ReportedStatus::Failed) => ExecStatus::Failed,
            Some(ReportedStatus::Unknown) => ExecStatus::Unknown,
            None => return Err(bad("`status` is required: succeeded, failed or unknown")),
        };
        if let Some(h) = &self.output_sha256
            && (h.len() != 64 || !h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        {
            return Err(bad("`output_sha256` must be 64 lower-case hex digits"));
        }
        if self.http_status.is_some_and(|s| !(100..=599).contains(&s)) {
            return Err(bad("`http_status` must be between 100 and 599"));
        }
        if let Some(e) = &self.error
            && (e.chars().count() > 1000 || e.chars().any(|c| c.is_control() && c != '\n'))
        {
            return Err(bad(
                "`error` must be at most 1,000 characters, without control characters",
            ));
        }
        let mut o = Outcome::with_status(status);
        o.duration_ms = self.duration_ms.unwrap_or(0);
        o.bytes = self.bytes.unwrap_or(0);
        o.output_sha256 = self.output_sha256;
        o.exit_code = self.exit_code;
        o.error = self.error;
        o.http = self
            .http_status
            .map(|status| countersign_core::HttpOutcome {
                status,
                headers: Default::default(),
                body: String::new(),
            });
        Ok(o)
    }
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

/// `POST /v1/mfa/totp` (an empty body is `{}`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaEnrollBody {
    /// A current one-time code, required when the caller already has a second factor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp: Option<String>,
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

#[cfg(test)]
mod openapi_patterns {
    use super::*;
    use countersign_core::action::ActionError;
    use proptest::prelude::*;
    use utoipa::PartialSchema as _;

    /// The pattern of `T`'s `field` in the OpenAPI document (`field` a JSON pointer under the
    /// schema's properties).
    fn pattern_of<T: utoipa::PartialSchema>(field: &str) -> String {
        let schema = serde_json::to_value(T::schema()).expect("a schema");
        schema
            .pointer(&format!("/properties/{field}/pattern"))
            .and_then(|p| p.as_str())
            .unwrap_or_else(|| panic!("no pattern at {field}: {schema}"))
            .to_owned()
    }

    fn re(p: &str) -> regex::Regex {
        regex::Regex::new(p).expect("a regex")
    }

    fn kind_pattern() -> String {
        pattern_of::<ActionBody>("kind")
    }

    fn resource_pattern() -> String {
        pattern_of::<ActionBody>("resource")
    }

    fn digest_pattern() -> String {
        pattern_of::<VoteBody>("digest")
    }

    /// Where the same field appears in several bodies, it has one pattern.
    #[test]
    fn each_field_has_one_pattern_in_every_body() {
        use countersign_core::plan::StepInput;
        assert_eq!(pattern_of::<StepInput>("kind"), kind_pattern());
        assert_eq!(pattern_of::<StepInput>("resource"), resource_pattern());
        assert_eq!(
            pattern_of::<PlanBody>("run"),
            pattern_of::<ActionBody>("run")
        );
        assert_eq!(pattern_of::<RedeemBody>("digest"), digest_pattern());
        let amend = serde_json::to_value(AmendBody::schema()).expect("a schema");
        assert_eq!(amend["properties"]["digest"]["pattern"], digest_pattern());
    }

    fn action(kind: &str, resource: &str, run: Option<&str>) -> Action {
        Action {
            kind: kind.into(),
            resource: resource.into(),
            params: serde_json::json!({}),
            justification: None,
            run: run.map(str::to_owned),
            labels: BTreeMap::new(),
        }
    }

    /// The document's patterns and `Action::validate` agree on each field (tried with the
    /// other fields valid): what the pattern allows is never refused, what it refuses always is.
    fn agree(kind: &str, resource: &str, run: Option<&str>) -> Result<(), TestCaseError> {
        let refused = |a: Action| a.validate().err();
        let kind_refused = refused(action(kind, "x", None)).is_some();
        prop_assert_eq!(
            !re(&kind_pattern()).is_match(kind),
            kind_refused,
            "kind {:?}",
            kind
        );
        let resource_refused = refused(action("k", resource, None)).is_some();
        let resource_ok =
            re(&resource_pattern()).is_match(resource) && resource.chars().count() <= 2048;
        prop_assert_eq!(!resource_ok, resource_refused, "resource {:?}", resource);
        if let Some(run) = run {
            let run_refused =
                matches!(refused(action("k", "x", Some(run))), Some(ActionError::Run));
            let run_pattern = pattern_of::<ActionBody>("run");
            prop_assert_eq!(
                !re(&run_pattern).is_match(run),
                run_refused,
                "run {:?}",
                run
            );
        }
        Ok(())
    }

    #[test]
    fn the_action_patterns_are_the_action_checks() {
        let long_kind = "k".repeat(200);
        let too_long_kind = "k".repeat(201);
        let wide = "é".repeat(2048);
        let wider = "é".repeat(2049);
        for (kind, resource, run) in [
            ("db.export", "postgres://prod", Some("run-1:a")),
            (".db", "x", None),
            ("db.", "x", None),
            ("_", "x", None),
            ("-", "x", None),
            (long_kind.as_str(), "x", None),
            (too_long_kind.as_str(), "x", None),
            ("d b", "x", None),
            ("db", "", None),
            ("db", "a\u{7}b", None),
            ("db", "a\u{85}b", None),
            ("db", "a\u{202e}b", None),
            ("db", wide.as_str(), None),
            ("db", wider.as_str(), None),
            ("db", "x", Some("")),
            ("db", "x", Some("a b")),
        ] {
            agree(kind, resource, run).expect("agree");
        }
        assert!(re(&digest_pattern()).is_match(&format!("sha256:{}", "ab".repeat(32))));
        assert!(!re(&digest_pattern()).is_match(&format!("sha256:{}", "AB".repeat(32))));
    }

    /// An `integer` in JSON Schema is a whole value however written; the bodies read it so.
    #[test]
    fn whole_numbers_are_read_however_written() {
        for text in ["484", "484.0", "4.84e2"] {
            let body: OutcomeBody =
                serde_json::from_str(&format!(r#"{{"status":"failed","http_status":{text}}}"#))
                    .expect(text);
            assert_eq!(body.http_status, Some(484), "{text}");
        }
        for text in ["484.5", "-1", "70000", "1e300"] {
            let refused = serde_json::from_str::<OutcomeBody>(&format!(
                r#"{{"status":"failed","http_status":{text}}}"#
            ));
            assert!(refused.is_err(), "{text}");
        }
        let ask: StandingAskBody =
            serde_json::from_str(r#"{"for":"30m","uses":2.0}"#).expect("2.0");
        assert_eq!(ask.uses, 2);
    }

    proptest! {
        #[test]
        fn any_action_fields_are_refused_by_both_or_neither(
            kind in "[a-z._ -]{0,4}",
            resource in "[a-z:/\\x00-\\x1f\\x7f-\\x9f\u{200e}\u{2066}é ]{0,6}",
            run in proptest::option::of("[a-z:._ -]{0,4}"),
        ) {
            agree(&kind, &resource, run.as_deref())?;
        }

        #[test]
        fn a_digest_matches_the_pattern_exactly_when_it_parses(s in "(sha256:)?[0-9a-fA-F]{62,66}") {
            prop_assert_eq!(
                re(&digest_pattern()).is_match(&s),
                s.parse::<countersign_core::Digest>().is_ok()
            );
        }
    }
}
