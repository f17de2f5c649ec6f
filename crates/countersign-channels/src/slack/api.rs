//! The Slack Web API methods the gateway calls, over HTTPS with the bot token (or, for Socket
//! Mode, the app-level token). Every base URL is configuration, so tests point it at a local
//! fake that speaks the same protocol. Slack answers HTTP 200 with `{"ok": false, "error": …}`
//! for most failures, and HTTP 429 with `Retry-After` (seconds) when rate limited.

use countersign_app::settings::Secret;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

/// How long one call may take before it is retried later.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, thiserror::Error)]
pub enum SlackError {
    #[error("Slack rate-limited {method}; retry after {retry_after:?}")]
    RateLimited {
        method: &'static str,
        retry_after: Duration,
    },
    #[error("Slack {method} failed: {error}")]
    Api { method: &'static str, error: String },
    #[error("Slack {method} unreachable: {message}")]
    Transport {
        method: &'static str,
        message: String,
    },
}

impl SlackError {
    /// The wait Slack asked for, if it rate-limited us.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SlackError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// Slack's error code (`channel_not_found`, `missing_scope`, ...), if it answered one.
    pub fn api_error(&self) -> Option<&str> {
        match self {
            SlackError::Api { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// A posted message: the conversation id Slack put it in, and its timestamp (its id).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Posted {
    pub channel: String,
    pub ts: String,
}

#[derive(Clone)]
pub struct SlackApi {
    http: reqwest::Client,
    base: String,
    bot_token: Secret,
}

impl SlackApi {
    pub fn new(base: &str, bot_token: Secret) -> Self {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            bot_token,
        }
    }

    /// `chat.postMessage`: posts `blocks` (with `text` as the notification fallback) to
    /// `channel` (a channel id or name, or a user id for the app's DM).
    pub async fn post_message(
        &self,
        channel: &str,
        text: &str,
        blocks: &Value,
        thread_ts: Option<&str>,
    ) -> Result<Posted, SlackError> {
        let mut body = json!({"channel": channel, "text": text, "blocks": blocks,
            "unfurl_links": false, "unfurl_media": false});
        if let Some(ts) = thread_ts {
            body["thread_ts"] = json!(ts);
            body["reply_broadcast"] = json!(true);
        }
        let v = self.post("chat.postMessage", &body).await?;
        parse("chat.postMessage", v)
    }

    /// `chat.update`: replaces the message `ts` in `channel`.
    pub async fn update_message(
        &self,
        channel: &str,
        ts: &str,
        text: &str,
        blocks: &Value,
    ) -> Result<(), SlackError> {
        let body = json!({"channel": channel, "ts": ts, "text": text, "blocks": blocks});
        self.post("chat.update", &body).await.map(drop)
    }

    /// `chat.postEphemeral`: a message only `user` sees, in `channel`.
    pub async fn post_ephemeral(
        &self,
        channel: &str,
        user: &str,
        text: &str,
    ) -> Result<(), SlackError> {
        let body = json!({"channel": channel, "user": user, "text": text});
        self.post("chat.postEphemeral", &body).await.map(drop)
    }

    /// `views.open`: opens a modal in answer to an interaction's `trigger_id`.
    pub async fn open_view(&self, trigger_id: &str, view: &Value) -> Result<(), SlackError> {
        let body = json!({"trigger_id": trigger_id, "view": view});
        self.post("views.open", &body).await.map(drop)
    }

    /// `users.info`: the verified email of a Slack user (needs `users:read.email`).
    pub async fn user_email(&self, user: &str) -> Result<Option<String>, SlackError> {
        let v = self.get("users.info", &[("user", user)]).await?;
        Ok(v["user"]["profile"]["email"]
            .as_str()
            .filter(|e| !e.is_empty())
            .map(str::to_string))
    }

    /// `users.lookupByEmail`: the Slack user id of a person, for direct messages.
    pub async fn user_by_email(&self, email: &str) -> Result<String, SlackError> {
        let v = self.get("users.lookupByEmail", &[("email", email)]).await?;
        v["user"]["id"]
            .as_str()
            .map(str::to_string)
            .ok_or(SlackError::Api {
                method: "users.lookupByEmail",
                error: "response without user.id".into(),
            })
    }

    /// `apps.connections.open`, with the app-level token: a WebSocket URL for Socket Mode.
    pub async fn open_socket(&self, app_token: &Secret) -> Result<String, SlackError> {
        let method = "apps.connections.open";
        let req = self
            .http
            .post(format!("{}/{method}", self.base))
            .bearer_auth(app_token.expose());
        let v = self.send(method, req).await?;
        v["url"]
            .as_str()
            .map(str::to_string)
            .ok_or(SlackError::Api {
                method,
                error: "response without url".into(),
            })
    }

    async fn post(&self, method: &'static str, body: &Value) -> Result<Value, SlackError> {
        let req = self
            .http
            .post(format!("{}/{method}", self.base))
            .bearer_auth(self.bot_token.expose())
            .json(body);
        self.send(method, req).await
    }

    async fn get(&self, method: &'static str, query: &[(&str, &str)]) -> Result<Value, SlackError> {
        let req = self
            .http
            .get(format!("{}/{method}", self.base))
            .bearer_auth(self.bot_token.expose())
            .query(query);
        self.send(method, req).await
    }

    async fn send(
        &self,
        method: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<Value, SlackError> {
        let transport = |e: reqwest::Error| SlackError::Transport {
            method,
            message: e.without_url().to_string(),
        };
        let resp = req.send().await.map_err(transport)?;
        if resp.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
            let secs = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1);
            return Err(SlackError::RateLimited {
                method,
                retry_after: Duration::from_secs(secs.clamp(1, 3600)),
            });
        }
        if !resp.status().is_success() {
            return Err(SlackError::Transport {
                method,
                message: format!("HTTP {}", resp.status()),
            });
        }
        let v: Value = resp.json().await.map_err(transport)?;
        if v["ok"].as_bool() == Some(true) {
            Ok(v)
        } else {
            Err(SlackError::Api {
                method,
                error: v["error"].as_str().unwrap_or("unknown_error").to_string(),
            })
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(method: &'static str, v: Value) -> Result<T, SlackError> {
    serde_json::from_value(v).map_err(|e| SlackError::Api {
        method,
        error: format!("unexpected response: {e}"),
    })
}
