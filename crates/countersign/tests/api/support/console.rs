//! The console as a browser uses it over HTTP: a cookie jar, forms with their CSRF tokens,
//! redirects looked at one by one, and signing in with a key.

use super::app::TestApp;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A browser: a client that does not follow redirects, and the cookies the gateway set.
#[derive(Clone)]
pub struct Browser {
    pub url: String,
    http: reqwest::Client,
    pub jar: Arc<Mutex<BTreeMap<String, String>>>,
}

pub struct Page {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    /// The value of the first hidden input named `name`.
    pub fn field(&self, name: &str) -> String {
        let needle = format!("name=\"{name}\" value=\"");
        let at = self
            .body
            .find(&needle)
            .unwrap_or_else(|| panic!("no field {name} in page:\n{}", self.body));
        let rest = &self.body[at + needle.len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }
    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    pub fn error_code(&self) -> &str {
        self.headers
            .get("x-countersign-error")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    /// The raw `Set-Cookie` value for cookie `name`.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_string)
    }
}

impl Browser {
    pub fn new(app: &TestApp) -> Browser {
        Browser::at(&app.url)
    }

    /// A browser on the gateway at `url` (e.g. one the test started as a process).
    pub fn at(url: &str) -> Browser {
        Browser {
            url: url.to_owned(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar: Arc::default(),
        }
    }

    pub fn cookie_header(&self) -> String {
        self.jar
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn keep(&self, r: &reqwest::Response) {
        let mut jar = self.jar.lock().unwrap();
        for v in r.headers().get_all(SET_COOKIE) {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            let (k, val) = pair.split_once('=').unwrap();
            if val.is_empty() || v.contains("Max-Age=0") {
                jar.remove(k);
            } else {
                jar.insert(k.to_string(), val.to_string());
            }
        }
    }

    pub async fn page(&self, r: reqwest::Response) -> Page {
        self.keep(&r);
        Page {
            status: r.status(),
            headers: r.headers().clone(),
            body: r.text().await.unwrap(),
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.page(r).await
    }

    pub async fn get_abs(&self, url: &str) -> Page {
        let r = self
            .http
            .get(url)
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.page(r).await
    }

    pub async fn post_abs(&self, url: &str, form: &[(&str, &str)]) -> Page {
        let r = self
            .http
            .post(url)
            .header(COOKIE, self.cookie_header())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(serde_urlencoded::to_string(form).unwrap())
            .send()
            .await
            .unwrap();
        self.page(r).await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .header(COOKIE, self.cookie_header())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(serde_urlencoded::to_string(form).unwrap())
            .send()
            .await
            .unwrap();
        self.page(r).await
    }

    /// Decides request `id` (`approve` or `deny`) through its page's form; returns the answer.
    pub async fn decide(&self, id: &str, decision: &str) -> Page {
        let page = self.get(&format!("/console/requests/{id}")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let (csrf, digest) = (page.field("csrf"), page.field("digest"));
        self.post(
            &format!("/console/requests/{id}/decide"),
            &[("csrf", &csrf), ("digest", &digest), ("decision", decision)],
        )
        .await
    }

    /// Signs in with an API key through the sign-in form; returns the sign-in answer.
    pub async fn sign_in(&self, key: &str) -> Page {
        let form = self.get("/console/sign-in").await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.body);
        let csrf = form.field("csrf");
        self.post(
            "/console/sign-in",
            &[("csrf", &csrf), ("key", key), ("next", "/console/")],
        )
        .await
    }
}

pub async fn signed_in(app: &TestApp, who: &str) -> Browser {
    let b = Browser::new(app);
    let key = app.keys[&format!("user:{who}@example.com")].clone();
    let r = b.sign_in(&key).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    b
}
