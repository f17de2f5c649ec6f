//! The one typed configuration: loaded from a YAML file, overridden by `COUNTERSIGN_*`
//! environment variables, validated at start with errors that name the file, the line and the
//! fix. With no file at all, the gateway runs on `countersign.db` in the current directory with
//! the built-in sample policy and sample principals.

use countersign_core::{Principal, PrincipalId};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use countersign_app::audit::{AuditConfig, WebhookConfig};
pub use countersign_app::settings::{Secret, is_postgres_url};
pub use countersign_channels::config::{
    ChannelsConfig, DEFAULT_SLACK_API, DEFAULT_TEAMS_OPENID_METADATA, DEFAULT_TEAMS_TOKEN_URL,
    SlackConfig, TeamsConfig,
};
pub use countersign_console::config::{ConsoleConfig, OidcConfig};
pub use countersign_mcp::config::{HoldFor, McpConfig, UpstreamConfig};

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
    pub policy_evaluation: countersign_app::evaluator::EvaluationConfig,
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
    /// Actions the gateway carries out itself, with credentials the agent never holds (HTTP
    /// calls, commands, PostgreSQL queries). Secrets are `${env:NAME}` or `${file:/path}`
    /// references, resolved at start.
    #[serde(default)]
    pub executors: Vec<countersign_exec::ExecutorConfig>,
    /// Trace spans exported over OTLP (`otlp_endpoint`); none by default.
    #[serde(default)]
    pub telemetry: crate::telemetry::TelemetryConfig,
    /// What one principal may hold open at once (event streams, long-poll waits).
    #[serde(default)]
    pub limits: countersign_app::limits::LimitsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalConfig {
    pub id: String,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// This principal's `mcp.hold_for`.
    #[serde(default)]
    pub mcp_hold_for: Option<HoldFor>,
    /// A policy enforcement point's (`pep:<name>`) subjects: ids or prefixes ending in `*`
    /// (`agent:*`); it may ask the AuthZEN endpoints for these and no others.
    #[serde(default)]
    pub evaluates_for: Vec<String>,
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
            message: match countersign_policy::yaml_line(&e, text) {
                Some(line) => format!("line {line}: {e}"),
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
        self.console.apply_env(&var);
        if let Some(v) = var("COUNTERSIGN_POLICY") {
            self.policy = Some(PathBuf::from(v));
        }
        self.channels.apply_env(&var);
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
        if self.limits.streams_per_principal == 0 || self.limits.waits_per_principal == 0 {
            return Err(invalid(
                "`limits.streams_per_principal` and `limits.waits_per_principal` must be at \
                 least 1"
                    .into(),
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(invalid("`max_body_bytes` must be at least 1024".into()));
        }
        self.principals()
            .map_err(|m| invalid(format!("`principals`: {m}")))?;
        self.evaluators()
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
        self.telemetry
            .validate()
            .map_err(|m| invalid(format!("`telemetry`: {m}")))?;
        Ok(())
    }

    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_string()
    }

    /// The principals whose `mcp_hold_for` overrides `mcp.hold_for`.
    pub fn mcp_hold_for(&self) -> std::collections::HashMap<PrincipalId, HoldFor> {
        self.principals
            .iter()
            .filter_map(|p| Some((PrincipalId::parse(&p.id).ok()?, p.mcp_hold_for?)))
            .collect()
    }

    /// Each policy enforcement point's `evaluates_for`, parsed (see [`Config::principals`] for
    /// who may have one).
    pub fn evaluators(
        &self,
    ) -> Result<
        std::collections::HashMap<PrincipalId, Vec<countersign_app::directory::SubjectPattern>>,
        String,
    > {
        let mut out = std::collections::HashMap::new();
        for p in &self.principals {
            let id = PrincipalId::parse(&p.id).map_err(|e| e.to_string())?;
            if id.kind() != countersign_core::PrincipalKind::Pep {
                continue;
            }
            let patterns = p
                .evaluates_for
                .iter()
                .map(|s| countersign_app::directory::SubjectPattern::parse(s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{id}: {e}"))?;
            out.insert(id, patterns);
        }
        Ok(out)
    }

    /// The configured principals, validated: ids well-formed and unique in their canonical
    /// form (two ids that differ only in case are one person listed twice), owners are people
    /// that exist, only agents have owners, and only policy enforcement points (`pep:`) have
    /// an `evaluates_for`, which they need.
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
            let pep = id.kind() == countersign_core::PrincipalKind::Pep;
            if pep && p.evaluates_for.is_empty() {
                return Err(format!(
                    "{id}: a policy enforcement point needs `evaluates_for` (e.g. [\"agent:*\"])"
                ));
            }
            if !pep && !p.evaluates_for.is_empty() {
                return Err(format!(
                    "{id}: only a policy enforcement point (`pep:<name>`) has `evaluates_for`"
                ));
            }
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
mod tests;
