//! The command line as people and scripts run it: the real `countersign` binary, against a
//! gateway started by the same binary.

use crate::support::app::write_world;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_countersign");

/// A gateway process started with `countersign serve --config`.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub keys: std::collections::HashMap<String, String>,
    /// Where its log goes, when [`serve`] kept it: shown if the test fails.
    log: Option<tempfile::NamedTempFile>,
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failing test shows how the gateway ended (it may have died under the test) and
        // the end of its log.
        if std::thread::panicking() {
            let status = self.child.try_wait();
            eprintln!(
                "gateway {}: exit status {status:?} (None: still running)",
                self.url
            );
            if let Some(log) = &self.log {
                let text = std::fs::read_to_string(log.path()).unwrap_or_default();
                let tail = &text[text.len().saturating_sub(8000)..];
                eprintln!("gateway {} log (end):\n{tail}", self.url);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `countersign serve` and reads its address (and, on first start, its keys). Its log
/// (level `info`) is kept in a temporary file and shown if the test fails.
pub fn serve(config: &Path, expect_keys: usize) -> Server {
    let log = tempfile::NamedTempFile::new().unwrap();
    let stderr = Stdio::from(log.reopen().unwrap());
    let mut server = serve_logging(config, expect_keys, "info", stderr);
    server.log = Some(log);
    server
}

/// [`serve`] with the log at `level` written to `log`.
pub fn serve_logging(config: &Path, expect_keys: usize, level: &str, log: Stdio) -> Server {
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .env("COUNTERSIGN_LOG", level)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end, even once nobody listens: the server must never write to a
        // closed pipe because of the test.
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let mut url = None;
    let mut keys = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while url.is_none() || keys.len() < expect_keys {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the server printed its address and keys in time");
        if let Some(u) = line.strip_prefix("Countersign gateway listening on ") {
            url = Some(u.trim().to_string());
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [who, key] = words[..]
            && key.starts_with("cs_")
        {
            keys.insert(who.to_string(), key.to_string());
        }
    }
    Server {
        child,
        url: url.unwrap(),
        keys,
        log: None,
    }
}

/// `countersign audit verify --config CONFIG`, run in the config's folder: fails the test with
/// its output unless the log verifies.
pub fn assert_audit_verifies(config: &Path) {
    let verify = Command::new(BIN)
        .args(["audit", "verify", "--config"])
        .arg(config)
        .current_dir(config.parent().unwrap_or(Path::new(".")))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "audit verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

pub fn cli(server: &Server, who: &str, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("COUNTERSIGN_URL", &server.url)
        .env("COUNTERSIGN_TOKEN", &server.keys[who]);
    c
}

fn run(mut c: Command) -> Output {
    c.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Polls `ls --json` as bob until a pending request shows up; returns its id.
fn first_pending(server: &Server) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = run(cli(server, "user:bob@example.com", &["ls", "--json"]));
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if let Some(id) = list["requests"][0]["id"].as_str() {
            return id.to_string();
        }
        assert!(Instant::now() < deadline, "no pending request appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn cli_request_waits_and_two_approvers_release_it_with_exit_code_0() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&write_world(&dir, 0), 8);
    let waiting = cli(
        &server,
        "agent:deploy-bot",
        &[
            "request",
            "--kind",
            "db.export",
            "--resource",
            "postgres://prod/customers",
            "--params",
            r#"{"rows": 5000}"#,
            "--justification",
            "quarterly report",
            "--wait",
            "--json",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let id = first_pending(&server);
    let bob = run(cli(
        &server,
        "user:bob@example.com",
        &["approve", &id, "--comment", "ok"],
    ));
    assert!(
        bob.status.success(),
        "{}",
        String::from_utf8_lossy(&bob.stderr)
    );
    let carol = run(cli(&server, "user:carol@example.com", &["approve", &id]));
    assert!(
        carol.status.success(),
        "{}",
        String::from_utf8_lossy(&carol.stderr)
    );
    let out = waiting.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["state"], "approved");
    assert_eq!(r["id"], id.as_str());
}

#[test]
fn cli_exit_codes_denied_expired_refused_and_bad_usage() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&write_world(&dir, 0), 8);
    let agent = "agent:deploy-bot";
    let denied = run(cli(
        &server,
        agent,
        &[
            "request",
            "--kind",
            "db.ddl",
            "--resource",
            "postgres://prod/x",
            "--params",
            r#"{"sql":"drop table t"}"#,
        ],
    ));
    assert_eq!(denied.status.code(), Some(3), "{}", stdout(&denied));
    let expired = run(cli(
        &server,
        agent,
        &[
            "request",
            "--kind",
            "test.expire",
            "--resource",
            "x://y",
            "--wait",
            "30s",
        ],
    ));
    assert_eq!(expired.status.code(), Some(4));
    let still = run(cli(
        &server,
        agent,
        &[
            "request",
            "--kind",
            "db.export",
            "--resource",
            "postgres://prod/x",
            "--params",
            r#"{"rows":5000}"#,
            "--wait",
            "1s",
        ],
    ));
    assert_eq!(still.status.code(), Some(5));
    let bad_json = run(cli(
        &server,
        agent,
        &[
            "request",
            "--kind",
            "k.x",
            "--resource",
            "r",
            "--params",
            "{",
        ],
    ));
    assert_eq!(bad_json.status.code(), Some(2));
    let refused = run(cli(
        &server,
        agent,
        &["request", "--kind", "bad kind", "--resource", "r"],
    ));
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("invalid_action"));
    let self_vote = run(cli(
        &server,
        "user:alice@example.com",
        &["approve", "req_nope"],
    ));
    assert_eq!(self_vote.status.code(), Some(2));
    let no_verb = run({
        let mut c = Command::new(BIN);
        c.arg("frobnicate");
        c
    });
    assert_eq!(no_verb.status.code(), Some(2));
    let unreachable = run({
        let mut c = Command::new(BIN);
        c.args(["ls"])
            .env("COUNTERSIGN_URL", "http://127.0.0.1:9")
            .env("COUNTERSIGN_TOKEN", "cs_x");
        c
    });
    assert_eq!(unreachable.status.code(), Some(1));
}

#[test]
fn cli_exec_runs_the_approved_command_and_exits_with_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&write_world(&dir, 0), 8);
    let exec = cli(
        &server,
        "agent:deploy-bot",
        &["exec", "--", "sh", "-c", "echo ran; exit 7"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let id = first_pending(&server);
    let show = run(cli(
        &server,
        "user:bob@example.com",
        &["show", &id, "--json"],
    ));
    let r: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(r["action"]["kind"], "shell.exec");
    assert_eq!(r["action"]["params"]["argv"][2], "echo ran; exit 7");
    let ok = run(cli(&server, "user:bob@example.com", &["approve", &id]));
    assert!(ok.status.success());
    let out = exec.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(stdout(&out), "ran\n");
    // The grant was redeemed and the outcome reported: exit code 7 is a failed execution.
    let after = run(cli(
        &server,
        "user:bob@example.com",
        &["show", &id, "--json"],
    ));
    let r: serde_json::Value = serde_json::from_slice(&after.stdout).unwrap();
    assert_eq!(r["state"], "failed");
    assert_eq!(r["execution"]["outcome"]["exit_code"], 7);
}

#[test]
fn cli_exec_does_not_run_a_denied_command() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&write_world(&dir, 0), 8);
    let marker = dir.path().join("ran");
    let script = format!("touch {}", marker.display());
    let exec = cli(
        &server,
        "agent:deploy-bot",
        &["exec", "--", "sh", "-c", &script],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let id = first_pending(&server);
    let no = run(cli(
        &server,
        "user:bob@example.com",
        &["deny", &id, "--reason", "not now"],
    ));
    assert!(no.status.success());
    let out = exec.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(!marker.exists());
}

#[test]
fn cli_key_create_prints_only_the_key_and_it_works() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_world(&dir, 0);
    let server = serve(&config, 8);
    let out = run({
        let mut c = Command::new(BIN);
        c.args(["key", "create", "user:erin@example.com", "--config"])
            .arg(&config);
        c
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = stdout(&out).trim().to_string();
    assert!(key.starts_with("cs_") && !key.contains(char::is_whitespace));
    let who = run({
        let mut c = Command::new(BIN);
        c.args(["ls", "--json"])
            .env("COUNTERSIGN_URL", &server.url)
            .env("COUNTERSIGN_TOKEN", &key);
        c
    });
    assert!(
        who.status.success(),
        "{}",
        String::from_utf8_lossy(&who.stderr)
    );
    let unknown = run({
        let mut c = Command::new(BIN);
        c.args(["key", "create", "user:nobody@example.com", "--config"])
            .arg(&config);
        c
    });
    assert_eq!(unknown.status.code(), Some(2));
}

#[test]
fn cli_policy_check_test_and_explain() {
    let dir = tempfile::tempdir().unwrap();
    write_world(&dir, 0);
    let policy = dir.path().join("policy.yaml");
    let check = run({
        let mut c = Command::new(BIN);
        c.args(["policy", "check"]).arg(&policy);
        c
    });
    assert!(check.status.success());
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "version: 1\ndefault: deny\nrules:\n  - name: broken-rule\n    effect: allow\n    when: 'params.('\n").unwrap();
    let bad = run({
        let mut c = Command::new(BIN);
        c.args(["policy", "check"]).arg(&broken);
        c
    });
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("broken.yaml:6") && err.contains("broken-rule"),
        "{err}"
    );
    let cases = dir.path().join("cases.yaml");
    std::fs::write(
        &cases,
        r#"cases:
  - name: drop is denied
    principal: {id: "agent:deploy-bot", owner: "user:alice@example.com", groups: [deployers]}
    action: {kind: db.ddl, resource: "postgres://prod/x", params: {sql: "DROP TABLE t"}}
    expect: {effect: deny, rule: never-drop-in-prod}
  - name: wrong on purpose
    principal: {id: "agent:deploy-bot", groups: []}
    action: {kind: db.query, resource: "postgres://prod/x", params: {readonly: true}}
    expect: {effect: deny}
"#,
    )
    .unwrap();
    let test = run({
        let mut c = Command::new(BIN);
        c.args(["policy", "test"]).arg(&policy).arg(&cases);
        c
    });
    let text = stdout(&test);
    assert_eq!(test.status.code(), Some(1), "{text}");
    assert!(text.contains("1 passed, 1 failed"), "{text}");
    let explain = run({
        let mut c = Command::new(BIN);
        c.args(["policy", "explain"])
            .arg(&policy)
            .args(["--principal", "agent:deploy-bot", "--action"])
            .arg(r#"{"kind":"db.export","resource":"postgres://prod/c","params":{"rows":5000}}"#)
            .arg("--config")
            .arg(dir.path().join("countersign.yaml"));
        c
    });
    assert!(
        explain.status.success(),
        "{}",
        String::from_utf8_lossy(&explain.stderr)
    );
    assert!(stdout(&explain).contains("prod-export-needs-two"));
}

/// `approve --for --uses`, `standing ls|revoke` and `amend`, as people use them.
#[test]
fn cli_standing_approvals_and_amendments() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_world(&dir, 0);
    std::fs::write(
        dir.path().join("policy.yaml"),
        format!(
            "{}  - name: exports-may-be-amended\n    match: {{kind: \"data.export\"}}\n    effect: review\n    review: {{approvers: [{{group: security, count: 1}}], amend: true}}\n",
            crate::standing::policy()
        ),
    )
    .unwrap();
    let server = serve(&config, 8);
    let ask = |kind: &str, params: &str| -> serde_json::Value {
        let out = run(cli(
            &server,
            "agent:deploy-bot",
            &[
                "request",
                "--kind",
                kind,
                "--resource",
                "svc://api",
                "--params",
                params,
                "--json",
            ],
        ));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
    };
    let json_of = |o: &Output| -> serde_json::Value {
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)))
    };
    let first = ask("deploy.rollout", r#"{"version": 1}"#);
    let id = first["id"].as_str().unwrap();
    let half = run(cli(
        &server,
        "user:bob@example.com",
        &["approve", id, "--for", "30m"],
    ));
    assert_eq!(half.status.code(), Some(2), "--for needs --uses");
    let bob = run(cli(
        &server,
        "user:bob@example.com",
        &["approve", id, "--for", "30m", "--uses", "2", "--json"],
    ));
    assert!(
        bob.status.success(),
        "{}",
        String::from_utf8_lossy(&bob.stderr)
    );
    let std_id = json_of(&bob)["standing"]["id"].as_str().unwrap().to_owned();
    let listed = run(cli(
        &server,
        "user:bob@example.com",
        &["standing", "ls", "--json"],
    ));
    let listed = json_of(&listed);
    assert_eq!(listed[0]["id"], std_id.as_str(), "{listed}");
    assert_eq!(listed[0]["state"], "active");
    let text = stdout(&run(cli(
        &server,
        "user:bob@example.com",
        &["standing", "ls"],
    )));
    assert!(text.contains(&std_id) && text.contains("0 of 2"), "{text}");
    let covered = ask("deploy.rollout", r#"{"version": 2}"#);
    assert_eq!(covered["state"], "approved", "{covered}");
    let revoke = run(cli(
        &server,
        "user:bob@example.com",
        &["standing", "revoke", &std_id],
    ));
    assert!(
        revoke.status.success(),
        "{}",
        String::from_utf8_lossy(&revoke.stderr)
    );
    let text = stdout(&run(cli(
        &server,
        "user:bob@example.com",
        &["standing", "ls"],
    )));
    assert!(text.contains("no standing approvals"), "{text}");
    let again = run(cli(
        &server,
        "user:bob@example.com",
        &["standing", "revoke", &std_id],
    ));
    assert_ne!(again.status.code(), Some(0), "already revoked");

    let export = ask("data.export", r#"{"rows": 5000}"#);
    let id = export["id"].as_str().unwrap();
    let bad = run(cli(
        &server,
        "user:carol@example.com",
        &["amend", id, "--params", "rows=10"],
    ));
    assert_eq!(
        bad.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let amended = run(cli(
        &server,
        "user:carol@example.com",
        &[
            "amend",
            id,
            "--params",
            r#"{"rows": 10}"#,
            "--comment",
            "10 will do",
            "--json",
        ],
    ));
    assert!(
        amended.status.success(),
        "{}",
        String::from_utf8_lossy(&amended.stderr)
    );
    let amended = json_of(&amended);
    assert_eq!(amended["state"], "approved", "{amended}");
    assert_eq!(amended["action"]["params"]["rows"], 10);
    assert_ne!(amended["digest"], export["digest"]);
}

/// Issue 20 part 5, the cause of the `IncompleteMessage` after a restart: the tests' server
/// helper used to stop reading the gateway's stdout once it had the address, so the pipe
/// closed while `countersign serve` was still printing its banner; `println!` panicked on the
/// broken pipe and the process died under the test's next request. Whoever started the
/// gateway may go away: it keeps serving. The read end is closed here before the gateway
/// prints anything, so the broken pipe is certain; the address is read from its log.
#[tokio::test]
async fn a_gateway_keeps_serving_when_the_reader_of_its_banner_has_gone() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_world(&dir, 0);
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .env("COUNTERSIGN_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log.reopen().unwrap()))
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // nobody reads the banner
    let mut server = Server {
        child,
        url: String::new(),
        keys: Default::default(),
        log: Some(log),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        let text = std::fs::read_to_string(server.log.as_ref().unwrap().path()).unwrap();
        if let Some(at) = text.find("addr=") {
            let rest = &text[at + "addr=".len()..];
            break rest.split_whitespace().next().unwrap().to_string();
        }
        assert!(
            server.child.try_wait().unwrap().is_none(),
            "the gateway ended before listening"
        );
        assert!(Instant::now() < deadline, "the gateway did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    server.url = format!("http://{addr}");
    let http = reqwest::Client::new();
    // The banner is printed right after the address is logged; ask for a while after it.
    for _ in 0..20 {
        let r = http
            .get(format!("{}/healthz", server.url))
            .send()
            .await
            .expect("the gateway answers");
        assert_eq!(r.status(), reqwest::StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the gateway is still running"
    );
}
