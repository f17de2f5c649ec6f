//! Invariant 10 from outside (issue 14, hole 10): the stored state of a request is what its
//! audit entries produce. Someone with the database file edits a request row — a pending or
//! denied request made approved with an invented grant, a used grant made fresh, a longer
//! expiry, a vote removed, another action under a new digest — and the gateway refuses to
//! redeem it (500 `integrity_error`, nothing changes), while `countersign audit verify` names
//! the request and exits non-zero. An untouched database verifies and redeems.

use crate::cli::BIN;
use crate::support::app::{TestApp, big_export, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection as _;
use std::process::Command;

async fn connect(app: &TestApp) -> sqlx::SqliteConnection {
    sqlx::SqliteConnection::connect(&format!("sqlite://{}", app.db_path().display()))
        .await
        .unwrap()
}

/// The request row's body and the number of audit entries, to show nothing changed.
async fn snapshot(app: &TestApp, id: &str) -> (String, i64) {
    let mut conn = connect(app).await;
    let body: String = sqlx::query_scalar("SELECT body FROM requests WHERE id = ?")
        .bind(id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let entries: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    (body, entries)
}

/// Edits request `id`'s body as someone with the file would, keeping the `state` column in
/// step with it.
async fn edit(app: &TestApp, id: &str, change: impl FnOnce(&mut Value)) {
    let mut conn = connect(app).await;
    let body: String = sqlx::query_scalar("SELECT body FROM requests WHERE id = ?")
        .bind(id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let mut v: Value = serde_json::from_str(&body).unwrap();
    change(&mut v);
    let state = v["state"].as_str().unwrap().to_owned();
    sqlx::query("UPDATE requests SET body = ?, state = ? WHERE id = ?")
        .bind(v.to_string())
        .bind(state)
        .bind(id)
        .execute(&mut conn)
        .await
        .unwrap();
}

fn grant_id(id: &str) -> String {
    format!("grt_{}", id.trim_start_matches("req_"))
}

/// A grant as the core writes it, valid for an hour.
fn invented_grant(id: &str, digest: &str) -> Value {
    let expires = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    json!({"id": grant_id(id), "digest": digest, "max_uses": 1, "uses": 0, "expires_at": expires})
}

async fn redeem(app: &TestApp, id: &str, digest: &str) -> crate::support::app::Resp {
    app.agent()
        .post(
            &format!("/v1/grants/{}/redeem", grant_id(id)),
            json!({"digest": digest}),
        )
        .await
}

/// `countersign audit verify --database`: (exit code, stdout, stderr).
fn verify(app: &TestApp) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(["audit", "verify", "--database"])
        .arg(app.db_path())
        .env_remove("COUNTERSIGN_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The redemption is refused as an integrity error and changes nothing; `audit verify` names
/// the request and fails.
async fn assert_caught(app: &TestApp, id: &str, digest: &str, what: &str) {
    let before = snapshot(app, id).await;
    let r = redeem(app, id, digest).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::INTERNAL_SERVER_ERROR, "integrity_error"),
        "{what}: {}",
        r.body
    );
    assert!(
        r.body["error"]["message"].as_str().unwrap().contains(id),
        "{what}: {}",
        r.body
    );
    assert_eq!(snapshot(app, id).await, before, "{what}: nothing changes");
    let (code, _, err) = verify(app);
    assert_eq!(code, Some(1), "{what}: {err}");
    assert!(err.contains(&format!("request {id}:")), "{what}: {err}");
    assert!(
        err.contains("do not match their audit log"),
        "{what}: {err}"
    );
}

/// A reviewed export, approved by bob (sre) and carol (security): (id, digest).
async fn approved(app: &TestApp) -> (String, String) {
    let r = app
        .agent()
        .submit("db.export", "postgres://prod/customers", big_export())
        .await;
    let (id, digest) = (r.id(), r.digest());
    app.approver("bob").vote(&id, "approve", &digest).await;
    let done = app.approver("carol").vote(&id, "approve", &digest).await;
    assert_eq!(done.state(), "approved", "{}", done.body);
    (id, digest)
}

#[tokio::test(flavor = "multi_thread")]
async fn stored_state_matches_the_log_an_untouched_database_verifies_and_redeems() {
    let app = spawn_app().await;
    let (id, digest) = approved(&app).await;
    let denied = app
        .agent()
        .submit("db.export", "postgres://prod/other", big_export())
        .await;
    app.approver("bob")
        .vote(&denied.id(), "deny", &denied.digest())
        .await;
    let (code, out, err) = verify(&app);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("audit log intact"), "{out}");
    let r = redeem(&app, &id, &digest).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let (code, out, err) = verify(&app);
    assert_eq!(code, Some(0), "{out}{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn stored_state_matches_the_log_pending_made_approved_is_refused() {
    let app = spawn_app().await;
    let r = app
        .agent()
        .submit("db.export", "postgres://prod/customers", big_export())
        .await;
    let (id, digest) = (r.id(), r.digest());
    edit(&app, &id, |v| {
        v["state"] = json!("approved");
        v["grant"] = invented_grant(&id, &digest);
    })
    .await;
    assert_caught(&app, &id, &digest, "pending made approved").await;
    // A vote on the edited row is refused too: no new entry vouches for an edited row.
    let v = app.approver("bob").vote(&id, "approve", &digest).await;
    assert_eq!(v.code(), "integrity_error", "{}", v.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn stored_state_matches_the_log_denied_made_approved_with_an_invented_grant_is_refused() {
    let app = spawn_app().await;
    let r = app
        .agent()
        .submit("db.export", "postgres://prod/customers", big_export())
        .await;
    let (id, digest) = (r.id(), r.digest());
    let d = app.approver("bob").vote(&id, "deny", &digest).await;
    assert_eq!(d.state(), "denied", "{}", d.body);
    edit(&app, &id, |v| {
        v["state"] = json!("approved");
        v["grant"] = invented_grant(&id, &digest);
        v["closed_at"] = Value::Null;
        v["outcome"] = Value::Null;
        v["outcome_code"] = Value::Null;
    })
    .await;
    assert_caught(&app, &id, &digest, "denied made approved").await;
    // Also a request the policy denied at once.
    let r = app
        .agent()
        .post(
            "/v1/actions",
            json!({"kind": "db.ddl", "resource": "postgres://prod/x", "params": {"sql": "DROP TABLE x"}}),
        )
        .await;
    assert_eq!(r.state(), "denied", "{}", r.body);
    let (id, digest) = (r.id(), r.digest());
    edit(&app, &id, |v| {
        v["state"] = json!("approved");
        v["grant"] = invented_grant(&id, &digest);
    })
    .await;
    assert_caught(&app, &id, &digest, "policy-denied made approved").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stored_state_matches_the_log_a_grant_made_fresh_or_longer_is_refused() {
    let app = spawn_app().await;
    // A used grant made unused again, the request back to approved: a second redemption.
    let (id, digest) = approved(&app).await;
    assert_eq!(redeem(&app, &id, &digest).await.status, StatusCode::OK);
    edit(&app, &id, |v| {
        v["state"] = json!("approved");
        v["grant"]["uses"] = json!(0);
    })
    .await;
    assert_caught(&app, &id, &digest, "used grant made unused").await;
    // An unused grant given more uses, or a later expiry.
    let (id, digest) = approved(&app).await;
    edit(&app, &id, |v| v["grant"]["max_uses"] = json!(100)).await;
    assert_caught(&app, &id, &digest, "more uses").await;
    let (id, digest) = approved(&app).await;
    let later = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    edit(&app, &id, |v| v["grant"]["expires_at"] = json!(later)).await;
    assert_caught(&app, &id, &digest, "later expiry").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stored_state_matches_the_log_a_removed_vote_or_another_digest_is_refused() {
    let app = spawn_app().await;
    let (id, digest) = approved(&app).await;
    edit(&app, &id, |v| {
        v["votes"].as_array_mut().unwrap().pop();
    })
    .await;
    assert_caught(&app, &id, &digest, "a vote removed").await;
    // Another action under its own, correctly computed digest, and a grant for it.
    let (id, _) = approved(&app).await;
    let other = app
        .agent()
        .submit("db.export", "postgres://prod/payroll", json!({"rows": 9}))
        .await;
    let other_digest = other.digest();
    let other_body: Value = serde_json::from_str(&snapshot(&app, &other.id()).await.0).unwrap();
    edit(&app, &id, |v| {
        v["action"] = other_body["action"].clone();
        v["digest"] = json!(other_digest);
        v["grant"]["digest"] = json!(other_digest);
    })
    .await;
    assert_caught(&app, &id, &other_digest, "another digest").await;
    // Only the digest changed (the action stays): still caught.
    let (id, digest) = approved(&app).await;
    edit(&app, &id, |v| {
        v["digest"] = json!(other_digest);
        v["grant"]["digest"] = json!(other_digest);
    })
    .await;
    assert_caught(&app, &id, &other_digest, "the digest alone").await;
    let r = redeem(&app, &id, &digest).await;
    assert_eq!(r.code(), "integrity_error", "{}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn stored_state_matches_the_log_a_row_rolled_back_with_its_entry_list_is_named_by_verify() {
    let app = spawn_app().await;
    let (id, digest) = approved(&app).await;
    let approved_row = snapshot(&app, &id).await.0;
    let mut conn = connect(&app).await;
    let seqs: String = sqlx::query_scalar("SELECT audit_seqs FROM requests WHERE id = ?")
        .bind(&id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(redeem(&app, &id, &digest).await.status, StatusCode::OK);
    // The row as it was before the redemption, with the list as it was then.
    sqlx::query("UPDATE requests SET body = ?, state = 'approved', audit_seqs = ? WHERE id = ?")
        .bind(&approved_row)
        .bind(&seqs)
        .bind(&id)
        .execute(&mut conn)
        .await
        .unwrap();
    let (code, _, err) = verify(&app);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("request {id}:")), "{err}");
    assert!(
        err.contains("state is approved, the log says executed"),
        "{err}"
    );
    // A row deleted outright is named too.
    sqlx::query("DELETE FROM requests WHERE id = ?")
        .bind(&id)
        .execute(&mut conn)
        .await
        .unwrap();
    let (code, _, err) = verify(&app);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no row holds it"), "{err}");
}
