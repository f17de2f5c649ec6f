//! Durable MCP tasks (issue 19, part 1): a task lives in the store, so a client on protocol
//! 2026-07-28 (no session) that was answered with a task gets its result after the gateway was
//! killed and started again, from any gateway on the same database. Driven with the official
//! Rust SDK as the client, against the real binary (`kill -9`, not a clean shutdown).

use crate::cli::{Server, serve};
use crate::support::app::{As, write_world};
use crate::support::console::Browser;
use crate::support::mcp::{
    mcp_config, rmcp_client_2026, rmcp_client_at, start_sum_task, stdio_upstream, until_task_ended,
};
use reqwest::StatusCode;
use rmcp::RoleClient;
use rmcp::model::{
    CancelTaskParams, ClientCapabilities, ClientConfig, ClientRequest, CustomRequest, DetailedTask,
    GetTaskParams, TaskPayload, TaskStatus,
};
use rmcp::service::RunningService;
use serde_json::json;
use std::time::Duration;

type Client = RunningService<RoleClient, ClientConfig>;

/// A client on protocol 2026-07-28 that declares the tasks extension.
async fn client_2026(url: &str, key: &str) -> Client {
    rmcp_client_2026(
        url,
        key,
        ClientCapabilities::builder().enable_tasks().build(),
    )
    .await
}

async fn start_sum(client: &Client, a: i64) -> String {
    start_sum_task(client, a).await
}

async fn until_ended(client: &Client, id: &str) -> DetailedTask {
    until_task_ended(client, id).await
}

fn gateway_config() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_world(&dir, 0);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&mcp_config(&stdio_upstream("everything"), ""));
    std::fs::write(&config, text).unwrap();
    (dir, config)
}

fn kill(mut server: Server) {
    server.child.kill().unwrap(); // SIGKILL: no shutdown, nothing flushed
    server.child.wait().unwrap();
}

/// The pending request of the agent's get-sum call with `a`.
async fn start_id(server: &Server, agent_key: &str, a: i64) -> String {
    let agent = As::new(&server.url, agent_key);
    let list = agent.get("/v1/requests?state=pending").await;
    let found = list.body["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"]["params"]["a"] == a)
        .unwrap_or_else(|| panic!("no pending call with a = {a}: {}", list.body));
    found["id"].as_str().unwrap().to_owned()
}

/// Approves request `id` as bob through the console's form.
async fn approve_on_console(server: &Server, bob_key: &str, id: &str) {
    let bob = Browser::at(&server.url);
    let signed = bob.sign_in(bob_key).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    let done = bob.decide(id, "approve").await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_tasks_outlive_a_gateway_restart_and_end_with_the_upstreams_result() {
    let (_dir, config) = gateway_config();
    let first = serve(&config, 8);
    let keys = first.keys.clone();
    let agent_key = &keys["agent:deploy-bot"];
    let client = client_2026(&first.url, agent_key).await;
    let approved = start_sum(&client, 7000).await;
    let denied = start_sum(&client, 7001).await;
    let cancelled = start_sum(&client, 7002).await;
    let awaited = start_sum(&client, 7004).await;
    assert!(
        approved.starts_with("req_"),
        "the task is the request: {approved}"
    );
    let working = client
        .peer()
        .get_task(GetTaskParams::new(&approved))
        .await
        .unwrap();
    assert_eq!(working.task.status(), TaskStatus::Working);
    drop(client);
    kill(first);

    // Decided while no gateway runs a driver for them: one approved on the console of the
    // restarted gateway, one denied over the API; the third is cancelled by its client.
    let second = serve(&config, 0);
    approve_on_console(&second, &keys["user:bob@example.com"], &approved).await;
    let dana = As::new(&second.url, &keys["user:dana@example.com"]);
    let r = dana.get(&format!("/v1/requests/{denied}")).await;
    let vote = dana.vote(&denied, "deny", &r.digest()).await;
    assert_eq!(vote.status, StatusCode::OK, "{}", vote.body);

    // A client on the tasks of 2025-11-25 (a session) waits for one with `tasks/result`, which
    // answers once it is approved on the restarted gateway.
    let session = rmcp_client_at(&second.url, agent_key, true).await;
    let asked = tokio::spawn(async move {
        let ask = CustomRequest::new("tasks/result", Some(json!({"taskId": awaited})));
        let got = session
            .peer()
            .send_request(ClientRequest::CustomRequest(ask))
            .await;
        serde_json::to_value(got.unwrap()).unwrap()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !asked.is_finished(),
        "tasks/result waits while the task works"
    );
    let id = start_id(&second, agent_key, 7004).await;
    approve_on_console(&second, &keys["user:bob@example.com"], &id).await;
    let waited = asked.await.unwrap();
    assert!(
        waited["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("7007"),
        "{waited}"
    );

    let client = client_2026(&second.url, agent_key).await;
    let done = until_ended(&client, &approved).await;
    let TaskPayload::Completed { result } = done.payload.clone() else {
        panic!("expected completed, got {done:?}");
    };
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    assert!(text.contains("7003"), "the upstream's result: {result:?}");
    let agent = As::new(&second.url, agent_key);
    let executed = agent.get(&format!("/v1/requests/{approved}")).await;
    assert_eq!(executed.state(), "executed", "{}", executed.body);
    // Asked again, the same stored result; a call made again is a new request.
    let again = until_ended(&client, &approved).await;
    assert_eq!(again.payload, done.payload);

    let refused = until_ended(&client, &denied).await;
    let TaskPayload::Completed { result } = refused.payload else {
        panic!("expected a refusal result, got {refused:?}");
    };
    assert_eq!(result["isError"], true, "{result:?}");
    assert_eq!(result["_meta"]["io.countersign/request"], denied.as_str());
    assert_eq!(result["_meta"]["io.countersign/state"], "denied");

    client
        .peer()
        .cancel_task(CancelTaskParams::new(&cancelled))
        .await
        .unwrap();
    let ended = until_ended(&client, &cancelled).await;
    assert_eq!(ended.status(), TaskStatus::Cancelled, "{ended:?}");
    let message = ended.task.status_message.clone().unwrap_or_default();
    assert!(message.contains(&cancelled), "{message}");
    let r = agent.get(&format!("/v1/requests/{cancelled}")).await;
    assert_eq!(r.state(), "cancelled", "{}", r.body);
    // An ended task cannot be cancelled; another agent's task does not exist for it.
    assert!(
        client
            .peer()
            .cancel_task(CancelTaskParams::new(&approved))
            .await
            .is_err()
    );
    let other = client_2026(&second.url, &keys["agent:helper-bot"]).await;
    assert!(
        other
            .peer()
            .get_task(GetTaskParams::new(&approved))
            .await
            .is_err()
    );

    // After another restart the ended tasks still answer the same.
    drop((client, other));
    kill(second);
    let third = serve(&config, 0);
    let client = client_2026(&third.url, agent_key).await;
    assert_eq!(until_ended(&client, &approved).await.payload, done.payload);
    let next = start_sum(&client, 7000).await;
    assert_ne!(
        next, approved,
        "once answered, the same call is a new request"
    );
}
