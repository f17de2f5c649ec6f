//! Starting the servers under test: `countersign serve` with a benchmark configuration, and a
//! bare axum endpoint for comparison. Both are separate processes, found through stdout.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const POLICY: &str = r#"
version: 1
default: deny
rules:
  - name: bench-allow
    match: {kind: "bench.allow"}
    effect: allow
  - name: bench-exec
    match: {kind: "exec.http.*"}
    effect: allow
  - name: bench-mcp-echo
    match: {kind: "mcp.tool.*.echo"}
    effect: allow
  - name: bench-standing
    match: {kind: "bench.standing"}
    effect: review
    review:
      approvers: [{group: sre, count: 1}]
      timeout: 1h
      standing: {max: 1h, max_uses: 1000, scope: [kind, resource]}
  - name: bench-review
    match: {kind: "bench.review"}
    effect: review
    review:
      approvers: [{group: sre, count: 1}]
      timeout: 1h
"#;

pub struct Server {
    pub child: Child,
    pub addr: String,
    pub keys: std::collections::HashMap<String, String>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// The folder holding its configuration and SQLite database, when it has one.
    pub fn dir(&self) -> Option<&std::path::Path> {
        self._dir.as_ref().map(|d| d.path())
    }

    /// Resident set size and its peak, in KiB, from /proc.
    pub fn rss_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

fn read_startup(
    child: &mut Child,
    keys_expected: usize,
) -> anyhow::Result<(String, std::collections::HashMap<String, String>)> {
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut addr = None;
    let mut keys = std::collections::HashMap::new();
    while addr.is_none() || keys.len() < keys_expected {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))?;
        if let Some(u) = line.strip_prefix("Countersign gateway listening on http://") {
            addr = Some(u.trim().to_string());
        }
        if let Some(u) = line.strip_prefix("bare server listening on ") {
            addr = Some(u.trim().to_string());
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [who, key] = words[..]
            && key.starts_with("cs_")
        {
            keys.insert(who.to_string(), key.to_string());
        }
    }
    Ok((addr.unwrap_or_default(), keys))
}

/// A folder with the benchmark policy and a configuration on `database`, plus `extra`. One
/// agent stands for many clients here, so the per-principal limits are lifted.
fn config_dir(database: &str, extra: &str) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("policy.yaml"), POLICY)?;
    std::fs::write(
        dir.path().join("countersign.yaml"),
        format!(
            "listen: 127.0.0.1:0\ndatabase: {database}\npolicy: policy.yaml\nprincipals:\n  - {{id: agent:bench, owner: user:owner@example.com}}\n  - {{id: user:owner@example.com}}\n  - {{id: user:approver@example.com, groups: [sre]}}\nlimits: {{streams_per_principal: 1000000, waits_per_principal: 1000000}}\n{extra}"
        ),
    )?;
    Ok(dir)
}

pub fn countersign(bin: &str) -> anyhow::Result<Server> {
    countersign_with(bin, "")
}

/// `countersign serve` with `extra` appended to the benchmark configuration.
pub fn countersign_with(bin: &str, extra: &str) -> anyhow::Result<Server> {
    let dir = config_dir("countersign.db", extra)?;
    let mut child = Command::new(bin)
        .args(["serve", "--config"])
        .arg(dir.path().join("countersign.yaml"))
        .env("COUNTERSIGN_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let (addr, keys) = read_startup(&mut child, 3)?;
    Ok(Server {
        child,
        addr,
        keys,
        _dir: Some(dir),
    })
}

/// A fresh, empty database on the PostgreSQL server at `server` (a URL), as a URL.
pub async fn fresh_database(server: &str) -> anyhow::Result<String> {
    use sqlx::{ConnectOptions as _, Connection as _};
    let name = format!(
        "cs_bench_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    );
    let options: sqlx::postgres::PgConnectOptions = server.parse()?;
    let mut conn = options.connect().await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let (base, _) = server.rsplit_once('/').unwrap_or((server, ""));
    Ok(format!("{base}/{name}"))
}

/// `n` replicas of `countersign serve` sharing the PostgreSQL database `database` (and one
/// folder: policy, audit key). The first holds the folder.
pub fn countersign_replicas(bin: &str, database: &str, n: usize) -> anyhow::Result<Vec<Server>> {
    let dir = config_dir(&format!("'{database}'"), "")?;
    let mut out: Vec<Server> = vec![];
    for i in 0..n {
        let mut child = Command::new(bin)
            .args(["serve", "--config"])
            .arg(dir.path().join("countersign.yaml"))
            .env("COUNTERSIGN_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let (addr, mut keys) = read_startup(&mut child, if i == 0 { 3 } else { 0 })?;
        if let Some(first) = out.first() {
            keys = first.keys.clone();
        }
        out.push(Server {
            child,
            addr,
            keys,
            _dir: None,
        });
    }
    if let Some(first) = out.first_mut() {
        first._dir = Some(dir);
    }
    Ok(out)
}

pub fn bare(bin_self: &str) -> anyhow::Result<Server> {
    let mut child = Command::new(bin_self)
        .arg("bare-server")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let (addr, keys) = read_startup(&mut child, 0)?;
    Ok(Server {
        child,
        addr,
        keys,
        _dir: None,
    })
}

/// The comparison endpoint: axum, POST returns the body it was given.
pub async fn serve_bare() -> anyhow::Result<()> {
    let app = axum::Router::new().route(
        "/echo",
        axum::routing::post(|body: bytes::Bytes| async move { body }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("bare server listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// A stand-in for Slack's Web API with the answers the gateway needs (the benchmark measures
/// the gateway, not Slack): messages are accepted, and `UAPPROVER` is approver@example.com.
/// Returns its base URL.
pub async fn slack_stub() -> anyhow::Result<String> {
    use axum::Json;
    use axum::routing::{get, post};
    use serde_json::json;
    let ts = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(1));
    let posted = move || {
        let n = ts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move { Json(json!({"ok": true, "channel": "C1", "ts": format!("1700000000.{n:06}")})) }
    };
    let app = axum::Router::new()
        .route("/api/chat.postMessage", post(posted))
        .route(
            "/api/chat.update",
            post(|| async { Json(json!({"ok": true})) }),
        )
        .route(
            "/api/chat.postEphemeral",
            post(|| async { Json(json!({"ok": true})) }),
        )
        .route(
            "/api/users.info",
            get(|| async {
                Json(json!({"ok": true, "user": {"id": "UAPPROVER",
                    "profile": {"email": "approver@example.com"}}}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/api"))
}
