//! Slack: review requests posted as interactive messages, kept true after every change, and
//! decided by clicks that become votes through the same `Gateway::vote` as every other channel.
//!
//! - `api`: the Web API methods we call (bot token; base URL from config).
//! - `render`: the Block Kit message for a request (pure).
//! - `signature`: Slack's v0 request signing, verified before anything is parsed.
//! - `interactions`: the HTTP endpoint for clicks and modal submissions.
//! - `socket`: Socket Mode, the same interactions over a WebSocket.
//!
//! `Slack` is a [`ChatChannel`]: when to post, update or remind is `channels::delivery`'s.
//!
//! Who clicked is decided by Slack's verified email for the user (`users.info`), mapped to the
//! principal `user:<email>`; nothing in the click payload is trusted for identity beyond the
//! signed Slack user id.

pub mod api;
pub mod config;
pub mod factors;
pub mod interactions;
pub mod render;
pub mod signature;
pub mod socket;

use crate::{ChatChannel, DeliveryError, Edit, Posted, Rendered, review};
use api::{SlackApi, SlackError};
use async_trait::async_trait;
use config::SlackConfig;
use countersign_app::gateway::Gateway;
use countersign_app::settings::Secret;
use countersign_core::{Principal, PrincipalId, Request};
use countersign_store::ChannelMessage;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The target prefix of Slack audiences (`slack:#approvals`).
pub const PREFIX: &str = "slack:";

pub struct Slack {
    pub api: SlackApi,
    signing_secret: Option<Secret>,
    default_notify: Vec<String>,
    user_ttl: Duration,
    /// Slack user id → (email, when looked up).
    users: Mutex<HashMap<String, (Option<String>, Instant)>>,
    /// Email → Slack user id, for direct messages.
    dm_users: Mutex<HashMap<String, String>>,
    /// Interactions already handled, by replay key (a replayed click is dropped), with when.
    pub(crate) replays: super::Replays,
    /// Where refused interactions are counted (bounded audit records).
    pub(crate) refused: Arc<super::refusals::RefusedCallbacks>,
    pub(crate) gateway: Arc<Gateway>,
}

impl Slack {
    pub fn new(
        config: &SlackConfig,
        gateway: Arc<Gateway>,
        store: Arc<dyn countersign_store::Store>,
        refused: Arc<super::refusals::RefusedCallbacks>,
    ) -> Self {
        Self {
            api: SlackApi::new(&config.api_base_url, config.bot_token.clone()),
            signing_secret: config.signing_secret.clone(),
            default_notify: config.notify.iter().map(|t| normalize(t)).collect(),
            user_ttl: config.user_cache_ttl,
            users: Mutex::default(),
            dm_users: Mutex::default(),
            replays: super::Replays::new(
                "slack",
                Duration::from_secs(signature::MAX_SKEW_SECONDS as u64 * 2),
                store,
            ),
            refused,
            gateway,
        }
    }

    /// Where `chat.postMessage` should post for a target: a channel name or id as written, or
    /// the Slack user id of a person named by email (the app's DM with them).
    async fn conversation_for(&self, target: &str) -> Result<String, SlackError> {
        let rest = target.strip_prefix(PREFIX).unwrap_or(target);
        let Some(email) = rest.strip_prefix('@') else {
            return Ok(rest.to_string());
        };
        let email = email.to_ascii_lowercase();
        if let Some(id) = lock(&self.dm_users).get(&email) {
            return Ok(id.clone());
        }
        let id = self.api.user_by_email(&email).await?;
        lock(&self.dm_users).insert(email, id.clone());
        Ok(id)
    }

    /// The principal behind a Slack user: Slack's verified email, as `user:<email>`, if the
    /// directory knows it. `Ok(Err(email))` when Slack knows the person but we do not.
    pub async fn principal_for(
        &self,
        slack_user: &str,
    ) -> Result<Result<Principal, Option<String>>, SlackError> {
        let cached = lock(&self.users)
            .get(slack_user)
            .filter(|(_, at)| at.elapsed() < self.user_ttl)
            .map(|(email, _)| email.clone());
        let email = match cached {
            Some(email) => email,
            None => {
                let email = self
                    .api
                    .user_email(slack_user)
                    .await?
                    .map(|e| e.to_ascii_lowercase());
                lock(&self.users).insert(slack_user.to_string(), (email.clone(), Instant::now()));
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

#[async_trait]
impl ChatChannel for Slack {
    fn name(&self) -> &'static str {
        "slack"
    }

    fn default_audience(&self) -> &[String] {
        &self.default_notify
    }

    fn render(&self, req: &Request) -> Rendered {
        render::render(req, &self.gateway.public_url, &self.gateway.masker)
    }

    async fn post(
        &self,
        _req: &Request,
        target: &str,
        rendered: &Rendered,
    ) -> Result<Option<Posted>, DeliveryError> {
        let conversation = self.conversation_for(target).await?;
        let posted = self
            .api
            .post_message(&conversation, &rendered.text, &rendered.body, None)
            .await?;
        Ok(Some(Posted {
            conversation: posted.channel,
            ts: posted.ts,
        }))
    }

    async fn update(&self, m: &ChannelMessage, rendered: &Rendered) -> Result<Edit, DeliveryError> {
        match self
            .api
            .update_message(&m.conversation, &m.ts, &rendered.text, &rendered.body)
            .await
        {
            Ok(()) => Ok(Edit::Done),
            Err(e) if e.api_error() == Some("message_not_found") => Ok(Edit::Gone),
            Err(e) => Err(e.into()),
        }
    }

    async fn remind(&self, req: &Request, m: &ChannelMessage) -> Result<(), DeliveryError> {
        let text = review::reminder(req, &self.gateway.masker);
        let blocks = serde_json::json!([{"type": "section",
            "text": {"type": "mrkdwn", "text": render::escape(&text)}}]);
        self.api
            .post_message(&m.conversation, &text, &blocks, Some(&m.ts))
            .await?;
        Ok(())
    }
}

impl From<SlackError> for DeliveryError {
    fn from(e: SlackError) -> Self {
        DeliveryError {
            retry_after: e.retry_after(),
            message: e.to_string(),
        }
    }
}

/// `#approvals`, `@bob@example.com`, `C0123` and `slack:…` all become `slack:…`.
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
