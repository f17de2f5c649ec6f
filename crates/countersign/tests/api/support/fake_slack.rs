//! A fake Slack that speaks the real protocol, for the gateway to talk to in tests: the Web API
//! methods the gateway calls (bearer token checked, JSON bodies, Slack's response shapes,
//! `ok:false` errors, `missing_scope`, 429 with `Retry-After`), and helpers that send signed
//! interactivity requests to the gateway the way Slack does (form-encoded `payload`, v0
//! signature over `v0:timestamp:body`).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const BOT_TOKEN: &str = "xoxb-test-bot-token";
pub const APP_TOKEN: &str = "xapp-test-app-token";
pub const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

/// Slack users of the fake workspace: (user id, email).
pub const USERS: &[(&str, &str)] = &[
    ("UALICE", "alice@example.com"),
    ("UBOB", "bob@example.com"),
    ("UCAROL", "carol@example.com"),
    ("UDANA", "dana@example.com"),
    ("UERIN", "erin@example.com"),
    ("UFRANK", "frank@example.com"),
    ("UMALLORY", "mallory@elsewhere.example"),
];

/// Channels: (name, id).
pub const CHANNELS: &[(&str, &str)] = &[("approvals", "CAPPROVALS"), ("sre-leads", "CLEADS")];

#[derive(Debug, Clone)]
pub struct Message {
    pub channel: String,
    pub ts: String,
    pub text: String,
    pub blocks: Value,
    pub thread_ts: Option<String>,
    /// Every version, oldest first (updates append).
    pub versions: usize,
}

#[derive(Default)]
pub struct World {
    pub messages: Vec<Message>,
    pub ephemerals: Vec<(String, String, String)>,
    pub views: Vec<(String, Value)>,
    pub calls: Vec<String>,
    /// Method → how many more calls answer 429.
    pub throttle: HashMap<String, u32>,
    pub scopes: Vec<&'static str>,
    /// Socket Mode: the URL `apps.connections.open` hands out, and how often it was asked.
    pub socket_url: Option<String>,
    pub socket_opens: u32,
    /// How long `chat.postMessage` takes to answer (a slow Slack widens races).
    pub post_delay: Option<std::time::Duration>,
    next_ts: u64,
}

#[derive(Clone)]
pub struct FakeSlack {
    pub url: String,
    pub world: Arc<Mutex<World>>,
}

impl FakeSlack {
    pub async fn start() -> FakeSlack {
        let world = Arc::new(Mutex::new(World {
            scopes: vec!["chat:write", "users:read", "users:read.email", "im:write"],
            next_ts: 1_700_000_000_000_100,
            ..Default::default()
        }));
        let app = Router::new()
            .route("/api/chat.postMessage", post(post_message))
            .route("/api/chat.update", post(update))
            .route("/api/chat.postEphemeral", post(ephemeral))
            .route("/api/views.open", post(views_open))
            .route("/api/users.info", get(users_info))
            .route("/api/users.lookupByEmail", get(lookup_by_email))
            .route("/api/apps.connections.open", post(connections_open))
            .with_state(world.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeSlack {
            url: format!("http://{addr}/api"),
            world,
        }
    }

    pub fn messages(&self) -> Vec<Message> {
        self.world.lock().unwrap().messages.clone()
    }

    pub fn ephemerals(&self) -> Vec<(String, String, String)> {
        self.world.lock().unwrap().ephemerals.clone()
    }

    pub fn views(&self) -> Vec<(String, Value)> {
        self.world.lock().unwrap().views.clone()
    }

    /// Makes every `chat.postMessage` answer after `delay`.
    pub fn delay_posts(&self, delay: std::time::Duration) {
        self.world.lock().unwrap().post_delay = Some(delay);
    }

    pub fn throttle(&self, method: &str, times: u32) {
        self.world
            .lock()
            .unwrap()
            .throttle
            .insert(method.to_string(), times);
    }

    /// Deletes a message, as a person could in Slack.
    pub fn delete(&self, channel: &str, ts: &str) {
        self.world
            .lock()
            .unwrap()
            .messages
            .retain(|m| !(m.channel == channel && m.ts == ts));
    }

    pub fn calls(&self, method: &str) -> usize {
        self.world
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|m| *m == method)
            .count()
    }

    /// The message about request `id` in `channel` (top-level, not a reminder).
    pub fn message_for(&self, channel: &str, id: &str) -> Option<Message> {
        self.messages().into_iter().find(|m| {
            m.channel == channel && m.thread_ts.is_none() && m.blocks.to_string().contains(id)
        })
    }

    /// Waits for the message about request `id` in `channel`, and returns it.
    pub async fn posted(&self, channel: &str, id: &str) -> Message {
        self.wait_for("the review message", |f| {
            f.message_for(channel, id).is_some()
        })
        .await;
        self.message_for(channel, id).unwrap()
    }

    /// Waits (up to 10 s) until `check` holds for the world.
    pub async fn wait_for(&self, what: &str, check: impl Fn(&FakeSlack) -> bool) {
        for _ in 0..200 {
            if check(self) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("fake Slack: timed out waiting for {what}");
    }
}

type W = State<Arc<Mutex<World>>>;

fn slack_error(error: &str) -> Response {
    Json(json!({"ok": false, "error": error})).into_response()
}

/// Checks the bearer token, the scope, and the rate limit, as Slack does; records the call.
fn gate(world: &mut World, headers: &HeaderMap, method: &str, scope: &str) -> Option<Response> {
    world.calls.push(method.to_string());
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(token) = auth.strip_prefix("Bearer ") else {
        return Some(slack_error("not_authed"));
    };
    if token != BOT_TOKEN {
        return Some(slack_error("invalid_auth"));
    }
    if let Some(n) = world.throttle.get_mut(method)
        && *n > 0
    {
        *n -= 1;
        return Some((StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "").into_response());
    }
    if !scope.is_empty() && !world.scopes.contains(&scope) {
        return Some(
            Json(
                json!({"ok": false, "error": "missing_scope", "needed": scope,
                "provided": world.scopes.join(",")}),
            )
            .into_response(),
        );
    }
    None
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// A channel as `chat.postMessage` accepts it: `#name`, a channel id, or a user id (the DM).
fn resolve_channel(channel: &str) -> Option<String> {
    if let Some(name) = channel.strip_prefix('#') {
        return CHANNELS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, id)| id.to_string());
    }
    if CHANNELS.iter().any(|(_, id)| *id == channel) {
        return Some(channel.to_string());
    }
    if USERS.iter().any(|(id, _)| *id == channel) {
        return Some(format!("D{channel}"));
    }
    None
}

async fn post_message(State(w): W, headers: HeaderMap, body: String) -> Response {
    let delay = w.lock().unwrap().post_delay;
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let mut world = w.lock().unwrap();
    if let Some(r) = gate(&mut world, &headers, "chat.postMessage", "chat:write") {
        return r;
    }
    if !is_json(&headers) {
        return slack_error("invalid_form_data");
    }
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return slack_error("invalid_json");
    };
    let Some(channel) = v["channel"].as_str().and_then(resolve_channel) else {
        return slack_error("channel_not_found");
    };
    if v["text"].as_str().is_none() && v["blocks"].is_null() {
        return slack_error("no_text");
    }
    world.next_ts += 1;
    let ts = format!(
        "{}.{:06}",
        world.next_ts / 1_000_000,
        world.next_ts % 1_000_000
    );
    world.messages.push(Message {
        channel: channel.clone(),
        ts: ts.clone(),
        text: v["text"].as_str().unwrap_or("").to_string(),
        blocks: v["blocks"].clone(),
        thread_ts: v["thread_ts"].as_str().map(str::to_string),
        versions: 1,
    });
    Json(json!({"ok": true, "channel": channel, "ts": ts,
        "message": {"type": "message", "text": v["text"], "ts": ts}}))
    .into_response()
}

async fn update(State(w): W, headers: HeaderMap, body: String) -> Response {
    let mut world = w.lock().unwrap();
    if let Some(r) = gate(&mut world, &headers, "chat.update", "chat:write") {
        return r;
    }
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return slack_error("invalid_json");
    };
    let (Some(channel), Some(ts)) = (v["channel"].as_str(), v["ts"].as_str()) else {
        return slack_error("invalid_arguments");
    };
    // chat.update needs the channel id, not a name.
    if channel.starts_with('#') {
        return slack_error("channel_not_found");
    }
    let Some(m) = world
        .messages
        .iter_mut()
        .find(|m| m.channel == channel && m.ts == ts)
    else {
        return slack_error("message_not_found");
    };
    m.text = v["text"].as_str().unwrap_or("").to_string();
    m.blocks = v["blocks"].clone();
    m.versions += 1;
    Json(json!({"ok": true, "channel": channel, "ts": ts, "text": m.text})).into_response()
}

async fn ephemeral(State(w): W, headers: HeaderMap, body: String) -> Response {
    let mut world = w.lock().unwrap();
    if let Some(r) = gate(&mut world, &headers, "chat.postEphemeral", "chat:write") {
        return r;
    }
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return slack_error("invalid_json");
    };
    let (Some(channel), Some(user), Some(text)) = (
        v["channel"].as_str(),
        v["user"].as_str(),
        v["text"].as_str(),
    ) else {
        return slack_error("invalid_arguments");
    };
    world
        .ephemerals
        .push((channel.into(), user.into(), text.into()));
    Json(json!({"ok": true, "message_ts": "1700000000.999999"})).into_response()
}

async fn views_open(State(w): W, headers: HeaderMap, body: String) -> Response {
    let mut world = w.lock().unwrap();
    if let Some(r) = gate(&mut world, &headers, "views.open", "") {
        return r;
    }
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return slack_error("invalid_json");
    };
    let Some(trigger) = v["trigger_id"].as_str() else {
        return slack_error("invalid_arguments");
    };
    if v["view"]["type"] != "modal" {
        return slack_error("invalid_arguments");
    }
    world.views.push((trigger.to_string(), v["view"].clone()));
    Json(json!({"ok": true, "view": {"id": "V123", "type": "modal"}})).into_response()
}

async fn users_info(
    State(w): W,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut world = w.lock().unwrap();
    if let Some(r) = gate(&mut world, &headers, "users.info", "users:read") {
        return r;
    }
    let Some((id, email)) = q
        .get("user")
        .and_then(|u| USERS.iter().find(|(id, _)| id == u))
    else {
        return slack_error("user_not_found");
    };
    let mut profile = json!({"real_name": id});
    // Slack leaves the email out unless the token has users:read.email.
    if world.scopes.contains(&"users:read.email") {
        profile["email"] = json!(email);
    }
    Json(json!({"ok": true, "user": {"id": id, "profile": profile}})).into_response()
}

async fn lookup_by_email(
    State(w): W,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut world = w.lock().unwrap();
    if let Some(r) = gate(
        &mut world,
        &headers,
        "users.lookupByEmail",
        "users:read.email",
    ) {
        return r;
    }
    match q
        .get("email")
        .and_then(|e| USERS.iter().find(|(_, m)| m == e))
    {
        Some((id, _)) => Json(json!({"ok": true, "user": {"id": id}})).into_response(),
        None => slack_error("users_not_found"),
    }
}

async fn connections_open(State(w): W, headers: HeaderMap) -> Response {
    let mut world = w.lock().unwrap();
    world.calls.push("apps.connections.open".into());
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // Only an app-level token may open a socket; a bot token gets not_allowed_token_type.
    match auth.strip_prefix("Bearer ") {
        Some(APP_TOKEN) => {}
        Some(t) if t.starts_with("xoxb-") => return slack_error("not_allowed_token_type"),
        Some(_) => return slack_error("invalid_auth"),
        None => return slack_error("not_authed"),
    }
    world.socket_opens += 1;
    match &world.socket_url {
        Some(url) => Json(json!({"ok": true, "url": url})).into_response(),
        None => slack_error("socket_mode_disabled"),
    }
}

/// A Socket Mode endpoint: one WebSocket client at a time; the test pushes envelopes to it and
/// reads the acknowledgements back.
pub struct FakeSocket {
    /// The WebSocket URL handed out by `apps.connections.open`.
    #[allow(dead_code)]
    pub url: String,
    /// Envelopes to send to the connected client.
    pub push: tokio::sync::mpsc::UnboundedSender<SocketCommand>,
    /// Acknowledgements received (parsed JSON).
    pub acks: Arc<Mutex<Vec<Value>>>,
    pub connections: Arc<Mutex<u32>>,
}

pub enum SocketCommand {
    Send(Value),
    /// Drop the TCP connection without a close frame (network loss).
    Drop,
}

impl FakeSocket {
    pub async fn start(slack: &FakeSlack) -> FakeSocket {
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message as Ws;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/link/?ticket=t1", listener.local_addr().unwrap());
        slack.world.lock().unwrap().socket_url = Some(url.clone());
        let (push, mut commands) = tokio::sync::mpsc::unbounded_channel::<SocketCommand>();
        let acks = Arc::new(Mutex::new(vec![]));
        let connections = Arc::new(Mutex::new(0));
        let (a, c) = (acks.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                    continue;
                };
                *c.lock().unwrap() += 1;
                let (mut tx, mut rx) = ws.split();
                let hello = json!({"type": "hello", "num_connections": 1,
                    "connection_info": {"app_id": "A1"}});
                if tx.send(Ws::Text(hello.to_string().into())).await.is_err() {
                    continue;
                }
                loop {
                    tokio::select! {
                        cmd = commands.recv() => match cmd {
                            Some(SocketCommand::Send(v)) => {
                                if tx.send(Ws::Text(v.to_string().into())).await.is_err() { break; }
                            }
                            Some(SocketCommand::Drop) | None => break,
                        },
                        msg = rx.next() => match msg {
                            Some(Ok(Ws::Text(t))) => {
                                if let Ok(v) = serde_json::from_str::<Value>(&t) {
                                    a.lock().unwrap().push(v);
                                }
                            }
                            Some(Ok(_)) => {}
                            _ => break,
                        },
                    }
                }
                // Dropping both halves closes the TCP connection without a close frame.
            }
        });
        FakeSocket {
            url,
            push,
            acks,
            connections,
        }
    }

    pub fn connections(&self) -> u32 {
        *self.connections.lock().unwrap()
    }

    pub fn acked(&self, envelope: &str) -> Option<Value> {
        self.acks
            .lock()
            .unwrap()
            .iter()
            .find(|a| a["envelope_id"] == envelope)
            .cloned()
    }
}

/// Signs `body` as Slack does.
pub fn sign(secret: &str, timestamp: &str, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// A form body `payload=<json>`, as Slack posts interactions.
pub fn form(payload: &Value) -> String {
    serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap()
}

/// The `block_actions` payload of a click on `action_id` of the message about request `id`.
pub fn click_payload(user: &str, action_id: &str, message: &Message) -> Value {
    let value = message.blocks.as_array().and_then(|blocks| {
        blocks.iter().find_map(|b| {
            b["elements"].as_array().and_then(|els| {
                els.iter()
                    .find(|e| e["action_id"] == action_id)
                    .map(|e| e["value"].clone())
            })
        })
    });
    json!({
        "type": "block_actions",
        "user": {"id": user, "username": user.to_lowercase(), "team_id": "T1"},
        "api_app_id": "A1",
        "team": {"id": "T1"},
        "trigger_id": format!("trig.{user}.{}", message.ts),
        "container": {"type": "message", "message_ts": message.ts, "channel_id": message.channel},
        "channel": {"id": message.channel},
        "message": {"ts": message.ts, "text": message.text},
        "response_url": "https://hooks.slack.invalid/actions/T1/1/x",
        "actions": [{"action_id": action_id, "block_id": "countersign_review",
            "type": "button", "value": value.unwrap_or(Value::Null),
            "action_ts": format!("{}.5", message.ts)}]
    })
}

/// The `view_submission` of the deny modal `view` with `reason`.
pub fn deny_submission(user: &str, view: &Value, reason: &str) -> Value {
    json!({
        "type": "view_submission",
        "user": {"id": user},
        "team": {"id": "T1"},
        "view": {
            "id": "V123",
            "type": "modal",
            "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"],
            "state": {"values": {"reason": {"reason_input": {"type": "plain_text_input", "value": reason}}}}
        }
    })
}

/// Posts a signed interaction to the gateway; returns the status and body.
pub async fn send_signed(
    gateway: &str,
    body: &str,
    timestamp: i64,
    secret: &str,
) -> (StatusCode, String) {
    let ts = timestamp.to_string();
    let sig = sign(secret, &ts, body);
    send_raw(gateway, body, &ts, &sig).await
}

pub async fn send_raw(gateway: &str, body: &str, ts: &str, sig: &str) -> (StatusCode, String) {
    let r = reqwest::Client::new()
        .post(format!("{gateway}/v1/channels/slack/interactions"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", ts)
        .header("x-slack-signature", sig)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
    (status, r.text().await.unwrap_or_default())
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The gateway's `channels.slack` section for this fake.
pub fn config(fake: &FakeSlack) -> String {
    format!(
        "channels:\n  slack:\n    bot_token: {}\n    signing_secret: {}\n    api_base_url: {}\n    notify: [\"#approvals\"]\n",
        BOT_TOKEN, SIGNING_SECRET, fake.url
    )
}
