//! The `mcp` section: the upstream MCP servers and how agent sessions behave.

use countersign_app::settings::{Secret, human_duration};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpConfig {
    #[serde(default)]
    pub upstreams: Vec<UpstreamConfig>,
    /// Leave out of `tools/list` the tools that policy denies this principal whatever the
    /// arguments.
    #[serde(default)]
    pub hide_denied_tools: bool,
    /// How long one forwarded request may take upstream before the agent gets an error.
    #[serde(default = "default_mcp_timeout", deserialize_with = "human_duration")]
    pub call_timeout: std::time::Duration,
    /// How often a held `tools/call` reports progress while people decide.
    #[serde(
        default = "default_progress_interval",
        deserialize_with = "human_duration"
    )]
    pub progress_interval: std::time::Duration,
    /// Extra `Host` values `/mcp` accepts besides loopback and `public_url`'s host (DNS
    /// rebinding protection).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// How long an agent's session lives without a request from it; never ends while one of
    /// its calls is held (`mcp::sessions`).
    #[serde(
        default = "default_session_idle_timeout",
        deserialize_with = "human_duration"
    )]
    pub session_idle_timeout: std::time::Duration,
    /// How long a held `tools/call` keeps its client waiting before it is answered "approval
    /// pending" (a retry of the same call then attaches to the same request); `off` holds it
    /// until decided. A principal's `mcp_hold_for` overrides it.
    #[serde(default)]
    pub hold_for: HoldFor,
}

/// No upstreams, every setting at its default: the MCP gateway of a gateway that has executors
/// and no `mcp` section (its agents reach the executors' tools, `countersign__<executor>`).
impl Default for McpConfig {
    fn default() -> Self {
        McpConfig {
            upstreams: vec![],
            hide_denied_tools: false,
            call_timeout: default_mcp_timeout(),
            progress_interval: default_progress_interval(),
            allowed_hosts: vec![],
            session_idle_timeout: default_session_idle_timeout(),
            hold_for: HoldFor::default(),
        }
    }
}

/// How long a held MCP call keeps its client waiting: a duration (`50s`, `0s` answers "approval
/// pending" at once), or `off` (until decided; a client that leaves cancels its request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldFor(pub Option<std::time::Duration>);

impl Default for HoldFor {
    fn default() -> Self {
        HoldFor(Some(std::time::Duration::from_secs(50)))
    }
}

impl<'de> Deserialize<'de> for HoldFor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text == "off" {
            return Ok(HoldFor(None));
        }
        humantime::parse_duration(&text)
            .map(|d| HoldFor(Some(d)))
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "`{text}` is neither `off` nor a duration like 50s or 2m: {e}"
                ))
            })
    }
}

pub fn default_session_idle_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(300)
}

/// One MCP server behind the gateway: a command run over stdio, or a Streamable HTTP URL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Lowercase letters, digits and `-`: the prefix of its tools (`<name>__<tool>`).
    pub name: String,
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment of the command (secrets stay in the gateway; the agent never sees them).
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, Secret>,
    /// Working directory of the command.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    #[serde(default)]
    pub url: Option<String>,
    /// Sent with every request to `url` (for example `Authorization`).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, Secret>,
}

pub fn default_mcp_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(60)
}

pub fn default_progress_interval() -> std::time::Duration {
    std::time::Duration::from_secs(5)
}

impl McpConfig {
    pub fn validate(&self) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for u in &self.upstreams {
            let ok = !u.name.is_empty()
                && u.name.len() <= 32
                && u.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !u.name.starts_with('-');
            if !ok {
                return Err(format!(
                    "upstream name `{}`: use 1-32 lowercase letters, digits and `-`",
                    u.name
                ));
            }
            if u.name == crate::naming::BUILTIN {
                return Err(format!(
                    "upstream name `{}` is reserved for the gateway's own tools (its executors, \
                     `{}__<executor>`): choose another name",
                    u.name,
                    crate::naming::BUILTIN
                ));
            }
            if !seen.insert(u.name.as_str()) {
                return Err(format!("upstream `{}` is listed twice", u.name));
            }
            match (&u.command, &u.url) {
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "upstream `{}`: give either `command` (stdio) or `url` (HTTP), not both",
                        u.name
                    ));
                }
                (None, None) => {
                    return Err(format!(
                        "upstream `{}`: give `command` (stdio) or `url` (Streamable HTTP)",
                        u.name
                    ));
                }
                (Some(_), None) if !u.headers.is_empty() => {
                    return Err(format!(
                        "upstream `{}`: `headers` apply to `url` upstreams only",
                        u.name
                    ));
                }
                (None, Some(url)) => {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(format!(
                            "upstream `{}`: `url` must start with http:// or https://",
                            u.name
                        ));
                    }
                    if !u.env.is_empty() || !u.args.is_empty() || u.cwd.is_some() {
                        return Err(format!(
                            "upstream `{}`: `args`, `env` and `cwd` apply to `command` upstreams only",
                            u.name
                        ));
                    }
                }
                _ => {}
            }
        }
        if self.progress_interval < std::time::Duration::from_millis(100) {
            return Err("`progress_interval` must be at least 100ms".into());
        }
        if self.session_idle_timeout < std::time::Duration::from_secs(1) {
            return Err("`session_idle_timeout` must be at least 1s".into());
        }
        Ok(())
    }
}
