//! The main flows over HTTP: allow, deny, review with quorum, waiting, expiry, cancel, events,
//! listing, MFA, and the service endpoints.

use crate::support::app::{big_export, spawn_app};
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn policy_allow_deny_and_review_decide_at_submission() {
    let app = spawn_app().await;
    let agent = app.agent();
    let allowed = agent
        .submit(
            "db.query",
            "postgres://prod/customers",
            json!({"readonly": true}),
        )
        .await;
    assert_eq!(allowed.status, StatusCode::CREATED);
    assert_eq!(allowed.state(), "approved");
    assert_eq!(allowed.body["decision"]["effect"], "allow");
    assert!(
        allowed.body["grant"]["id"]
            .as_str()
            .unwrap()
            .starts_with("grt_")
    );
    assert!(allowed.digest().starts_with("sha256:") && allowed.digest().len() == 71);

    let denied = agent
        .submit(
            "db.ddl",
            "postgres://prod/customers",
            json!({"sql": "DROP TABLE users"}),
        )
        .await;
    assert_eq!(denied.state(), "denied");
    assert_eq!(denied.body["decision"]["rule"], "never-drop-in-prod");
    assert_eq!(
        denied.body["decision"]["reason"],
        "Dropping tables in production is never automated."
    );

    let review = agent
        .submit("db.export", "postgres://prod/customers", big_export())
        .await;
    assert_eq!(review.state(), "pending");
    assert_eq!(review.body["decision"]["rule"], "prod-export-needs-two");
    assert_eq!(review.body["remaining"].as_array().unwrap().len(), 2);
    let url = review.body["review_url"].as_str().unwrap();
    assert!(
        url.ends_with(&format!("/console/requests/{}", review.id())),
        "{url}"
    );
    assert!(review.body["expires_at"].is_string());
}

#[tokio::test]
async fn a_waiting_agent_resumes_when_the_last_approval_lands() {
    let app = spawn_app().await;
    let r = app
        .agent()
        .submit("db.export", "postgres://prod/customers", big_export())
        .await;
    let (id, digest) = (r.id(), r.digest());
    let agent = app.agent();
    let waiter = {
        let id = id.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            let r = agent.get(&format!("/v1/requests/{id}?wait=30s")).await;
            (r, t.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.approver("bob").vote(&id, "approve", &digest).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !waiter.is_finished(),
        "one approval of two must not wake the agent as decided"
    );
    app.approver("carol").vote(&id, "approve", &digest).await;
    let (r, waited) = waiter.await.unwrap();
    assert_eq!(r.state(), "approved");
    assert!(waited < Duration::from_secs(10));
}

#[tokio::test]
async fn a_long_poll_returns_pending_when_the_wait_ends() {
    let app = spawn_app().await;
    let r = app
        .agent()
        .submit("db.export", "postgres://prod/customers", big_export())
        .await;
    let got = app
        .agent()
        .get(&format!("/v1/requests/{}?wait=1s", r.id()))
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.state(), "pending");
}

#[tokio::test]
async fn pending_requests_expire_and_are_reported_as_expired_not_denied() {
    let app = spawn_app().await;
    let r = app.agent().submit("test.expire", "x://y", json!({})).await;
    assert_eq!(r.state(), "pending");
    let waited = app
        .agent()
        .get(&format!("/v1/requests/{}?wait=10s", r.id()))
        .await;
    assert_eq!(waited.state(), "expired");
    assert_eq!(waited.body["outcome_code"], "request_expired");
    let v = app
        .approver("bob")
        .vote(&r.id(), "approve", &r.digest())
        .await;
    assert_eq!(v.status, StatusCode::CONFLICT);
    assert_eq!(v.code(), "request_closed");
}

#[tokio::test]
async fn the_requester_can_cancel_and_no_one_else() {
    let app = spawn_app().await;
    let r = app
        .agent()
        .submit("db.export", "postgres://prod/customers", big_export())
        .await;
    let path = format!("/v1/requests/{}/cancel", r.id());
    let not_mine = app.approver("bob").post(&path, json!({})).await;
    assert_eq!(
        (not_mine.status, not_mine.code()),
        (StatusCode::FORBIDDEN, "not_requester")
    );
    let c = app.agent().post(&path, json!({})).await;
    assert_eq!(c.state(), "cancelled");
}

#[tokio::test]
async fn agents_see_only_their_own_requests_people_see_all() {
    let app = spawn_app().await;
    let mine = app
        .agent()
        .submit("db.export", "postgres://prod/customers", big_export())
        .await;
    let other = app
        .as_("agent:helper-bot")
        .submit("db.export", "postgres://prod/x", big_export())
        .await;
    let list = app.agent().get("/v1/requests?state=pending").await;
    let ids: Vec<&str> = list.body["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [mine.id()]);
    let hidden = app
        .agent()
        .get(&format!("/v1/requests/{}", other.id()))
        .await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    let all = app.approver("bob").get("/v1/requests?state=pending").await;
    assert_eq!(all.body["requests"].as_array().unwrap().len(), 2);
    let bad = app.approver("bob").get("/v1/requests?state=maybe").await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::BAD_REQUEST, "invalid_query")
    );
}

#[tokio::test]
async fn events_stream_the_request_until_it_is_decided() {
    let app = spawn_app().await;
    let r = app
        .agent()
        .submit("db.export", "postgres://prod/customers", big_export())
        .await;
    let (id, digest) = (r.id(), r.digest());
    let resp = app
        .http
        .get(format!("{}/v1/requests/{id}/events", app.url))
        .bearer_auth(&app.keys["agent:deploy-bot"])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let reader = tokio::spawn(async move { resp.text().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.approver("bob").vote(&id, "approve", &digest).await;
    app.approver("carol").vote(&id, "approve", &digest).await;
    let text = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the stream ends after the decision")
        .unwrap();
    let states: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| {
            serde_json::from_str::<serde_json::Value>(d).unwrap()["state"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(states.first().map(String::as_str), Some("pending"));
    assert_eq!(states.last().map(String::as_str), Some("approved"));
}

pub fn totp_secret(uri: &str) -> Vec<u8> {
    let secret = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    data_encoding::BASE32_NOPAD
        .decode(secret.as_bytes())
        .unwrap()
}

pub fn code(secret: &[u8], offset_steps: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let step = ((now / 30) + offset_steps) as u64;
    format!("{:06}", countersign_core::mfa::code_at_step(secret, step))
}

#[tokio::test]
async fn mfa_rules_count_only_votes_with_a_verified_second_factor() {
    let app = spawn_app().await;
    let carol = app.approver("carol");
    let r = app
        .agent()
        .submit("iam.grant", "iam://prod/role/admin", json!({"to": "x"}))
        .await;
    let (id, digest) = (r.id(), r.digest());
    let path = format!("/v1/requests/{id}/votes");
    let no_otp = carol.vote(&id, "approve", &digest).await;
    assert_eq!(
        (no_otp.status, no_otp.code()),
        (StatusCode::FORBIDDEN, "mfa_required")
    );
    let not_enrolled = carol
        .post(
            &path,
            json!({"decision": "approve", "digest": digest, "otp": "123456"}),
        )
        .await;
    assert_eq!(not_enrolled.code(), "mfa_not_enrolled");
    let enrolled = carol.post("/v1/mfa/totp", json!({})).await;
    assert_eq!(enrolled.status, StatusCode::CREATED);
    let secret = totp_secret(enrolled.body["otpauth_uri"].as_str().unwrap());
    let wrong = carol
        .post(
            &path,
            json!({"decision": "approve", "digest": digest, "otp": "000000"}),
        )
        .await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (StatusCode::FORBIDDEN, "mfa_invalid")
    );
    let good = code(&secret, 0);
    let ok = carol
        .post(
            &path,
            json!({"decision": "approve", "digest": digest, "otp": good}),
        )
        .await;
    assert_eq!(ok.state(), "approved", "{}", ok.body);
    assert_eq!(ok.body["votes"][0]["mfa"], true);
    // The same code is never accepted twice, even on another request.
    let r2 = app
        .agent()
        .submit("iam.grant", "iam://prod/role/viewer", json!({}))
        .await;
    let again = carol
        .post(
            &format!("/v1/requests/{}/votes", r2.id()),
            json!({"decision": "approve", "digest": r2.digest(), "otp": good}),
        )
        .await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::FORBIDDEN, "mfa_reused")
    );
}

#[tokio::test]
async fn totp_secrets_are_sealed_at_rest() {
    // A copy of the database file does not give away anyone's second factor.
    let app = spawn_app().await;
    let carol = app.approver("carol");
    let enrolled = carol.post("/v1/mfa/totp", json!({})).await;
    assert_eq!(enrolled.status, StatusCode::CREATED);
    let secret = totp_secret(enrolled.body["otpauth_uri"].as_str().unwrap());
    let store = countersign_store::SqliteStore::open_read_only(&app.db_path())
        .await
        .unwrap();
    let carol_id = countersign_core::PrincipalId::parse("user:carol@example.com").unwrap();
    let stored = countersign_store::Store::totp_get(&store, &carol_id)
        .await
        .unwrap()
        .unwrap()
        .secret;
    assert!(stored.starts_with(b"cs1:"), "{stored:?}");
    assert!(
        !stored.windows(secret.len()).any(|w| w == secret.as_slice()),
        "the seed is in the row in clear"
    );
    // And the sealed seed still checks codes (mfa_rules_count_only_votes_… votes with one).
    let r = app
        .agent()
        .submit("iam.grant", "iam://prod/role/admin", json!({}))
        .await;
    let ok = carol
        .post(
            &format!("/v1/requests/{}/votes", r.id()),
            json!({"decision": "approve", "digest": r.digest(), "otp": code(&secret, 0)}),
        )
        .await;
    assert_eq!(ok.state(), "approved", "{}", ok.body);
}

#[tokio::test]
async fn wrong_one_time_codes_are_rate_limited() {
    let app = spawn_app().await;
    let carol = app.approver("carol");
    carol.post("/v1/mfa/totp", json!({})).await;
    let r = app
        .agent()
        .submit("iam.grant", "iam://prod/role/admin", json!({}))
        .await;
    let path = format!("/v1/requests/{}/votes", r.id());
    let mut codes = vec![];
    for _ in 0..7 {
        let v = carol
            .post(
                &path,
                json!({"decision": "approve", "digest": r.digest(), "otp": "000000"}),
            )
            .await;
        codes.push(v.code().to_string());
    }
    assert_eq!(codes[..5], ["mfa_invalid"; 5]);
    assert_eq!(codes[5..], ["mfa_rate_limited"; 2]);
}

#[tokio::test]
async fn service_endpoints_health_metrics_openapi_and_json_404s() {
    let app = spawn_app().await;
    let get = |p: &str| app.http.get(format!("{}{p}", app.url)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), StatusCode::OK);
    let doc: serde_json::Value = get("/v1/openapi.json").await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    // Every documented operation is served (none reaches the router's fallbacks) and has an
    // operation id of its own.
    let paths = doc["paths"].as_object().expect("paths");
    let mut ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().expect("a path item").values())
        .map(|op| op["operationId"].as_str().expect("an operationId"))
        .collect();
    let operations = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), operations, "operation ids repeat: {ids:?}");
    assert!(paths.len() >= 35, "{} paths", paths.len());
    for (path, item) in paths {
        for method in item.as_object().expect("a path item").keys() {
            let url = format!(
                "{}{}",
                app.url,
                path.replace("{id}", "x")
                    .replace("{run}", "x")
                    .replace("{index}", "0")
            );
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let answer = app.http.request(method.clone(), &url).send().await.unwrap();
            let status = answer.status();
            let body = answer.text().await.unwrap_or_default();
            assert!(
                !body.contains("no such endpoint") && status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is documented but not served: {status} {body}"
            );
        }
    }
    app.agent()
        .submit("db.query", "x", json!({"readonly": true}))
        .await;
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("countersign_policy_decisions_total{effect=\"allow\"} 1"),
        "{metrics}"
    );
    let missing = get("/v2/nothing").await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_reloads_on_change_and_an_invalid_file_keeps_the_old_one() {
    let app = spawn_app().await;
    let agent = app.agent();
    let policy = app.dir.path().join("policy.yaml");
    let read = || async {
        agent
            .submit(
                "db.query",
                "postgres://prod/customers",
                json!({"readonly": true}),
            )
            .await
    };
    assert_eq!(read().await.state(), "approved");

    // An edit that refuses reads takes effect without a restart.
    let strict = crate::support::app::TEST_POLICY.replace(
        "when: 'params.readonly == true'\n    effect: allow",
        "when: 'params.readonly == true'\n    effect: deny\n    reason: reads are closed today",
    );
    assert_ne!(strict, crate::support::app::TEST_POLICY);
    std::fs::write(&policy, &strict).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = read().await;
        if r.state() == "denied" {
            assert_eq!(r.body["decision"]["reason"], "reads are closed today");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the edited policy never took effect"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A broken file is refused: the last good policy stays in force.
    std::fs::write(&policy, "version: 1\nrules: [this is not a rule\n").unwrap();
    // A change is loaded once the file has looked the same on two polls 500 ms apart.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(read().await.state(), "denied");
    let metrics = app
        .http
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("policy_reloads") && l.contains("refused")),
        "{metrics}"
    );

    // Replacing the file by a rename (as editors and config managers do) is seen too.
    let next = app.dir.path().join("policy.yaml.new");
    std::fs::write(&next, crate::support::app::TEST_POLICY).unwrap();
    std::fs::rename(&next, &policy).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while read().await.state() != "approved" {
        assert!(
            Instant::now() < deadline,
            "the renamed policy never took effect"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
