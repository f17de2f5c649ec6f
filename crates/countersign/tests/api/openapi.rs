//! Issue 21 part 4: the OpenAPI document is the API. Schemathesis (PyPI, in its own virtual
//! environment under `tests/peers`, installed by `./test`) reads `/v1/openapi.json` from a live
//! gateway and drives every operation with valid and invalid data, with all its checks on
//! (status codes, response schemas, content types, invalid data refused, valid data accepted,
//! authentication not ignored, unsupported methods answered 405). Configuration:
//! `tests/schemathesis.toml`.

use crate::support::app::{TEST_POLICY, spawn_app_configured};
use crate::support::fake_slack::{self, FakeSlack};
use crate::support::fake_teams::{self, APP_PASSWORD, FakeTeams};
use crate::support::mcp::peers;
use std::time::Duration;

/// Executors configured, so `/v1/executors` lists one and executor actions exist (the chat
/// channels are added with their fakes): every endpoint answers rather than `not_configured`.
const EXECUTORS: &str = "executors:
  - name: echo
    http:
      base_url: http://127.0.0.1:9
      methods: [POST]
      timeout: 2s
";

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_difference_between_the_document_and_the_gateway() {
    let st = peers().join(".venv-schemathesis/bin/st");
    assert!(
        st.exists(),
        "schemathesis is not installed: run ./test (it makes tests/peers/.venv-schemathesis)"
    );
    let (slack, teams) = (FakeSlack::start().await, FakeTeams::start().await);
    let channels = format!(
        "{}{}{EXECUTORS}",
        fake_slack::config(&slack),
        fake_teams::config(&teams, APP_PASSWORD).replace("channels:\n", "")
    );
    let app = spawn_app_configured(TEST_POLICY, &channels).await;
    // A request that exists, so the document's request views are checked on real answers too.
    app.agent()
        .submit(
            "db.export",
            "postgres://prod/customers",
            serde_json::json!({"rows": 5000}),
        )
        .await;
    let config = peers().join("../schemathesis.toml");
    let reports = app.dir.path().join("schemathesis");
    let run = tokio::process::Command::new(&st)
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{}/v1/openapi.json", app.url))
        .arg("--checks")
        .arg("all")
        .arg("--report")
        .arg("junit")
        .arg("--report-dir")
        .arg(&reports)
        .env("ST_TOKEN", &app.keys["user:bob@example.com"])
        .env("NO_COLOR", "1")
        .current_dir(app.dir.path())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(900), run)
        .await
        .expect("schemathesis finished within 15 minutes")
        .expect("schemathesis ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found differences ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
