//! The `channels` section: Slack and Teams, each configured by its own module's `config`.

use serde::Deserialize;

pub use crate::slack::config::{
    DEFAULT_SLACK_API, SlackConfig, default_slack_api, default_user_cache_ttl,
};
pub use crate::teams::config::{
    DEFAULT_TEAMS_OPENID_METADATA, DEFAULT_TEAMS_TOKEN_URL, TeamsConfig, default_teams_openid,
    default_teams_token_url,
};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelsConfig {
    #[serde(default)]
    pub slack: Option<SlackConfig>,
    #[serde(default)]
    pub teams: Option<TeamsConfig>,
}
