//! The web console over HTTP, as a browser would use it: a cookie jar, forms with their CSRF
//! tokens, redirects looked at one by one. (The same flows in a real Chromium are in
//! `browser.rs`.)

use crate::support::app::{TestApp, big_export, spawn_app};
use crate::support::console::{Browser, signed_in};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE};
use serde_json::{Value, json};

/// A pending request that one sre approval decides.
async fn pending(app: &TestApp, params: Value) -> (String, String) {
    let r = app
        .agent()
        .submit("db.migrate", "postgres://staging/app", params)
        .await;
    assert_eq!(r.state(), "pending", "{:?}", r.body);
    (r.id(), r.digest())
}

#[tokio::test]
async fn console_sign_in_with_a_key_lists_the_pending_request_and_approves_it_by_form() {
    let app = spawn_app().await;
    let (id, digest) = pending(&app, json!({"version": 42})).await;
    let bob = Browser::new(&app);
    let r = bob.sign_in(&app.keys["user:bob@example.com"]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/console/");
    let cookie = r.set_cookie("countersign_session").unwrap();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/console"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");

    let inbox = bob.get("/console/").await;
    assert_eq!(inbox.status, StatusCode::OK);
    let csp = inbox.headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("default-src 'none'"));
    assert!(!inbox.body.contains("<script>"), "no inline script");
    let mine = &inbox.body
        [inbox.body.find("Waiting for you").unwrap()..inbox.body.find("All requests").unwrap()];
    assert!(mine.contains(&id), "{mine}");
    assert!(mine.contains("1 of sre"), "what is still needed: {mine}");
    assert!(mine.contains("min left"), "time left: {mine}");

    let page = bob.get(&format!("/console/requests/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.field("digest"), digest);
    assert!(page.body.contains("agent:deploy-bot") && page.body.contains("user:alice@example.com"));
    assert!(page.body.contains("request.created"), "timeline");
    let csrf = page.field("csrf");
    let done = bob
        .post(
            &format!("/console/requests/{id}/decide"),
            &[
                ("csrf", &csrf),
                ("digest", &digest),
                ("decision", "approve"),
                ("comment", "looks right"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let r = app
        .approver("carol")
        .get(&format!("/v1/requests/{id}"))
        .await;
    assert_eq!(r.state(), "approved");
    assert_eq!(r.body["votes"][0]["channel"], "console");
    assert_eq!(r.body["votes"][0]["approver"], "user:bob@example.com");
    assert_eq!(r.body["votes"][0]["comment"], "looks right");
    let after = bob.get(&format!("/console/requests/{id}")).await;
    assert!(after.body.contains("vote.cast") && after.body.contains("request.approved"));
    let inbox = bob.get("/console/").await;
    let mine = &inbox.body
        [inbox.body.find("Waiting for you").unwrap()..inbox.body.find("All requests").unwrap()];
    assert!(!mine.contains(&id), "decided requests leave the inbox");
}

#[tokio::test]
async fn console_refuses_a_form_without_its_csrf_token_and_changes_nothing() {
    let app = spawn_app().await;
    let (id, digest) = pending(&app, json!({})).await;
    let bob = signed_in(&app, "bob").await;
    let path = format!("/console/requests/{id}/decide");
    let missing = bob
        .post(&path, &[("digest", &digest), ("decision", "approve")])
        .await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    assert_eq!(missing.error_code(), "csrf_invalid");
    assert!(missing.body.contains("security token"), "{}", missing.body);
    // Erin's token is valid for Erin's session only.
    let erin = signed_in(&app, "erin").await;
    let erins = erin
        .get(&format!("/console/requests/{id}"))
        .await
        .field("csrf");
    let foreign = bob
        .post(
            &path,
            &[
                ("csrf", &erins),
                ("digest", &digest),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    assert_eq!(foreign.error_code(), "csrf_invalid");
    // The sign-in form is protected too (against signing a victim in as someone else).
    let anon = Browser::new(&app);
    let r = anon
        .post(
            "/console/sign-in",
            &[("key", &app.keys["user:bob@example.com"]), ("csrf", "x")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.set_cookie("countersign_session").is_none());
    let r = app.approver("bob").get(&format!("/v1/requests/{id}")).await;
    assert_eq!(r.state(), "pending");
    assert_eq!(r.body["votes"], json!([]));
}

#[tokio::test]
async fn console_without_a_session_redirects_pages_to_sign_in_and_refuses_forms() {
    let app = spawn_app().await;
    let (id, digest) = pending(&app, json!({})).await;
    let anon = Browser::new(&app);
    let r = anon.get(&format!("/console/requests/{id}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        r.location(),
        format!("/console/sign-in?next=%2Fconsole%2Frequests%2F{id}")
    );
    let r = anon
        .post(
            &format!("/console/requests/{id}/decide"),
            &[("csrf", "x"), ("digest", &digest), ("decision", "approve")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.error_code(), "no_session");
    // A forged or tampered cookie is no session.
    anon.jar
        .lock()
        .unwrap()
        .insert("countersign_session".into(), "eyJzaWQiOiJ4In0.AAAA".into());
    assert_eq!(anon.get("/console/").await.status, StatusCode::SEE_OTHER);
    let bob = signed_in(&app, "bob").await;
    let cookie = bob.jar.lock().unwrap()["countersign_session"].clone();
    let (payload, mac) = cookie.split_once('.').unwrap();
    let mut forged: Vec<u8> = payload.bytes().collect();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    anon.jar.lock().unwrap().insert(
        "countersign_session".into(),
        format!("{}.{mac}", String::from_utf8(forged).unwrap()),
    );
    assert_eq!(anon.get("/console/").await.status, StatusCode::SEE_OTHER);
    // A wrong key is refused on the sign-in page, with a reason.
    let r = anon.sign_in("cs_not-a-real-key").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.error_code(), "invalid_key");
    // An agent's key does not open the console.
    let r = Browser::new(&app)
        .sign_in(&app.keys["agent:deploy-bot"])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.error_code(), "people_only");
    // Signing out ends the session.
    let csrf = bob.get("/console/").await.field("csrf");
    let r = bob.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(bob.get("/console/").await.status, StatusCode::SEE_OTHER);
    let r = app.approver("bob").get(&format!("/v1/requests/{id}")).await;
    assert_eq!(r.state(), "pending");
}

#[tokio::test]
async fn console_refuses_self_approval_with_a_readable_message() {
    let app = spawn_app().await;
    let (id, digest) = pending(&app, json!({})).await;
    // Alice owns agent:deploy-bot: she may read the request but not decide it.
    let alice = signed_in(&app, "alice").await;
    let inbox = alice.get("/console/").await;
    let mine = &inbox.body
        [inbox.body.find("Waiting for you").unwrap()..inbox.body.find("All requests").unwrap()];
    assert!(!mine.contains(&id), "not in her inbox");
    let page = alice.get(&format!("/console/requests/{id}")).await;
    assert!(
        page.body.contains("data-refusal=\"self_approval\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("someone else must decide it"));
    let csrf = page.field("csrf");
    let r = alice
        .post(
            &format!("/console/requests/{id}/decide"),
            &[
                ("csrf", &csrf),
                ("digest", &digest),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.error_code(), "self_approval");
    assert!(r.body.contains("someone else must decide it"), "{}", r.body);
    // A digest that is not the request's is refused the same way as over the API.
    let bob = signed_in(&app, "bob").await;
    let csrf = bob
        .get(&format!("/console/requests/{id}"))
        .await
        .field("csrf");
    let other = format!("sha256:{}", "0".repeat(64));
    let r = bob
        .post(
            &format!("/console/requests/{id}/decide"),
            &[("csrf", &csrf), ("digest", &other), ("decision", "approve")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.error_code(), "digest_mismatch");
    let r = bob
        .post(
            &format!("/console/requests/{id}/decide"),
            &[("csrf", &csrf), ("digest", &digest), ("decision", "maybe")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "invalid_form");
    let r = app.approver("bob").get(&format!("/v1/requests/{id}")).await;
    assert_eq!(r.state(), "pending");
    assert_eq!(r.body["votes"], json!([]));
}

#[tokio::test]
async fn console_request_page_masks_secrets_and_filters_the_list() {
    let app = spawn_app().await;
    let (id, _) = pending(
        &app,
        json!({"version": 7, "api_token": "hunter2-very-secret", "note": "<b>bold</b>"}),
    )
    .await;
    let big = app
        .agent()
        .submit("db.export", "postgres://prod/customers", big_export())
        .await;
    let bob = signed_in(&app, "bob").await;
    let page = bob.get(&format!("/console/requests/{id}")).await;
    assert!(!page.body.contains("hunter2-very-secret"));
    assert!(page.body.contains("••••••"));
    assert!(!page.body.contains("<b>bold</b>") && page.body.contains("&lt;b&gt;bold&lt;/b&gt;"));
    assert!(page.body.contains("class=\"j-num\">7<"), "highlighted JSON");
    let list = bob.get("/console/?state=pending&kind=db.export").await;
    let all = &list.body[list.body.find("All requests").unwrap()..];
    assert!(all.contains(&big.id()) && !all.contains(&id), "{all}");
    let list = bob.get("/console/?q=staging").await;
    let all = &list.body[list.body.find("All requests").unwrap()..];
    assert!(all.contains(&id) && !all.contains(&big.id()));
    let list = bob.get("/console/?agent=agent:helper-bot").await;
    let all = &list.body[list.body.find("All requests").unwrap()..];
    assert!(!all.contains(&id) && !all.contains(&big.id()));
    let bad = bob.get("/console/?state=nonsense").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.error_code(), "invalid_query");
    let bad = bob.get("/console/?colour=red").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let missing = bob.get("/console/requests/req_nope").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "not_found");
    // Assets are served with the same policy.
    let css = bob.get("/console/static/console.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.headers.contains_key(CONTENT_SECURITY_POLICY));
}

#[tokio::test]
async fn console_request_page_hears_a_vote_cast_elsewhere() {
    use futures::StreamExt;
    let app = spawn_app().await;
    let (id, digest) = pending(&app, json!({})).await;
    let bob = signed_in(&app, "bob").await;
    let r = reqwest::Client::new()
        .get(format!("{}/console/requests/{id}/events", app.url))
        .header(COOKIE, bob.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut stream = r.bytes_stream();
    let erin = app.approver("erin");
    let approved_id = id.clone();
    let voter = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        erin.vote(&id, "approve", &digest).await
    });
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !seen.contains("event: change") {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("a change event within 10 s")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("data: approved"), "{seen}");
    assert_eq!(voter.await.unwrap().state(), "approved");
    // A closed request's page does not listen any more.
    let page = bob.get(&format!("/console/requests/{}", approved_id)).await;
    assert!(
        !page.body.contains("data-live=\""),
        "closed: no stream: {}",
        &page.body[..page.body.find("<main").unwrap_or(0)]
    );
    // The inbox hears new requests and decisions anywhere.
    let r = reqwest::Client::new()
        .get(format!("{}/console/events", app.url))
        .header(COOKIE, bob.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut inbox = r.bytes_stream();
    let agent = app.agent();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        agent
            .submit("db.migrate", "postgres://staging/app", json!({}))
            .await
    });
    let mut seen = String::new();
    while !seen.contains("event: change") {
        let chunk = tokio::time::timeout_at(deadline, inbox.next())
            .await
            .expect("an inbox change event")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    // Without a session there is no stream.
    let r = reqwest::Client::new()
        .get(format!("{}/console/events", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn console_asks_for_a_one_time_code_on_mfa_rules_and_records_the_second_factor() {
    let app = spawn_app().await;
    let r = app
        .agent()
        .submit("iam.grant", "iam://prod/roles/admin", json!({"user": "x"}))
        .await;
    let (id, digest) = (r.id(), r.digest());
    let carol = signed_in(&app, "carol").await;
    let page = carol.get(&format!("/console/requests/{id}")).await;
    assert!(
        page.body.contains("name=\"otp\""),
        "the form asks for the code"
    );
    let csrf = page.field("csrf");
    let path = format!("/console/requests/{id}/decide");
    let r = carol
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("digest", &digest),
                ("decision", "approve"),
                ("otp", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no code");
    assert_eq!(r.error_code(), "mfa_required");
    let r = carol
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("digest", &digest),
                ("decision", "approve"),
                ("otp", "123456"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "not enrolled yet");
    assert_eq!(r.error_code(), "mfa_not_enrolled");
    assert!(r.body.contains("enrolled"), "{}", r.body);
    let enrolled = carol.post("/console/mfa/totp", &[("csrf", &csrf)]).await;
    assert_eq!(enrolled.status, StatusCode::CREATED, "{}", enrolled.body);
    let uri = {
        let at = enrolled.body.find("data-otpauth=\"").unwrap() + "data-otpauth=\"".len();
        let rest = &enrolled.body[at..];
        rest[..rest.find('"').unwrap()].replace("&amp;", "&")
    };
    let secret = crate::requests::totp_secret(&uri);
    let r = carol
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("digest", &digest),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.error_code(), "mfa_required");
    let r = carol
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("digest", &digest),
                ("decision", "approve"),
                ("otp", "000000"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.error_code() == "mfa_invalid" || r.error_code() == "mfa_reused");
    let code = crate::requests::code(&secret, 0);
    let r = carol
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("digest", &digest),
                ("decision", "approve"),
                ("otp", &code),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let v = app.approver("bob").get(&format!("/v1/requests/{id}")).await;
    assert_eq!(v.state(), "approved");
    assert_eq!(v.body["votes"][0]["mfa"], true);
    assert_eq!(v.body["votes"][0]["mfa_method"], "totp");
    assert_eq!(v.body["votes"][0]["channel"], "console");
    let page = carol.get(&format!("/console/requests/{id}")).await;
    assert!(page.body.contains("second factor verified (totp)"));
    assert!(
        page.body.contains("mfa_method: totp"),
        "the audit entry records the method: {}",
        page.body
    );
}

#[tokio::test]
async fn console_runs_page_pauses_and_resumes_a_run_and_the_audit_page_verifies() {
    let app = spawn_app().await;
    let r = app
        .agent()
        .post(
            "/v1/actions",
            json!({"kind": "db.migrate", "resource": "postgres://staging/app", "params": {}, "run": "run-7"}),
        )
        .await;
    let id = r.id();
    let bob = signed_in(&app, "bob").await;
    let page = bob.get("/console/runs/run-7").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&id));
    let csrf = page.field("csrf");
    let r = bob
        .post("/console/runs/run-7/pause", &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let run = app.approver("bob").get("/v1/runs/run-7").await;
    assert_eq!(run.body["state"], "paused");
    assert!(
        bob.get("/console/runs/run-7")
            .await
            .body
            .contains("r-paused")
    );
    let r = bob.post("/console/runs/run-7/resume", &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no token, no change");
    assert_eq!(
        app.approver("bob").get("/v1/runs/run-7").await.body["state"],
        "paused"
    );
    let r = bob
        .post("/console/runs/run-7/resume", &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.approver("bob").get("/v1/runs/run-7").await.body["state"],
        "active"
    );

    let audit = bob.get("/console/audit?verify=1").await;
    assert_eq!(audit.status, StatusCode::OK);
    assert!(
        audit.body.contains("data-verify=\"intact\""),
        "{}",
        audit.body
    );
    let export = bob.get("/console/audit/entries.jsonl").await;
    assert_eq!(export.status, StatusCode::OK);
    let lines: Vec<&str> = export.body.lines().collect();
    assert!(lines.len() >= 3);
    assert!(lines.iter().any(|l| l.contains("run.changed")));
}
