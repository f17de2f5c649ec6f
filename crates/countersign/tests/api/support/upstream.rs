//! A real HTTP service for the executors' tests: it refuses every call that lacks the secret
//! header only the gateway holds, and records what it received, so a test can check the
//! upstream got exactly the approved action; and a gateway with an HTTP executor for it.

use super::app::{TEST_POLICY, TestApp, spawn_app_configured};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::json;
use std::sync::{Arc, Mutex};

/// The secret the upstream requires, kept in a file the gateway reads at start.
pub const SECRET: &str = "upstream-secret-8f3a91c2";

/// One call the upstream received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path_and_query: String,
    pub authorization: Option<String>,
    pub body: String,
}

/// A real HTTP service: refuses calls without `Authorization: Bearer SECRET`, records every
/// call, answers `/api/fail` with 500 and everything else with a JSON echo that also echoes the
/// secret (the gateway must keep it out of every record) and sets a cookie.
pub struct Upstream {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let received = Arc::new(Mutex::new(vec![]));
        async fn handle(
            State(log): State<Arc<Mutex<Vec<Received>>>>,
            method: Method,
            uri: Uri,
            headers: HeaderMap,
            body: String,
        ) -> axum::response::Response {
            let authorization = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            log.lock().unwrap().push(Received {
                method: method.to_string(),
                path_and_query: uri
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
                authorization: authorization.clone(),
                body: body.clone(),
            });
            if authorization.as_deref() != Some(&format!("Bearer {SECRET}")) {
                return (StatusCode::UNAUTHORIZED, "no credentials").into_response();
            }
            if uri.path() == "/api/fail" {
                return (StatusCode::INTERNAL_SERVER_ERROR, "it broke").into_response();
            }
            if uri.path() == "/api/slow" {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
            (
                [
                    ("set-cookie", "session=upstream-session-cookie"),
                    (
                        "x-echo-authorization",
                        authorization.as_deref().unwrap_or(""),
                    ),
                    ("x-request-id", "rq-1"),
                ],
                axum::Json(json!({
                    "method": method.to_string(),
                    "path": uri.path(),
                    "query": uri.query(),
                    "body": body,
                    "seen": authorization,
                })),
            )
                .into_response()
        }
        let app = Router::new().fallback(handle).with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Upstream { url, received }
    }

    pub fn calls(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// An entry of `executors:` (YAML, indented for that list): an HTTP executor `name` on
    /// `{url}/api` (GET and POST, 2 s timeout) whose `Authorization` header holds [`SECRET`],
    /// read from a file at start (`${file:...}`).
    pub fn http_executor(&self, name: &str) -> String {
        let secret_file = std::env::temp_dir().join(format!(
            "countersign-exec-secret-{}-{}",
            std::process::id(),
            self.url.rsplit(':').next().unwrap()
        ));
        std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
        format!(
            "  - name: {name}
    http:
      base_url: {}/api
      headers: {{Authorization: \"Bearer ${{file:{}}}\"}}
      methods: [GET, POST]
      timeout: 2s
      max_response_bytes: 1MiB
",
            self.url,
            secret_file.display()
        )
    }
}

/// Reads are allowed; anything else goes to review (the test policy's default).
fn exec_policy() -> String {
    format!(
        "{TEST_POLICY}  - name: upstream-reads-are-free
    match: {{kind: \"exec.http.upstream\"}}
    when: 'params.method == \"GET\"'
    effect: allow
"
    )
}

/// A gateway with the test principals, [`exec_policy`] and the executor `upstream` for
/// `upstream` (and no `mcp` section: its `/mcp` offers the executor's tool alone).
pub async fn exec_gateway(upstream: &Upstream) -> TestApp {
    let executors = format!("executors:\n{}", upstream.http_executor("upstream"));
    spawn_app_configured(&exec_policy(), &executors).await
}
