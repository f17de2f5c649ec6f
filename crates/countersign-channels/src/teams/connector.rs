//! The Bot Connector REST API calls the gateway makes, with the bot's app token: send an
//! activity to a conversation, reply in its thread, replace an activity, look up a member.
//! The app token comes from the configured token endpoint by OAuth2 client credentials (scope
//! `https://api.botframework.com/.default`) and is cached until shortly before it expires.
//!
//! Architecture invariant: the token is only ever sent to the token endpoint (the secret) and
//! to service URLs taken from stored conversation references, which exist only for activities
//! whose token verified (`channels::teams::auth`). Callers pass a [`ServiceUrl`], which can only
//! be made from such a reference or a verified activity. Cleartext `http` is refused except to
//! loopback (local fakes in tests).

use countersign_app::settings::Secret;
use serde::Deserialize;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The scope of the app token.
pub const SCOPE: &str = "https://api.botframework.com/.default";
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// A token is renewed this long before it expires.
const RENEW_EARLY: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectorError {
    #[error("the Bot Connector rate-limited {call}; retry after {retry_after:?}")]
    RateLimited {
        call: &'static str,
        retry_after: Duration,
    },
    #[error("the Bot Connector has no such {0}")]
    NotFound(&'static str),
    #[error("the Bot Connector refused {call}: HTTP {status} {detail}")]
    Refused {
        call: &'static str,
        status: u16,
        detail: String,
    },
    #[error("the Bot Connector is unreachable for {call}: {message}")]
    Transport { call: &'static str, message: String },
    #[error("no app token: {0}")]
    Token(String),
    #[error("refusing to send the app token to {0}: not https")]
    InsecureServiceUrl(String),
}

impl ConnectorError {
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ConnectorError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// A service URL vouched for by a verified activity (now, or when its reference was stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUrl(String);

impl ServiceUrl {
    /// Only for values from a verified activity or a stored conversation reference.
    pub(super) fn vouched(url: &str) -> ServiceUrl {
        ServiceUrl(url.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A member of a conversation, as the Bot Connector describes them (TeamsChannelAccount).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub id: String,
    #[serde(default)]
    pub aad_object_id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub user_principal_name: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct ResourceResponse {
    #[serde(default)]
    id: Option<String>,
}

pub struct Connector {
    http: reqwest::Client,
    token_url: String,
    app_id: String,
    app_password: Secret,
    /// The app token and when it must be renewed; the lock makes concurrent callers share
    /// one fetch.
    token: tokio::sync::Mutex<Option<(Secret, Instant)>>,
}

impl Connector {
    pub fn new(token_url: &str, app_id: &str, app_password: Secret) -> Self {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Connector {
            http,
            token_url: token_url.to_string(),
            app_id: app_id.to_string(),
            app_password,
            token: tokio::sync::Mutex::new(None),
        }
    }

    /// `POST {serviceUrl}/v3/conversations/{id}/activities`: the new activity's id.
    pub async fn send(
        &self,
        service: &ServiceUrl,
        conversation: &str,
        activity: &Value,
    ) -> Result<String, ConnectorError> {
        let url = endpoint(
            service,
            &["v3", "conversations", conversation, "activities"],
        )?;
        let v = self
            .call("send", reqwest::Method::POST, url, Some(activity))
            .await?;
        created_id("send", v)
    }

    /// `POST {serviceUrl}/v3/conversations/{id}/activities/{activityId}`: a reply in the
    /// thread of `activity_id`.
    pub async fn reply(
        &self,
        service: &ServiceUrl,
        conversation: &str,
        activity_id: &str,
        activity: &Value,
    ) -> Result<String, ConnectorError> {
        let url = endpoint(
            service,
            &[
                "v3",
                "conversations",
                conversation,
                "activities",
                activity_id,
            ],
        )?;
        let v = self
            .call("reply", reqwest::Method::POST, url, Some(activity))
            .await?;
        created_id("reply", v)
    }

    /// `PUT {serviceUrl}/v3/conversations/{id}/activities/{activityId}`: replaces an activity.
    /// [`ConnectorError::NotFound`] when it no longer exists.
    pub async fn update(
        &self,
        service: &ServiceUrl,
        conversation: &str,
        activity_id: &str,
        activity: &Value,
    ) -> Result<(), ConnectorError> {
        let url = endpoint(
            service,
            &[
                "v3",
                "conversations",
                conversation,
                "activities",
                activity_id,
            ],
        )?;
        self.call("update", reqwest::Method::PUT, url, Some(activity))
            .await
            .map(drop)
    }

    /// `GET {serviceUrl}/v3/conversations/{id}/members/{memberId}`.
    pub async fn member(
        &self,
        service: &ServiceUrl,
        conversation: &str,
        member_id: &str,
    ) -> Result<Member, ConnectorError> {
        let url = endpoint(
            service,
            &["v3", "conversations", conversation, "members", member_id],
        )?;
        let v = self.call("member", reqwest::Method::GET, url, None).await?;
        serde_json::from_value(v).map_err(|e| ConnectorError::Refused {
            call: "member",
            status: 200,
            detail: format!("unexpected member: {e}"),
        })
    }

    async fn call(
        &self,
        call: &'static str,
        method: reqwest::Method,
        url: reqwest::Url,
        body: Option<&Value>,
    ) -> Result<Value, ConnectorError> {
        let token = self.token().await?;
        let mut req = self.http.request(method, url).bearer_auth(token.expose());
        if let Some(b) = body {
            req = req.json(b);
        }
        let transport = |e: reqwest::Error| ConnectorError::Transport {
            call,
            message: e.without_url().to_string(),
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            let secs = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1);
            return Err(ConnectorError::RateLimited {
                call,
                retry_after: Duration::from_secs(secs.clamp(1, 3600)),
            });
        }
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(ConnectorError::NotFound(match call {
                "member" => "member",
                "send" | "reply" => "conversation",
                _ => "activity",
            }));
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            // The token may have been revoked early: fetch a new one next time.
            *self.token.lock().await = None;
        }
        if !status.is_success() {
            let detail: String = resp
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect();
            return Err(ConnectorError::Refused {
                call,
                status: status.as_u16(),
                detail,
            });
        }
        let text = resp.text().await.map_err(transport)?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| ConnectorError::Refused {
            call,
            status: status.as_u16(),
            detail: format!("not JSON: {e}"),
        })
    }

    /// The app token, fetched with the client credentials when there is none or it is about
    /// to expire.
    async fn token(&self) -> Result<Secret, ConnectorError> {
        let mut cached = self.token.lock().await;
        if let Some((token, renew_at)) = cached.as_ref()
            && Instant::now() < *renew_at
        {
            return Ok(token.clone());
        }
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.app_id.as_str()),
            ("client_secret", self.app_password.expose()),
            ("scope", SCOPE),
        ];
        let body = serde_urlencoded::to_string(form)
            .map_err(|e| ConnectorError::Token(format!("could not encode the request: {e}")))?;
        let resp = self
            .http
            .post(&self.token_url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| ConnectorError::Token(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            let status = resp.status();
            // AAD answers `{"error": "invalid_client", "error_description": …}`.
            let error = resp
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_default();
            return Err(ConnectorError::Token(format!(
                "the token endpoint answered HTTP {status} {error}"
            )));
        }
        let t: TokenResponse = resp
            .json()
            .await
            .map_err(|e| ConnectorError::Token(format!("unexpected answer: {e}")))?;
        let lifetime = Duration::from_secs(t.expires_in.unwrap_or(3600));
        let renew_at = Instant::now() + lifetime.saturating_sub(RENEW_EARLY);
        let token = Secret::new(t.access_token);
        *cached = Some((token.clone(), renew_at));
        Ok(token)
    }
}

/// `{service}/a/b/…` with each segment percent-encoded (conversation ids hold `:`, `@`, `;`).
fn endpoint(service: &ServiceUrl, segments: &[&str]) -> Result<reqwest::Url, ConnectorError> {
    let insecure = || ConnectorError::InsecureServiceUrl(service.as_str().to_string());
    let mut url = reqwest::Url::parse(service.as_str()).map_err(|_| insecure())?;
    let loopback = url.host_str().is_some_and(|h| {
        h == "localhost"
            || h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    if !(url.scheme() == "https" || (url.scheme() == "http" && loopback)) {
        return Err(insecure());
    }
    url.path_segments_mut()
        .map_err(|_| insecure())?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

fn created_id(call: &'static str, v: Value) -> Result<String, ConnectorError> {
    let r: ResourceResponse = serde_json::from_value(v).unwrap_or(ResourceResponse { id: None });
    r.id.filter(|id| !id.is_empty())
        .ok_or(ConnectorError::Refused {
            call,
            status: 200,
            detail: "no activity id in the answer".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_encode_conversation_ids_and_keep_the_service_path() {
        let s = ServiceUrl::vouched("https://smba.trafficmanager.net/emea/");
        let u = endpoint(
            &s,
            &["v3", "conversations", "19:a b@thread.tacv2", "activities"],
        )
        .unwrap();
        assert_eq!(
            u.as_str(),
            "https://smba.trafficmanager.net/emea/v3/conversations/19:a%20b@thread.tacv2/activities"
        );
        let s = ServiceUrl::vouched("https://x.example/svc");
        let u = endpoint(&s, &["v3", "conversations", "a/b?c#d", "members", "29:1"]).unwrap();
        assert_eq!(
            u.as_str(),
            "https://x.example/svc/v3/conversations/a%2Fb%3Fc%23d/members/29:1"
        );
    }

    #[test]
    fn the_token_goes_only_over_https_or_to_loopback() {
        for ok in [
            "https://a.example/",
            "http://127.0.0.1:9/x",
            "http://localhost/",
        ] {
            assert!(endpoint(&ServiceUrl::vouched(ok), &["v3"]).is_ok(), "{ok}");
        }
        for bad in ["http://a.example/", "ftp://a.example/", "not a url"] {
            assert!(
                matches!(
                    endpoint(&ServiceUrl::vouched(bad), &["v3"]),
                    Err(ConnectorError::InsecureServiceUrl(_))
                ),
                "{bad}"
            );
        }
    }
}
