//! Trace context (issue 19): the W3C `traceparent` an agent's call carries (the HTTP header, or
//! MCP `_meta.traceparent`) is recorded on its request and on every audit entry about it, and
//! shown on the console's request page; an invalid one is ignored and refuses nothing.

use crate::support::app::{spawn_app, spawn_app_in};
use crate::support::console::signed_in;
use crate::support::mcp::{gateway, mcp_config, over_http, python, recorded, stdio_upstream};
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

/// One span as a local OTLP receiver decoded it.
#[derive(Debug, Clone)]
struct Received {
    name: String,
    trace_id: String,
    parent: String,
    attributes: std::collections::BTreeMap<String, String>,
}

/// An OTLP/HTTP receiver on a free port (`POST /v1/traces`, protobuf): its base URL and the
/// spans it has decoded.
async fn otlp_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Received>>>) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use prost::Message as _;
    let spans = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                let export = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                let mut out = kept.lock().unwrap();
                for span in export
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .flat_map(|s| &s.spans)
                {
                    let attributes = span
                        .attributes
                        .iter()
                        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
                            Any::StringValue(v) => Some((kv.key.clone(), v.clone())),
                            _ => None,
                        })
                        .collect();
                    out.push(Received {
                        name: span.name.clone(),
                        trace_id: hex::encode(&span.trace_id),
                        parent: hex::encode(&span.parent_span_id),
                        attributes,
                    });
                }
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, spans)
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_for_submit_wait_and_forward_are_exported_under_the_agents_trace() {
    let (endpoint, spans) = otlp_receiver().await;
    let config = format!(
        "telemetry:\n  otlp_endpoint: {endpoint}\n  export_interval: 100ms\n{}",
        mcp_config(&stdio_upstream("everything"), "")
    );
    let app = spawn_app_in(tempfile::tempdir().unwrap(), &config).await;
    // Allowed and forwarded: submit, then forward.
    let called = python(over_http(
        &app,
        &[
            "call",
            "everything__echo",
            r#"{"message": "traced"}"#,
            "why",
            TRACE,
        ],
    ))
    .await;
    assert_eq!(called["is_error"], false, "{called}");
    // Held until it expires: submit, then wait.
    let held = python(over_http(
        &app,
        &["call", "everything__get-tiny-image", "{}", "why", TRACE],
    ))
    .await;
    assert_eq!(held["is_error"], true, "{held}");
    // Over the API, in another trace.
    let other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let r = app
        .agent()
        .post_with(
            "/v1/actions",
            &[("traceparent", other)],
            json!({"kind": "db.query", "resource": "x", "params": {"readonly": true}}),
        )
        .await;
    assert_eq!(r.state(), "approved", "{}", r.body);
    // A long-poll on a pending request is a wait in the caller's trace.
    let pending = app
        .agent()
        .post_with(
            "/v1/actions",
            &[("traceparent", other)],
            json!({"kind": "infra.rollback", "resource": "svc://api", "params": {}}),
        )
        .await;
    let polled = app
        .agent()
        .http
        .get(format!(
            "{}/v1/requests/{}?wait=100ms",
            app.url,
            pending.id()
        ))
        .bearer_auth(app.agent().key)
        .header("traceparent", other)
        .send()
        .await
        .unwrap();
    assert_eq!(polled.status(), 200);

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let wanted = |all: &[Received]| {
        let names: Vec<&str> = all
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .map(|s| s.name.as_str())
            .collect();
        names.iter().filter(|n| **n == "countersign.submit").count() >= 2
            && names.contains(&"countersign.forward")
            && names.contains(&"countersign.wait")
            && all
                .iter()
                .any(|s| s.trace_id == other[3..35] && s.name == "countersign.wait")
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let all = loop {
        let all = spans.lock().unwrap().clone();
        if wanted(&all) {
            break all;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "spans not exported in 20 s: {all:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    for s in all.iter().filter(|s| s.trace_id == trace_id) {
        // Children of the agent's span, naming the request.
        assert_eq!(s.parent, "00f067aa0ba902b7", "{s:?}");
        assert!(
            s.attributes["countersign.request"].starts_with("req_"),
            "{s:?}"
        );
    }
    let wait = all.iter().find(|s| s.name == "countersign.wait").unwrap();
    assert_eq!(
        wait.attributes["countersign.outcome"], "expired",
        "{wait:?}"
    );
    let api = all
        .iter()
        .find(|s| s.trace_id == other[3..35] && s.name == "countersign.submit")
        .unwrap();
    assert_eq!(api.parent, "b7ad6b7169203331");
    assert_eq!(api.attributes["countersign.state"], "approved", "{api:?}");
    let polled = all
        .iter()
        .find(|s| s.trace_id == other[3..35] && s.name == "countersign.wait")
        .unwrap();
    assert_eq!(
        polled.attributes["countersign.outcome"], "pending",
        "{polled:?}"
    );
}
