//! Console sign-in through a real OpenID Connect provider: the npm `oidc-provider` package
//! (`tests/peers/oidc_provider.mjs`) on an ephemeral loopback port, driven like a browser:
//! the gateway's redirect, the provider's login and consent forms, the callback.

use crate::support::app::{TestApp, big_export, free_port, spawn_app_editing};
use crate::support::console::{Browser, Page};
use reqwest::StatusCode;
use std::path::PathBuf;
use tokio::io::AsyncBufReadExt;

pub struct Idp {
    pub issuer: String,
    _child: tokio::process::Child,
}

pub fn peers() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers")
}

/// Starts the provider for a gateway on `port`, with a groups claim for some accounts.
pub async fn start_idp(port: u16, groups: &str) -> Idp {
    assert!(
        peers().join("node_modules/oidc-provider").exists(),
        "oidc-provider is not installed: run `npm ci --prefix tests/peers`"
    );
    let mut child = tokio::process::Command::new("node")
        .arg(peers().join("oidc_provider.mjs"))
        .arg(format!("http://127.0.0.1:{port}/console/oidc/callback"))
        .arg("countersign")
        .arg("test-client-secret")
        .arg(groups)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
        .await
        .expect("the provider starts within 20 s")
        .unwrap()
        .expect("the provider prints its issuer");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    Idp {
        issuer: v["issuer"].as_str().unwrap().to_string(),
        _child: child,
    }
}

/// A gateway on `port` whose console signs in through `idp`.
pub async fn spawn_with_idp(port: u16, idp: &Idp, extra: &str) -> TestApp {
    let issuer = idp.issuer.clone();
    let extra = extra.to_string();
    spawn_app_editing(move |text| {
        format!(
            "{}\npublic_url: http://127.0.0.1:{port}\nconsole:\n  oidc:\n    issuer: {issuer}\n    client_id: countersign\n    client_secret: test-client-secret\n    groups_claim: groups\n    scopes: [groups]\n{extra}",
            text.replace("listen: 127.0.0.1:0", &format!("listen: 127.0.0.1:{port}"))
        )
    })
    .await
}

fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http") {
        location.to_string()
    } else {
        format!("{base}{location}")
    }
}

fn form_action(page: &Page) -> String {
    let at = page.body.find("action=\"").expect("a form") + "action=\"".len();
    let rest = &page.body[at..];
    rest[..rest.find('"').unwrap()].replace("&amp;", "&")
}

/// Signs `login` in through the provider; returns the gateway's answer to the callback.
pub async fn oidc_sign_in(browser: &Browser, idp: &Idp, login: &str) -> Page {
    let start = browser.get("/console/oidc/start?next=%2Fconsole%2F").await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.body);
    let to = start.location().to_string();
    assert!(to.starts_with(&format!("{}/auth?", idp.issuer)), "{to}");
    for needed in [
        "code_challenge=",
        "code_challenge_method=S256",
        "state=",
        "nonce=",
        "response_type=code",
    ] {
        assert!(to.contains(needed), "{needed} in {to}");
    }
    let mut url = to;
    for _ in 0..20 {
        if url.starts_with(&browser.url) {
            return browser.get(&url[browser.url.len()..]).await;
        }
        let page = browser.get_abs(&url).await;
        if page.status.is_redirection() {
            url = absolute(&idp.issuer, page.location());
            continue;
        }
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let action = absolute(&idp.issuer, &form_action(&page));
        let answer = if page.body.contains("name=\"login\"") {
            browser
                .post_abs(
                    &action,
                    &[("prompt", "login"), ("login", login), ("password", "any")],
                )
                .await
        } else {
            browser.post_abs(&action, &[("prompt", "consent")]).await
        };
        assert!(answer.status.is_redirection(), "{}", answer.body);
        url = absolute(&idp.issuer, answer.location());
    }
    panic!("the provider never sent the browser back");
}

#[tokio::test]
async fn console_signs_in_through_an_openid_provider_with_pkce_and_groups_from_the_claim() {
    let port = free_port();
    let idp = start_idp(port, r#"{"zed@example.com": ["security"]}"#).await;
    let app = spawn_with_idp(port, &idp, "").await;
    let r = app
        .agent()
        .submit("db.export", "postgres://prod/customers", big_export())
        .await;
    let (id, digest) = (r.id(), r.digest());

    // zed is not in the directory: the provider's groups claim makes zed a security approver.
    let zed = Browser::new(&app);
    let signed = oidc_sign_in(&zed, &idp, "zed@example.com").await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    assert_eq!(signed.location(), "/console/");
    let cookie = signed.set_cookie("countersign_session").unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    let inbox = zed.get("/console/").await;
    assert_eq!(inbox.status, StatusCode::OK);
    assert!(inbox.body.contains("zed@example.com"));
    let mine = &inbox.body
        [inbox.body.find("Waiting for you").unwrap()..inbox.body.find("All requests").unwrap()];
    assert!(mine.contains(&id), "{mine}");
    let csrf = zed
        .get(&format!("/console/requests/{id}"))
        .await
        .field("csrf");
    let done = zed
        .post(
            &format!("/console/requests/{id}/decide"),
            &[
                ("csrf", &csrf),
                ("digest", &digest),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let v = app.approver("bob").get(&format!("/v1/requests/{id}")).await;
    assert_eq!(v.body["votes"][0]["approver"], "user:zed@example.com");
    assert_eq!(v.body["votes"][0]["channel"], "console");

    // bob is in the directory: his configured groups (sre) apply; his vote completes quorum.
    let bob = Browser::new(&app);
    assert_eq!(
        oidc_sign_in(&bob, &idp, "Bob@Example.com").await.status,
        StatusCode::SEE_OTHER
    );
    let csrf = bob
        .get(&format!("/console/requests/{id}"))
        .await
        .field("csrf");
    let done = bob
        .post(
            &format!("/console/requests/{id}/decide"),
            &[
                ("csrf", &csrf),
                ("digest", &digest),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        app.approver("bob")
            .get(&format!("/v1/requests/{id}"))
            .await
            .state(),
        "approved"
    );

    // With an identity provider, the key form is off unless configured on.
    let anon = Browser::new(&app);
    let form = anon.get("/console/sign-in").await;
    assert!(form.body.contains("/console/oidc/start") && !form.body.contains("name=\"key\""));
}

#[tokio::test]
async fn console_refuses_a_callback_that_is_not_its_own_sign_in() {
    let port = free_port();
    let idp = start_idp(port, "{}").await;
    let app = spawn_with_idp(port, &idp, "").await;
    // No flow cookie: not started from this browser.
    let anon = Browser::new(&app);
    let r = anon.get("/console/oidc/callback?code=abc&state=xyz").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.error_code(), "oidc_state_missing");
    // A started flow, answered with another state.
    let b = Browser::new(&app);
    assert_eq!(
        b.get("/console/oidc/start").await.status,
        StatusCode::SEE_OTHER
    );
    let r = b
        .get("/console/oidc/callback?code=abc&state=not-the-state")
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.error_code(), "oidc_state_mismatch");
    assert!(r.set_cookie("countersign_session").is_none());
    // The flow cookie is single use: it was cleared by that callback.
    let r = b
        .get("/console/oidc/callback?code=abc&state=whatever")
        .await;
    assert_eq!(r.error_code(), "oidc_state_missing");
    // A provider that says the email is unverified signs no one in.
    let u = Browser::new(&app);
    let r = oidc_sign_in(&u, &idp, "unverified@example.com").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(r.error_code(), "oidc_email_unverified");
    assert_eq!(u.get("/console/").await.status, StatusCode::SEE_OTHER);
}
