//! The console in a real browser: Debian's Chromium driven by playwright-core
//! (`tests/peers/console_browser.mjs`), against the real gateway and the real OpenID provider.
//! The agent waits with `countersign request --wait` and must exit 0 once approved in the page.
//! Screenshots go to a temporary folder, or to `docs/` with `COUNTERSIGN_UPDATE_SCREENSHOTS=1`.

use crate::cli::BIN;
use crate::console_oidc::{peers, spawn_with_idp, start_idp};
use crate::support::app::free_port;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

const CHROMIUM: &str = "/usr/bin/chromium";

#[tokio::test]
async fn console_in_chromium_signs_in_approves_updates_live_and_steps_up_with_totp_and_a_passkey() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!(
            "SKIPPED: {CHROMIUM} is missing (`apt-get install -y chromium`; .ci/run does it)"
        );
        return;
    }
    assert!(
        peers().join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run `npm ci --prefix tests/peers`"
    );
    let port = free_port();
    let idp = start_idp(port, "{}").await;
    // Key sign-in too: the passkey part browses at `localhost` (a relying party id cannot be an
    // IP address), where the provider's redirect (to 127.0.0.1) would not bring the cookie.
    let app = spawn_with_idp(port, &idp, "  key_sign_in: true\n").await;

    // The agent asks and waits, as it would in a pipeline.
    let mut waiting = tokio::process::Command::new(BIN)
        .args([
            "request", "--kind", "db.migrate", "--resource", "postgres://prod/app",
            "--params", r#"{"version": 42, "steps": ["add column", "backfill"], "dry_run": false, "password": "hunter2"}"#,
            "--justification", "ship the billing migration before the release freeze",
            "--wait",
        ])
        .env("COUNTERSIGN_URL", &app.url)
        .env("COUNTERSIGN_TOKEN", &app.keys["agent:deploy-bot"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let bob = app.approver("bob");
    let mut approve = None;
    for _ in 0..100 {
        let r = bob.get("/v1/requests?state=pending").await;
        if let Some(id) = r.body["requests"][0]["id"].as_str() {
            approve = Some(id.to_string());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let approve = approve.expect("the agent's request is pending");
    let live = app
        .agent()
        .submit(
            "db.migrate",
            "postgres://staging/app",
            json!({"version": 43}),
        )
        .await;
    let live_digest = live.digest();
    let mfa = app
        .agent()
        .submit(
            "iam.grant",
            "iam://prod/roles/admin",
            json!({"user": "deploy-bot"}),
        )
        .await;

    let passkey = app
        .agent()
        .submit(
            "iam.grant",
            "iam://prod/roles/billing",
            json!({"user": "deploy-bot"}),
        )
        .await;

    let tmp = tempfile::tempdir().unwrap();
    let shots = screenshots(tmp.path());
    let scenario = json!({
        "url": app.url, "approve": approve, "live": live.id(), "mfa": mfa.id(),
        "passkey": passkey.id(), "localUrl": format!("http://localhost:{port}"),
        "carolKey": app.keys["user:carol@example.com"],
        "screenshots": shots,
    });
    let (mut node, mut lines) = spawn_scenario("console_browser.mjs", &scenario);
    let mut steps = vec![];
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(id) = line.strip_prefix("LIVE_READY ") {
                // Someone decides through the API while the page is open.
                let r = app.approver("erin").vote(id, "approve", &live_digest).await;
                assert_eq!(r.state(), "approved", "{:?}", r.body);
            }
            steps.push(line);
        }
        node.wait().await.unwrap()
    };
    let status = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the browser scenario ends within 4 minutes");
    assert!(status.success(), "browser scenario failed after {steps:?}");
    for s in [
        "STEP signed-in",
        "STEP inbox-lists-pending",
        "STEP approved",
        "STEP live-update",
        "STEP csrf-refused",
        "STEP no-session-refused",
        "STEP mfa-totp-approved",
        "STEP passkey-enrolled",
        "STEP mfa-passkey-approved",
        "STEP passkey-ceremony-bound",
        "STEP responsive",
        "DONE",
    ] {
        assert!(steps.iter().any(|l| l == s), "{s} in {steps:?}");
    }
    assert!(shots.join("console-inbox.png").exists() && shots.join("console-request.png").exists());

    // The agent's waiting CLI saw the approval and exits 0.
    let exit = tokio::time::timeout(Duration::from_secs(30), waiting.wait())
        .await
        .expect("the waiting CLI exits")
        .unwrap();
    assert_eq!(exit.code(), Some(0));
    let r = bob.get(&format!("/v1/requests/{approve}")).await;
    assert_eq!(r.body["votes"][0]["channel"], "console");
    assert_eq!(r.body["votes"][0]["comment"], "checked the migration plan");
    let m = bob.get(&format!("/v1/requests/{}", mfa.id())).await;
    assert_eq!(m.state(), "approved");
    assert_eq!(m.body["votes"][0]["mfa"], true);
    assert_eq!(m.body["votes"][0]["mfa_method"], "totp");
    let p = bob.get(&format!("/v1/requests/{}", passkey.id())).await;
    assert_eq!(p.state(), "approved", "{:?}", p.body);
    assert_eq!(p.body["votes"][0]["mfa"], true);
    assert_eq!(p.body["votes"][0]["mfa_method"], "webauthn");
    assert_eq!(p.body["votes"][0]["approver"], "user:carol@example.com");
}

/// Approval fatigue in a real browser (`tests/peers/fatigue_browser.mjs`): bob approves a plan
/// read as a numbered list and the agent's step is covered once; he approves a rollout choosing a
/// standing approval, sees it used on the Standing page and revokes it there; carol amends an
/// export in the editor, the owner is offered none, and the agent gets exactly the amended action.
#[tokio::test(flavor = "multi_thread")]
async fn console_in_chromium_approves_a_plan_stands_and_revokes_and_amends() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!(
            "SKIPPED: {CHROMIUM} is missing (`apt-get install -y chromium`; .ci/run does it)"
        );
        return;
    }
    let policy = format!(
        "{}{}",
        crate::standing::policy(),
        crate::fatigue::AMEND_RULES
    );
    let app = crate::support::app::spawn_app_with_policy(&policy).await;
    let agent = app.agent();
    let plan = agent.post("/v1/plans", crate::plans::plan_body()).await;
    assert_eq!(plan.state(), "pending", "{}", plan.body);
    // Two of the plan's three approvers have approved; bob's vote in the page completes it.
    for who in ["erin", "carol"] {
        let r = app
            .approver(who)
            .post(
                &format!("/v1/requests/{}/votes", plan.id()),
                json!({"decision": "approve", "digest": plan.digest()}),
            )
            .await;
        assert_eq!(r.body["state"], "pending", "{who}: {}", r.body);
    }
    let rollout = agent
        .submit("deploy.rollout", "svc://api", json!({"version": 1}))
        .await;
    let amend = agent
        .submit(
            "data.export",
            crate::plans::CUSTOMERS,
            json!({"rows": 5000, "table": "customers"}),
        )
        .await;
    let tmp = tempfile::tempdir().unwrap();
    let scenario = json!({
        "url": app.url, "plan": plan.id(), "rollout": rollout.id(), "amend": amend.id(),
        "customers": crate::plans::CUSTOMERS,
        "keys": {
            "agent": app.keys["agent:deploy-bot"],
            "bob": app.keys["user:bob@example.com"],
            "carol": app.keys["user:carol@example.com"],
            "alice": app.keys["user:alice@example.com"],
        },
        "screenshots": screenshots(tmp.path()),
    });
    let steps = run_scenario("fatigue_browser.mjs", &scenario).await;
    for s in [
        "STEP plan-numbered",
        "STEP plan-approved",
        "STEP plan-step-covered-once",
        "STEP standing-chosen",
        "STEP standing-covers",
        "STEP standing-revoked",
        "STEP amended",
        "STEP owner-not-offered",
        "STEP amended-approved",
        "DONE",
    ] {
        assert!(steps.iter().any(|l| l == s), "{s} in {steps:?}");
    }
    // What the pages did is what the record says.
    let votes = app.votes(&plan.id()).await;
    assert!(votes.iter().any(|v| v["channel"] == "console"), "{votes:?}");
    let amended = app
        .approver("bob")
        .get(&format!("/v1/requests/{}", amend.id()))
        .await;
    assert_eq!(
        amended.body["amendments"][0]["by"],
        "user:carol@example.com"
    );
    assert!(
        amended.body["votes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["channel"] == "console"),
        "{}",
        amended.body
    );
    crate::support::app::assert_log_intact(&app).await;
}

/// Where the scenario's screenshots go: `docs/` with `COUNTERSIGN_UPDATE_SCREENSHOTS=1`, else
/// `tmp`.
fn screenshots(tmp: &Path) -> PathBuf {
    if std::env::var("COUNTERSIGN_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs")
    } else {
        tmp.to_path_buf()
    }
}

/// Runs `tests/peers/<script>` in node with `scenario`; returns the lines it printed once it
/// exited 0 (within 4 minutes).
async fn run_scenario(script: &str, scenario: &serde_json::Value) -> Vec<String> {
    assert!(
        peers().join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run `npm ci --prefix tests/peers`"
    );
    let (mut node, mut lines) = spawn_scenario(script, scenario);
    let mut steps = vec![];
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            steps.push(line);
        }
        node.wait().await.unwrap()
    };
    let status = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the browser scenario ends within 4 minutes");
    assert!(
        status.success(),
        "browser scenario {script} failed after {steps:?}"
    );
    steps
}

/// Starts `tests/peers/<script>` in node with `scenario`: the process and its output's lines.
fn spawn_scenario(
    script: &str,
    scenario: &serde_json::Value,
) -> (
    tokio::process::Child,
    tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) {
    let mut node = tokio::process::Command::new("node")
        .arg(peers().join(script))
        .arg(scenario.to_string())
        .env("CHROMIUM", CHROMIUM)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines = tokio::io::BufReader::new(node.stdout.take().unwrap()).lines();
    (node, lines)
}
