//! Invariant 4 (nothing lost on a crash) and invariant 5 (tampering is found), against the
//! real binary and the real database file.

use crate::cli::{BIN, serve};
use crate::support::app::{As, write_world};
use serde_json::json;
use std::process::Command;

#[tokio::test(flavor = "multi_thread")]
async fn pending_request_survives_kill_9_and_can_be_decided_and_redeemed() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_world(&dir, 0);
    let mut first = serve(&config, 8);
    let keys = first.keys.clone();
    let agent = As::new(&first.url, &keys["agent:deploy-bot"]);
    let mut pending = vec![];
    for rows in [5000, 6000, 7000] {
        let r = agent
            .submit(
                "db.export",
                "postgres://prod/customers",
                json!({"rows": rows}),
            )
            .await;
        assert_eq!(r.state(), "pending");
        pending.push(r);
    }
    // One vote acknowledged before the crash must still count after it.
    let bob = As::new(&first.url, &keys["user:bob@example.com"]);
    let v = bob
        .vote(&pending[0].id(), "approve", &pending[0].digest())
        .await;
    assert_eq!(v.status, reqwest::StatusCode::OK);

    first.child.kill().unwrap(); // SIGKILL: no shutdown, no flush
    first.child.wait().unwrap();

    let second = serve(&config, 0);
    let agent = As::new(&second.url, &keys["agent:deploy-bot"]);
    let carol = As::new(&second.url, &keys["user:carol@example.com"]);
    for r in &pending {
        let now = agent.get(&format!("/v1/requests/{}", r.id())).await;
        assert_eq!(now.state(), "pending", "{}", now.body);
    }
    let after = agent
        .get(&format!("/v1/requests/{}", pending[0].id()))
        .await;
    assert_eq!(
        after.body["votes"].as_array().unwrap().len(),
        1,
        "the acknowledged vote counts"
    );
    let done = carol
        .vote(&pending[0].id(), "approve", &pending[0].digest())
        .await;
    assert_eq!(done.state(), "approved");
    let grant = done.body["grant"]["id"].as_str().unwrap();
    let redeemed = agent
        .post(
            &format!("/v1/grants/{grant}/redeem"),
            json!({"digest": pending[0].digest()}),
        )
        .await;
    assert_eq!(
        redeemed.status,
        reqwest::StatusCode::OK,
        "{}",
        redeemed.body
    );
    drop(second);

    let verify = Command::new(BIN)
        .args(["audit", "verify", "--database"])
        .arg(dir.path().join("countersign.db"))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn edited_audit_row_is_found_by_audit_verify() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_world(&dir, 0);
    let server = serve(&config, 8);
    let agent = As::new(&server.url, &server.keys["agent:deploy-bot"]);
    for rows in [5000, 6000] {
        agent
            .submit(
                "db.export",
                "postgres://prod/customers",
                json!({"rows": rows}),
            )
            .await;
    }
    drop(server);
    let db = dir.path().join("countersign.db");
    let ok = Command::new(BIN)
        .args(["audit", "verify", "--database"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // Someone with the file edits entry 9: they can drop the guard triggers, but not the hashes.
    let target = {
        use sqlx::Connection as _;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query("DROP TRIGGER IF EXISTS audit_no_update")
            .execute(&mut conn)
            .await
            .unwrap();
        let (seq, bytes): (i64, Vec<u8>) =
            sqlx::query_as("SELECT seq, bytes FROM audit WHERE CAST(bytes AS TEXT) LIKE '%\"rows\"%' OR CAST(bytes AS TEXT) LIKE '%request.created%' ORDER BY seq DESC LIMIT 1")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        let edited = String::from_utf8(bytes)
            .unwrap()
            .replace("agent:deploy-bot", "agent:innocent-bot");
        sqlx::query("UPDATE audit SET bytes = ? WHERE seq = ?")
            .bind(edited.into_bytes())
            .bind(seq)
            .execute(&mut conn)
            .await
            .unwrap();
        seq
    };
    let bad = Command::new(BIN)
        .args(["audit", "verify", "--database"])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains(&format!("#{target}")), "{err}");
}
