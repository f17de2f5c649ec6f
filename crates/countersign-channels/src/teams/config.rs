//! The `channels.teams` section.

use countersign_app::settings::{Secret, human_duration};
use serde::Deserialize;

use crate::slack::config::default_user_cache_ttl;

pub const DEFAULT_TEAMS_OPENID_METADATA: &str =
    "https://login.botframework.com/v1/.well-known/openidconfiguration";
/// The multi-tenant token endpoint; single-tenant bots use their own tenant instead of
/// `botframework.com`.
pub const DEFAULT_TEAMS_TOKEN_URL: &str =
    "https://login.microsoftonline.com/botframework.com/oauth2/v2.0/token";

/// Microsoft Teams, through a Bot Framework bot.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsConfig {
    /// The bot's Microsoft App ID: the audience of inbound tokens, and the client id of the
    /// app token.
    pub app_id: String,
    /// The bot's client secret, for the app token (OAuth2 client credentials).
    pub app_password: Secret,
    /// The Microsoft Entra tenants whose Teams may talk to this gateway; activities from any
    /// other tenant are refused.
    pub tenant_ids: Vec<String>,
    /// The Bot Connector's OpenID metadata; its `jwks_uri` has the keys inbound tokens are
    /// signed with.
    #[serde(default = "default_teams_openid")]
    pub openid_metadata_url: String,
    /// Where the app token comes from.
    #[serde(default = "default_teams_token_url")]
    pub token_url: String,
    /// Names for conversations (`teams:<name>` in rules) → Teams conversation ids.
    #[serde(default)]
    pub conversations: std::collections::BTreeMap<String, String>,
    /// Default audience when a rule names none: names from `conversations`.
    #[serde(default)]
    pub notify: Vec<String>,
    /// How long a Teams user's email (from the member look-up) is cached.
    #[serde(
        default = "default_user_cache_ttl",
        deserialize_with = "human_duration"
    )]
    pub user_cache_ttl: std::time::Duration,
}

pub fn default_teams_openid() -> String {
    DEFAULT_TEAMS_OPENID_METADATA.into()
}

pub fn default_teams_token_url() -> String {
    DEFAULT_TEAMS_TOKEN_URL.into()
}

impl TeamsConfig {
    pub fn validate(&self) -> Result<(), String> {
        let id_like = |s: &str| !s.is_empty() && !s.contains(char::is_whitespace);
        if !id_like(&self.app_id) {
            return Err("`app_id` must be the bot's Microsoft App ID (a GUID)".into());
        }
        if self.app_password.expose().is_empty() {
            return Err("`app_password` is empty".into());
        }
        if self.tenant_ids.is_empty() {
            return Err(
                "`tenant_ids` is empty: list the Microsoft Entra tenant ids allowed to use this \
                 bot (activities from any other tenant are refused)"
                    .into(),
            );
        }
        if let Some(t) = self.tenant_ids.iter().find(|t| !id_like(t)) {
            return Err(format!("`tenant_ids`: `{t}` is not a tenant id"));
        }
        for (key, url) in [
            ("openid_metadata_url", &self.openid_metadata_url),
            ("token_url", &self.token_url),
        ] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(format!("`{key}: {url}` is not an http(s) URL"));
            }
        }
        for (name, id) in &self.conversations {
            countersign_core::check_target(&format!("{}{name}", super::PREFIX))
                .map_err(|e| format!("`conversations`: {e}"))?;
            if !id_like(id) {
                return Err(format!(
                    "`conversations.{name}`: `{id}` is not a Teams conversation id (like 19:…@thread.tacv2)"
                ));
            }
        }
        for t in &self.notify {
            let name = t.strip_prefix(super::PREFIX).unwrap_or(t);
            if !self.conversations.contains_key(name) {
                return Err(format!(
                    "`notify`: `{t}` is not one of `conversations` ({})",
                    self.conversations
                        .keys()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        Ok(())
    }
}
