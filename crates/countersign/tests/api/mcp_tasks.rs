//! Durable MCP tasks (issue 19, part 1): a task lives in the store, so a client on protocol
//! 2026-07-28 (no session) that was answered with a task gets its result after the gateway was
//! killed and started again, from any gateway on the same database. Driven with the official
//! Rust SDK as the client, against the real binary (`kill -9`, not a clean shutdown).

use crate::cli::{Server, serve};
use crate::support::app::{As, write_world};
use crate::support::console::Browser;
use crate::support::mcp::{mcp_config, rmcp_client_2026, stdio_upstream};
use reqwest::StatusCode;
use rmcp::RoleClient;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelTaskParams, ClientCapabilities, ClientConfig,
    DetailedTask, GetTaskParams, TaskPayload, TaskStatus,
};
use rmcp::service::RunningService;
use serde_json::json;
use std::time::{Duration, Instant};

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
    let mut params = CallToolRequestParams::new("everything__get-sum");
    params.arguments = json!({"a": a, "b": 3}).as_object().cloned();
    match client.peer().call_tool_once(params).await.unwrap() {
        CallToolResponse::Task(created) => created.task.task_id,
        other => panic!("expected a task, got {other:?}"),
    }
}

async fn until_ended(client: &Client, id: &str) -> DetailedTask {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = client
            .peer()
            .get_task(GetTaskParams::new(id))
            .await
            .unwrap();
        if got.task.status() != TaskStatus::Working {
            return got.task;
        }
        assert!(Instant::now() < deadline, "task {id} still working");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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

/// Approves request `id` as bob through the console's form.
async fn approve_on_console(server: &Server, bob_key: &str, id: &str) {
    let bob = Browser::at(&server.url);
    let signed = bob.sign_in(bob_key).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    let page = bob.get(&format!("/console/requests/{id}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let (csrf, digest) = (page.field("csrf"), page.field("digest"));
    let done = bob
        .post(
            &format!("/console/requests/{id}/decide"),
            &[
                ("csrf", &csrf),
                ("digest", &digest),
                ("decision", "approve"),
            ],
        )
        .await;
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
