//! The gateway on PostgreSQL (`database: postgres://…`): the real binary, a fresh database,
//! the same flow as on SQLite, and invariant 4 across a kill -9. Runs when
//! `COUNTERSIGN_TEST_POSTGRES_URL` names a server (`.ci/run` sets it); otherwise it prints a
//! note and passes.

use crate::cli::{BIN, assert_audit_verifies, serve};
use crate::support::app::{As, write_world};
use serde_json::json;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A new, empty database on the test server, as a URL; `None` (with a note) without a server.
pub async fn fresh_database() -> Option<String> {
    use sqlx::{ConnectOptions as _, Connection as _};
    let Ok(url) = std::env::var("COUNTERSIGN_TEST_POSTGRES_URL") else {
        eprintln!("note: COUNTERSIGN_TEST_POSTGRES_URL is not set; skipping this PostgreSQL test");
        return None;
    };
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "cs_e2e_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        chrono::Utc::now().timestamp_millis()
    );
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("a PostgreSQL URL");
    let mut conn = options.connect().await.expect("connect to the test server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create the test database");
    conn.close().await.ok();
    let mut fresh = reqwest::Url::parse(&url).expect("a URL");
    fresh.set_path(&format!("/{name}"));
    Some(fresh.to_string())
}

/// The test world (`write_world`) in `dir` on a fresh database: its configuration and the
/// database's URL; `None` (with a note) without a server.
pub async fn world_on_postgres(dir: &tempfile::TempDir) -> Option<(std::path::PathBuf, String)> {
    let database = fresh_database().await?;
    let config = write_world(dir, 0);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "database: countersign.db",
        &format!("database: '{database}'"),
    );
    std::fs::write(&config, text).unwrap();
    Some((config, database))
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_on_postgresql_decides_redeems_and_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let Some((config, _)) = world_on_postgres(&dir).await else {
        return;
    };

    let mut first = serve(&config, 8);
    let keys = first.keys.clone();
    let agent = As::new(&first.url, &keys["agent:deploy-bot"]);
    let allowed = agent
        .submit("db.query", "postgres://prod/x", json!({"readonly": true}))
        .await;
    assert_eq!(allowed.state(), "approved", "{}", allowed.body);
    let pending = agent
        .submit(
            "db.export",
            "postgres://prod/customers",
            json!({"rows": 5000}),
        )
        .await;
    assert_eq!(pending.state(), "pending", "{}", pending.body);
    let bob = As::new(&first.url, &keys["user:bob@example.com"]);
    let v = bob.vote(&pending.id(), "approve", &pending.digest()).await;
    assert_eq!(v.status, reqwest::StatusCode::OK, "{}", v.body);
    // The owner of the agent cannot approve, on PostgreSQL as on SQLite.
    let alice = As::new(&first.url, &keys["user:alice@example.com"]);
    let refused = alice
        .vote(&pending.id(), "approve", &pending.digest())
        .await;
    assert_eq!(refused.code(), "self_approval", "{}", refused.body);

    first.child.kill().unwrap(); // SIGKILL: no shutdown, no flush
    first.child.wait().unwrap();

    let second = serve(&config, 0);
    let agent = As::new(&second.url, &keys["agent:deploy-bot"]);
    let carol = As::new(&second.url, &keys["user:carol@example.com"]);
    let after = agent.get(&format!("/v1/requests/{}", pending.id())).await;
    assert_eq!(after.state(), "pending", "{}", after.body);
    assert_eq!(
        after.body["votes"].as_array().unwrap().len(),
        1,
        "the acknowledged vote counts"
    );
    let done = carol
        .vote(&pending.id(), "approve", &pending.digest())
        .await;
    assert_eq!(done.state(), "approved", "{}", done.body);
    let grant = done.body["grant"]["id"].as_str().unwrap();
    let redeem = |digest: String| {
        let agent = &agent;
        async move {
            agent
                .post(
                    &format!("/v1/grants/{grant}/redeem"),
                    json!({"digest": digest}),
                )
                .await
        }
    };
    let redeemed = redeem(pending.digest()).await;
    assert_eq!(
        redeemed.status,
        reqwest::StatusCode::OK,
        "{}",
        redeemed.body
    );
    let again = redeem(pending.digest()).await;
    assert_eq!(again.code(), "grant_used", "{}", again.body);
    drop(second);

    // A new key for a configured principal goes into the same database.
    let key = Command::new(BIN)
        .args(["key", "create", "user:erin@example.com", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        key.status.success(),
        "{}",
        String::from_utf8_lossy(&key.stderr)
    );
    assert!(
        String::from_utf8_lossy(&key.stdout)
            .trim()
            .starts_with("cs_")
    );

    // The record in PostgreSQL verifies from its first entry on.
    assert_audit_verifies(&config);
}
