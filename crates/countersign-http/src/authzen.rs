//! The AuthZEN Authorization API 1.0 (OpenID Foundation) for policy enforcement points:
//! `POST /access/v1/evaluation`, `POST /access/v1/evaluations` (batch, with the spec's
//! `evaluations_semantic`) and the discovery document `GET /.well-known/authzen-configuration`.
//! The PEP authenticates with its own key (`Authorization: Bearer`); whom it may ask for is the
//! Gateway's to decide (`Directory::may_evaluate_for`), what the answer is too
//! (`Gateway::evaluate_access`); this module only maps the spec's JSON to an action and back.
//!
//! Mapping (docs/authzen.md): `subject` (`type` `agent` or `user`, `id`) is the requester,
//! `agent:<id>` or `user:<id>`; `action.name` is the kind; `resource` is `<type>:<id>`; the
//! params are `{subject, resource, action}` (each one's `properties`, when given) and
//! `context`. Unknown fields are ignored and `null` is absent, as the spec asks.

use super::ApiState;
use super::error::ApiError;
use super::extract::{Caller, JsonBody};
use super::openapi::{Refused, TooLarge};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use countersign_app::gateway::GatewayError;
use countersign_app::gateway::authzen::{Access, RETRY_AFTER_SECONDS};
use countersign_core::{Action, Principal, PrincipalId};
use serde_json::{Map, Value, json};

/// The most evaluations one batch may hold (each is a durable write).
pub const MAX_EVALUATIONS: usize = 100;

/// The header a PEP may send to correlate a request with its answer; it is echoed (§10.1.3).
const REQUEST_ID: &str = "x-request-id";

/// Echoes the PEP's `X-Request-ID` on every answer, errors included, and names the scheme on a
/// 401 (`WWW-Authenticate`, §11.3).
pub async fn echo_request_id(req: Request, next: Next) -> Response {
    let id = req.headers().get(REQUEST_ID).cloned();
    let mut resp = next.run(req).await;
    if let Some(id) = id {
        resp.headers_mut().insert(REQUEST_ID, id);
    }
    if resp.status() == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"countersign\""),
        );
    }
    resp
}

/// The schemas of AuthZEN's JSON as the OpenAPI document shows it. The handlers read the
/// spec's JSON themselves (unknown members ignored, `null` as absent, a batch's defaults), so
/// these types describe it and are not used to parse it.
pub mod schema {
    #![allow(dead_code)] // Only their schemas are read.
    use serde::Deserialize;
    use serde_json::{Map, Value};

    /// A subject (§5.1): `type` `agent` or `user`, and its `id`.
    #[derive(Deserialize, utoipa::ToSchema)]
    #[schema(as = AuthzenSubject)]
    pub struct Subject {
        #[serde(rename = "type")]
        #[schema(pattern = "^(agent|user)$")]
        pub kind: String,
        #[schema(min_length = 1)]
        pub id: String,
        pub properties: Option<Map<String, Value>>,
    }

    /// A resource (§5.3): the action's resource is `<type>:<id>`.
    #[derive(Deserialize, utoipa::ToSchema)]
    #[schema(as = AuthzenResource)]
    pub struct Resource {
        #[serde(rename = "type")]
        #[schema(min_length = 1)]
        pub kind: String,
        #[schema(min_length = 1)]
        pub id: String,
        pub properties: Option<Map<String, Value>>,
    }

    /// An action (§5.2): its `name` is the action's kind.
    #[derive(Deserialize, utoipa::ToSchema)]
    #[schema(as = AuthzenAction)]
    pub struct Action {
        #[schema(min_length = 1)]
        pub name: String,
        pub properties: Option<Map<String, Value>>,
    }

    /// One evaluation (§6.1).
    #[derive(Deserialize, utoipa::ToSchema)]
    #[schema(as = AuthzenEvaluation)]
    pub struct Evaluation {
        pub subject: Subject,
        pub action: Action,
        pub resource: Resource,
        pub context: Option<Map<String, Value>>,
    }

    /// One evaluation of a batch: what it leaves out, the batch's defaults give.
    #[derive(Deserialize, utoipa::ToSchema)]
    #[schema(as = AuthzenBatchItem)]
    pub struct BatchItem {
        pub subject: Option<Subject>,
        pub action: Option<Action>,
        pub resource: Option<Resource>,
        pub context: Option<Map<String, Value>>,
    }

    /// §7.1.2.
    #[derive(Deserialize, utoipa::ToSchema)]
    #[schema(as = AuthzenOptions)]
    pub struct Options {
        #[schema(pattern = "^(execute_all|deny_on_first_deny|permit_on_first_permit)$")]
        pub evaluations_semantic: Option<String>,
    }

    /// A batch (§7): the top-level members are defaults; without `evaluations` it is one
    /// evaluation.
    #[derive(Deserialize, utoipa::ToSchema)]
    #[schema(as = AuthzenEvaluations)]
    pub struct Evaluations {
        pub subject: Option<Subject>,
        pub action: Option<Action>,
        pub resource: Option<Resource>,
        pub context: Option<Map<String, Value>>,
        #[schema(max_items = 100)]
        pub evaluations: Option<Vec<BatchItem>>,
        pub options: Option<Options>,
    }

    /// A decision (§6.2): `context` says why not, and for a pending review where to follow
    /// it (`request_id`, `state`, `review_url`, `retry_after`).
    #[derive(serde::Serialize, utoipa::ToSchema)]
    #[schema(as = AuthzenDecision)]
    pub struct Decision {
        pub decision: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub context: Option<Map<String, Value>>,
    }

    /// A batch's decisions, in order (§7.2).
    #[derive(serde::Serialize, utoipa::ToSchema)]
    #[schema(as = AuthzenDecisions)]
    pub struct Decisions {
        pub evaluations: Vec<Decision>,
    }

    /// `POST /access/v1/evaluations`'s answer: a batch's decisions, or one decision when
    /// the body held no `evaluations`.
    #[derive(serde::Serialize, utoipa::ToSchema)]
    #[serde(untagged)]
    #[schema(as = AuthzenEvaluationsAnswer)]
    pub enum EvaluationsAnswer {
        Batch(Decisions),
        One(Decision),
    }

    /// The PDP's metadata (§9).
    #[derive(serde::Serialize, utoipa::ToSchema)]
    #[schema(as = AuthzenConfiguration)]
    pub struct Configuration {
        pub policy_decision_point: String,
        pub access_evaluation_endpoint: String,
        pub access_evaluations_endpoint: String,
    }
}

#[utoipa::path(
    get,
    path = "/.well-known/authzen-configuration",
    operation_id = "authzen_configuration",
    responses((status = 200, description = "The PDP's metadata", body = schema::Configuration))
)]
/// `GET /.well-known/authzen-configuration`: the PDP's metadata (§9). The identifier is the
/// gateway's public URL, from which the well-known URL is built.
pub async fn configuration(State(state): State<ApiState>) -> Json<Value> {
    let base = &state.gateway.public_url;
    Json(json!({
        "policy_decision_point": base,
        "access_evaluation_endpoint": format!("{base}/access/v1/evaluation"),
        "access_evaluations_endpoint": format!("{base}/access/v1/evaluations"),
    }))
}

/// `POST /access/v1/evaluation`: one evaluation; a failure is an HTTP error.
#[utoipa::path(
    post,
    path = "/access/v1/evaluation",
    operation_id = "authzen_evaluation",
    security(("bearer" = [])),
    params(("X-Request-ID" = Option<String>, Header, description = "Echoed on the answer")),
    request_body = schema::Evaluation,
    responses((status = 200, description = "The decision", body = schema::Decision), Refused, TooLarge)
)]
pub async fn evaluation(
    State(state): State<ApiState>,
    Caller(pep): Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let top = object(&body, "the request body")?;
    let item = Item::of(top, &Defaults::default())?;
    Ok(Json(evaluate(&state, &pep, item).await?))
}

/// `POST /access/v1/evaluations`: several evaluations, in order, each answered on its own
/// (§7): the top-level `subject`, `action`, `resource` and `context` are defaults an item's
/// own replaces whole; `options.evaluations_semantic` stops at the first denial
/// (`deny_on_first_deny`) or permit (`permit_on_first_permit`), the answers then ending there.
/// An item that cannot be asked (a subject the PEP may not ask for, a kind out of shape) is
/// `decision: false` with `context.error {status, code, message}`; a payload out of shape is a
/// 400 and nothing is asked. Without `evaluations` it is a single evaluation.
#[utoipa::path(
    post,
    path = "/access/v1/evaluations",
    operation_id = "authzen_evaluations",
    security(("bearer" = [])),
    params(("X-Request-ID" = Option<String>, Header, description = "Echoed on the answer")),
    request_body = schema::Evaluations,
    responses(
        (status = 200, description = "The decisions, in order (a batch), or one decision (without `evaluations`)", body = schema::EvaluationsAnswer),
        Refused,
        TooLarge,
    )
)]
pub async fn evaluations(
    State(state): State<ApiState>,
    Caller(pep): Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let top = object(&body, "the request body")?;
    let defaults = Defaults {
        subject: present(top, "subject"),
        action: present(top, "action"),
        resource: present(top, "resource"),
        context: present(top, "context"),
    };
    let semantic = Semantic::of(top)?;
    let list = match present(top, "evaluations") {
        None => &[][..],
        Some(Value::Array(list)) => list.as_slice(),
        Some(_) => return Err(bad("`evaluations` must be an array")),
    };
    if list.is_empty() {
        let item = Item::of(top, &Defaults::default())?;
        return Ok(Json(evaluate(&state, &pep, item).await?));
    }
    if list.len() > MAX_EVALUATIONS {
        return Err(ApiError::bad_request(
            "too_many_evaluations",
            format!(
                "a batch holds at most {MAX_EVALUATIONS} evaluations, this one {}",
                list.len()
            ),
        ));
    }
    // The whole payload is checked before anything is asked.
    let items = list
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let o = object(v, &format!("`evaluations[{i}]`"))?;
            Item::of(o, &defaults).map_err(|e| ApiError {
                message: format!("`evaluations[{i}]`: {}", e.message),
                ..e
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut answers = Vec::with_capacity(items.len());
    for item in items {
        let answer = match evaluate(&state, &pep, item).await {
            Ok(answer) => answer,
            Err(e) => json!({
                "decision": false,
                "context": {"error": {
                    "status": e.status.as_u16(), "code": e.code, "message": e.message,
                }},
            }),
        };
        let permitted = answer["decision"] == true;
        answers.push(answer);
        match semantic {
            Semantic::DenyOnFirstDeny if !permitted => break,
            Semantic::PermitOnFirstPermit if permitted => break,
            _ => {}
        }
    }
    Ok(Json(json!({ "evaluations": answers })))
}

#[derive(Clone, Copy)]
enum Semantic {
    ExecuteAll,
    DenyOnFirstDeny,
    PermitOnFirstPermit,
}

impl Semantic {
    fn of(top: &Map<String, Value>) -> Result<Self, ApiError> {
        let Some(options) = present(top, "options") else {
            return Ok(Semantic::ExecuteAll);
        };
        let options = object(options, "`options`")?;
        match present(options, "evaluations_semantic") {
            None => Ok(Semantic::ExecuteAll),
            Some(Value::String(s)) if s == "execute_all" => Ok(Semantic::ExecuteAll),
            Some(Value::String(s)) if s == "deny_on_first_deny" => Ok(Semantic::DenyOnFirstDeny),
            Some(Value::String(s)) if s == "permit_on_first_permit" => {
                Ok(Semantic::PermitOnFirstPermit)
            }
            Some(_) => Err(bad(
                "`options.evaluations_semantic` must be `execute_all`, `deny_on_first_deny` or \
                 `permit_on_first_permit`",
            )),
        }
    }
}

/// A batch's top-level defaults, as sent: each is checked only where an item uses it.
#[derive(Default)]
struct Defaults<'a> {
    subject: Option<&'a Value>,
    action: Option<&'a Value>,
    resource: Option<&'a Value>,
    context: Option<&'a Value>,
}

/// A `subject` or `resource`.
struct Entity {
    kind: String,
    id: String,
    properties: Option<Value>,
}

/// One evaluation, in shape.
struct Item {
    subject: Entity,
    action: String,
    action_properties: Option<Value>,
    resource: Entity,
    context: Option<Value>,
}

impl Item {
    fn of(o: &Map<String, Value>, defaults: &Defaults<'_>) -> Result<Self, ApiError> {
        let subject = entity(member(o, "subject", defaults.subject)?, "subject")?;
        let resource = entity(member(o, "resource", defaults.resource)?, "resource")?;
        let action = object(member(o, "action", defaults.action)?, "`action`")?;
        let name = match present(action, "name") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(bad("`action.name` is required: a non-empty string")),
        };
        let action_properties = properties(action, "action")?;
        let context = match present(o, "context").or(defaults.context) {
            None => None,
            Some(v) => Some(Value::Object(object(v, "`context`")?.clone())),
        };
        Ok(Item {
            subject,
            action: name,
            action_properties,
            resource,
            context,
        })
    }

    /// The requester this evaluation is for: `agent:<id>` or `user:<id>` (an id already
    /// written with its kind is taken as it is).
    fn subject_id(&self) -> Result<PrincipalId, GatewayError> {
        let Entity { kind, id, .. } = &self.subject;
        if kind != "agent" && kind != "user" {
            return Err(GatewayError::BadInput(
                "invalid_subject",
                format!(
                    "`subject.type` must be `agent` or `user`, not {:?}",
                    countersign_core::text::visible(kind)
                ),
            ));
        }
        let prefixed = format!("{kind}:");
        let full = if id.starts_with(&prefixed) {
            id.clone()
        } else {
            format!("{prefixed}{id}")
        };
        PrincipalId::parse(&full)
            .map_err(|e| GatewayError::BadInput("invalid_subject", e.to_string()))
    }

    /// The action asked about (see the module for the mapping).
    fn into_action(self) -> Action {
        let mut params = Map::new();
        for (key, value) in [
            ("subject", self.subject.properties),
            ("resource", self.resource.properties),
            ("action", self.action_properties),
            ("context", self.context),
        ] {
            if let Some(v) = value {
                params.insert(key.into(), v);
            }
        }
        Action {
            kind: self.action,
            resource: format!("{}:{}", self.resource.kind, self.resource.id),
            params: Value::Object(params),
            justification: None,
            run: None,
            labels: Default::default(),
        }
    }
}

/// Asks the gateway about one evaluation and writes its decision (§6.2).
async fn evaluate(state: &ApiState, pep: &Principal, item: Item) -> Result<Value, ApiError> {
    let subject = item.subject_id()?;
    let access = state
        .gateway
        .evaluate_access(pep, &subject, item.into_action())
        .await?;
    Ok(match access {
        Access::Permit(_) => json!({"decision": true}),
        Access::Pending(req) => json!({
            "decision": false,
            "context": {
                "request_id": req.id(),
                "state": "pending",
                "review_url": format!("{}/console/requests/{}", state.gateway.public_url, req.id()),
                "retry_after": RETRY_AFTER_SECONDS,
            },
        }),
        Access::Refused {
            request,
            state,
            reason,
        } => json!({
            "decision": false,
            "context": {"request_id": request.id(), "state": state, "reason": reason},
        }),
    })
}

fn bad(message: &str) -> ApiError {
    ApiError::bad_request("invalid_body", message)
}

/// A required member: the item's own, else the batch's default.
fn member<'a>(
    o: &'a Map<String, Value>,
    name: &str,
    default: Option<&'a Value>,
) -> Result<&'a Value, ApiError> {
    present(o, name).or(default).ok_or_else(|| {
        bad(&format!(
            "`{name}` is required (in the evaluation or as the batch's default)"
        ))
    })
}

/// A member that is there and not `null`.
fn present<'a>(o: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, ApiError> {
    v.as_object()
        .ok_or_else(|| bad(&format!("{what} must be a JSON object")))
}

fn properties(o: &Map<String, Value>, of: &str) -> Result<Option<Value>, ApiError> {
    match present(o, "properties") {
        None => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
        Some(_) => Err(bad(&format!("`{of}.properties` must be a JSON object"))),
    }
}

fn entity(v: &Value, name: &str) -> Result<Entity, ApiError> {
    let o = object(v, &format!("`{name}`"))?;
    let text = |key: &str| match present(o, key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(bad(&format!(
            "`{name}.{key}` is required: a non-empty string"
        ))),
    };
    Ok(Entity {
        kind: text("type")?,
        id: text("id")?,
        properties: properties(o, name)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(v: Value) -> Result<Item, ApiError> {
        Item::of(v.as_object().expect("an object"), &Defaults::default())
    }

    #[test]
    fn an_evaluation_maps_to_an_action_and_a_requester() {
        let it = item(json!({
            "subject": {"type": "agent", "id": "deploy-bot", "properties": {"ip": "10.0.0.1"}},
            "action": {"name": "can_update_todo", "properties": {"method": "PUT"}},
            "resource": {"type": "todo", "id": "7240", "properties": {"ownerID": "morty"}},
            "context": {"time": "1985-10-26T01:22-07:00"},
            "unknown": "ignored",
        }))
        .expect("in shape");
        assert_eq!(it.subject_id().unwrap().as_str(), "agent:deploy-bot");
        let action = it.into_action();
        assert_eq!(action.kind, "can_update_todo");
        assert_eq!(action.resource, "todo:7240");
        assert_eq!(
            action.params,
            json!({"subject": {"ip": "10.0.0.1"}, "resource": {"ownerID": "morty"},
                   "action": {"method": "PUT"}, "context": {"time": "1985-10-26T01:22-07:00"}})
        );
        // An id written with its kind is taken as it is; people are addresses.
        for (subject, id) in [
            (
                json!({"type": "agent", "id": "agent:Deploy-Bot"}),
                "agent:deploy-bot",
            ),
            (
                json!({"type": "user", "id": "Alice@example.com"}),
                "user:alice@example.com",
            ),
        ] {
            let it = item(json!({"subject": subject, "action": {"name": "x"},
                                 "resource": {"type": "t", "id": "1"}}))
            .unwrap();
            assert_eq!(it.subject_id().unwrap().as_str(), id);
        }
    }

    #[test]
    fn an_evaluation_out_of_shape_is_refused_with_what_is_wrong() {
        let good = json!({"subject": {"type": "agent", "id": "a"}, "action": {"name": "x"},
                          "resource": {"type": "t", "id": "1"}});
        for (path, value, says) in [
            ("subject", Value::Null, "`subject` is required"),
            ("resource", json!("t:1"), "`resource` must be a JSON object"),
            (
                "action",
                json!({"properties": {}}),
                "`action.name` is required",
            ),
            (
                "subject",
                json!({"type": "agent"}),
                "`subject.id` is required",
            ),
            (
                "resource",
                json!({"type": "", "id": "1"}),
                "`resource.type` is required",
            ),
            ("context", json!([1]), "`context` must be a JSON object"),
            (
                "resource",
                json!({"type": "t", "id": "1", "properties": 3}),
                "`resource.properties`",
            ),
        ] {
            let mut v = good.clone();
            v[path] = value;
            let e = item(v).err().expect(says);
            assert_eq!(
                (e.status, e.code),
                (StatusCode::BAD_REQUEST, "invalid_body")
            );
            assert!(e.message.contains(says), "{}: {}", says, e.message);
        }
        for (subject, code) in [
            (json!({"type": "identity", "id": "x"}), "invalid_subject"),
            (json!({"type": "pep", "id": "gateway"}), "invalid_subject"),
            (
                json!({"type": "user", "id": "not-an-address"}),
                "invalid_subject",
            ),
            (json!({"type": "agent", "id": "a b"}), "invalid_subject"),
        ] {
            let mut v = good.clone();
            v["subject"] = subject.clone();
            let e = item(v).unwrap().subject_id().expect_err("refused");
            assert_eq!(e.code(), code, "{subject}");
        }
    }

    #[test]
    fn a_batch_item_takes_the_defaults_it_does_not_replace_whole() {
        let top = json!({"subject": {"type": "agent", "id": "a"}, "action": {"name": "read"},
                         "resource": {}, "context": {"k": 1}});
        let top = top.as_object().unwrap();
        let defaults = Defaults {
            subject: present(top, "subject"),
            action: present(top, "action"),
            resource: present(top, "resource"),
            context: present(top, "context"),
        };
        let it = json!({"resource": {"type": "doc", "id": "1"}, "action": {"name": "edit"}});
        let it = Item::of(it.as_object().unwrap(), &defaults).expect("in shape");
        assert_eq!(it.subject_id().unwrap().as_str(), "agent:a");
        let action = it.into_action();
        assert_eq!(
            (action.kind.as_str(), action.resource.as_str()),
            ("edit", "doc:1")
        );
        assert_eq!(action.params, json!({"context": {"k": 1}}));
        // The empty default resource is used by an item that has none: out of shape.
        let it = json!({"action": {"name": "edit"}});
        assert!(Item::of(it.as_object().unwrap(), &defaults).is_err());
    }
}
