//! Runs: pausing, resuming and stopping autonomous runs, by people and by policy.

use crate::support::app::{big_export, spawn_app};
use reqwest::StatusCode;
use serde_json::json;

async fn submit_in_run(
    app: &crate::support::app::TestApp,
    kind: &str,
    params: serde_json::Value,
    run: &str,
) -> crate::support::app::Resp {
    app.agent()
        .post(
            "/v1/actions",
            json!({"kind": kind, "resource": "postgres://prod/customers", "params": params, "run": run}),
        )
        .await
}

#[tokio::test]
async fn a_paused_run_holds_new_actions_until_it_resumes() {
    let app = spawn_app().await;
    let paused = app
        .approver("bob")
        .post("/v1/runs/run-7/pause", json!({}))
        .await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.body);
    assert_eq!(paused.body["state"], "paused");
    let held = submit_in_run(&app, "db.query", json!({"readonly": true}), "run-7").await;
    assert_eq!(held.state(), "pending");
    assert_eq!(held.body["held"], true);
    let resumed = app
        .approver("bob")
        .post("/v1/runs/run-7/resume", json!({}))
        .await;
    assert_eq!(resumed.body["changed"][0], held.id());
    let now = app
        .agent()
        .get(&format!("/v1/requests/{}", held.id()))
        .await;
    assert_eq!(now.state(), "approved");
}

#[tokio::test]
async fn a_stopped_run_denies_new_and_pending_actions() {
    let app = spawn_app().await;
    let pending = submit_in_run(&app, "db.export", big_export(), "run-8").await;
    assert_eq!(pending.state(), "pending");
    app.approver("carol")
        .post("/v1/runs/run-8/stop", json!({}))
        .await;
    let after = app
        .agent()
        .get(&format!("/v1/requests/{}", pending.id()))
        .await;
    assert_eq!(after.state(), "denied");
    assert_eq!(after.body["outcome_code"], "run_stopped");
    let new = submit_in_run(&app, "db.query", json!({"readonly": true}), "run-8").await;
    assert_eq!(new.state(), "denied");
    assert_eq!(new.body["outcome_code"], "run_stopped");
    let resume = app
        .approver("bob")
        .post("/v1/runs/run-8/resume", json!({}))
        .await;
    assert_eq!(resume.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn agents_cannot_steer_runs() {
    let app = spawn_app().await;
    let r = app.agent().post("/v1/runs/run-9/stop", json!({})).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "people_only"));
}

#[tokio::test]
async fn a_pause_run_rule_holds_the_rest_of_the_run_until_decided() {
    let app = spawn_app().await;
    let big = submit_in_run(&app, "db.export", big_export(), "run-10").await;
    assert_eq!(big.state(), "pending");
    // While the big export waits for review, even a free read of the same run is held.
    let read = submit_in_run(&app, "db.query", json!({"readonly": true}), "run-10").await;
    assert_eq!(read.state(), "pending");
    assert_eq!(read.body["held"], true);
    // Another run is not affected.
    let elsewhere = submit_in_run(&app, "db.query", json!({"readonly": true}), "run-11").await;
    assert_eq!(elsewhere.state(), "approved");
    app.approver("bob")
        .vote(&big.id(), "approve", &big.digest())
        .await;
    app.approver("carol")
        .vote(&big.id(), "approve", &big.digest())
        .await;
    let read_now = app
        .agent()
        .get(&format!("/v1/requests/{}", read.id()))
        .await;
    assert_eq!(read_now.state(), "approved", "{}", read_now.body);
}
