//! Inbound channel callbacks as an outsider sends them: refused ones are recorded in bounded
//! form (DESIGN invariant 11: unauthenticated input never causes unbounded work or writes),
//! and a replayed one is refused whatever the encoding of its signature.

use crate::support::app::{TestApp, spawn_app_in};
use crate::support::fake_slack::{self, FakeSlack, SIGNING_SECRET};
use crate::support::fake_teams::{
    APP_ID, APP_PASSWORD, APPROVALS, FakeTeams, OTHER_TENANT, TENANT,
};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn config(slack: &FakeSlack, teams: &FakeTeams) -> String {
    format!(
        "channels:\n  slack:\n    bot_token: {}\n    signing_secret: {SIGNING_SECRET}\n    api_base_url: {}\n    notify: [\"#approvals\"]\n  teams:\n    app_id: {APP_ID}\n    app_password: {APP_PASSWORD}\n    tenant_ids: [{TENANT}]\n    openid_metadata_url: {}\n    token_url: {}\n    conversations: {{approvals: \"{APPROVALS}\"}}\n",
        fake_slack::BOT_TOKEN,
        slack.url,
        teams.metadata_url(),
        teams.token_url()
    )
}

/// One kind of refused callback: how to send it, and what the gateway must answer.
#[derive(Clone)]
struct Variant {
    channel: &'static str,
    code: &'static str,
    status: u16,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn variants(teams: &FakeTeams) -> Vec<Variant> {
    let body = fake_slack::form(&json!({"type": "block_actions", "user": {"id": "UBOB"}}));
    let slack = |ts: i64, secret: &str| {
        let ts = ts.to_string();
        vec![
            (
                "content-type",
                "application/x-www-form-urlencoded".to_string(),
            ),
            ("x-slack-signature", fake_slack::sign(secret, &ts, &body)),
            ("x-slack-request-timestamp", ts),
        ]
    };
    let foreign = {
        let mut a = teams.installed(APPROVALS);
        a["conversation"]["tenantId"] = json!(OTHER_TENANT);
        a["channelData"]["tenant"]["id"] = json!(OTHER_TENANT);
        a.to_string()
    };
    let teams_headers = |token: &str| {
        vec![
            ("content-type", "application/json".to_string()),
            ("authorization", format!("Bearer {token}")),
        ]
    };
    vec![
        Variant {
            channel: "slack",
            code: "invalid_signature",
            status: 401,
            path: "/v1/channels/slack/interactions",
            headers: slack(fake_slack::now(), "not-the-secret"),
            body: body.clone(),
        },
        Variant {
            channel: "slack",
            code: "stale_request",
            status: 401,
            path: "/v1/channels/slack/interactions",
            headers: slack(fake_slack::now() - 10 * 60, SIGNING_SECRET),
            body: body.clone(),
        },
        Variant {
            channel: "teams",
            code: "invalid_token",
            status: 401,
            path: "/v1/channels/teams/messages",
            headers: teams_headers("not.a.jwt"),
            body: teams.installed(APPROVALS).to_string(),
        },
        Variant {
            channel: "teams",
            code: "tenant_not_allowed",
            status: 403,
            path: "/v1/channels/teams/messages",
            headers: teams_headers(&teams.token()),
            body: foreign,
        },
    ]
}

async fn send(http: &reqwest::Client, url: &str, v: &Variant) -> (u16, String) {
    let mut req = http.post(format!("{url}{}", v.path)).body(v.body.clone());
    for (name, value) in &v.headers {
        req = req.header(*name, value);
    }
    let r = req.send().await.expect("the gateway answers");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// The `callback.refused` entries of the log, as (channel, code) → counts of each entry.
async fn refused_entries(app: &TestApp) -> BTreeMap<(String, String), Vec<u64>> {
    let mut out: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
    for e in app.audit_events().await {
        if e["event"] == "callback.refused" {
            let d = &e["data"];
            assert!(d["first"].is_string() && d["last"].is_string(), "{e}");
            out.entry((
                d["channel"].as_str().unwrap_or("").to_string(),
                d["code"].as_str().unwrap_or("").to_string(),
            ))
            .or_default()
            .push(d["count"].as_u64().expect("a count"));
        }
    }
    out
}

#[tokio::test]
async fn refused_callbacks_are_recorded_in_bounded_form() {
    const PER_VARIANT: usize = 2_500;
    let (slack, teams) = (FakeSlack::start().await, FakeTeams::start().await);
    let mut app = spawn_app_in(tempfile::tempdir().unwrap(), &config(&slack, &teams)).await;
    let variants = variants(&teams);
    let started = Instant::now();

    // The flood: 10,000 refused callbacks, 64 at a time, from four sources.
    let http = reqwest::Client::new();
    let url = app.url.clone();
    let jobs: Vec<Variant> = (0..PER_VARIANT)
        .flat_map(|_| variants.iter().cloned())
        .collect();
    let flood = tokio::spawn(async move {
        futures::stream::iter(jobs)
            .map(|v| {
                let (http, url) = (http.clone(), url.clone());
                async move {
                    let (status, body) = send(&http, &url, &v).await;
                    assert_eq!(status, v.status, "{}: {body}", v.code);
                    assert!(body.contains(v.code), "{}: {body}", v.code);
                }
            })
            .buffer_unordered(64)
            .collect::<Vec<()>>()
            .await
    });

    // Meanwhile decisions go on: a reviewed request is submitted, approved and redeemed.
    let r = app
        .agent()
        .submit("deploy.app", "k8s://prod/web", json!({"to": "v2"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let vote = app
        .approver("bob")
        .vote(&r.id(), "approve", &r.digest())
        .await;
    assert_eq!(vote.status, StatusCode::OK, "{:?}", vote.body);
    assert_eq!(vote.state(), "approved", "{:?}", vote.body);
    let allowed = app
        .agent()
        .submit("db.query", "postgres://prod/x", json!({"readonly": true}))
        .await;
    assert_eq!(allowed.state(), "approved", "{:?}", allowed.body);

    flood.await.expect("the flood completes");
    let intervals = 2 + started.elapsed().as_secs() / 60;

    // Bounded while it runs: at most one entry per source per minute (and the first at once).
    let during = refused_entries(&app).await;
    for v in &variants {
        let got = during
            .get(&(v.channel.to_string(), v.code.to_string()))
            .map_or(0, Vec::len) as u64;
        assert!(
            (1..=intervals).contains(&got),
            "{} {}: {got} entries",
            v.channel,
            v.code
        );
    }
    assert_eq!(during.len(), variants.len(), "{during:?}");

    // The metric counts every one, by channel and reason.
    let metrics = app.http.get(format!("{}/metrics", app.url)).send().await;
    let metrics = metrics.unwrap().text().await.unwrap();
    for v in &variants {
        let line = format!(
            "countersign_callbacks_refused_total{{channel=\"{}\",reason=\"{}\"}} {PER_VARIANT}",
            v.channel, v.code
        );
        assert!(metrics.contains(&line), "{line} in:\n{metrics}");
    }

    // At shutdown the rest is written: the entries stand for every refusal, and stay few.
    app._running.stop().await.unwrap();
    let after = refused_entries(&app).await;
    for v in &variants {
        let counts = &after[&(v.channel.to_string(), v.code.to_string())];
        assert_eq!(counts.iter().sum::<u64>(), PER_VARIANT as u64, "{counts:?}");
        assert!(counts.len() as u64 <= intervals + 1, "{counts:?}");
    }
    let tenants: Vec<Value> = app
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e["event"] == "callback.refused" && e["data"]["code"] == "tenant_not_allowed")
        .map(|e| e["data"]["tenants"].clone())
        .collect();
    assert!(
        tenants.iter().all(|t| *t == json!([OTHER_TENANT])),
        "{tenants:?}"
    );
}

#[tokio::test]
async fn refused_callbacks_from_a_quiet_source_are_recorded_at_once() {
    let (slack, teams) = (FakeSlack::start().await, FakeTeams::start().await);
    let app = spawn_app_in(tempfile::tempdir().unwrap(), &config(&slack, &teams)).await;
    let http = reqwest::Client::new();
    for v in variants(&teams) {
        for _ in 0..3 {
            let (status, body) = send(&http, &app.url, &v).await;
            assert_eq!(status, v.status, "{body}");
        }
        // The first of each source is in the log before it was answered; the next two wait
        // for the interval.
        let entries = refused_entries(&app).await;
        assert_eq!(
            entries.get(&(v.channel.to_string(), v.code.to_string())),
            Some(&vec![1]),
            "{entries:?}"
        );
    }
}

/// A gateway with Slack, and a request needing two SRE approvals with its Slack message.
async fn slack_world() -> (TestApp, FakeSlack, String, fake_slack::Message) {
    let slack = FakeSlack::start().await;
    let teams = FakeTeams::start().await;
    let app = spawn_app_in(tempfile::tempdir().unwrap(), &config(&slack, &teams)).await;
    let r = app
        .agent()
        .submit("infra.rollback", "k8s://prod/api", json!({"to": "v41"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let m = slack.posted("CAPPROVALS", &r.id()).await;
    (app, slack, r.id(), m)
}

#[tokio::test]
async fn slack_replays_are_refused_in_any_encoding() {
    let (app, slack, id, m) = slack_world().await;
    let body = fake_slack::form(&fake_slack::click_payload("UBOB", "approve", &m));
    let ts = fake_slack::now().to_string();
    let sig = fake_slack::sign(SIGNING_SECRET, &ts, &body);
    let hex = sig.trim_start_matches("v0=").to_string();
    let (status, text) = fake_slack::send_raw(&app.url, &body, &ts, &sig).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.votes(&id).await.is_empty() {
        assert!(Instant::now() < deadline, "bob's click was not counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mixed: String = hex
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 3 == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    // Signatures that verify: acknowledged (Slack retries otherwise) and dropped.
    for replay in [
        sig.clone(),
        format!("v0={}", hex.to_ascii_uppercase()),
        format!("v0={mixed}"),
    ] {
        let (status, text) = fake_slack::send_raw(&app.url, &body, &ts, &replay).await;
        assert_eq!(status, StatusCode::OK, "{replay:?}: {text}");
    }
    // Whitespace around the value (HTTP may strip it): acknowledged or refused, never acted on.
    for replay in [format!("  {sig}  "), format!("\t{sig}"), format!("{sig} ")] {
        let (status, text) = fake_slack::send_raw(&app.url, &body, &ts, &replay).await;
        assert!(
            status == StatusCode::OK || status == StatusCode::UNAUTHORIZED,
            "{replay:?}: {status} {text}"
        );
    }
    // Spellings that do not verify, and the same signature under another spelling of the
    // timestamp: refused outright.
    for (replay_ts, replay) in [
        (ts.clone(), format!("V0={hex}")),
        (ts.clone(), format!("v0= {hex}")),
        (ts.clone(), format!("v0={hex}00")),
        (ts.clone(), format!("v0={}", &hex[..62])),
        (ts.clone(), format!("v1={hex}")),
        (format!("0{ts}"), sig.clone()),
        (format!("+{ts}"), sig.clone()),
        (format!("{ts}.0"), sig.clone()),
    ] {
        let (status, text) = fake_slack::send_raw(&app.url, &body, &replay_ts, &replay).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{replay_ts} {replay:?}: {text}"
        );
    }

    // A fresh click by erin, after the replays, is counted: by then any replay that got
    // through would have voted a second time for bob, and been refused and audited.
    let erin = fake_slack::form(&fake_slack::click_payload("UERIN", "approve", &m));
    let (status, _) =
        fake_slack::send_signed(&app.url, &erin, fake_slack::now(), SIGNING_SECRET).await;
    assert_eq!(status, StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.votes(&id).await.len() < 2 {
        assert!(Instant::now() < deadline, "erin's click was not counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let v = app.votes(&id).await;
    assert_eq!(v.len(), 2, "{v:?}");
    let audit = app.audit_events().await;
    assert!(
        !audit.iter().any(|e| e["event"] == "vote.refused"),
        "a replay was processed again: {audit:?}"
    );
    assert!(
        slack.ephemerals().iter().all(|(_, u, _)| u != "UBOB"),
        "bob was told his replayed vote did not count: {:?}",
        slack.ephemerals()
    );
}
