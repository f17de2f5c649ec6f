//! `countersign mcp stdio`: a local MCP server on stdin/stdout for agent hosts that launch their
//! servers as commands (Claude Desktop, Claude Code, Cursor, SDKs). It relays every message,
//! unchanged, to the gateway's `/mcp` over Streamable HTTP with the agent's key, and every
//! answer and notification back, so the whole protocol (progress while a call is held,
//! cancellation, list changes) works as it does over HTTP. It holds no upstream credentials.

use super::caller::RUN_HEADER;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rmcp::model::{ClientJsonRpcMessage, ErrorData, JsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, Transport};
use rmcp::{RoleClient, RoleServer};
use std::future::Future;
use std::pin::Pin;

type Sending =
    Pin<Box<dyn Future<Output = (Option<rmcp::model::RequestId>, Result<(), String>)> + Send>>;

/// Relays between this process's stdin/stdout and `endpoint` until the host closes stdin.
pub async fn run(endpoint: &str, token: &str, run: &str) -> Result<(), String> {
    let (stdin, stdout) = rmcp::transport::stdio();
    let mut host = AsyncRwTransport::<RoleServer, _, _>::new_server(stdin, stdout);
    let mut config = StreamableHttpClientTransportConfig::with_uri(endpoint);
    config.auth_header = Some(token.to_string());
    config.custom_headers.insert(
        reqwest::header::HeaderName::from_static(RUN_HEADER),
        reqwest::header::HeaderValue::from_str(run)
            .map_err(|_| format!("run `{run}` is not a valid header value"))?,
    );
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let mut gateway: StreamableHttpClientTransport<reqwest::Client> =
        StreamableHttpClientTransport::with_client(client, config);
    // Sends to the gateway run concurrently (a held call's POST lasts until people decide) but
    // start in order.
    let mut sending: FuturesUnordered<Sending> = FuturesUnordered::new();
    loop {
        tokio::select! {
            from_host = host.receive() => {
                let Some(message) = from_host else { break };
                let id = request_id(&message);
                let send = gateway.send(message);
                sending.push(Box::pin(async move { (id, send.await.map_err(|e| e.to_string())) }));
            }
            from_gateway = gateway.receive() => {
                let Some(message) = from_gateway else {
                    return Err(format!("the gateway at {endpoint} closed the connection"));
                };
                host.send(message).await.map_err(|e| format!("cannot write to stdout: {e}"))?;
            }
            Some((id, sent)) = sending.next(), if !sending.is_empty() => {
                if let Err(e) = sent {
                    eprintln!("countersign mcp stdio: cannot reach the gateway at {endpoint}: {e}");
                    // Answer the host's request, so it does not wait forever.
                    if let Some(id) = id {
                        let error = ErrorData::internal_error(format!("Countersign gateway unreachable: {e}"), None);
                        let reply: ServerJsonRpcMessage = JsonRpcMessage::error(error, Some(id));
                        host.send(reply).await.map_err(|e| format!("cannot write to stdout: {e}"))?;
                    }
                }
            }
        }
    }
    let _ = Transport::<RoleClient>::close(&mut gateway).await;
    Ok(())
}

fn request_id(message: &ClientJsonRpcMessage) -> Option<rmcp::model::RequestId> {
    match message {
        JsonRpcMessage::Request(r) => Some(r.id.clone()),
        _ => None,
    }
}
