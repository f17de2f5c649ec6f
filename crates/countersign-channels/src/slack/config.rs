//! The `channels.slack` section.

use countersign_app::settings::{Secret, human_duration};
use serde::Deserialize;

pub const DEFAULT_SLACK_API: &str = "https://slack.com/api";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Bot token (`xoxb-…`) for the Web API. Scopes: chat:write, users:read, users:read.email,
    /// im:write.
    pub bot_token: Secret,
    /// Verifies interactivity requests sent to `/v1/channels/slack/interactions`.
    #[serde(default)]
    pub signing_secret: Option<Secret>,
    /// App-level token (`xapp-…`) for Socket Mode; when set, clicks arrive over the socket.
    #[serde(default)]
    pub app_token: Option<Secret>,
    #[serde(default = "default_slack_api")]
    pub api_base_url: String,
    /// Default audience when a rule names none: `#channel`, `@person@example.com`, a channel id.
    #[serde(default)]
    pub notify: Vec<String>,
    /// How long a Slack user's verified email is cached.
    #[serde(
        default = "default_user_cache_ttl",
        deserialize_with = "human_duration"
    )]
    pub user_cache_ttl: std::time::Duration,
}

pub fn default_slack_api() -> String {
    DEFAULT_SLACK_API.into()
}

pub fn default_user_cache_ttl() -> std::time::Duration {
    std::time::Duration::from_secs(600)
}

impl SlackConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !self.bot_token.expose().starts_with("xoxb-") {
            return Err("`bot_token` must be a bot token (it starts with `xoxb-`)".into());
        }
        if let Some(t) = &self.app_token
            && !t.expose().starts_with("xapp-")
        {
            return Err("`app_token` must be an app-level token (it starts with `xapp-`)".into());
        }
        if self
            .signing_secret
            .as_ref()
            .is_some_and(|s| s.expose().is_empty())
        {
            return Err("`signing_secret` is empty".into());
        }
        if !(self.api_base_url.starts_with("https://") || self.api_base_url.starts_with("http://"))
        {
            return Err(format!(
                "`api_base_url: {}` is not an http(s) URL",
                self.api_base_url
            ));
        }
        for t in &self.notify {
            countersign_core::check_target(&super::normalize(t))
                .map_err(|e| format!("`notify`: {e}"))?;
        }
        Ok(())
    }
}
