//! `POST /v1/channels/slack/interactions`: Slack's interactivity requests (button clicks and
//! modal submissions), and the same payloads arriving over Socket Mode.
//!
//! Order matters: the signature and timestamp are checked on the raw body before anything is
//! parsed; a replayed request (the same timestamp and body, however its signature header is
//! spelled: `signature::Verified::replay_key`) is acknowledged and dropped; a click is
//! acknowledged at once and decided in the background (Slack wants an answer within 3 s, and
//! looking up who clicked may call Slack); a modal submission is decided before answering, so
//! a refusal shows in the modal.

use super::render::{
    self, APPROVE, APPROVE_STANDING, DENY, DENY_MODAL, REASON_BLOCK, REASON_INPUT,
};
use super::{Slack, signature};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use countersign_app::gateway::CastVote;
use countersign_app::gateway::GatewayError;
use countersign_core::{Channel, VoteDecision};
use countersign_http::error::ApiError;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// How long a modal submission may take to decide before Slack's 3 s deadline.
const MODAL_BUDGET: Duration = Duration::from_millis(2_500);

/// The HTTP entry point (the router calls it with the Slack channel, when configured).
pub async fn http(slack: Arc<Slack>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(secret) = slack.signing_secret.clone() else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_configured",
            "Slack interactivity over HTTP is not configured (set channels.slack.signing_secret)",
        )
        .into_response();
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let sig = header("x-slack-signature");
    let now = slack.gateway.clock.now().timestamp();
    let verified = match signature::verify(
        secret.expose().as_bytes(),
        header("x-slack-request-timestamp"),
        sig,
        &body,
        now,
    ) {
        Ok(v) => v,
        Err(e) => {
            // Logged and audited in bounded form by `refusals`, not once per request.
            tracing::debug!(code = e.code(), "refused a Slack interaction");
            slack.refused.record("slack", e.code(), None).await;
            return ApiError::new(StatusCode::UNAUTHORIZED, e.code(), e.message()).into_response();
        }
    };
    if !slack.replays.first_sight(&verified.replay_key).await {
        return StatusCode::OK.into_response();
    }
    let payload = match parse_form(&body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match slack.interaction(payload).await {
        Some(answer) => axum::Json(answer).into_response(),
        None => StatusCode::OK.into_response(),
    }
}

/// Slack sends `application/x-www-form-urlencoded` with one field, `payload`, holding JSON
/// (whose numbers and keys must mean one thing, as in every JSON body). Public for the fuzz
/// target `slack_interaction`.
pub fn parse_form(body: &[u8]) -> Result<Value, ApiError> {
    let invalid = |message: String| ApiError::bad_request("invalid_payload", message);
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|e| invalid(format!("the body is not a form: {e}")))?;
    let payload = fields
        .into_iter()
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v)
        .ok_or_else(|| invalid("the form has no `payload` field".into()))?;
    countersign_core::json_text::check(payload.as_bytes())?;
    serde_json::from_str(&payload).map_err(|e| invalid(format!("`payload` is not JSON: {e}")))
}

impl Slack {
    /// Handles one verified interaction payload; returns the JSON answer Slack expects, if any
    /// (modal errors). Used by both HTTP and Socket Mode.
    pub async fn interaction(self: &Arc<Self>, payload: Value) -> Option<Value> {
        match payload["type"].as_str() {
            Some("block_actions") => {
                self.clicked(&payload);
                None
            }
            Some("view_submission")
                if payload["view"]["callback_id"].as_str() == Some(DENY_MODAL) =>
            {
                self.deny_submitted(&payload).await
            }
            other => {
                tracing::debug!(kind = ?other, "ignored a Slack interaction");
                None
            }
        }
    }

    /// A button: Approve votes at once (in the background); Deny opens the reason modal.
    fn clicked(self: &Arc<Self>, payload: &Value) {
        let Some(action) = payload["actions"].get(0) else {
            return;
        };
        let value = action["value"].as_str().unwrap_or_default();
        let parsed = match action["action_id"].as_str() {
            Some(APPROVE_STANDING) => render::parse_standing_value(value)
                .map(|(id, digest, for_, uses)| (id, digest, Some((for_.to_string(), uses)))),
            _ => render::parse_button_value(value).map(|(id, digest)| (id, digest, None)),
        };
        let Some((id, digest, standing)) = parsed else {
            return;
        };
        let (id, digest) = (id.to_string(), digest.to_string());
        let user = payload["user"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let channel = payload["channel"]["id"]
            .as_str()
            .or(payload["container"]["channel_id"].as_str())
            .map(str::to_string);
        let me = self.clone();
        match action["action_id"].as_str() {
            Some(APPROVE | APPROVE_STANDING) => {
                tokio::spawn(async move {
                    if let Err(text) = me
                        .vote(&user, &id, &digest, VoteDecision::Approve, None, standing)
                        .await
                        && let Some(channel) = channel
                    {
                        me.ephemeral(&channel, &user, &text).await;
                    }
                });
            }
            Some(DENY) => {
                let trigger = payload["trigger_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let meta = json!({"request": id, "digest": digest, "channel": channel}).to_string();
                tokio::spawn(async move {
                    let view = deny_modal(&id, &meta);
                    if let Err(e) = me.api.open_view(&trigger, &view).await {
                        tracing::warn!(error = %e, "could not open the deny modal");
                        if let Some(channel) = channel {
                            me.ephemeral(&channel, &user, "Could not open the deny form; try again, or deny from the API or CLI.").await;
                        }
                    }
                });
            }
            _ => {}
        }
    }

    /// The reason modal was submitted: deny with that reason, and answer with the refusal shown
    /// in the modal, if any.
    async fn deny_submitted(self: &Arc<Self>, payload: &Value) -> Option<Value> {
        let meta: Value =
            serde_json::from_str(payload["view"]["private_metadata"].as_str().unwrap_or("{}"))
                .unwrap_or_default();
        let (Some(id), Some(digest)) = (meta["request"].as_str(), meta["digest"].as_str()) else {
            return None;
        };
        let user = payload["user"]["id"].as_str().unwrap_or_default();
        let reason = payload["view"]["state"]["values"][REASON_BLOCK][REASON_INPUT]["value"]
            .as_str()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_string);
        let vote = self.vote(user, id, digest, VoteDecision::Deny, reason, None);
        match tokio::time::timeout(MODAL_BUDGET, vote).await {
            Ok(Ok(())) => None,
            Ok(Err(text)) => Some(json!({"response_action": "errors",
                "errors": {REASON_BLOCK: text}})),
            Err(_) => Some(json!({"response_action": "errors",
                "errors": {REASON_BLOCK: "This is taking too long; check the request and try again."}})),
        }
    }

    /// Turns a Slack user's click into a vote through the gateway. `Err` is the explanation for
    /// the person; refusals are recorded in the audit log.
    async fn vote(
        &self,
        slack_user: &str,
        id: &str,
        digest: &str,
        decision: VoteDecision,
        comment: Option<String>,
        standing: Option<(String, u32)>,
    ) -> Result<(), String> {
        let principal = match self.principal_for(slack_user).await {
            Ok(Ok(p)) => p,
            Ok(Err(email)) => {
                crate::record_refused_vote(
                    &self.gateway,
                    "slack",
                    slack_user,
                    None,
                    id,
                    "unknown_principal",
                )
                .await;
                return Err(match email {
                    Some(e) => format!(
                        "Your Slack account ({e}) is not a Countersign approver, so your vote \
                         was not counted. Ask an administrator to add `user:{e}`."
                    ),
                    None => "Slack did not share your email, so Countersign cannot tell who \
                             you are; your vote was not counted."
                        .into(),
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not look up a Slack user");
                return Err(
                    "Countersign could not check who you are with Slack right now; \
                            try again in a moment."
                        .into(),
                );
            }
        };
        let voted = async {
            let mut vote = CastVote::parse(decision, digest, comment, None)?;
            if let Some((for_, uses)) = standing {
                vote = vote.standing(&for_, uses)?;
            }
            self.gateway
                .vote(&principal, id, vote, Channel::Slack)
                .await
        }
        .await;
        match voted {
            Ok(_) => Ok(()),
            Err(e) => {
                let store_failure = matches!(e, GatewayError::Store(_));
                let api = ApiError::from(e);
                if !store_failure {
                    crate::record_refused_vote(
                        &self.gateway,
                        "slack",
                        slack_user,
                        Some(&principal.id),
                        id,
                        api.code,
                    )
                    .await;
                }
                Err(format!("Your vote was not counted: {}", api.message))
            }
        }
    }

    async fn ephemeral(&self, channel: &str, user: &str, text: &str) {
        if let Err(e) = self.api.post_ephemeral(channel, user, text).await {
            tracing::warn!(error = %e, "could not send an ephemeral explanation");
        }
    }
}

fn deny_modal(id: &str, meta: &str) -> Value {
    json!({
        "type": "modal",
        "callback_id": DENY_MODAL,
        "private_metadata": meta,
        "title": {"type": "plain_text", "text": "Deny request"},
        "submit": {"type": "plain_text", "text": "Deny"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("Denying `{id}`.")}},
            {"type": "input", "block_id": REASON_BLOCK,
             "label": {"type": "plain_text", "text": "Reason"},
             "element": {"type": "plain_text_input", "action_id": REASON_INPUT, "multiline": true,
                         "max_length": 1000}}
        ]
    })
}
