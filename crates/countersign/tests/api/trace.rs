//! Trace context (issue 19): the W3C `traceparent` an agent's call carries (the HTTP header, or
//! MCP `_meta.traceparent`) is recorded on its request and on every audit entry about it, and
//! shown on the console's request page; an invalid one is ignored and refuses nothing.

use crate::support::app::spawn_app;
use crate::support::console::signed_in;
use crate::support::mcp::{gateway, over_http, python, recorded, stdio_upstream};
use serde_json::{Value, json};

const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The audit entries about request `id`.
async fn entries_of(app: &crate::support::app::TestApp, id: &str) -> Vec<Value> {
    app.audit_entries()
        .await
        .into_iter()
        .filter(|e| e["request"] == id)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_calls_traceparent_is_recorded_on_its_request_and_every_entry() {
    let app = spawn_app().await;
    let agent = app.agent();
    let body = json!({"kind": "infra.rollback", "resource": "svc://api", "params": {"to": "v41"}});
    let r = agent
        .post_with("/v1/actions", &[("traceparent", TRACE)], body.clone())
        .await;
    assert_eq!(r.state(), "pending", "{}", r.body);
    assert_eq!(r.body["traceparent"], TRACE);
    let id = r.id();
    // Not part of what is approved: the digest is the one without a trace.
    let untraced = app
        .as_("agent:helper-bot")
        .post("/v1/actions", body.clone())
        .await;
    assert!(
        untraced.body.get("traceparent").is_none(),
        "{}",
        untraced.body
    );
    for who in ["bob", "erin"] {
        let v = app.approver(who).vote(&id, "approve", &r.digest()).await;
        assert_eq!(v.status, 200, "{}", v.body);
    }
    let entries = entries_of(&app, &id).await;
    let events: Vec<&str> = entries
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(events.len() >= 4, "{events:?}");
    for e in &entries {
        assert_eq!(e["data"]["traceparent"], TRACE, "{e}");
    }
    // The console's request page shows its trace id.
    let page = signed_in(&app, "dana")
        .await
        .get(&format!("/console/requests/{id}"))
        .await;
    assert!(
        page.body.contains("4bf92f3577b34da6a3ce929d0e0e4736"),
        "{}",
        page.body
    );

    // Invalid: ignored, never refused.
    for bad in [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "not a trace",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ] {
        let r = agent
            .post_with(
                "/v1/actions",
                &[("traceparent", bad)],
                json!({"kind": "db.query", "resource": "x", "params": {"readonly": true}}),
            )
            .await;
        assert_eq!(r.state(), "approved", "{bad}: {}", r.body);
        assert!(r.body.get("traceparent").is_none(), "{bad}: {}", r.body);
        for e in entries_of(&app, &r.id()).await {
            assert!(e["data"].get("traceparent").is_none(), "{e}");
        }
    }
    crate::support::app::assert_log_intact(&app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_mcp_calls_meta_traceparent_is_recorded() {
    let app = gateway(&stdio_upstream("everything"), "").await;
    let called = python(over_http(
        &app,
        &[
            "call",
            "everything__echo",
            r#"{"message": "traced"}"#,
            "with a trace",
            TRACE,
        ],
    ))
    .await;
    assert_eq!(called["is_error"], false, "{called}");
    let req = recorded(&app, "mcp.tool.everything.echo", "executed").await;
    assert_eq!(req["traceparent"], TRACE, "{req}");
    let id = req["id"].as_str().unwrap();
    let entries = entries_of(&app, id).await;
    assert!(!entries.is_empty());
    for e in &entries {
        assert_eq!(e["data"]["traceparent"], TRACE, "{e}");
    }
}
