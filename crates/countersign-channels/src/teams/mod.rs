//! Microsoft Teams, through a Bot Framework bot: review requests posted as Adaptive Cards to
//! the conversations the rules name, kept true after every change (the activity is replaced),
//! and decided by `Action.Execute` clicks that become votes through the same `Gateway::vote`
//! as every other channel.
//!
//! - `auth`: the Bot Connector's inbound JWTs, verified before anything is acted on.
//! - `connector`: the Bot Connector REST API (app token by client credentials).
//! - `card`: the Adaptive Card for a request (pure).
//! - `activity`: the bot endpoint `POST /v1/channels/teams/messages`, conversation references,
//!   and clicks (`invoke` `adaptiveCard/action`).
//!
//! Who clicked is decided by the member look-up of the signed activity's `from.id` in its
//! conversation (whose `aadObjectId` must match the activity's), mapped to `user:<email>`.
//! Cards go only to conversations with a stored reference, that is, where a verified activity
//! was seen (the bot was installed there, or someone talked to it).

pub mod activity;
pub mod auth;
pub mod card;
pub mod config;
pub mod connector;

use crate::{ChatChannel, DeliveryError, Edit, Posted, Rendered, review};
use async_trait::async_trait;
use config::TeamsConfig;
use connector::{Connector, ConnectorError, ServiceUrl};
use countersign_app::gateway::Gateway;
use countersign_core::{Principal, PrincipalId, Request};
use countersign_store::{ChannelMessage, ConversationRef, Store};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The channel name, in targets (`teams:approvals`), stored references and the audit log.
pub const NAME: &str = "teams";
/// The target prefix of Teams audiences.
pub const PREFIX: &str = "teams:";
/// How soon a card for a conversation the bot has not been introduced to is tried again.
const NO_REFERENCE_RETRY: Duration = Duration::from_secs(5);

/// (tenant, AAD object id) → (email, when looked up).
type UserCache = HashMap<(String, String), (Option<String>, Instant)>;

pub struct Teams {
    tenants: Vec<String>,
    /// Names in rules → Teams conversation ids.
    conversations: BTreeMap<String, String>,
    default_notify: Vec<String>,
    pub(crate) verifier: auth::Verifier,
    pub(crate) connector: Connector,
    user_ttl: Duration,
    users: Mutex<UserCache>,
    /// Ids of invoke activities already handled (a retried click is not voted twice), with when.
    pub(crate) replays: super::Replays,
    /// Where refused activities are counted (bounded audit records).
    pub(crate) refused: Arc<super::refusals::RefusedCallbacks>,
    pub(crate) gateway: Arc<Gateway>,
    /// Conversation references are Teams' own table.
    store: Arc<dyn Store>,
}

impl Teams {
    pub fn new(
        config: &TeamsConfig,
        gateway: Arc<Gateway>,
        store: Arc<dyn Store>,
        refused: Arc<super::refusals::RefusedCallbacks>,
    ) -> Self {
        Teams {
            tenants: config.tenant_ids.clone(),
            conversations: config.conversations.clone(),
            default_notify: config.notify.iter().map(|t| normalize(t)).collect(),
            verifier: auth::Verifier::new(&config.openid_metadata_url, &config.app_id),
            connector: Connector::new(
                &config.token_url,
                &config.app_id,
                config.app_password.clone(),
            ),
            user_ttl: config.user_cache_ttl,
            users: Mutex::default(),
            replays: super::Replays::new("teams", Duration::from_secs(600), store.clone()),
            refused,
            gateway,
            store,
        }
    }

    /// The stored reference of a conversation: where it is reached.
    async fn reference(&self, conversation: &str) -> Result<ServiceUrl, DeliveryError> {
        let found = self
            .store
            .conversation(NAME, conversation)
            .await
            .map_err(DeliveryError::store)?;
        match found {
            Some(r) => Ok(ServiceUrl::vouched(&r.service_url)),
            // Looked for again soon: installing the bot is what a person does next.
            None => Err(DeliveryError {
                message: format!(
                    "no Teams conversation reference for {conversation} yet: install the bot \
                     there (or mention it once) so the Bot Connector introduces the conversation"
                ),
                retry_after: Some(NO_REFERENCE_RETRY),
            }),
        }
    }

    /// Remembers how to reach `conversation` (from a verified activity). A reference that is
    /// unchanged and confirmed within the hour is not written again (every click would).
    async fn remember(&self, conversation: &str, service_url: &str, tenant: &str) {
        let now = self.gateway.clock.now();
        if let Ok(Some(known)) = self.store.conversation(NAME, conversation).await
            && known.service_url == service_url
            && known.tenant == tenant
            && now - known.updated_at < chrono::Duration::hours(1)
        {
            return;
        }
        let reference = ConversationRef {
            channel: NAME.into(),
            conversation: conversation.to_string(),
            service_url: service_url.to_string(),
            tenant: tenant.to_string(),
            updated_at: now,
        };
        match self.store.save_conversation(&reference).await {
            Ok(()) => tracing::debug!(conversation, "Teams conversation reference stored"),
            Err(e) => tracing::error!(error = %e, "could not store a Teams conversation reference"),
        }
    }

    /// The principal behind a Teams user: the email of the conversation member `member_id`
    /// (whose AAD object id must be `aad_object_id`), as `user:<email>`, if the directory knows
    /// it. `Ok(Err(email))` when Teams knows the person but we do not.
    async fn principal_for(
        &self,
        service: &ServiceUrl,
        conversation: &str,
        tenant: &str,
        member_id: &str,
        aad_object_id: &str,
    ) -> Result<Result<Principal, Option<String>>, ConnectorError> {
        let key = (tenant.to_ascii_lowercase(), aad_object_id.to_string());
        let cached = lock(&self.users)
            .get(&key)
            .filter(|(_, at)| at.elapsed() < self.user_ttl)
            .map(|(email, _)| email.clone());
        let email = match cached {
            Some(email) => email,
            None => {
                let m = self
                    .connector
                    .member(service, conversation, member_id)
                    .await?;
                // The member must be the person the signed activity says clicked.
                let email = if m.aad_object_id.as_deref() == Some(aad_object_id) {
                    email_of(&m)
                } else {
                    None
                };
                lock(&self.users).insert(key, (email.clone(), Instant::now()));
                email
            }
        };
        let principal = email
            .as_deref()
            // The one mapping from an address to a person: ASCII only, canonical form.
            .and_then(|e| PrincipalId::person_from_email(e).ok())
            .and_then(|id| self.gateway.directory.get(&id).cloned());
        Ok(principal.ok_or(email))
    }
}

/// The member's email: `email`, or the sign-in name when it is an address.
fn email_of(m: &connector::Member) -> Option<String> {
    let upn = m
        .user_principal_name
        .as_deref()
        .filter(|u| u.contains('@') && !u.contains('#'));
    m.email
        .as_deref()
        .filter(|e| e.contains('@'))
        .or(upn)
        .map(str::to_ascii_lowercase)
}

#[async_trait]
impl ChatChannel for Teams {
    fn name(&self) -> &'static str {
        NAME
    }

    fn default_audience(&self) -> &[String] {
        &self.default_notify
    }

    fn render(&self, req: &Request) -> Rendered {
        card::render(req, &self.gateway.public_url, &self.gateway.masker)
    }

    async fn post(
        &self,
        req: &Request,
        target: &str,
        rendered: &Rendered,
    ) -> Result<Option<Posted>, DeliveryError> {
        let name = target.strip_prefix(PREFIX).unwrap_or(target);
        let Some(conversation) = self.conversations.get(name) else {
            tracing::error!(request = %req.id(), target,
                "a rule names a Teams conversation that channels.teams.conversations does not map");
            return Ok(None);
        };
        let service = self.reference(conversation).await?;
        let id = self
            .connector
            .send(&service, conversation, &card::message_activity(rendered))
            .await?;
        Ok(Some(Posted {
            conversation: conversation.clone(),
            ts: id,
        }))
    }

    async fn update(&self, m: &ChannelMessage, rendered: &Rendered) -> Result<Edit, DeliveryError> {
        let service = self.reference(&m.conversation).await?;
        let mut activity = card::message_activity(rendered);
        activity["id"] = json!(m.ts);
        match self
            .connector
            .update(&service, &m.conversation, &m.ts, &activity)
            .await
        {
            Ok(()) => Ok(Edit::Done),
            Err(ConnectorError::NotFound(_)) => Ok(Edit::Gone),
            Err(e) => Err(e.into()),
        }
    }

    async fn remind(&self, req: &Request, m: &ChannelMessage) -> Result<(), DeliveryError> {
        let service = self.reference(&m.conversation).await?;
        let activity = json!({"type": "message", "textFormat": "plain",
            "text": review::reminder(req, &self.gateway.masker), "replyToId": m.ts});
        self.connector
            .reply(&service, &m.conversation, &m.ts, &activity)
            .await?;
        Ok(())
    }
}

impl From<ConnectorError> for DeliveryError {
    fn from(e: ConnectorError) -> Self {
        DeliveryError {
            retry_after: e.retry_after(),
            message: e.to_string(),
        }
    }
}

/// `approvals` and `teams:approvals` both become `teams:approvals`.
pub fn normalize(target: &str) -> String {
    if target.starts_with(PREFIX) {
        target.to_string()
    } else {
        format!("{PREFIX}{target}")
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
