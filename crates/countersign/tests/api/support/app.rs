//! `spawn_app()`: a gateway with a test policy and test principals, and typed clients for "the
//! agent" and each approver.

use countersign_server::Config;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use tempfile::TempDir;

pub const TEST_POLICY: &str = r#"
version: 1
default: review
defaults:
  review: {approvers: [{group: sre, count: 1}], timeout: 30m, on_timeout: deny}
rules:
  - name: reads-are-free
    match: {kind: "db.query"}
    when: 'params.readonly == true'
    effect: allow
  - name: never-drop-in-prod
    match: {kind: "db.ddl", resource: "postgres://prod/*"}
    when: 'params.sql.matches("(?i)drop\\s+table")'
    effect: deny
    reason: Dropping tables in production is never automated.
  - name: prod-export-needs-two
    match: {kind: "db.export", resource: "postgres://prod/*", principal: "agent:*"}
    when: 'params.rows > 1000'
    effect: review
    review:
      approvers: [{group: sre, count: 1}, {group: security, count: 1}]
      timeout: 15m
      pause_run: true
  - name: grants-need-mfa
    match: {kind: "iam.grant"}
    effect: review
    review:
      approvers: [{group: security, count: 1}]
      mfa: true
  - name: quick-expiry
    match: {kind: "test.expire"}
    effect: review
    review:
      approvers: [{group: sre, count: 1}]
      timeout: 2s
  - name: rollback-needs-two-sre
    match: {kind: "infra.rollback"}
    effect: review
    review:
      approvers: [{group: sre, count: 2}]
  - name: nagging
    match: {kind: "test.remind"}
    effect: review
    review:
      approvers: [{group: sre, count: 1}]
      notify: ["slack:#approvals"]
      remind: 1s
      escalate: {after: 2s, notify: ["slack:#sre-leads"]}
  - name: mcp-echo-is-free
    match: {kind: ["mcp.tool.*.echo", "mcp.tool.flaky.*"]}
    effect: allow
  - name: mcp-small-sums-are-free
    match: {kind: "mcp.tool.*.get-sum"}
    when: 'params.a < 1000'
    effect: allow
  - name: mcp-no-env
    match: {kind: "mcp.tool.*.get-env"}
    effect: deny
    reason: The environment holds the server's secrets.
  - name: mcp-images-expire-fast
    match: {kind: "mcp.tool.*.get-tiny-image"}
    effect: review
    review:
      approvers: [{group: sre, count: 1}]
      timeout: 1s
  - name: mcp-reads-are-free
    match: {kind: "mcp.resource.read", resource: "demo://*"}
    effect: allow
  - name: mcp-plain-prompts-are-free
    match: {kind: ["mcp.prompt.*.simple-prompt", "mcp.prompt.*.args-prompt"]}
    effect: allow
  - name: mcp-no-embedded-resources
    match: {kind: "mcp.prompt.*.resource-prompt"}
    effect: deny
    reason: A prompt that embeds a resource would read it around resources/read.
  - name: mcp-team-completions-are-free
    match: {kind: "mcp.completion.*", resource: "mcp://*/prompts/completable-prompt"}
    effect: allow
  - name: mcp-no-other-completions
    match: {kind: "mcp.completion.*"}
    effect: deny
    reason: Only the team prompt's arguments may be completed.
  - name: mcp-no-subscriptions
    match: {kind: "mcp.resource.subscribe"}
    effect: deny
    reason: Agents do not watch resources here.
  - name: mcp-unsubscribe-is-free
    match: {kind: "mcp.resource.unsubscribe"}
    effect: allow
  - name: crowd-review
    match: {kind: "test.crowd"}
    effect: review
    review:
      approvers: [{group: crowd, count: 3}]
"#;

/// Principals of the test world. `crowd` people exist for concurrency tests.
pub fn principals_yaml(crowd: usize) -> String {
    let mut s = String::from(
        "principals:
  - {id: agent:deploy-bot, owner: user:alice@example.com, groups: [deployers]}
  - {id: agent:helper-bot, owner: user:frank@example.com, groups: [sre, security]}
  - {id: user:alice@example.com, groups: [sre]}
  - {id: user:bob@example.com, groups: [sre]}
  - {id: user:carol@example.com, groups: [security]}
  - {id: user:dana@example.com, groups: [sre, security]}
  - {id: user:erin@example.com, groups: [sre]}
  - {id: user:frank@example.com, groups: [finance]}
",
    );
    for i in 0..crowd {
        s.push_str(&format!(
            "  - {{id: user:p{i}@example.com, groups: [crowd]}}\n"
        ));
    }
    s
}

pub struct TestApp {
    pub url: String,
    pub dir: TempDir,
    pub keys: HashMap<String, String>,
    pub http: reqwest::Client,
    /// Keeps the gateway running for the test's lifetime.
    pub _running: countersign_server::Running,
}

pub fn write_world(dir: &TempDir, crowd: usize) -> PathBuf {
    std::fs::write(dir.path().join("policy.yaml"), TEST_POLICY).unwrap();
    let config = format!(
        "listen: 127.0.0.1:0\ndatabase: countersign.db\npolicy: policy.yaml\n{}",
        principals_yaml(crowd)
    );
    let path = dir.path().join("countersign.yaml");
    std::fs::write(&path, config).unwrap();
    path
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(0).await
}

/// A gateway with the test principals and `policy` instead of the test policy.
pub async fn spawn_app_with_policy(policy: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    write_world(&dir, 0);
    std::fs::write(dir.path().join("policy.yaml"), policy).unwrap();
    start_in(dir, None).await
}

/// A gateway with the test principals, `policy`, and `extra` YAML appended to its config.
pub async fn spawn_app_configured(policy: &str, extra: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_world(&dir, 0);
    std::fs::write(dir.path().join("policy.yaml"), policy).unwrap();
    let mut text = std::fs::read_to_string(&config_path).unwrap();
    text.push_str(extra);
    std::fs::write(&config_path, text).unwrap();
    start_in(dir, None).await
}

/// A gateway in `dir` with the test world plus `extra` YAML appended to its config.
pub async fn spawn_app_in(dir: TempDir, extra: &str) -> TestApp {
    let config_path = write_world(&dir, 0);
    let mut text = std::fs::read_to_string(&config_path).unwrap();
    text.push_str(extra);
    std::fs::write(&config_path, text).unwrap();
    start_in(dir, None).await
}

/// A gateway configured by the files a test wrote in `dir` (`countersign.yaml` and what it
/// names), e.g. after [`write_world`].
pub async fn spawn_app_from(dir: TempDir) -> TestApp {
    start_in(dir, None).await
}

/// A gateway with the test world whose config text is first passed through `edit`.
pub async fn spawn_app_editing(edit: impl FnOnce(String) -> String) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_world(&dir, 0);
    let text = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(&config_path, edit(text)).unwrap();
    start_in(dir, None).await
}

/// A loopback port that was free a moment ago (for a gateway whose URL must be known before
/// it starts, e.g. as an OpenID Connect redirect URI).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the gateway again on the same folder and database (keys were created the first time).
pub async fn restart_in(dir: TempDir, keys: HashMap<String, String>) -> TestApp {
    start_in(dir, Some(keys)).await
}

pub async fn spawn_app_with(crowd: usize) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    write_world(&dir, crowd);
    start_in(dir, None).await
}

/// Starts the gateway configured by `dir/countersign.yaml`. `keys`: those of an earlier start
/// on the same database, or `None` to use the keys this first start prints.
async fn start_in(dir: TempDir, keys: Option<HashMap<String, String>>) -> TestApp {
    let config = Config::load(Some(&dir.path().join("countersign.yaml"))).unwrap();
    let running = countersign_server::start(config).await.unwrap();
    let keys = keys.unwrap_or_else(|| {
        running
            .bootstrap_keys
            .iter()
            .map(|(p, k)| (p.to_string(), k.clone()))
            .collect()
    });
    TestApp {
        url: format!("http://{}", running.addr),
        dir,
        keys,
        http: reqwest::Client::new(),
        _running: running,
    }
}

/// A response: status and JSON body.
pub struct Resp {
    pub status: StatusCode,
    pub body: Value,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    pub fn state(&self) -> &str {
        self.body["state"].as_str().unwrap_or("")
    }
    pub fn id(&self) -> String {
        self.body["id"].as_str().unwrap().to_string()
    }
    pub fn digest(&self) -> String {
        self.body["digest"].as_str().unwrap().to_string()
    }
}

/// A client acting as one principal.
#[derive(Clone)]
pub struct As {
    pub url: String,
    pub key: String,
    pub http: reqwest::Client,
}

impl As {
    /// A client for the gateway at `url` acting with `key`.
    pub fn new(url: &str, key: &str) -> As {
        As {
            url: url.to_string(),
            key: key.to_string(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap();
        let status = r.status();
        Resp {
            status,
            body: r.json().await.unwrap_or(Value::Null),
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.post_with(path, &[], body).await
    }

    /// [`As::post`] with extra request headers.
    pub async fn post_with(&self, path: &str, headers: &[(&str, &str)], body: Value) -> Resp {
        let mut req = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.key)
            .json(&body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        Resp {
            status,
            body: r.json().await.unwrap_or(Value::Null),
        }
    }

    pub async fn submit(&self, kind: &str, resource: &str, params: Value) -> Resp {
        self.post(
            "/v1/actions",
            json!({"kind": kind, "resource": resource, "params": params, "justification": "test"}),
        )
        .await
    }

    /// Every audit entry (the first 10000), as this principal (a person) reads them.
    pub async fn audit_entries(&self) -> Vec<Value> {
        let body = self
            .http
            .get(format!("{}/v1/audit/entries?limit=10000", self.url))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        body.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub async fn vote(&self, id: &str, decision: &str, digest: &str) -> Resp {
        self.post(
            &format!("/v1/requests/{id}/votes"),
            json!({"decision": decision, "digest": digest}),
        )
        .await
    }
}

impl TestApp {
    /// Every audit entry, as a person reads them over the API.
    pub async fn audit_entries(&self) -> Vec<Value> {
        self.as_("user:bob@example.com").audit_entries().await
    }

    /// The votes on request `id`, as a person reads them.
    pub async fn votes(&self, id: &str) -> Vec<Value> {
        let r = self
            .as_("user:dana@example.com")
            .get(&format!("/v1/requests/{id}"))
            .await;
        r.body["votes"].as_array().cloned().unwrap_or_default()
    }

    /// `bob` (sre) decides request `id` ("approve" or "deny") on the digest he reads.
    pub async fn decide(&self, id: &str, decision: &str) {
        let bob = self.approver("bob");
        let r = bob.get(&format!("/v1/requests/{id}")).await;
        let vote = bob
            .vote(id, decision, r.body["digest"].as_str().unwrap_or_default())
            .await;
        assert_eq!(vote.status, 200, "{}", vote.body);
    }

    pub fn as_(&self, principal: &str) -> As {
        let key = self
            .keys
            .get(principal)
            .unwrap_or_else(|| panic!("no key for {principal}"))
            .clone();
        As {
            url: self.url.clone(),
            key,
            http: self.http.clone(),
        }
    }

    /// The agent `agent:deploy-bot` (owned by alice).
    pub fn agent(&self) -> As {
        self.as_("agent:deploy-bot")
    }

    /// A person by first name: `approver("bob")` is user:bob@example.com.
    pub fn approver(&self, name: &str) -> As {
        self.as_(&format!("user:{name}@example.com"))
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("countersign.db")
    }

    /// The `countersign` binary acting as `principal` against this gateway, with the URL and
    /// the key in its environment as an agent host sets them (stdin closed; killed if the
    /// test drops it).
    pub fn cli(&self, principal: &str, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_countersign"));
        c.args(args)
            .env("COUNTERSIGN_URL", &self.url)
            .env("COUNTERSIGN_TOKEN", &self.keys[principal])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        c
    }

    /// The id of the first pending request a person sees, once one appears (within 20 s).
    pub async fn first_pending(&self) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let list = self.approver("bob").get("/v1/requests?state=pending").await;
            if let Some(id) = list.body["requests"][0]["id"].as_str() {
                return id.to_string();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no pending request appeared"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// An export that the test policy sends to sre + security review.
pub fn big_export() -> Value {
    json!({"rows": 5000})
}

/// The names of the audit entries about request `id`, in order.
pub fn events_of(entries: &[Value], id: &str) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e["request"] == id)
        .map(|e| e["event"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Every request of `app`'s SQLite database is what its audit entries produce.
pub async fn assert_log_intact(app: &TestApp) {
    use countersign_store::Store as _;
    let store = countersign_store::SqliteStore::open_read_only(&app.db_path())
        .await
        .unwrap();
    assert_eq!(store.verify_requests().await.unwrap(), vec![]);
}
