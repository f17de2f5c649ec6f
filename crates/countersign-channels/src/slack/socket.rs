//! Socket Mode, for gateways without a public URL: the gateway opens a WebSocket to Slack
//! (`apps.connections.open` with the app-level token gives its URL) and Slack sends
//! interactions over it as envelopes, each acknowledged with its `envelope_id` (and, for a
//! modal submission, the answer as `payload`). The connection is replaced when Slack asks
//! (`disconnect`), and re-opened with backoff when it drops or goes silent.

use super::Slack;
use countersign_app::settings::Secret;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// We ping this often; a connection that answers nothing for two periods is dead.
const PING_EVERY: Duration = Duration::from_secs(20);

/// Why a connection ended.
enum End {
    /// Slack asked us to reconnect (or closed cleanly): reconnect at once.
    Refresh,
    /// The network failed or the socket went silent: reconnect with backoff.
    Lost(String),
}

/// Runs Socket Mode until the task is aborted.
pub async fn run(slack: Arc<Slack>, app_token: Secret) {
    let mut backoff = BACKOFF_FIRST;
    loop {
        match connect_once(&slack, &app_token).await {
            Ok(End::Refresh) => {
                tracing::info!("Slack Socket Mode: reconnecting as asked");
                backoff = BACKOFF_FIRST;
            }
            Ok(End::Lost(why)) | Err(why) => {
                tracing::warn!(reason = %why, retry_in = ?backoff, "Slack Socket Mode connection lost");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

async fn connect_once(slack: &Arc<Slack>, app_token: &Secret) -> Result<End, String> {
    let url = slack
        .api
        .open_socket(app_token)
        .await
        .map_err(|e| e.to_string())?;
    let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .map_err(|e| format!("WebSocket connect failed: {e}"))?;
    let (mut tx, mut rx) = ws.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut silent_ticks = 0u32;
    loop {
        tokio::select! {
            _ = ping.tick() => {
                silent_ticks += 1;
                if silent_ticks > 2 {
                    return Ok(End::Lost("no traffic from Slack for two ping periods".into()));
                }
                tx.send(Message::Ping(Vec::new().into())).await.map_err(|e| e.to_string())?;
            }
            msg = rx.next() => {
                silent_ticks = 0;
                let msg = match msg {
                    None => return Ok(End::Lost("connection closed".into())),
                    Some(Err(e)) => return Ok(End::Lost(e.to_string())),
                    Some(Ok(m)) => m,
                };
                let text = match msg {
                    Message::Text(t) => t.to_string(),
                    Message::Close(_) => return Ok(End::Refresh),
                    _ => continue,
                };
                if let Err(e) = countersign_core::json_text::check(text.as_bytes()) {
                    tracing::warn!(error = %e, "refused a Slack Socket Mode frame");
                    continue;
                }
                let Ok(envelope) = serde_json::from_str::<Value>(&text) else {
                    tracing::warn!("Slack Socket Mode sent a frame that is not JSON");
                    continue;
                };
                match envelope["type"].as_str() {
                    Some("hello") => tracing::info!("Slack Socket Mode connected"),
                    Some("disconnect") => return Ok(End::Refresh),
                    _ => {}
                }
                let Some(id) = envelope["envelope_id"].as_str() else { continue };
                let answer = if envelope["type"] == "interactive"
                    && slack.replays.first_sight(&format!("envelope:{id}")).await
                {
                    slack.interaction(envelope["payload"].clone()).await
                } else {
                    None
                };
                let mut ack = json!({"envelope_id": id});
                if let Some(payload) = answer {
                    ack["payload"] = payload;
                }
                tx.send(Message::Text(ack.to_string().into()))
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
    }
}
