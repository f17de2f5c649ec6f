//! The one typed configuration: loaded from a YAML file, overridden by `COUNTERSIGN_*`
//! environment variables, validated at start with errors that name the file, the line and the
//! fix. With no file at all, the gateway runs on `countersign.db` in the current directory with
//! the built-in sample policy and sample principals.

use countersign_core::{Principal, PrincipalId};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod audit;
mod channels;
mod mcp;

pub use audit::{AuditConfig, WebhookConfig};
pub use channels::{
    ChannelsConfig, DEFAULT_SLACK_API, DEFAULT_TEAMS_OPENID_METADATA, DEFAULT_TEAMS_TOKEN_URL,
    SlackConfig, TeamsConfig,
};
use channels::{
    default_slack_api, default_teams_openid, default_teams_token_url, default_user_cache_ttl,
};
pub use mcp::{McpConfig, UpstreamConfig};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8750";
pub const DEFAULT_DATABASE: &str = "countersign.db";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Base URL people use to reach this gateway (links in messages). Defaults to `http://{listen}`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// A file path means SQLite.
    #[serde(default = "default_database")]
    pub database: String,
    /// Policy file; reloaded on change or SIGHUP. Absent: the built-in sample policy.
    #[serde(default)]
    pub policy: Option<PathBuf>,
    /// The budget of policy evaluation (`budget`, default 50ms; `concurrency`).
    #[serde(default)]
    pub policy_evaluation: crate::evaluator::EvaluationConfig,
    #[serde(default)]
    pub principals: Vec<PrincipalConfig>,
    /// Largest request body accepted, in bytes.
    #[serde(default = "default_body_limit")]
    pub max_body_bytes: usize,
    /// Where people are asked (Slack, Microsoft Teams).
    #[serde(default)]
    pub channels: ChannelsConfig,
    /// The MCP gateway: upstream servers whose tools agents reach through `/mcp`.
    #[serde(default)]
    pub mcp: Option<McpConfig>,
    /// The tamper-evident audit log: signing key, checkpoints, outgoing webhooks.
    #[serde(default)]
    pub audit: AuditConfig,
    /// The web console at `/console/`.
    #[serde(default)]
    pub console: ConsoleConfig,
}

/// The web console: how people sign in.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Sign-in with OpenID Connect.
    #[serde(default)]
    pub oidc: Option<OidcConfig>,
    /// Whether people may sign in with their own API key (the local fallback). Default: yes
    /// without `oidc`, no with it.
    #[serde(default)]
    pub key_sign_in: Option<bool>,
}

impl ConsoleConfig {
    pub fn key_sign_in(&self) -> bool {
        self.key_sign_in.unwrap_or(self.oidc.is_none())
    }
}

/// An OpenID Connect provider (authorization code flow with PKCE). Its redirect URI for this
/// gateway is `<public_url>/console/oidc/callback`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The issuer URL; `<issuer>/.well-known/openid-configuration` is read at first sign-in.
    pub issuer: String,
    pub client_id: String,
    /// Or `COUNTERSIGN_CONSOLE_OIDC_CLIENT_SECRET`. Absent: a public client (PKCE only).
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// An ID-token claim whose strings are added to the person's groups.
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Scopes asked for besides `openid` and `email` (e.g. `groups`, `profile`).
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// A secret from configuration. It is never printed: `Debug` shows `Secret(***)`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

pub(crate) fn human_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<std::time::Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!("`{text}` is not a duration like 10m or 1h: {e}"))
    })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalConfig {
    pub id: String,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

fn default_listen() -> String {
    DEFAULT_LISTEN.into()
}

fn default_database() -> String {
    DEFAULT_DATABASE.into()
}

fn default_body_limit() -> usize {
    256 * 1024
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// The sample principals used when no config file is given.
pub const SAMPLE_CONFIG: &str = "\
listen: 127.0.0.1:8750
database: countersign.db
principals:
  - id: agent:deploy-bot
    owner: user:alice@example.com
    groups: [deployers]
  - id: user:alice@example.com
    groups: [sre]
  - id: user:bob@example.com
    groups: [sre]
  - id: user:carol@example.com
    groups: [security]
";

impl Config {
    /// Loads `path`, or the sample configuration when `path` is `None`, then applies the
    /// environment overrides and validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (text, name) = match path {
            Some(p) => (
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?,
                p.display().to_string(),
            ),
            None => (
                SAMPLE_CONFIG.to_string(),
                "<built-in sample config>".to_string(),
            ),
        };
        let mut config = Self::parse(&text, &name)?;
        if let Some(p) = path {
            // A relative policy or database path is relative to the config file's folder.
            let base = p.parent().unwrap_or(Path::new("."));
            if let Some(policy) = &config.policy
                && policy.is_relative()
            {
                config.policy = Some(base.join(policy));
            }
            if !config.database.contains("://") && Path::new(&config.database).is_relative() {
                config.database = base.join(&config.database).display().to_string();
            }
            if let Some(key) = &config.audit.key
                && key.is_relative()
            {
                config.audit.key = Some(base.join(key));
            }
        }
        config.apply_env(|k| std::env::var(k).ok());
        if let Some(p) = path
            && config.audit.key.is_none()
            && is_postgres_url(&config.database)
        {
            // A PostgreSQL database has no folder of its own: the key lives beside the config.
            let base = p.parent().unwrap_or(Path::new("."));
            config.audit.key = Some(base.join("countersign-audit.key"));
        }
        config.validate(&name)?;
        Ok(config)
    }

    pub fn parse(text: &str, name: &str) -> Result<Config, ConfigError> {
        yaml_serde::from_str(text).map_err(|e| ConfigError::Parse {
            path: name.to_string(),
            message: match e.location() {
                Some(loc) => format!("line {}: {e}", loc.line()),
                None => e.to_string(),
            },
        })
    }

    /// `COUNTERSIGN_LISTEN`, `COUNTERSIGN_PUBLIC_URL`, `COUNTERSIGN_DATABASE`,
    /// `COUNTERSIGN_POLICY` override the file.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) {
        if let Some(v) = var("COUNTERSIGN_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = var("COUNTERSIGN_PUBLIC_URL") {
            self.public_url = Some(v);
        }
        if let Some(v) = var("COUNTERSIGN_DATABASE") {
            self.database = v;
        }
        if let Some(v) = var("COUNTERSIGN_CONSOLE_OIDC_CLIENT_SECRET")
            && let Some(oidc) = self.console.oidc.as_mut()
        {
            oidc.client_secret = Some(Secret::new(v));
        }
        if let Some(v) = var("COUNTERSIGN_POLICY") {
            self.policy = Some(PathBuf::from(v));
        }
        if let Some(token) = var("COUNTERSIGN_SLACK_BOT_TOKEN") {
            match &mut self.channels.slack {
                Some(slack) => slack.bot_token = Secret(token),
                None => {
                    self.channels.slack = Some(SlackConfig {
                        bot_token: Secret(token),
                        signing_secret: None,
                        app_token: None,
                        api_base_url: default_slack_api(),
                        notify: vec![],
                        user_cache_ttl: default_user_cache_ttl(),
                    })
                }
            }
        }
        self.apply_teams_env(&var);
        if let Some(slack) = &mut self.channels.slack {
            if let Some(v) = var("COUNTERSIGN_SLACK_SIGNING_SECRET") {
                slack.signing_secret = Some(Secret(v));
            }
            if let Some(v) = var("COUNTERSIGN_SLACK_APP_TOKEN") {
                slack.app_token = Some(Secret(v));
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
            match &mut self.channels.teams {
                Some(teams) => teams.app_id = app_id,
                None => {
                    self.channels.teams = Some(TeamsConfig {
                        app_id,
                        app_password: Secret(String::new()),
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
        let Some(teams) = &mut self.channels.teams else {
            return;
        };
        if let Some(v) = var("COUNTERSIGN_TEAMS_APP_PASSWORD") {
            teams.app_password = Secret(v);
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

    pub fn validate(&self, name: &str) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: name.to_string(),
            message,
        };
        self.listen.parse::<SocketAddr>().map_err(|_| {
            invalid(format!(
                "`listen: {}` is not an address like 127.0.0.1:8750",
                self.listen
            ))
        })?;
        if is_postgres_url(&self.database) {
            let ok = reqwest::Url::parse(&self.database).is_ok_and(|u| u.has_host());
            if !ok {
                return Err(invalid(format!(
                    "`database: {}` is not a PostgreSQL URL like postgres://user@host:5432/dbname",
                    database_display(&self.database)
                )));
            }
        } else if self.database.contains("://") {
            return Err(invalid(format!(
                "`database: {}`: use a file path (SQLite) or a postgres:// URL",
                database_display(&self.database)
            )));
        }
        if self.max_body_bytes < 1024 {
            return Err(invalid("`max_body_bytes` must be at least 1024".into()));
        }
        self.principals()
            .map_err(|m| invalid(format!("`principals`: {m}")))?;
        if let Some(slack) = &self.channels.slack {
            slack
                .validate()
                .map_err(|m| invalid(format!("`channels.slack`: {m}")))?;
        }
        if let Some(teams) = &self.channels.teams {
            teams
                .validate()
                .map_err(|m| invalid(format!("`channels.teams`: {m}")))?;
        }
        if let Some(mcp) = &self.mcp {
            mcp.validate().map_err(|m| invalid(format!("`mcp`: {m}")))?;
        }
        self.audit
            .validate()
            .map_err(|m| invalid(format!("`audit`: {m}")))?;
        self.policy_evaluation
            .validate()
            .map_err(|m| invalid(format!("`policy_evaluation`: {m}")))?;
        Ok(())
    }

    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_string()
    }

    /// The configured principals, validated: ids well-formed and unique in their canonical
    /// form (two ids that differ only in case are one person listed twice), owners are people
    /// that exist, only agents have owners.
    pub fn principals(&self) -> Result<Vec<Principal>, String> {
        let mut out: Vec<Principal> = Vec::new();
        for (i, p) in self.principals.iter().enumerate() {
            let id = PrincipalId::parse(&p.id).map_err(|e| e.to_string())?;
            if let Some(j) = out.iter().position(|q| q.id == id) {
                let first = &self.principals[j].id;
                return Err(if *first == p.id {
                    format!("{id} is listed twice")
                } else {
                    format!(
                        "`{first}` and `{}` (entry {}) are the same principal, {id}: ids are \
                         compared without case; list it once",
                        p.id,
                        i + 1
                    )
                });
            }
            let owner = match &p.owner {
                Some(o) => {
                    let o = PrincipalId::parse(o).map_err(|e| e.to_string())?;
                    if o.kind() != countersign_core::PrincipalKind::User {
                        return Err(format!("the owner of {id} must be a person (user:...)"));
                    }
                    if id.kind() != countersign_core::PrincipalKind::Agent {
                        return Err(format!("{id}: only agents have owners"));
                    }
                    Some(o)
                }
                None => None,
            };
            out.push(Principal {
                id,
                owner,
                groups: p.groups.clone(),
            });
        }
        for p in &out {
            if let Some(o) = &p.owner
                && !out.iter().any(|q| &q.id == o)
            {
                return Err(format!(
                    "the owner of {} ({o}) is not a listed principal",
                    p.id
                ));
            }
        }
        Ok(out)
    }
}

/// Whether `database` names a PostgreSQL database (a `postgres://` or `postgresql://` URL)
/// rather than a SQLite file.
pub fn is_postgres_url(database: &str) -> bool {
    database.starts_with("postgres://") || database.starts_with("postgresql://")
}

/// `database` fit to print or log: a URL's password is replaced by `***`.
pub fn database_display(database: &str) -> String {
    if !database.contains("://") {
        return database.to_string();
    }
    match reqwest::Url::parse(database) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(url) => url.to_string(),
        // Unparseable: show only the scheme, in case the rest holds a secret.
        Err(_) => format!("{}://…", database.split("://").next().unwrap_or("")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mcp(upstreams: &str) -> Result<Config, ConfigError> {
        let c = Config::parse(&format!("mcp:\n  upstreams:\n{upstreams}"), "c.yaml")?;
        c.validate("c.yaml").map(|()| c)
    }

    #[test]
    fn mcp_upstreams_are_checked_and_their_secrets_never_print() {
        let ok = mcp("    - {name: every-thing, command: npx, env: {API_KEY: sekrit}}\n    - {name: t2, url: 'https://t.example/mcp', headers: {Authorization: 'Bearer sekrit'}}\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{ok:?}").contains("sekrit"));
        for (bad, says) in [
            ("    - {name: Bad_Name, command: x}\n", "lowercase"),
            (
                "    - {name: a, command: x}\n    - {name: a, command: y}\n",
                "twice",
            ),
            (
                "    - {name: a, command: x, url: 'http://h/mcp'}\n",
                "not both",
            ),
            ("    - {name: a}\n", "give `command`"),
            ("    - {name: a, url: 'ftp://h'}\n", "http://"),
            (
                "    - {name: a, command: x, headers: {A: b}}\n",
                "`url` upstreams only",
            ),
            (
                "    - {name: a, url: 'http://h/mcp', env: {A: b}}\n",
                "`command` upstreams only",
            ),
            (
                "    - {name: a, command: x, colour: red}\n",
                "unknown field",
            ),
        ] {
            let err = mcp(bad).expect_err(bad).to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn the_mcp_session_idle_timeout_is_a_duration_of_at_least_a_second() {
        let parse = |v: &str| {
            let c = Config::parse(
                &format!("mcp:\n  session_idle_timeout: {v}\n  upstreams: []\n"),
                "c.yaml",
            )?;
            c.validate("c.yaml").map(|()| c)
        };
        let ok = parse("90s").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            ok.mcp.map(|m| m.session_idle_timeout),
            Some(std::time::Duration::from_secs(90))
        );
        for (bad, says) in [
            ("500ms", "at least 1s"),
            ("0s", "at least 1s"),
            ("soon", "not a duration"),
            ("-5m", "not a duration"),
        ] {
            let err = parse(bad).expect_err(bad).to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    fn slack(body: &str) -> Result<Config, ConfigError> {
        let c = Config::parse(&format!("channels:\n  slack:\n{body}"), "c.yaml")?;
        c.validate("c.yaml").map(|()| c)
    }

    #[test]
    fn slack_config_is_checked_and_its_secrets_never_print() {
        let ok = slack("    bot_token: xoxb-1\n    signing_secret: s3cr3t\n    notify: [\"#approvals\", \"@bob@example.com\"]\n    user_cache_ttl: 5m\n")
            .unwrap();
        let s = ok.channels.slack.as_ref().unwrap();
        assert_eq!(s.api_base_url, DEFAULT_SLACK_API);
        assert_eq!(s.user_cache_ttl, std::time::Duration::from_secs(300));
        let printed = format!("{ok:?}");
        assert!(
            !printed.contains("xoxb-1") && !printed.contains("s3cr3t"),
            "{printed}"
        );
        for (body, says) in [
            ("    bot_token: xapp-1\n", "xoxb-"),
            ("    bot_token: xoxb-1\n    app_token: xoxb-2\n", "xapp-"),
            (
                "    bot_token: xoxb-1\n    notify: [\"@bob\"]\n",
                "by email",
            ),
            (
                "    bot_token: xoxb-1\n    api_base_url: slack.com\n",
                "http(s) URL",
            ),
            (
                "    bot_token: xoxb-1\n    user_cache_ttl: soon\n",
                "not a duration",
            ),
            ("    bot_token: xoxb-1\n    botToken: x\n", "unknown field"),
        ] {
            let e = slack(body).unwrap_err().to_string();
            assert!(e.contains(says), "{body}: {e}");
        }
    }

    fn teams(body: &str) -> Result<Config, ConfigError> {
        let c = Config::parse(&format!("channels:\n  teams:\n{body}"), "c.yaml")?;
        c.validate("c.yaml").map(|()| c)
    }

    const TEAMS_OK: &str = "    app_id: 7d1e2f3a-0000-4000-8000-000000000001\n    app_password: pa55-w0rd-sekrit\n    tenant_ids: [contoso-tenant-id]\n    conversations: {approvals: \"19:abc@thread.tacv2\"}\n    notify: [approvals]\n";

    #[test]
    fn teams_config_takes_the_issues_keys_with_defaults() {
        let ok = teams(&format!(
            "{TEAMS_OK}    openid_metadata_url: https://login.botframework.com/v1/.well-known/openidconfiguration\n    token_url: https://login.microsoftonline.com/contoso/oauth2/v2.0/token\n    user_cache_ttl: 5m\n"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let t = ok.channels.teams.as_ref().unwrap();
        assert_eq!(t.app_id, "7d1e2f3a-0000-4000-8000-000000000001");
        assert_eq!(t.tenant_ids, ["contoso-tenant-id"]);
        assert_eq!(t.conversations["approvals"], "19:abc@thread.tacv2");
        assert_eq!(
            t.token_url,
            "https://login.microsoftonline.com/contoso/oauth2/v2.0/token"
        );
        assert_eq!(t.user_cache_ttl, std::time::Duration::from_secs(300));
        let d = teams(TEAMS_OK).unwrap();
        let d = d.channels.teams.as_ref().unwrap();
        assert_eq!(d.openid_metadata_url, DEFAULT_TEAMS_OPENID_METADATA);
        assert_eq!(d.token_url, DEFAULT_TEAMS_TOKEN_URL);
    }

    #[test]
    fn teams_config_is_checked_and_its_secret_never_prints() {
        let ok = teams(TEAMS_OK).unwrap();
        let printed = format!("{ok:?}");
        assert!(!printed.contains("pa55-w0rd-sekrit"), "{printed}");
        assert!(printed.contains("Secret(***)"), "{printed}");
        let base = "    app_id: a1\n    app_password: p\n";
        for (body, says) in [
            ("    app_password: p\n    tenant_ids: [t]\n", "app_id"),
            ("    app_id: a1\n    tenant_ids: [t]\n", "app_password"),
            (base, "tenant_ids"),
            (
                &format!("{base}    tenant_ids: []\n"),
                "`tenant_ids` is empty",
            ),
            (
                &format!("{base}    tenant_ids: [\"a b\"]\n"),
                "not a tenant id",
            ),
            (
                "    app_id: a1\n    app_password: \"\"\n    tenant_ids: [t]\n",
                "`app_password` is empty",
            ),
            (
                &format!("{base}    tenant_ids: [t]\n    token_url: login.example\n"),
                "http(s) URL",
            ),
            (
                &format!("{base}    tenant_ids: [t]\n    openid_metadata_url: ftp://x\n"),
                "http(s) URL",
            ),
            (
                &format!(
                    "{base}    tenant_ids: [t]\n    conversations: {{\"bad name\": \"19:x\"}}\n"
                ),
                "malformed",
            ),
            (
                &format!("{base}    tenant_ids: [t]\n    conversations: {{a: \"\"}}\n"),
                "conversation id",
            ),
            (
                &format!(
                    "{base}    tenant_ids: [t]\n    conversations: {{a: \"19:x\"}}\n    notify: [b]\n"
                ),
                "not one of `conversations`",
            ),
            (
                &format!("{base}    tenant_ids: [t]\n    user_cache_ttl: soon\n"),
                "not a duration",
            ),
            (
                &format!("{base}    tenant_ids: [t]\n    appId: x\n"),
                "unknown field",
            ),
        ] {
            let e = teams(body).expect_err(body).to_string();
            assert!(e.contains(says), "{body}: {e}");
        }
    }

    #[test]
    fn teams_env_overrides_and_secrets_from_the_environment_never_print() {
        let env = |k: &str| match k {
            "COUNTERSIGN_TEAMS_APP_ID" => Some("env-app".to_string()),
            "COUNTERSIGN_TEAMS_APP_PASSWORD" => Some("env-sekrit".to_string()),
            "COUNTERSIGN_TEAMS_TENANT_IDS" => Some("t1, t2".to_string()),
            "COUNTERSIGN_TEAMS_TOKEN_URL" => Some("https://login.example/t1/token".to_string()),
            _ => None,
        };
        let mut c = Config::parse(SAMPLE_CONFIG, "sample").unwrap();
        c.apply_env(env);
        c.validate("sample").unwrap();
        let t = c.channels.teams.as_ref().unwrap();
        assert_eq!(t.app_id, "env-app");
        assert_eq!(t.app_password.expose(), "env-sekrit");
        assert_eq!(t.tenant_ids, ["t1", "t2"]);
        assert_eq!(t.token_url, "https://login.example/t1/token");
        assert!(!format!("{c:?}").contains("env-sekrit"));
        // An app id alone is not enough: the password and tenants are still required.
        let mut c = Config::parse(SAMPLE_CONFIG, "sample").unwrap();
        c.apply_env(|k| (k == "COUNTERSIGN_TEAMS_APP_ID").then(|| "a".to_string()));
        assert!(
            c.validate("sample")
                .unwrap_err()
                .to_string()
                .contains("app_password")
        );
    }

    #[test]
    fn audit_config_has_defaults_and_is_checked() {
        let c = Config::parse(SAMPLE_CONFIG, "sample").unwrap();
        assert_eq!(c.audit.checkpoint_every, 1000);
        assert_eq!(
            c.audit.key_path("/var/lib/cs/countersign.db"),
            PathBuf::from("/var/lib/cs/countersign-audit.key")
        );
        let ok = Config::parse(
            "audit:\n  key: k.key\n  origin: example.com/cs\n  checkpoint_every: 5\n  checkpoint_interval: 2s\n  webhooks:\n    - {url: 'http://127.0.0.1:9/hook', secret: whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=}\n",
            "c.yaml",
        )
        .unwrap();
        ok.validate("c.yaml").unwrap();
        assert!(!format!("{ok:?}").contains("c2VjcmV0"));
        for (body, says) in [
            ("audit:\n  checkpoint_every: 0\n", "at least 1"),
            ("audit:\n  origin: 'a b'\n", "without spaces"),
            ("audit:\n  checkpoints: 3\n", "unknown field"),
            ("audit:\n  checkpoint_interval: soon\n", "not a duration"),
            ("audit:\n  webhooks: [{url: 'ftp://x'}]\n", "http(s)"),
            (
                "audit:\n  webhooks: [{url: 'http://x', secret: nope}]\n",
                "whsec_",
            ),
            (
                "audit:\n  webhooks: [{url: 'http://x', ed25519: false}]\n",
                "unsigned",
            ),
        ] {
            let e = Config::parse(body, "c.yaml")
                .and_then(|c| c.validate("c.yaml").map(|()| c))
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{body}: {e}");
        }
    }

    #[test]
    fn sample_config_is_valid() {
        let c = Config::parse(SAMPLE_CONFIG, "sample").unwrap();
        c.validate("sample").unwrap();
        assert_eq!(c.principals().unwrap().len(), 4);
    }

    #[test]
    fn unknown_key_names_the_line() {
        let err = Config::parse("listen: 127.0.0.1:1\nlisten_port: 3\n", "c.yaml").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("c.yaml") && text.contains("line 2") && text.contains("listen_port"),
            "{text}"
        );
    }

    #[test]
    fn env_overrides_the_file() {
        let mut c = Config::parse(SAMPLE_CONFIG, "sample").unwrap();
        c.apply_env(|k| (k == "COUNTERSIGN_LISTEN").then(|| "127.0.0.1:9999".to_string()));
        assert_eq!(c.listen, "127.0.0.1:9999");
    }

    #[test]
    fn owner_must_exist() {
        let c = Config::parse(
            "principals:\n  - id: agent:x\n    owner: user:ghost@example.com\n",
            "c",
        )
        .unwrap();
        assert!(c.validate("c").unwrap_err().to_string().contains("ghost"));
    }

    #[test]
    fn person_ids_are_canonical_in_config_and_duplicates_are_refused_at_load() {
        for (a, b) in [
            ("user:bob@example.com", "user:Bob@example.com"),
            ("user:BOB@EXAMPLE.COM", "USER:bob@example.com"),
            ("agent:deploy-bot", "agent:Deploy-Bot"),
        ] {
            let text = format!("principals:\n  - id: {a}\n  - id: '{b}'\n");
            let e = Config::parse(&text, "c")
                .unwrap()
                .validate("c")
                .unwrap_err()
                .to_string();
            assert!(e.contains(a) && e.contains(b), "{e}");
        }
        // An owner written in another case is the listed person, stored canonical.
        let c = Config::parse(
            "principals:\n  - id: agent:Bot\n    owner: user:Alice@Example.com\n  - id: user:alice@example.COM\n",
            "c",
        )
        .unwrap();
        let ps = c.principals().unwrap();
        assert_eq!(ps[0].id.as_str(), "agent:bot");
        assert_eq!(ps[0].owner, Some(ps[1].id.clone()));
        assert_eq!(ps[1].id.as_str(), "user:alice@example.com");
        // Look-alikes are not folded onto the person: they are refused.
        let e = Config::parse("principals:\n  - id: user:\u{212A}arol@example.com\n", "c")
            .unwrap()
            .validate("c");
        assert!(e.is_err());
    }

    #[test]
    fn database_urls_are_checked_and_their_passwords_never_printed() {
        assert!(is_postgres_url("postgres://cs@db:5432/cs"));
        assert!(is_postgres_url("postgresql://cs@db/cs"));
        assert!(!is_postgres_url("countersign.db"));
        assert_eq!(
            database_display("postgres://cs:hunter2@db:5432/cs"),
            "postgres://cs:***@db:5432/cs"
        );
        assert_eq!(database_display("/var/lib/cs.db"), "/var/lib/cs.db");
        let mut config: Config =
            yaml_serde::from_str("database: 'postgres://cs:pw@db/cs'").unwrap();
        assert!(config.validate("c.yaml").is_ok());
        config.database = "mysql://root:pw@db/cs".into();
        let e = config.validate("c.yaml").unwrap_err().to_string();
        assert!(e.contains("postgres://") && !e.contains("pw@"), "{e}");
        config.database = "postgres://".into();
        let e = config.validate("c.yaml").unwrap_err().to_string();
        assert!(e.contains("not a PostgreSQL URL"), "{e}");
    }
}
