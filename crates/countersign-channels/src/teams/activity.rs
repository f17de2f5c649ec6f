//! `POST /v1/channels/teams/messages`: the bot endpoint the Bot Connector posts activities to.
//!
//! Order matters: the Bearer token is verified (signature, issuer, audience, validity) before
//! the body is read; then the three fields the protocol binds to the token (`channelId` to the
//! key's endorsements, `serviceUrl` to the `serviceurl` claim) and our tenant allow-list are
//! checked. Any failure is answered 401/403, counted and recorded in the audit log in bounded
//! form (`callback.refused`, `channels::refusals`), and nothing else happens. Only then is the
//! activity acted on:
//!
//! - `conversationUpdate`, `installationUpdate`, `message`: the conversation reference is
//!   stored (that is how the bot learns where it may post);
//! - `invoke` named `adaptiveCard/action`: a click on a card's `Action.Execute`, turned into a
//!   vote through `Gateway::vote` with `Channel::Teams`, and answered within Teams' 5 s with
//!   the refreshed card for the clicker (or the card with the reason the vote did not count).
//!
//! Other activity types are refused with 400 `unsupported_activity` and change nothing.

use super::card::{self, APPROVE, APPROVE_STANDING, COMMENT_INPUT, DENY};
use super::{NAME, Teams, auth::AuthFailure, connector::ServiceUrl};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use countersign_app::gateway::CastVote;
use countersign_app::gateway::GatewayError;
use countersign_core::{Channel, Request, VoteDecision};
use countersign_http::error::ApiError;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The name of the invoke a click on `Action.Execute` sends.
pub const ADAPTIVE_CARD_ACTION: &str = "adaptiveCard/action";
/// How long a click may take to decide before it is answered anyway (Teams waits 5 s).
const INVOKE_BUDGET: Duration = Duration::from_millis(4_000);
/// Invoke response types (Universal Actions).
const ERROR_TYPE: &str = "application/vnd.microsoft.error";

/// The HTTP entry point (the router calls it with the Teams channel, when configured).
pub async fn http(teams: Arc<Teams>, headers: HeaderMap, body: Bytes) -> Response {
    let now = teams.gateway.clock.now();
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return refuse(&teams, AuthFailure::MissingToken).await;
    };
    let verified = match teams.verifier.verify(token, now).await {
        Ok(v) => v,
        Err(f) => return refuse(&teams, f).await,
    };
    if let Err(e) = countersign_core::json_text::check(&body) {
        return ApiError::from(e).into_response();
    }
    let activity: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return bad_activity("the activity must be a JSON object"),
        Err(e) => return bad_activity(&format!("the body is not JSON: {e}")),
    };
    let tenant = tenant_of(&activity);
    let service_url = activity["serviceUrl"].as_str();
    if let Err(f) = verified.admits(
        activity["channelId"].as_str(),
        service_url,
        tenant.as_deref(),
        &teams.tenants,
    ) {
        return refuse(&teams, f).await;
    }
    // Admitted: the service URL is the token's, the tenant is ours.
    let (Some(service_url), Some(tenant)) = (service_url, tenant) else {
        return bad_activity("the activity has no serviceUrl or tenant");
    };
    let Some(conversation) = activity["conversation"]["id"]
        .as_str()
        .map(base_conversation)
    else {
        return bad_activity("the activity has no conversation.id");
    };
    let kind = activity["type"].as_str().unwrap_or_default();
    let name = activity["name"].as_str().unwrap_or_default();
    match (kind, name) {
        ("conversationUpdate" | "installationUpdate" | "message", _) => {
            for c in conversations_named(&activity, conversation) {
                teams.remember(c, service_url, &tenant).await;
            }
            tracing::info!(
                conversation,
                kind,
                "Teams activity: conversation reference kept"
            );
            StatusCode::OK.into_response()
        }
        ("invoke", ADAPTIVE_CARD_ACTION) => {
            let click = match click(&activity) {
                Ok(c) => c,
                Err((code, message)) => return action_error(code, &message),
            };
            for c in conversations_named(&activity, conversation) {
                teams.remember(c, service_url, &tenant).await;
            }
            let service = ServiceUrl::vouched(service_url);
            teams
                .clone()
                .card_action(&activity, click, service, conversation, &tenant)
                .await
        }
        ("", _) => bad_activity("the activity has no type"),
        _ => ApiError::bad_request(
            "unsupported_activity",
            format!(
                "this bot handles conversationUpdate, installationUpdate, message and invoke \
                 `{ADAPTIVE_CARD_ACTION}` activities, not `{kind}`{}",
                if name.is_empty() {
                    String::new()
                } else {
                    format!(" `{name}`")
                }
            ),
        )
        .into_response(),
    }
}

/// Answers a refused activity and records the refusal.
async fn refuse(teams: &Teams, failure: AuthFailure) -> Response {
    // Logged and audited in bounded form by `refusals`, not once per request.
    tracing::debug!(code = failure.code(), "refused a Teams activity");
    let tenant = match &failure {
        AuthFailure::TenantNotAllowed(t) => t.as_deref(),
        _ => None,
    };
    teams.refused.record(NAME, failure.code(), tenant).await;
    ApiError::new(failure.status(), failure.code(), failure.message()).into_response()
}

fn bad_activity(message: &str) -> Response {
    ApiError::bad_request("invalid_activity", message).into_response()
}

/// The activity's tenant: `channelData.tenant.id`, else `conversation.tenantId`. Two that
/// disagree name no tenant (and are refused). Public, as are the other readers of an activity
/// here, for the fuzz target `teams_activity`.
pub fn tenant_of(activity: &Value) -> Option<String> {
    let a = activity["channelData"]["tenant"]["id"].as_str();
    let b = activity["conversation"]["tenantId"].as_str();
    match (a, b) {
        (Some(a), Some(b)) if !a.eq_ignore_ascii_case(b) => None,
        (a, b) => a.or(b).map(str::to_string),
    }
}

/// A channel thread's conversation id is `<channel>;messageid=<root>`: the channel is the
/// conversation.
pub fn base_conversation(id: &str) -> &str {
    id.split(';').next().unwrap_or(id)
}

/// The conversations a verified activity introduces: its own, and the team and channel its
/// `channelData` names (the bot may post to a team's channels once installed in the team).
pub fn conversations_named<'a>(activity: &'a Value, conversation: &'a str) -> Vec<&'a str> {
    let mut out = vec![conversation];
    for c in [
        activity["channelData"]["channel"]["id"].as_str(),
        activity["channelData"]["team"]["id"].as_str(),
    ]
    .into_iter()
    .flatten()
    {
        let c = base_conversation(c);
        if !c.is_empty() && !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// An invoke response: the status Teams sees, and the body it shows.
fn invoke(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// The refreshed card, for the clicker.
fn card_answer(card: Value) -> Response {
    invoke(
        StatusCode::OK,
        json!({"statusCode": 200, "type": card::CONTENT_TYPE, "value": card}),
    )
}

/// Universal Actions' error answer, for an action we cannot read.
fn action_error(code: &str, message: &str) -> Response {
    invoke(
        StatusCode::BAD_REQUEST,
        json!({"statusCode": 400, "type": ERROR_TYPE,
            "value": {"code": code, "message": message}}),
    )
}

pub struct Click {
    request: String,
    digest: String,
    decision: VoteDecision,
    comment: Option<String>,
    /// With `approve_standing`: the standing approval the card offered (for, uses).
    standing: Option<(String, u32)>,
}

/// Reads `value.action` of an `adaptiveCard/action` invoke; `Err((code, message))` when it
/// cannot be read.
pub fn click(activity: &Value) -> Result<Click, (&'static str, String)> {
    let action = &activity["value"]["action"];
    if action["type"].as_str() != Some("Action.Execute") {
        return Err(("invalid_action", "only Action.Execute is handled".into()));
    }
    let decision = match action["verb"].as_str() {
        Some(APPROVE | APPROVE_STANDING) => VoteDecision::Approve,
        Some(DENY) => VoteDecision::Deny,
        other => {
            return Err((
                "unknown_verb",
                format!(
                    "the verb must be `approve`, `approve_standing` or `deny`, not {}",
                    other.unwrap_or("none")
                ),
            ));
        }
    };
    let data = &action["data"];
    let standing = match action["verb"].as_str() {
        Some(APPROVE_STANDING) => {
            let ask = &data["standing"];
            match (ask["for"].as_str(), ask["uses"].as_u64()) {
                (Some(for_), Some(uses)) => Some((
                    for_.to_string(),
                    u32::try_from(uses).map_err(|_| {
                        (
                            "invalid_action_data",
                            "`standing.uses` is too large".to_string(),
                        )
                    })?,
                )),
                _ => {
                    return Err((
                        "invalid_action_data",
                        "`approve_standing` needs `standing: {for, uses}` in its data".into(),
                    ));
                }
            }
        }
        _ => None,
    };
    let (Some(request), Some(digest)) = (data["request"].as_str(), data["digest"].as_str()) else {
        return Err((
            "invalid_action_data",
            "the action's data must name the request and the digest shown".into(),
        ));
    };
    if !request.starts_with("req_") || !digest.starts_with("sha256:") {
        return Err((
            "invalid_action_data",
            "the action's data does not name a Countersign request and digest".into(),
        ));
    }
    let comment = data[COMMENT_INPUT]
        .as_str()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    Ok(Click {
        request: request.to_string(),
        digest: digest.to_string(),
        decision,
        comment,
        standing,
    })
}

impl Teams {
    /// A click: vote as the member who clicked, answer with the refreshed card.
    async fn card_action(
        self: Arc<Self>,
        activity: &Value,
        click: Click,
        service: ServiceUrl,
        conversation: &str,
        tenant: &str,
    ) -> Response {
        let member_id = activity["from"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let aad = activity["from"]["aadObjectId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // Look members up in the team when there is one (channel conversations belong to it).
        let roster = activity["channelData"]["team"]["id"]
            .as_str()
            .map(base_conversation)
            .unwrap_or(conversation)
            .to_string();
        // Teams retries an invoke it thinks was lost: answer with the card, vote once.
        // Tenant ids are compared without case (`auth::Verified::admits`), so the key is too:
        // a retry spelled differently is the same invoke.
        let replay = match activity["id"].as_str() {
            Some(id) => {
                let key = format!("{}/{id}", tenant.to_ascii_lowercase());
                !self.replays.first_sight(&key).await
            }
            None => false,
        };
        let id = click.request.clone();
        let me = self.clone();
        let tenant = tenant.to_string();
        // The vote runs to completion even if it outlasts the answer.
        let vote = tokio::spawn(async move {
            if replay {
                return Err(None);
            }
            me.vote(&service, &roster, &tenant, &member_id, &aad, click)
                .await
        });
        let outcome = match tokio::time::timeout(INVOKE_BUDGET, vote).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "a Teams vote task failed");
                Err(Some(
                    "Something went wrong; your vote may not have been counted.".into(),
                ))
            }
            Err(_) => {
                return card_answer(card::notice_card(
                    "This is taking longer than usual; the card will update once your vote is \
                     counted.",
                ));
            }
        };
        let public_url = &self.gateway.public_url;
        match outcome {
            Ok(req) => card_answer(card::render(&req, public_url, &self.gateway.masker).body),
            Err(notice) => {
                let current = self.gateway.stored_request(&id).await.ok().flatten();
                card_answer(match (current, notice) {
                    (Some(req), None) => card::render(&req, public_url, &self.gateway.masker).body,
                    (Some(req), Some(n)) => {
                        card::render_with_notice(&req, public_url, &self.gateway.masker, &n)
                    }
                    (None, n) => {
                        card::notice_card(n.as_deref().unwrap_or("This request no longer exists."))
                    }
                })
            }
        }
    }

    /// Turns a Teams member's click into a vote through the gateway. `Err(Some(text))` is the
    /// explanation for the person (refusals are recorded in the audit log); `Err(None)` is a
    /// repeat of a click already handled.
    async fn vote(
        &self,
        service: &ServiceUrl,
        roster: &str,
        tenant: &str,
        member_id: &str,
        aad: &str,
        click: Click,
    ) -> Result<Request, Option<String>> {
        if member_id.is_empty() || aad.is_empty() {
            crate::record_refused_vote(
                &self.gateway,
                NAME,
                member_id,
                None,
                &click.request,
                "unknown_principal",
            )
            .await;
            return Err(Some(
                "Teams did not say who you are (no Microsoft Entra account), so your vote was \
                 not counted."
                    .into(),
            ));
        }
        let principal = match self
            .principal_for(service, roster, tenant, member_id, aad)
            .await
        {
            Ok(Ok(p)) => p,
            Ok(Err(email)) => {
                crate::record_refused_vote(
                    &self.gateway,
                    NAME,
                    aad,
                    None,
                    &click.request,
                    "unknown_principal",
                )
                .await;
                return Err(Some(match email {
                    Some(e) => format!(
                        "Your Teams account ({e}) is not a Countersign approver, so your vote \
                         was not counted. Ask an administrator to add user:{e}."
                    ),
                    None => "Teams did not share your email, so Countersign cannot tell who \
                             you are; your vote was not counted."
                        .into(),
                }));
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not look up a Teams member");
                return Err(Some(
                    "Countersign could not check who you are with Teams right now; try again \
                     in a moment."
                        .into(),
                ));
            }
        };
        let voted = async {
            let mut vote = CastVote::parse(click.decision, &click.digest, click.comment, None)?;
            if let Some((for_, uses)) = &click.standing {
                vote = vote.standing(for_, *uses)?;
            }
            self.gateway
                .vote(&principal, &click.request, vote, Channel::Teams)
                .await
        }
        .await;
        match voted {
            Ok(req) => Ok(req),
            Err(e) => {
                let store_failure = matches!(e, GatewayError::Store(_));
                let api = ApiError::from(e);
                if !store_failure {
                    crate::record_refused_vote(
                        &self.gateway,
                        NAME,
                        aad,
                        Some(&principal.id),
                        &click.request,
                        api.code,
                    )
                    .await;
                }
                Err(Some(format!("Your vote was not counted: {}", api.message)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenant_comes_from_channel_data_or_the_conversation_and_must_agree() {
        let a =
            json!({"channelData": {"tenant": {"id": "t1"}}, "conversation": {"tenantId": "T1"}});
        assert_eq!(tenant_of(&a).as_deref(), Some("t1"));
        let b = json!({"conversation": {"tenantId": "t2"}});
        assert_eq!(tenant_of(&b).as_deref(), Some("t2"));
        let c =
            json!({"channelData": {"tenant": {"id": "t1"}}, "conversation": {"tenantId": "t2"}});
        assert_eq!(tenant_of(&c), None);
        assert_eq!(tenant_of(&json!({})), None);
    }

    #[test]
    fn a_thread_belongs_to_its_channel_and_the_team_is_introduced_too() {
        assert_eq!(
            base_conversation("19:a@thread.tacv2;messageid=1700"),
            "19:a@thread.tacv2"
        );
        let a = json!({"channelData": {"channel": {"id": "19:a@thread.tacv2"},
            "team": {"id": "19:team@thread.tacv2"}}});
        assert_eq!(
            conversations_named(&a, "19:a@thread.tacv2"),
            ["19:a@thread.tacv2", "19:team@thread.tacv2"]
        );
    }

    #[test]
    fn clicks_must_be_execute_with_a_known_verb_and_name_request_and_digest() {
        let ok = json!({"value": {"action": {"type": "Action.Execute", "verb": "deny",
            "data": {"request": "req_1", "digest": "sha256:ab", "comment": "  no  "}}}});
        let c = click(&ok).ok().unwrap();
        assert_eq!(c.decision, VoteDecision::Deny);
        assert_eq!(c.comment.as_deref(), Some("no"));
        for bad in [
            json!({"value": {"action": {"type": "Action.Submit", "verb": "approve"}}}),
            json!({"value": {"action": {"type": "Action.Execute", "verb": "refresh",
                "data": {"request": "req_1", "digest": "sha256:ab"}}}}),
            json!({"value": {"action": {"type": "Action.Execute", "verb": "approve", "data": {}}}}),
            json!({"value": {"action": {"type": "Action.Execute", "verb": "approve",
                "data": {"request": "x", "digest": "y"}}}}),
        ] {
            let (code, message) = click(&bad).err().unwrap();
            assert!(
                code.starts_with("invalid_") || code == "unknown_verb",
                "{bad}"
            );
            assert!(!message.is_empty());
        }
    }
}
