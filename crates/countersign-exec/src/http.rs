//! `exec.http.<name>`: an HTTP call to one base URL, with headers (credentials) the agent never
//! sees.
//!
//! The action: `kind: exec.http.<name>`, `resource`: the full URL without its query (the base
//! URL and the path), `params: {method, path, query?, headers?, body?}`.
//!
//! **Invariant (a call stays under its base URL):** [`HttpExecutor::target`] is the one place
//! that turns a path into a URL. A path is accepted only if it starts with one `/`, holds no
//! scheme, host, backslash, control character, `?`, `#`, dot segment (`.`, `..`, in any
//! percent-encoding) or encoded slash, and the URL it makes has the base URL's origin and
//! starts with its path. Redirects are followed only within the same bounds.
//!
//! Response headers are shown only from a fixed list ([`SHOWN_HEADERS`]): a header that may
//! carry a credential (`Set-Cookie`, `Authorization`, an API key) never reaches the record.

use crate::invalid;
use crate::output::Capture;
use crate::secret::Resolver;
use countersign_app::executors::{Checked, ExecRefusal, ExecutorInfo};
use countersign_core::{Action, ExecStatus, HttpOutcome, Outcome};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub base_url: String,
    /// Sent with every call; values may hold secret references.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The methods allowed; anything else is refused.
    #[serde(default = "default_methods")]
    pub methods: Vec<String>,
    #[serde(default = "default_timeout", deserialize_with = "crate::duration")]
    pub timeout: Duration,
    #[serde(default = "default_max_response", deserialize_with = "crate::size")]
    pub max_response_bytes: u64,
}

fn default_methods() -> Vec<String> {
    vec!["GET".into()]
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_max_response() -> u64 {
    10 * 1024 * 1024
}

/// The response headers an outcome shows (lower-case); every other header is dropped.
pub const SHOWN_HEADERS: &[&str] = &[
    "cache-control",
    "content-encoding",
    "content-language",
    "content-length",
    "content-type",
    "date",
    "etag",
    "expires",
    "last-modified",
    "link",
    "location",
    "request-id",
    "retry-after",
    "vary",
    "x-github-request-id",
    "x-request-id",
];

/// Response headers with this prefix are shown too (rate-limit counters).
const SHOWN_PREFIX: &str = "x-ratelimit-";

/// Request headers an action may not set: the connection's own, and the credentials'.
const REFUSED_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "content-length",
    "cookie",
    "host",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

pub struct HttpExecutor {
    name: String,
    base: url::Url,
    /// The base URL as resources start with it (no trailing `/`).
    base_text: String,
    headers: HeaderMap,
    methods: Vec<reqwest::Method>,
    timeout: Duration,
    max_response_bytes: u64,
    client: reqwest::Client,
}

/// An accepted call.
struct Call {
    method: reqwest::Method,
    url: url::Url,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
}

impl HttpExecutor {
    pub fn build(name: &str, c: &HttpConfig, r: &mut Resolver) -> Result<Self, String> {
        let base = url::Url::parse(&c.base_url)
            .map_err(|e| format!("`base_url` {:?} is not a URL: {e}", c.base_url))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err("`base_url` must be an http(s) URL with a host".into());
        }
        if base.query().is_some() || base.fragment().is_some() || !base.username().is_empty() {
            return Err("`base_url` may not carry a query, a fragment or credentials".into());
        }
        let base_text = base.as_str().trim_end_matches('/').to_owned();
        let mut headers = HeaderMap::new();
        for (k, v) in &c.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("`headers`: {k:?} is not a header name"))?;
            let value = r.resolve(v).map_err(|e| format!("`headers.{k}`: {e}"))?;
            let mut value = HeaderValue::from_str(&value)
                .map_err(|_| format!("`headers.{k}`: its value is not a header value"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let mut methods = vec![];
        for m in &c.methods {
            let method = reqwest::Method::from_bytes(m.as_bytes())
                .ok()
                .filter(|_| m.bytes().all(|b| b.is_ascii_uppercase()))
                .ok_or_else(|| format!("`methods`: {m:?} is not an upper-case HTTP method"))?;
            methods.push(method);
        }
        if methods.is_empty() {
            return Err("`methods` is empty: name the methods agents may use".into());
        }
        if c.timeout.is_zero() || c.max_response_bytes == 0 {
            return Err("`timeout` and `max_response_bytes` must be above zero".into());
        }
        let origin = base.origin();
        let base_path = base.path().trim_end_matches('/').to_owned();
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            let url = attempt.url();
            if attempt.previous().len() >= 5
                || url.origin() != origin
                || !under(url.path(), &base_path)
            {
                attempt.stop()
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::Client::builder()
            .redirect(policy)
            .timeout(c.timeout)
            .connect_timeout(c.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(HttpExecutor {
            name: name.to_owned(),
            base,
            base_text,
            headers,
            methods,
            timeout: c.timeout,
            max_response_bytes: c.max_response_bytes,
            client,
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The URL `path` names under the base URL, or why it may not (the invariant above).
    pub fn target(&self, path: &str) -> Result<url::Url, ExecRefusal> {
        let bad = |why: &str| invalid("path", format!("{path:?} {why}"));
        if !path.starts_with('/') || path.starts_with("//") {
            return Err(bad("must start with a single `/`"));
        }
        if path.len() > 4096 {
            return Err(bad("is longer than 4096 bytes"));
        }
        if path
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '\\' | '?' | '#'))
        {
            return Err(bad(
                "may not hold spaces, control characters, `\\`, `?` or `#` (put the query in `query`)",
            ));
        }
        for segment in path.split('/').skip(1) {
            let decoded = decode_fully(segment);
            if decoded == "." || decoded == ".." {
                return Err(bad("may not hold `.` or `..` segments, however encoded"));
            }
            if decoded.contains(['/', '\\']) {
                return Err(bad("may not hold an encoded `/` or `\\`"));
            }
        }
        let text = format!("{}{path}", self.base_text);
        let url = url::Url::parse(&text).map_err(|_| bad("does not make a URL"))?;
        if url.origin() != self.base.origin()
            || !under(url.path(), self.base.path().trim_end_matches('/'))
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(bad("leaves the base URL"));
        }
        Ok(url)
    }

    /// The resource an action with `path` must name: the base URL and the path.
    pub fn resource(&self, path: &str) -> String {
        format!("{}{path}", self.base_text)
    }

    fn call(&self, action: &Action) -> Result<Call, ExecRefusal> {
        let Some(params) = action.params.as_object() else {
            return Err(invalid("params", "must be an object {method, path, ...}"));
        };
        for key in params.keys() {
            if !matches!(
                key.as_str(),
                "method" | "path" | "query" | "headers" | "body"
            ) {
                return Err(invalid(
                    key,
                    "is not a parameter of an HTTP executor (method, path, query, headers, body)",
                ));
            }
        }
        let method_text = params
            .get("method")
            .and_then(|m| m.as_str())
            .ok_or_else(|| invalid("method", "is required: a string like GET"))?;
        let method = self
            .methods
            .iter()
            .find(|m| m.as_str() == method_text)
            .cloned()
            .ok_or_else(|| {
                let allowed: Vec<&str> = self.methods.iter().map(|m| m.as_str()).collect();
                invalid(
                    "method",
                    format!(
                        "{method_text:?} is not allowed; executor {} allows {}",
                        self.name,
                        allowed.join(", ")
                    ),
                )
            })?;
        let path = params
            .get("path")
            .and_then(|p| p.as_str())
            .ok_or_else(|| invalid("path", "is required: a string starting with `/`"))?;
        let mut url = self.target(path)?;
        let resource = self.resource(path);
        if action.resource != resource {
            return Err(invalid(
                "resource",
                format!("must be {resource:?} (the base URL and the path)"),
            ));
        }
        match params.get("query") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Object(q)) => {
                let mut pairs = url.query_pairs_mut();
                for (k, v) in q {
                    let v = scalar(v).ok_or_else(|| {
                        invalid(
                            "query",
                            format!("`{k}` must be a string, number or boolean"),
                        )
                    })?;
                    pairs.append_pair(k, &v);
                }
                drop(pairs);
                if url.query() == Some("") {
                    url.set_query(None);
                }
            }
            Some(_) => return Err(invalid("query", "must be an object of strings")),
        }
        let mut headers = self.headers.clone();
        match params.get("headers") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Object(h)) => {
                for (k, v) in h {
                    let name = HeaderName::from_bytes(k.as_bytes())
                        .map_err(|_| invalid("headers", format!("{k:?} is not a header name")))?;
                    if REFUSED_HEADERS.contains(&name.as_str())
                        || name.as_str().starts_with("proxy-")
                        || self.headers.contains_key(&name)
                    {
                        return Err(invalid(
                            "headers",
                            format!("`{name}` is set by the gateway, not by the action"),
                        ));
                    }
                    let value = v
                        .as_str()
                        .and_then(|v| HeaderValue::from_str(v).ok())
                        .ok_or_else(|| {
                            invalid("headers", format!("`{k}` must be a header value string"))
                        })?;
                    headers.insert(name, value);
                }
            }
            Some(_) => return Err(invalid("headers", "must be an object of strings")),
        }
        let body = match params.get("body") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone().into_bytes()),
            Some(v) => {
                if !headers.contains_key(reqwest::header::CONTENT_TYPE) {
                    headers.insert(
                        reqwest::header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                }
                Some(serde_json::to_vec(v).map_err(|e| invalid("body", e.to_string()))?)
            }
        };
        Ok(Call {
            method,
            url,
            headers,
            body,
        })
    }

    pub fn check(&self, action: &Action) -> Result<Checked, ExecRefusal> {
        self.call(action)?;
        Ok(Checked {
            executor: self.name.clone(),
            timeout: self.timeout,
            facts: vec![],
        })
    }

    pub async fn run(&self, action: &Action) -> Outcome {
        let started = Instant::now();
        let call = match self.call(action) {
            Ok(c) => c,
            Err(e) => return Outcome::with_error(ExecStatus::Failed, e.to_string()),
        };
        let mut request = self
            .client
            .request(call.method, call.url)
            .headers(call.headers);
        if let Some(body) = call.body {
            request = request.body(body);
        }
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                // Nothing was sent when the connection failed; otherwise the upstream may
                // have acted on it.
                let status = if e.is_connect() || e.is_builder() {
                    ExecStatus::Failed
                } else {
                    ExecStatus::Unknown
                };
                let mut o = Outcome::with_error(status, describe(&e));
                o.duration_ms = millis(started);
                return o;
            }
        };
        let status = response.status();
        let headers = shown_headers(response.headers());
        let mut capture = Capture::default();
        let mut error = None;
        let mut over = false;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = self.max_response_bytes.saturating_sub(capture.bytes());
                    if chunk.len() as u64 > room {
                        capture.push(&chunk[..room as usize]);
                        over = true;
                        break;
                    }
                    capture.push(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(format!("the response body broke off: {}", describe(&e)));
                    break;
                }
            }
        }
        let captured = capture.finish();
        let ok = status.is_success();
        let mut o = Outcome::with_status(if ok {
            ExecStatus::Succeeded
        } else {
            ExecStatus::Failed
        });
        o.duration_ms = millis(started);
        o.bytes = captured.bytes;
        o.output_sha256 = Some(captured.sha256);
        o.truncated = captured.cut || over;
        if over {
            error.get_or_insert_with(|| {
                format!(
                    "the response is longer than max_response_bytes ({}); the rest was not read",
                    self.max_response_bytes
                )
            });
        } else if !ok {
            error.get_or_insert_with(|| format!("the upstream answered HTTP {}", status.as_u16()));
        }
        o.error = error;
        o.http = Some(HttpOutcome {
            status: status.as_u16(),
            headers,
            body: captured.copy,
        });
        o
    }

    pub fn info(&self) -> ExecutorInfo {
        let methods: Vec<&str> = self.methods.iter().map(|m| m.as_str()).collect();
        ExecutorInfo {
            name: self.name.clone(),
            kind: format!("exec.http.{}", self.name),
            description: format!(
                "An HTTP call to {} ({}) made by the gateway with its own credentials",
                self.base_text,
                methods.join(", ")
            ),
            params_schema: serde_json::json!({
                "type": "object",
                "properties": {
                    "method": {"type": "string", "enum": methods},
                    "path": {"type": "string", "pattern": "^/", "description": format!("The path under {}", self.base_text)},
                    "query": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
                    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                    "body": {"description": "A JSON value (sent as application/json) or a string (sent as is)"}
                },
                "required": ["method", "path"],
                "additionalProperties": false
            }),
            resource: self.base_text.clone(),
        }
    }
}

/// Whether `path` is `base` or below it (`base` has no trailing `/`).
fn under(path: &str, base: &str) -> bool {
    base.is_empty()
        || path == base
        || path
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// `segment` percent-decoded until it no longer changes (so `%252e` is a dot too).
fn decode_fully(segment: &str) -> String {
    let mut current = segment.to_owned();
    for _ in 0..4 {
        let next: String =
            url::form_urlencoded::parse(format!("x={}", current.replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
        if next == current {
            break;
        }
        current = next;
    }
    current
}

fn scalar(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn shown_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .iter()
        .filter(|(k, _)| {
            SHOWN_HEADERS.contains(&k.as_str()) || k.as_str().starts_with(SHOWN_PREFIX)
        })
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect()
}

/// An error's sentence, without the URL's query (which the record keeps elsewhere).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_redirect() {
        "too many redirects"
    } else {
        "failed"
    };
    match std::error::Error::source(e) {
        Some(source) => format!("the call {kind}: {source}"),
        None => format!("the call {kind}"),
    }
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
