//! Slack: review requests posted as interactive messages, kept true after every change, and
//! decided by clicks that become votes through the same `Gateway::vote` as every other channel.
//!
//! - `api`: the Web API methods we call (bot token; base URL from config).
//! - `render`: the Block Kit message for a request (pure).
//! - `signature`: Slack's v0 request signing, verified before anything is parsed.
//! - `interactions`: the HTTP endpoint for clicks and modal submissions.
//!
//! Who clicked is decided by Slack's verified email for the user (`users.info`), mapped to the
//! principal `user:<email>`; nothing in the click payload is trusted for identity beyond the
//! signed Slack user id.

pub mod api;
pub mod interactions;
pub mod render;
pub mod signature;
pub mod socket;

use crate::config::{Secret, SlackConfig};
use crate::gateway::Gateway;
use api::{SlackApi, SlackError};
use countersign_core::{Event, Principal, PrincipalId, Request, State, Timestamp};
use countersign_store::ChannelMessage;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The target prefix of Slack audiences (`slack:#approvals`).
pub const PREFIX: &str = "slack:";

pub struct Slack {
    pub(crate) api: SlackApi,
    signing_secret: Option<Secret>,
    default_notify: Vec<String>,
    user_ttl: Duration,
    /// Slack user id → (email, when looked up).
    users: Mutex<HashMap<String, (Option<String>, Instant)>>,
    /// Email → Slack user id, for direct messages.
    dm_users: Mutex<HashMap<String, String>>,
    /// Signatures of interactions already handled (a replayed click is dropped), with when.
    seen: Mutex<HashMap<String, Instant>>,
    pub(crate) gateway: Arc<Gateway>,
}

impl Slack {
    pub fn new(config: &SlackConfig, gateway: Arc<Gateway>) -> Self {
        Self {
            api: SlackApi::new(&config.api_base_url, config.bot_token.clone()),
            signing_secret: config.signing_secret.clone(),
            default_notify: config.notify.iter().map(|t| normalize(t)).collect(),
            user_ttl: config.user_cache_ttl,
            users: Mutex::default(),
            dm_users: Mutex::default(),
            seen: Mutex::default(),
            gateway,
        }
    }

    /// The Slack targets asked about `req` at `now`: the rule's audience (or the configured
    /// default), plus the escalation audience once it is due.
    pub fn audience(&self, req: &Request, now: Timestamp) -> Vec<String> {
        let Some(r) = req.decision.requirements.as_ref() else {
            return vec![];
        };
        let mut out: Vec<String> = if r.notify.is_empty() {
            self.default_notify.clone()
        } else {
            r.notify
                .iter()
                .filter(|t| t.starts_with(PREFIX))
                .cloned()
                .collect()
        };
        if let Some(e) = &r.escalate
            && escalation_due(req, e.after_seconds, now)
        {
            out.extend(e.notify.iter().filter(|t| t.starts_with(PREFIX)).cloned());
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|t| seen.insert(t.clone()));
        out
    }

    /// Brings Slack up to date for `req`: posts to targets not yet posted to (while pending),
    /// updates messages whose content changed, sends due reminders. Returns when to come back
    /// (next reminder, escalation or expiry), or the first failure (the rest still ran).
    pub async fn deliver(
        &self,
        req: &Request,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, SlackError> {
        let store = &self.gateway.store;
        let stored = store
            .channel_messages(&req.id)
            .await
            .map_err(|e| transport("store", e))?;
        let targets = self.audience(req, now);
        let rendered = render::render(req, &self.gateway.public_url);
        let pending = req.state == State::Pending;
        let remind = req
            .decision
            .requirements
            .as_ref()
            .and_then(|r| r.remind_seconds)
            .filter(|_| pending && !req.held);
        let mut first_error = None;
        let mut next: Option<Timestamp> = None;
        let mut later = |t: Timestamp| next = Some(next.map_or(t, |n: Timestamp| n.min(t)));
        // Targets with a message, plus targets still to post to.
        let mut all: Vec<&str> = stored.iter().map(|m| m.target.as_str()).collect();
        for t in &targets {
            if !all.contains(&t.as_str()) {
                all.push(t);
            }
        }
        for target in all {
            let existing = stored.iter().find(|m| m.target == target);
            let outcome = match existing {
                None if pending => self.post(req, target, &rendered).await.map(|_| ()),
                None => Ok(()),
                Some(m) => {
                    let mut m = m.clone();
                    let mut result = Ok(());
                    let mut reposted = false;
                    if m.rendered != rendered.hash {
                        result = self
                            .api
                            .update_message(
                                &m.conversation,
                                &m.ts,
                                &rendered.text,
                                &rendered.blocks,
                            )
                            .await;
                        // Someone deleted the message in Slack: while people can still
                        // decide, post it again (the new reference replaces the old);
                        // once closed, there is nothing left to show.
                        if result
                            .as_ref()
                            .err()
                            .and_then(SlackError::api_error)
                            .is_some_and(|e| e == "message_not_found")
                        {
                            result = if pending {
                                self.post(req, target, &rendered).await
                            } else {
                                Ok(())
                            };
                            // `m` is the old reference now: come back soon for reminders.
                            reposted = true;
                            later(now + chrono::Duration::seconds(1));
                        } else if result.is_ok() {
                            m.rendered = rendered.hash.clone();
                            save(store.as_ref(), &m).await?;
                        }
                    }
                    if let Some(every) = remind
                        && result.is_ok()
                        && !reposted
                    {
                        let since = m.reminded_at.unwrap_or(req.created_at);
                        let due = since + chrono::Duration::seconds(every as i64);
                        if now >= due {
                            result = self.remind(req, &mut m, now).await;
                            if result.is_ok() {
                                later(now + chrono::Duration::seconds(every as i64));
                            }
                        } else {
                            later(due);
                        }
                    }
                    result
                }
            };
            if let Err(e) = outcome {
                tracing::warn!(request = %req.id, target, error = %e, "Slack delivery failed");
                first_error.get_or_insert(e);
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        if pending {
            if let Some(exp) = req.expires_at {
                later(exp + chrono::Duration::seconds(1));
            }
            if let Some(e) = req
                .decision
                .requirements
                .as_ref()
                .and_then(|r| r.escalate.as_ref())
                && !escalation_due(req, e.after_seconds, now)
            {
                later(req.created_at + chrono::Duration::seconds(e.after_seconds as i64));
            }
        }
        Ok(next)
    }

    async fn post(
        &self,
        req: &Request,
        target: &str,
        rendered: &render::Rendered,
    ) -> Result<(), SlackError> {
        let conversation = self.conversation_for(target).await?;
        let posted = self
            .api
            .post_message(&conversation, &rendered.text, &rendered.blocks, None)
            .await?;
        let m = ChannelMessage {
            request_id: req.id.clone(),
            target: target.to_string(),
            conversation: posted.channel,
            ts: posted.ts,
            rendered: rendered.hash.clone(),
            reminded_at: None,
        };
        save(self.gateway.store.as_ref(), &m).await
    }

    async fn remind(
        &self,
        req: &Request,
        m: &mut ChannelMessage,
        now: Timestamp,
    ) -> Result<(), SlackError> {
        let text = format!(
            "⏰ Reminder: {} is still waiting for approval of {} on {} ({}).",
            req.requester.id,
            req.action.kind,
            req.action.resource,
            render::progress(req)
        );
        let blocks = serde_json::json!([{"type": "section",
            "text": {"type": "mrkdwn", "text": render::escape(&text)}}]);
        self.api
            .post_message(&m.conversation, &text, &blocks, Some(&m.ts))
            .await?;
        m.reminded_at = Some(now);
        save(self.gateway.store.as_ref(), m).await
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
            .and_then(|e| PrincipalId::parse(&format!("user:{e}")).ok())
            .and_then(|id| self.gateway.directory.get(&id).cloned());
        Ok(principal.ok_or(email))
    }

    /// True the first time this signature is seen within the replay window.
    fn first_sight(&self, signature: &str) -> bool {
        let window = Duration::from_secs(signature::MAX_SKEW_SECONDS as u64 * 2);
        let mut seen = lock(&self.seen);
        if seen.len() > 10_000 {
            seen.retain(|_, at| at.elapsed() < window);
        }
        match seen.get(signature) {
            Some(at) if at.elapsed() < window => false,
            _ => {
                seen.insert(signature.to_string(), Instant::now());
                true
            }
        }
    }

    /// Records a vote attempt from Slack that was refused (unknown person, not eligible,
    /// self-approval, ...) in the audit log.
    async fn record_refusal(
        &self,
        slack_user: &str,
        principal: Option<&PrincipalId>,
        request: &str,
        code: &str,
    ) {
        let event = Event::VoteRefused {
            request: request.to_string(),
            channel: "slack".into(),
            external_user: slack_user.to_string(),
            principal: principal.cloned(),
            code: code.to_string(),
        };
        let actor = match principal {
            Some(p) => p.to_string(),
            None => format!("slack:{slack_user}"),
        };
        let now = self.gateway.clock.now();
        if let Err(e) = self
            .gateway
            .store
            .append_event(&actor, event, None, now)
            .await
        {
            tracing::error!(error = %e, "could not record a refused Slack vote");
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

fn escalation_due(req: &Request, after_seconds: u64, now: Timestamp) -> bool {
    now >= req.created_at + chrono::Duration::seconds(after_seconds as i64)
}

async fn save(store: &dyn countersign_store::Store, m: &ChannelMessage) -> Result<(), SlackError> {
    store
        .save_channel_message(m)
        .await
        .map_err(|e| transport("store", e))
}

fn transport(method: &'static str, e: impl std::fmt::Display) -> SlackError {
    SlackError::Transport {
        method,
        message: e.to_string(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
