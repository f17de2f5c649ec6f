//! A fake Bot Connector that speaks the real protocol, for the gateway to talk to in tests:
//! the OpenID metadata and its JWKS (RSA keys with `endorsements`), the AAD token endpoint
//! (client credentials checked: id, secret, scope), the conversations REST API (activities
//! posted, replied to and replaced, with activity ids; members looked up; Bearer app token
//! checked), and helpers that send the gateway signed activities the way the Bot Connector
//! does (RS256 JWT with `serviceurl`, `iss`, `aud`, `nbf`, `exp`).
//!
//! Its keys are fixed test keys (`teams_keys/`, generated once with openssl): `connector` is
//! the one it publishes, `intruder` is one it does not (until a test rotates it in).

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const APP_ID: &str = "7d1e2f3a-0000-4000-8000-00000000c0de";
pub const APP_PASSWORD: &str = "test-app-password-9f2c41";
pub const ISSUER: &str = "https://api.botframework.com";
pub const SCOPE: &str = "https://api.botframework.com/.default";
pub const TENANT: &str = "tenant-contoso";
pub const OTHER_TENANT: &str = "tenant-fabrikam";
/// The review channel (named `approvals` in the gateway's config) and its team.
pub const APPROVALS: &str = "19:approvals@thread.tacv2";
pub const TEAM: &str = "19:team-general@thread.tacv2";
/// A channel of the team that the config does not name.
pub const OTHER_CHANNEL: &str = "19:random@thread.tacv2";
pub const KID: &str = "connector-key-1";

pub const CONNECTOR_PEM: &str = include_str!("teams_keys/connector.pem");
pub const CONNECTOR_PUB: &str = include_str!("teams_keys/connector.pub.json");
pub const INTRUDER_PEM: &str = include_str!("teams_keys/intruder.pem");
pub const INTRUDER_PUB: &str = include_str!("teams_keys/intruder.pub.json");

/// Members of the team: (first name, from.id, aadObjectId, email).
pub const MEMBERS: &[(&str, &str, &str, &str)] = &[
    ("alice", "29:1alice", "aad-alice", "alice@example.com"),
    ("bob", "29:1bob", "aad-bob", "bob@example.com"),
    ("carol", "29:1carol", "aad-carol", "carol@example.com"),
    ("dana", "29:1dana", "aad-dana", "dana@example.com"),
    ("erin", "29:1erin", "aad-erin", "erin@example.com"),
    ("frank", "29:1frank", "aad-frank", "frank@example.com"),
    (
        "mallory",
        "29:1mallory",
        "aad-mallory",
        "mallory@elsewhere.example",
    ),
];

/// An activity the gateway sent, as the conversation holds it now.
#[derive(Debug, Clone)]
pub struct Sent {
    pub conversation: String,
    pub id: String,
    pub activity: Value,
    /// 1 when posted, +1 per replacement.
    pub versions: usize,
    /// Set for replies: the activity replied to.
    pub reply_to: Option<String>,
}

impl Sent {
    /// The Adaptive Card of the activity.
    pub fn card(&self) -> &Value {
        &self.activity["attachments"][0]["content"]
    }

    /// The card's actions as (type, verb).
    pub fn actions(&self) -> Vec<(String, String)> {
        actions(self.card())
    }
}

/// A card's actions as (type, verb or title).
pub fn actions(card: &Value) -> Vec<(String, String)> {
    card["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a["type"].as_str().unwrap_or_default().to_string(),
                a["verb"]
                    .as_str()
                    .or(a["title"].as_str())
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

pub struct PublishedKey {
    pub kid: String,
    pub public: Value,
    pub endorsements: Vec<String>,
}

#[derive(Default)]
pub struct World {
    pub sent: Vec<Sent>,
    /// Every call to the conversations API: "POST activities", "PUT activity", "GET member".
    pub calls: Vec<String>,
    pub keys: Vec<PublishedKey>,
    pub key_fetches: u32,
    pub tokens: Vec<String>,
    /// Token requests refused (wrong client, secret, grant or scope).
    pub token_refusals: u32,
    pub member_lookups: u32,
    next_id: u64,
}

#[derive(Clone)]
pub struct FakeTeams {
    /// `http://127.0.0.1:port`
    pub base: String,
    /// The Bot Connector service URL the fake's activities carry (with the trailing `/`
    /// real ones have).
    pub service_url: String,
    pub world: Arc<Mutex<World>>,
}

impl FakeTeams {
    pub async fn start() -> FakeTeams {
        let world = Arc::new(Mutex::new(World {
            keys: vec![PublishedKey {
                kid: KID.into(),
                public: serde_json::from_str(CONNECTOR_PUB).unwrap(),
                endorsements: vec!["msteams".into(), "skype".into(), "webchat".into()],
            }],
            next_id: 1_700_000_000_000,
            ..Default::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/v1/.well-known/openidconfiguration", get(metadata))
            .route("/v1/.well-known/keys", get(keys))
            .route("/botframework.com/oauth2/v2.0/token", post(token))
            .route("/svc/v3/conversations/{conv}/activities", post(send))
            .route(
                "/svc/v3/conversations/{conv}/activities/{id}",
                post(reply).put(update),
            )
            .route(
                "/svc/v3/conversations/{conv}/members/{member}",
                get(member_lookup),
            )
            .with_state((world.clone(), base.clone()));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeTeams {
            service_url: format!("{base}/svc/"),
            base,
            world,
        }
    }

    pub fn metadata_url(&self) -> String {
        format!("{}/v1/.well-known/openidconfiguration", self.base)
    }

    pub fn token_url(&self) -> String {
        format!("{}/botframework.com/oauth2/v2.0/token", self.base)
    }

    /// Publishes `public` (a key file's JWK) under `kid`, as a key rollover does.
    pub fn publish(&self, kid: &str, public: &str, endorsements: &[&str]) {
        self.world.lock().unwrap().keys.push(PublishedKey {
            kid: kid.into(),
            public: serde_json::from_str(public).unwrap(),
            endorsements: endorsements.iter().map(|e| e.to_string()).collect(),
        });
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.world.lock().unwrap().sent.clone()
    }

    /// The card about request `id` in `conversation` (not a reply).
    pub fn card_for(&self, conversation: &str, id: &str) -> Option<Sent> {
        self.sent().into_iter().find(|s| {
            s.conversation == conversation
                && s.reply_to.is_none()
                && s.card().to_string().contains(id)
        })
    }

    /// Waits for the card about request `id` in `conversation`, and returns it.
    pub async fn posted(&self, conversation: &str, id: &str) -> Sent {
        self.wait_for("the review card", |f| {
            f.card_for(conversation, id).is_some()
        })
        .await;
        self.card_for(conversation, id).unwrap()
    }

    /// Waits (up to 10 s) until `check` holds.
    pub async fn wait_for(&self, what: &str, check: impl Fn(&FakeTeams) -> bool) {
        for _ in 0..200 {
            if check(self) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("fake Bot Connector: timed out waiting for {what}");
    }

    /// Deletes an activity, as a person could in Teams.
    pub fn delete(&self, conversation: &str, id: &str) {
        self.world
            .lock()
            .unwrap()
            .sent
            .retain(|s| !(s.conversation == conversation && s.id == id));
    }

    /// The claims the Bot Connector puts in its tokens, valid for an hour.
    pub fn claims(&self) -> Value {
        let now = now();
        json!({"serviceurl": self.service_url, "nbf": now - 5, "exp": now + 3600,
            "iss": ISSUER, "aud": APP_ID})
    }

    /// A token as the Bot Connector signs it.
    pub fn token(&self) -> String {
        sign(KID, CONNECTOR_PEM, &self.claims())
    }

    /// An activity from the team's `conversation`, as Teams sends them.
    pub fn activity(&self, kind: &str, conversation: &str, who: &str) -> Value {
        let (_, from, aad, _) = member(who);
        json!({
            "type": kind,
            "id": format!("f:{}", uuid::Uuid::now_v7().simple()),
            "timestamp": "2026-12-01T10:00:00.000Z",
            "localTimestamp": "2026-12-01T11:00:00.000+01:00",
            "serviceUrl": self.service_url,
            "channelId": "msteams",
            "from": {"id": from, "name": who, "aadObjectId": aad},
            "conversation": {"isGroup": true, "conversationType": "channel", "id": conversation,
                "tenantId": TENANT},
            "recipient": {"id": format!("28:{APP_ID}"), "name": "Countersign"},
            "channelData": {"tenant": {"id": TENANT}, "team": {"id": TEAM, "name": "SRE"},
                "channel": {"id": conversation}},
            "locale": "en-US",
        })
    }

    /// The bot is added to the team (installs it in `conversation`'s team).
    pub fn installed(&self, conversation: &str) -> Value {
        let mut a = self.activity("conversationUpdate", conversation, "dana");
        a["membersAdded"] = json!([{"id": format!("28:{APP_ID}")}]);
        a["channelData"]["eventType"] = json!("teamMemberAdded");
        a
    }

    /// `who` clicks `verb` on `card` (posted in `conversation`), with an optional comment.
    pub fn click(&self, who: &str, verb: &str, card: &Value, comment: Option<&str>) -> Value {
        let data = card["actions"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["verb"] == verb))
            .map(|a| a["data"].clone())
            .unwrap_or_else(|| json!({}));
        self.click_with(who, verb, data, comment)
    }

    /// A click with the given action data (as a crafted click would carry).
    pub fn click_with(&self, who: &str, verb: &str, data: Value, comment: Option<&str>) -> Value {
        let mut data = data;
        if let Some(c) = comment {
            data["comment"] = json!(c);
        }
        let mut a = self.activity("invoke", &format!("{APPROVALS};messageid=1"), who);
        a["name"] = json!("adaptiveCard/action");
        a["value"] = json!({"action": {"type": "Action.Execute", "id": verb, "verb": verb,
            "data": data}, "trigger": "manual"});
        a
    }

    /// Sends `activity` to the gateway with a fresh token; returns the status and the body.
    pub async fn deliver(&self, gateway: &str, activity: &Value) -> (StatusCode, Value) {
        send_to(gateway, Some(&self.token()), &activity.to_string()).await
    }
}

/// A member by first name.
pub fn member(name: &str) -> (&'static str, &'static str, &'static str, &'static str) {
    *MEMBERS
        .iter()
        .find(|m| m.0 == name)
        .unwrap_or_else(|| panic!("no member {name}"))
}

/// Signs `claims` as RS256 with `pem`, naming key `kid`.
pub fn sign(kid: &str, pem: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_string());
    header.typ = Some("JWT".into());
    let key = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// Posts `body` to the gateway's bot endpoint as the Bot Connector does.
pub async fn send_to(gateway: &str, token: Option<&str>, body: &str) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{gateway}/v1/channels/teams/messages"))
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
    let text = r.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

type S = State<(Arc<Mutex<World>>, String)>;

async fn metadata(State((_, base)): S) -> Json<Value> {
    Json(json!({
        "issuer": ISSUER,
        "authorization_endpoint": "https://invalid.botframework.com",
        "jwks_uri": format!("{base}/v1/.well-known/keys"),
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"]
    }))
}

async fn keys(State((w, _)): S) -> Json<Value> {
    let mut world = w.lock().unwrap();
    world.key_fetches += 1;
    let keys: Vec<Value> = world
        .keys
        .iter()
        .map(|k| {
            json!({"kty": "RSA", "use": "sig", "kid": k.kid, "x5t": k.kid,
                "n": k.public["n"], "e": k.public["e"], "endorsements": k.endorsements})
        })
        .collect();
    Json(json!({"keys": keys}))
}

/// AAD's v2 token endpoint, client credentials grant.
async fn token(State((w, _)): S, Form(form): Form<HashMap<String, String>>) -> Response {
    let mut world = w.lock().unwrap();
    let field = |k: &str| form.get(k).map(String::as_str);
    let refuse = |error: &str, status: StatusCode| {
        (
            status,
            Json(json!({"error": error, "error_description": format!("AADSTS: {error}")})),
        )
            .into_response()
    };
    if field("grant_type") != Some("client_credentials") {
        world.token_refusals += 1;
        return refuse("unsupported_grant_type", StatusCode::BAD_REQUEST);
    }
    if field("client_id") != Some(APP_ID) || field("client_secret") != Some(APP_PASSWORD) {
        world.token_refusals += 1;
        return refuse("invalid_client", StatusCode::UNAUTHORIZED);
    }
    if field("scope") != Some(SCOPE) {
        world.token_refusals += 1;
        return refuse("invalid_scope", StatusCode::BAD_REQUEST);
    }
    let token = format!("app-token-{}", world.tokens.len() + 1);
    world.tokens.push(token.clone());
    Json(
        json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
        "access_token": token}),
    )
    .into_response()
}

fn connector_error(status: StatusCode, code: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": code}})),
    )
        .into_response()
}

/// Checks the app token; records the call.
fn gate(world: &mut World, headers: &HeaderMap, call: &str) -> Option<Response> {
    world.calls.push(call.to_string());
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match token {
        Some(t) if world.tokens.iter().any(|k| k == t) => None,
        _ => Some(connector_error(StatusCode::UNAUTHORIZED, "Unauthorized")),
    }
}

fn known(conversation: &str) -> bool {
    [APPROVALS, TEAM, OTHER_CHANNEL].contains(&conversation)
}

/// A message activity carrying one Adaptive Card 1.5, or a plain text message.
fn valid_message(activity: &Value) -> bool {
    if activity["type"] != "message" {
        return false;
    }
    match activity["attachments"].as_array() {
        Some(a) => {
            a.len() == 1
                && a[0]["contentType"] == "application/vnd.microsoft.card.adaptive"
                && a[0]["content"]["type"] == "AdaptiveCard"
                && a[0]["content"]["version"] == "1.5"
        }
        None => activity["text"].is_string(),
    }
}

async fn send(
    State((w, _)): S,
    headers: HeaderMap,
    Path(conv): Path<String>,
    Json(activity): Json<Value>,
) -> Response {
    let mut world = w.lock().unwrap();
    if let Some(r) = gate(&mut world, &headers, "POST activities") {
        return r;
    }
    if !known(&conv) {
        return connector_error(StatusCode::NOT_FOUND, "ConversationNotFound");
    }
    if !valid_message(&activity) {
        return connector_error(StatusCode::BAD_REQUEST, "BadArgument");
    }
    world.next_id += 1;
    let id = format!("1:{}", world.next_id);
    world.sent.push(Sent {
        conversation: conv,
        id: id.clone(),
        activity,
        versions: 1,
        reply_to: None,
    });
    (StatusCode::CREATED, Json(json!({"id": id}))).into_response()
}

async fn reply(
    State((w, _)): S,
    headers: HeaderMap,
    Path((conv, to)): Path<(String, String)>,
    Json(activity): Json<Value>,
) -> Response {
    let mut world = w.lock().unwrap();
    if let Some(r) = gate(&mut world, &headers, "POST reply") {
        return r;
    }
    if !world
        .sent
        .iter()
        .any(|s| s.conversation == conv && s.id == to)
    {
        return connector_error(StatusCode::NOT_FOUND, "ActivityNotFound");
    }
    if !valid_message(&activity) {
        return connector_error(StatusCode::BAD_REQUEST, "BadArgument");
    }
    world.next_id += 1;
    let id = format!("1:{}", world.next_id);
    world.sent.push(Sent {
        conversation: conv,
        id: id.clone(),
        activity,
        versions: 1,
        reply_to: Some(to),
    });
    (StatusCode::CREATED, Json(json!({"id": id}))).into_response()
}

async fn update(
    State((w, _)): S,
    headers: HeaderMap,
    Path((conv, id)): Path<(String, String)>,
    Json(activity): Json<Value>,
) -> Response {
    let mut world = w.lock().unwrap();
    if let Some(r) = gate(&mut world, &headers, "PUT activity") {
        return r;
    }
    if !valid_message(&activity) || activity["id"] != id.as_str() {
        return connector_error(StatusCode::BAD_REQUEST, "BadArgument");
    }
    let Some(s) = world
        .sent
        .iter_mut()
        .find(|s| s.conversation == conv && s.id == id)
    else {
        return connector_error(StatusCode::NOT_FOUND, "ActivityNotFound");
    };
    s.activity = activity;
    s.versions += 1;
    Json(json!({"id": id})).into_response()
}

async fn member_lookup(
    State((w, _)): S,
    headers: HeaderMap,
    Path((conv, member_id)): Path<(String, String)>,
) -> Response {
    let mut world = w.lock().unwrap();
    if let Some(r) = gate(&mut world, &headers, "GET member") {
        return r;
    }
    world.member_lookups += 1;
    if !known(&conv) {
        return connector_error(StatusCode::NOT_FOUND, "ConversationNotFound");
    }
    match MEMBERS.iter().find(|m| m.1 == member_id) {
        Some((name, id, aad, email)) => Json(json!({
            "id": id, "name": name, "aadObjectId": aad, "email": email,
            "userPrincipalName": email, "givenName": name, "tenantId": TENANT,
            "userRole": "user"
        }))
        .into_response(),
        None => connector_error(StatusCode::NOT_FOUND, "MemberNotFound"),
    }
}

/// The gateway's `channels.teams` section for this fake (`password`: the app password the
/// gateway is given).
pub fn config(fake: &FakeTeams, password: &str) -> String {
    format!(
        "channels:\n  teams:\n    app_id: {APP_ID}\n    app_password: {password}\n    tenant_ids: [{TENANT}]\n    openid_metadata_url: {}\n    token_url: {}\n    conversations: {{approvals: \"{APPROVALS}\"}}\n    notify: [approvals]\n",
        fake.metadata_url(),
        fake.token_url()
    )
}
