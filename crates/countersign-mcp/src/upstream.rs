//! The MCP servers behind the gateway, reached with the official `rmcp` client: a command run
//! over stdio, or a Streamable HTTP URL. The gateway holds their credentials (`env`, `headers`)
//! and shares one connection per upstream among all agents.
//!
//! A connection is made on first use and made again after it breaks (a crashed process, a
//! closed stream); a failed attempt is not retried for [`RETRY_AFTER`], so a server that cannot
//! start does not cost every call a new process. Every request has a deadline: a hung upstream
//! gives its callers a clear error and keeps nobody else waiting.

use super::hub::{Hub, Listener};
use crate::config::UpstreamConfig;
use rmcp::model::Tool;
use rmcp::service::{RunningService, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ErrorData, Peer, RoleClient, ServiceExt};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

/// How long starting an upstream (spawn and `initialize`) may take: a stdio server may need to
/// be fetched first (`npx -y …`), so this is independent of the per-request `call_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// After a failed connection attempt, calls fail at once for this long before the next attempt.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// Variables a stdio upstream inherits from the gateway; everything else (the gateway's own
/// secrets included) stays out of its environment. `env` in the config adds to these.
const INHERITED_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SHELL", "TERM",
];

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("MCP server `{0}` is not available: {1}")]
    Unavailable(String, String),
    #[error("MCP server `{0}` did not answer within {1:?}")]
    Timeout(String, Duration),
    #[error("MCP server `{0}` closed the connection")]
    Closed(String),
    /// The upstream answered with a JSON-RPC error: passed on as it is.
    #[error("{0}")]
    Protocol(ErrorData),
}

enum Spec {
    Stdio {
        command: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
        cwd: Option<std::path::PathBuf>,
    },
    Http {
        url: String,
        headers: Vec<(String, String)>,
    },
}

struct Live {
    service: RunningService<RoleClient, Listener>,
    tools: RwLock<Option<Arc<Vec<Tool>>>>,
}

enum Conn {
    None,
    Up(Arc<Live>),
    Failed(Instant, String),
}

pub struct Upstream {
    pub name: String,
    spec: Spec,
    timeout: Duration,
    hub: Arc<Hub>,
    conn: tokio::sync::Mutex<Conn>,
}

impl Upstream {
    pub fn new(config: &UpstreamConfig, timeout: Duration, hub: Arc<Hub>) -> Self {
        let spec = match (&config.command, &config.url) {
            (Some(command), _) => Spec::Stdio {
                command: command.clone(),
                args: config.args.clone(),
                env: config
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.expose().to_string()))
                    .collect(),
                cwd: config.cwd.clone(),
            },
            (None, url) => Spec::Http {
                url: url.clone().unwrap_or_default(),
                headers: config
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.expose().to_string()))
                    .collect(),
            },
        };
        Upstream {
            name: config.name.clone(),
            spec,
            timeout,
            hub,
            conn: tokio::sync::Mutex::new(Conn::None),
        }
    }

    /// The live connection, made now if there is none.
    async fn live(&self) -> Result<Arc<Live>, UpstreamError> {
        let mut conn = self.conn.lock().await;
        match &*conn {
            Conn::Up(live) if !live.service.is_closed() => return Ok(live.clone()),
            Conn::Failed(at, why) if at.elapsed() < RETRY_AFTER => {
                return Err(UpstreamError::Unavailable(self.name.clone(), why.clone()));
            }
            _ => {}
        }
        let listener = Listener::new(self.name.clone(), self.hub.clone());
        let limit = CONNECT_TIMEOUT.max(self.timeout);
        match tokio::time::timeout(limit, self.connect(listener)).await {
            Ok(Ok(service)) => {
                let live = Arc::new(Live {
                    service,
                    tools: RwLock::new(None),
                });
                tracing::info!(upstream = %self.name, "connected to MCP server");
                *conn = Conn::Up(live.clone());
                Ok(live)
            }
            Ok(Err(why)) => {
                tracing::warn!(upstream = %self.name, error = %why, "cannot connect to MCP server");
                *conn = Conn::Failed(Instant::now(), why.clone());
                Err(UpstreamError::Unavailable(self.name.clone(), why))
            }
            Err(_) => {
                let why = format!("no answer to `initialize` within {limit:?}");
                *conn = Conn::Failed(Instant::now(), why.clone());
                Err(UpstreamError::Unavailable(self.name.clone(), why))
            }
        }
    }

    async fn connect(
        &self,
        listener: Listener,
    ) -> Result<RunningService<RoleClient, Listener>, String> {
        match &self.spec {
            Spec::Stdio {
                command,
                args,
                env,
                cwd,
            } => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args).env_clear();
                for key in INHERITED_ENV {
                    if let Ok(v) = std::env::var(key) {
                        cmd.env(key, v);
                    }
                }
                cmd.envs(env.iter().map(|(k, v)| (k, v)));
                if let Some(dir) = cwd {
                    cmd.current_dir(dir);
                }
                let (process, stderr) = TokioChildProcess::builder(cmd)
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .map_err(|e| format!("cannot start `{command}`: {e}"))?;
                if let Some(stderr) = stderr {
                    tokio::spawn(log_stderr(self.name.clone(), stderr));
                }
                listener.serve(process).await.map_err(|e| e.to_string())
            }
            Spec::Http { url, headers } => {
                let mut custom = HashMap::new();
                for (k, v) in headers {
                    let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                        .map_err(|_| format!("header name `{k}` is not valid"))?;
                    let value = reqwest::header::HeaderValue::from_str(v)
                        .map_err(|_| format!("the value of header `{k}` is not valid"))?;
                    custom.insert(name, value);
                }
                let mut config = StreamableHttpClientTransportConfig::with_uri(url.as_str());
                config.custom_headers = custom;
                let client = reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|e| e.to_string())?;
                let transport = StreamableHttpClientTransport::with_client(client, config);
                listener.serve(transport).await.map_err(|e| e.to_string())
            }
        }
    }

    /// Runs one request on the upstream's connection, with the deadline. A broken connection is
    /// dropped so that the next request makes a new one.
    pub async fn request<T, F, Fut>(&self, f: F) -> Result<T, UpstreamError>
    where
        F: FnOnce(Peer<RoleClient>) -> Fut,
        Fut: Future<Output = Result<T, ServiceError>>,
    {
        let live = self.live().await?;
        let peer = live.service.peer().clone();
        match tokio::time::timeout(self.timeout, f(peer)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(ServiceError::McpError(e))) => Err(UpstreamError::Protocol(e)),
            Ok(Err(e)) => {
                tracing::warn!(upstream = %self.name, error = %e, "MCP server request failed");
                if live.service.is_closed() || matches!(e, ServiceError::TransportClosed) {
                    self.forget(&live).await;
                    return Err(UpstreamError::Closed(self.name.clone()));
                }
                Err(UpstreamError::Unavailable(self.name.clone(), e.to_string()))
            }
            Err(_) => Err(UpstreamError::Timeout(self.name.clone(), self.timeout)),
        }
    }

    async fn forget(&self, dead: &Arc<Live>) {
        let mut conn = self.conn.lock().await;
        if let Conn::Up(live) = &*conn
            && Arc::ptr_eq(live, dead)
        {
            *conn = Conn::None;
        }
    }

    /// The upstream's tools, cached until it says its list changed.
    pub async fn tools(&self) -> Result<Arc<Vec<Tool>>, UpstreamError> {
        let live = self.live().await?;
        if self.hub.take_tools_changed(&self.name) {
            *live.tools.write().unwrap_or_else(|p| p.into_inner()) = None;
        }
        if let Some(tools) = live.tools.read().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(tools);
        }
        let tools = Arc::new(
            self.request(|peer| async move { peer.list_all_tools().await })
                .await?,
        );
        *live.tools.write().unwrap_or_else(|p| p.into_inner()) = Some(tools.clone());
        Ok(tools)
    }

    /// Closes the connection (the stdio process ends).
    pub async fn shutdown(&self) {
        let mut conn = self.conn.lock().await;
        if let Conn::Up(live) = std::mem::replace(&mut *conn, Conn::None) {
            live.service.cancellation_token().cancel();
        }
    }
}

async fn log_stderr(name: String, stderr: tokio::process::ChildStderr) {
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(upstream = %name, "{line}");
    }
}
