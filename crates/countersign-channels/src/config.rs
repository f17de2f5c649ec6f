//! The `channels` section: Slack and Teams, each configured by its own module's `config`.

use countersign_app::settings::Secret;
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

impl ChannelsConfig {
    /// The `COUNTERSIGN_SLACK_*` and `COUNTERSIGN_TEAMS_*` overrides: `COUNTERSIGN_SLACK_BOT_TOKEN`
    /// (creates `channels.slack` when absent), `COUNTERSIGN_SLACK_SIGNING_SECRET`,
    /// `COUNTERSIGN_SLACK_APP_TOKEN`, `COUNTERSIGN_SLACK_API_BASE_URL`, and Teams' below.
    pub fn apply_env(&mut self, var: &impl Fn(&str) -> Option<String>) {
        if let Some(token) = var("COUNTERSIGN_SLACK_BOT_TOKEN") {
            match &mut self.slack {
                Some(slack) => slack.bot_token = Secret::new(token),
                None => {
                    self.slack = Some(SlackConfig {
                        bot_token: Secret::new(token),
                        signing_secret: None,
                        app_token: None,
                        api_base_url: default_slack_api(),
                        notify: vec![],
                        user_cache_ttl: default_user_cache_ttl(),
                    })
                }
            }
        }
        self.apply_teams_env(var);
        if let Some(slack) = &mut self.slack {
            if let Some(v) = var("COUNTERSIGN_SLACK_SIGNING_SECRET") {
                slack.signing_secret = Some(Secret::new(v));
            }
            if let Some(v) = var("COUNTERSIGN_SLACK_APP_TOKEN") {
                slack.app_token = Some(Secret::new(v));
            }
            if let Some(v) = var("COUNTERSIGN_SLACK_API_BASE_URL") {
                slack.api_base_url = v;
            }
        }
    }

    /// `COUNTERSIGN_TEAMS_APP_ID` (creates `channels.teams` when absent),
    /// `COUNTERSIGN_TEAMS_APP_PASSWORD`, `COUNTERSIGN_TEAMS_TENANT_IDS` (comma-separated),
    /// `COUNTERSIGN_TEAMS_OPENID_METADATA_URL`, `COUNTERSIGN_TEAMS_TOKEN_URL`.
    fn apply_teams_env(&mut self, var: &impl Fn(&str) -> Option<String>) {
        if let Some(app_id) = var("COUNTERSIGN_TEAMS_APP_ID") {
            match &mut self.teams {
                Some(teams) => teams.app_id = app_id,
                None => {
                    self.teams = Some(TeamsConfig {
                        app_id,
                        app_password: Secret::new(String::new()),
                        tenant_ids: vec![],
                        openid_metadata_url: default_teams_openid(),
                        token_url: default_teams_token_url(),
                        conversations: Default::default(),
                        notify: vec![],
                        user_cache_ttl: default_user_cache_ttl(),
                    })
                }
            }
        }
        let Some(teams) = &mut self.teams else {
            return;
        };
        if let Some(v) = var("COUNTERSIGN_TEAMS_APP_PASSWORD") {
            teams.app_password = Secret::new(v);
        }
        if let Some(v) = var("COUNTERSIGN_TEAMS_TENANT_IDS") {
            teams.tenant_ids = v
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect();
        }
        if let Some(v) = var("COUNTERSIGN_TEAMS_OPENID_METADATA_URL") {
            teams.openid_metadata_url = v;
        }
        if let Some(v) = var("COUNTERSIGN_TEAMS_TOKEN_URL") {
            teams.token_url = v;
        }
    }
}
