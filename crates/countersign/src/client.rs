//! The HTTP client the CLI uses to talk to the gateway, with the server's errors turned into
//! exit codes: a 4xx is the caller's input (exit 2), anything else a failure (exit 1).

use crate::outcome::Failure;
use countersign_http::wire::ErrorBody;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Result<Self, Failure> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Failure::other(format!("cannot build an HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
        })
    }

    fn token(&self) -> Result<&str, Failure> {
        self.token.as_deref().ok_or_else(|| {
            Failure::usage(
                "no API key: set COUNTERSIGN_TOKEN (see `countersign key create --help`)",
            )
        })
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        timeout: Duration,
    ) -> Result<T, Failure> {
        let req = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(self.token()?)
            .timeout(timeout);
        self.send(req).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, Failure> {
        self.post_within(path, body, Duration::from_secs(30)).await
    }

    /// POSTs `body` and gives up on the answer after `timeout` (for calls that last, like an
    /// execution).
    pub async fn post_within<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<T, Failure> {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(self.token()?)
            .json(body)
            .timeout(timeout);
        self.send(req).await
    }

    /// GETs `path` and returns the body as bytes; with `auth`, sends the API key.
    pub async fn get_bytes(&self, path: &str, auth: bool) -> Result<Vec<u8>, Failure> {
        let mut req = self
            .http
            .get(format!("{}{path}", self.base))
            .timeout(Duration::from_secs(60));
        if auth {
            req = req.bearer_auth(self.token()?);
        }
        let resp = req.send().await.map_err(|e| {
            Failure::other(format!("cannot reach the gateway at {}: {e}", self.base))
        })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Failure::other(format!("the gateway's answer was cut off: {e}")))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        Err(Self::failure(status, &bytes))
    }

    /// The failure a non-2xx answer means.
    fn failure(status: reqwest::StatusCode, bytes: &[u8]) -> Failure {
        let (code, message) = match serde_json::from_slice::<ErrorBody>(bytes) {
            Ok(b) => (b.error.code, b.error.message),
            Err(_) => (
                "http_error".to_string(),
                String::from_utf8_lossy(bytes).into_owned(),
            ),
        };
        let text = format!("{message} ({code}, HTTP {})", status.as_u16());
        if status.is_client_error() {
            Failure::refused(code, text)
        } else {
            Failure::other(text)
        }
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T, Failure> {
        let resp = req.send().await.map_err(|e| {
            Failure::other(format!("cannot reach the gateway at {}: {e}", self.base))
        })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Failure::other(format!("the gateway's answer was cut off: {e}")))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| Failure::other(format!("unexpected answer from the gateway: {e}")));
        }
        Err(Self::failure(status, &bytes))
    }
}
