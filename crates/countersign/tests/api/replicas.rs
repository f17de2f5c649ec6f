//! Several replicas on one PostgreSQL database behave as one gateway (issue 20): what one
//! replica commits wakes the waiters of the others at once (`LISTEN/NOTIFY`), not at their
//! 15-second re-read, including after the listening connection was cut. Real binaries, a fresh
//! database per run; skipped (with a note) without `COUNTERSIGN_TEST_POSTGRES_URL`.

use crate::cli::{Server, serve};
use crate::postgres::world_on_postgres;
use crate::support::app::{As, write_world};
use futures::StreamExt as _;
use reqwest::StatusCode;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Well under the waiters' 15-second re-read: an answer this soon came from a notification.
const SOONER_THAN_THE_BACKSTOP: Duration = Duration::from_secs(8);

/// `n` replicas on a fresh database, sharing one folder (config, policy, audit key): the
/// database URL, the replicas, the keys, and the folder.
async fn replicas(
    n: usize,
    extra: &str,
) -> Option<(
    String,
    Vec<Server>,
    std::collections::HashMap<String, String>,
    tempfile::TempDir,
)> {
    let dir = tempfile::tempdir().unwrap();
    let (config, database) = world_on_postgres(&dir).await?;
    let text = std::fs::read_to_string(&config).unwrap() + extra;
    std::fs::write(&config, text).unwrap();
    let first = serve(&config, 8);
    let keys = first.keys.clone();
    let mut all = vec![first];
    for _ in 1..n {
        all.push(serve(&config, 0));
    }
    Some((database, all, keys, dir))
}

async fn pending_export(agent: &As, rows: u64) -> (String, String) {
    let r = agent
        .submit("db.export", "postgres://staging/x", json!({"rows": rows}))
        .await;
    assert_eq!(r.state(), "pending", "{}", r.body);
    (r.id(), r.digest())
}

/// Long-polls request `id` on `replica` (at most 60 s); returns its state and how long it took.
fn long_poll(replica: As, id: String) -> tokio::task::JoinHandle<(String, Duration)> {
    tokio::spawn(async move {
        let started = Instant::now();
        let r = replica.get(&format!("/v1/requests/{id}?wait=60s")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        (r.state().to_owned(), started.elapsed())
    })
}

async fn kill_listeners(database: &str) -> u64 {
    use sqlx::{ConnectOptions as _, Connection as _};
    let options: sqlx::postgres::PgConnectOptions = database.parse().unwrap();
    let mut conn = options.connect().await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    conn.close().await.ok();
    killed.len() as u64
}

/// A webhook receiver that keeps the `webhook-id` of every delivery.
struct Hook {
    url: String,
    delivered: Arc<Mutex<Vec<String>>>,
}

impl Hook {
    async fn start() -> Hook {
        let delivered = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = delivered.clone();
        let receiver = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap| {
                let seen = seen.clone();
                async move {
                    let id = headers["webhook-id"].to_str().unwrap().to_owned();
                    seen.lock().unwrap().push(id);
                    StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, receiver).await });
        Hook { url, delivered }
    }

    /// Waits (up to 30 s) until every entry of the log, as `reader` reads it from `gateway`,
    /// was delivered, and checks none was delivered twice.
    async fn got_every_entry_once(&self, gateway: &str, reader: &str) {
        let total = As::new(gateway, reader).audit_entries().await.len();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.delivered.lock().unwrap().clone();
            let distinct: std::collections::BTreeSet<&String> = got.iter().collect();
            if distinct.len() >= total {
                assert_eq!(got.len(), distinct.len(), "no entry delivered twice");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {total} entries delivered",
                distinct.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_wake_each_others_waiters_when_they_commit() {
    let hook = Hook::start().await;
    let webhook = format!("audit:\n  webhooks:\n    - {{url: '{}'}}\n", hook.url);
    let Some((database, servers, keys, dir)) = replicas(2, &webhook).await else {
        return;
    };
    let (a, b) = (&servers[0], &servers[1]);
    let agent_on_a = As::new(&a.url, &keys["agent:deploy-bot"]);
    let agent_on_b = As::new(&b.url, &keys["agent:deploy-bot"]);
    let bob_on_a = As::new(&a.url, &keys["user:bob@example.com"]);

    // Both run the same policy, and say which.
    let health = |url: String| async move {
        let r = reqwest::get(format!("{url}/healthz")).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let body: serde_json::Value = r.json().await.unwrap();
        body["policy"].as_str().unwrap_or_default().to_owned()
    };
    let policy = health(a.url.clone()).await;
    assert!(!policy.is_empty());
    assert_eq!(health(b.url.clone()).await, policy);

    // A long-poll on B for a request submitted on A, decided on A.
    let (id, digest) = pending_export(&agent_on_a, 10).await;
    let waiting = long_poll(agent_on_b.clone(), id.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let vote = bob_on_a.vote(&id, "approve", &digest).await;
    assert_eq!(vote.status, StatusCode::OK, "{}", vote.body);
    let (state, took) = waiting.await.unwrap();
    assert_eq!(state, "approved");
    assert!(
        took < SOONER_THAN_THE_BACKSTOP,
        "woken by A's commit: {took:?}"
    );

    // B's audit stream shows what A records.
    let bob_on_b = reqwest::Client::new()
        .get(format!("{}/v1/audit/stream", b.url))
        .bearer_auth(&keys["user:bob@example.com"])
        .send()
        .await
        .unwrap();
    let mut events = bob_on_b.bytes_stream();
    let (later, _) = pending_export(&agent_on_a, 11).await;
    let seen = tokio::time::timeout(SOONER_THAN_THE_BACKSTOP, async {
        let mut text = String::new();
        while let Some(chunk) = events.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if text.contains(&later) {
                return text;
            }
        }
        text
    })
    .await
    .expect("B's audit stream showed the entry A wrote");
    assert!(seen.contains("request.created"), "{seen}");

    // The listening connections cut: each replica listens again and re-reads, so a decision
    // made meanwhile still wakes the waiter on the other.
    let (id, digest) = pending_export(&agent_on_b, 12).await;
    let waiting = long_poll(agent_on_b.clone(), id.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(kill_listeners(&database).await >= 2, "both replicas listen");
    let vote = bob_on_a.vote(&id, "approve", &digest).await;
    assert_eq!(vote.status, StatusCode::OK, "{}", vote.body);
    let (state, took) = waiting.await.unwrap();
    assert_eq!(state, "approved");
    assert!(
        took < SOONER_THAN_THE_BACKSTOP,
        "woken after listening again: {took:?}"
    );
    // And later commits are heard again.
    let (id, digest) = pending_export(&agent_on_a, 13).await;
    let waiting = long_poll(agent_on_b.clone(), id.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let vote = bob_on_a.vote(&id, "deny", &digest).await;
    assert_eq!(vote.status, StatusCode::OK, "{}", vote.body);
    let (state, took) = waiting.await.unwrap();
    assert_eq!(state, "denied");
    assert!(took < SOONER_THAN_THE_BACKSTOP, "{took:?}");

    // A changed policy file: both replicas load it and say so.
    let path = dir.path().join("policy.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{text}\n# changed\n")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (on_a, on_b) = (health(a.url.clone()).await, health(b.url.clone()).await);
        if on_a != policy && on_a == on_b {
            break;
        }
        assert!(Instant::now() < deadline, "policy {on_a} on A, {on_b} on B");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The webhook got every entry once, though both replicas deliver it (one at a time).
    hook.got_every_entry_once(&b.url, &keys["user:bob@example.com"])
        .await;
    drop(servers);
}

/// A PostgreSQL server of the test's own (a fresh cluster in a temporary folder), so it can be
/// restarted without touching the server other tests use. `None` (with a note) where the
/// server's programs are not installed.
struct PrivatePostgres {
    bin: std::path::PathBuf,
    data: std::path::PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PrivatePostgres {
    fn start() -> Option<PrivatePostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .find(|b| b.join("initdb").exists())
            .or_else(|| {
                eprintln!("note: no PostgreSQL server programs; skipping this test");
                None
            })?;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let pg = PrivatePostgres {
            bin,
            data,
            port: crate::support::app::free_port(),
            _dir: dir,
        };
        // initdb refuses root: as root, the cluster belongs to the `postgres` user.
        let _ = std::process::Command::new("chown")
            .args(["-R", "postgres"])
            .arg(pg._dir.path())
            .status();
        let init = format!(
            "{} -D {} -A trust -U postgres",
            pg.bin.join("initdb").display(),
            pg.data.display()
        );
        assert!(pg.run(&init), "initdb");
        assert!(pg.ctl("start"), "pg_ctl start");
        Some(pg)
    }

    /// Runs `command` as the cluster's owner (the `postgres` user when we are root).
    fn run(&self, command: &str) -> bool {
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let mut cmd = if root {
            let mut c = std::process::Command::new("su");
            c.args(["postgres", "-c", command]);
            c
        } else {
            let mut c = std::process::Command::new("sh");
            c.args(["-c", command]);
            c
        };
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn ctl(&self, action: &str) -> bool {
        self.run(&format!(
            "{} -D {} -m fast -w -o '-p {} -k {}' -l {}/log {action}",
            self.bin.join("pg_ctl").display(),
            self.data.display(),
            self.port,
            self._dir.path().display(),
            self._dir.path().display(),
        ))
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.ctl("stop");
    }
}

/// PostgreSQL restarting under load: requests fail cleanly (503 `storage_unavailable`, never a
/// wrong answer), the replicas recover by themselves, every acknowledged action is there, and
/// the log verifies.
#[tokio::test(flavor = "multi_thread")]
async fn replicas_fail_cleanly_while_postgresql_restarts_and_recover() {
    if std::env::var("COUNTERSIGN_TEST_POSTGRES_URL").is_err() {
        eprintln!("note: COUNTERSIGN_TEST_POSTGRES_URL is not set; skipping this PostgreSQL test");
        return;
    }
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = write_world(&dir, 0);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "database: countersign.db",
        &format!("database: '{}'", pg.url()),
    );
    std::fs::write(&config, text).unwrap();
    let first = serve(&config, 8);
    let keys = first.keys.clone();
    let servers = [first, serve(&config, 0)];
    let agents: Vec<As> = servers
        .iter()
        .map(|s| As::new(&s.url, &keys["agent:deploy-bot"]))
        .collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = vec![];
    for (n, agent) in agents.iter().cycle().take(4).enumerate() {
        let (agent, stop) = (agent.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let (mut acked, mut unavailable) = (vec![], 0);
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let r = agent
                    .submit(
                        "db.query",
                        &format!("postgres://x/{n}/{i}"),
                        json!({"readonly": true}),
                    )
                    .await;
                match r.status.as_u16() {
                    200 | 201 => {
                        assert_eq!(r.state(), "approved", "{}", r.body);
                        acked.push(r.id());
                    }
                    503 => {
                        assert_eq!(r.code(), "storage_unavailable", "{}", r.body);
                        unavailable += 1;
                    }
                    other => panic!(
                        "a wrong answer while PostgreSQL restarts: {other} {}",
                        r.body
                    ),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (acked, unavailable)
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(pg.ctl("restart"), "pg_ctl restart");
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = vec![];
    for task in load {
        let (a, _unavailable) = task.await.unwrap();
        acked.extend(a);
    }
    assert!(acked.len() > 50, "the load ran: {}", acked.len());
    // Recovered by themselves: both answer, and every acknowledged action is there.
    for agent in &agents {
        let r = agent
            .submit("db.query", "postgres://x/after", json!({"readonly": true}))
            .await;
        assert_eq!(r.state(), "approved", "{}", r.body);
    }
    for id in &acked {
        let r = agents[1].get(&format!("/v1/requests/{id}")).await;
        assert_eq!(r.status, StatusCode::OK, "{id}: {}", r.body);
    }
    crate::cli::assert_audit_verifies(&config);
}

/// A replica killed with `kill -9` under load loses nothing acknowledged, and what waited on it
/// fails over: the agent's long-poll and its held MCP call, made again on the other replica,
/// pick up the same requests (people are not asked again) and end once approved there.
#[tokio::test(flavor = "multi_thread")]
async fn a_replica_killed_under_load_loses_nothing_and_its_waiters_fail_over() {
    use crate::support::mcp::{mcp_config, rmcp_client_2026, stdio_upstream};
    use rmcp::model::{CallToolRequestParams, CallToolResponse, ClientCapabilities};
    let mcp = mcp_config(&stdio_upstream("everything"), "  hold_for: 30s\n");
    let Some((_database, mut servers, keys, _dir)) = replicas(2, &mcp).await else {
        return;
    };
    let b = servers.pop().unwrap();
    let a = servers.pop().unwrap();
    let agent_key = &keys["agent:deploy-bot"];
    let (on_a, on_b) = (As::new(&a.url, agent_key), As::new(&b.url, agent_key));

    // Waiting on A: a long-poll, and an MCP call held for people.
    let (waited, digest) = pending_export(&on_a, 20).await;
    let long_poll_on_a = long_poll(on_a.clone(), waited.clone());
    let sum = |a: i64| {
        let mut params = CallToolRequestParams::new("everything__get-sum");
        params.arguments = json!({"a": a, "b": 3}).as_object().cloned();
        params
    };
    let client_a = rmcp_client_2026(&a.url, agent_key, ClientCapabilities::default()).await;
    let held_on_a = tokio::spawn(async move { client_a.peer().call_tool_once(sum(9000)).await });
    let held = loop {
        let list = on_b.get("/v1/requests?state=pending").await;
        let found = list.body["requests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["action"]["params"]["a"] == 9000)
            .map(|r| r["id"].as_str().unwrap().to_owned());
        if let Some(id) = found {
            break id;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Load on both replicas, and A killed in the middle of it.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = vec![];
    for (n, agent) in [on_a.clone(), on_b.clone()].into_iter().enumerate() {
        let stop = stop.clone();
        load.push(tokio::spawn(async move {
            let mut acked = vec![];
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let sent = agent
                    .http
                    .post(format!("{}/v1/actions", agent.url))
                    .bearer_auth(&agent.key)
                    .json(
                        &json!({"kind": "db.query", "resource": format!("postgres://x/{n}/{i}"),
                        "params": {"readonly": true}}),
                    )
                    .send()
                    .await;
                // A connection refused or cut by the kill is no acknowledgement.
                if let Ok(r) = sent
                    && r.status().is_success()
                    && let Ok(body) = r.json::<serde_json::Value>().await
                {
                    acked.push(body["id"].as_str().unwrap().to_owned());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut a = a;
    a.child.kill().unwrap(); // SIGKILL
    a.child.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = vec![];
    for task in load {
        acked.extend(task.await.unwrap());
    }
    assert!(acked.len() > 20, "the load ran: {}", acked.len());
    for id in &acked {
        let r = on_b.get(&format!("/v1/requests/{id}")).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "acknowledged {id} is kept: {}",
            r.body
        );
    }

    // What waited on A lost its connection; made again on B, it picks up the same requests.
    assert!(long_poll_on_a.await.is_err(), "the long-poll on A was cut");
    assert!(
        held_on_a.await.unwrap().is_err(),
        "the held call on A was cut"
    );
    let bob_on_b = As::new(&b.url, &keys["user:bob@example.com"]);
    let again = long_poll(on_b.clone(), waited.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let vote = bob_on_b.vote(&waited, "approve", &digest).await;
    assert_eq!(vote.status, StatusCode::OK, "{}", vote.body);
    assert_eq!(again.await.unwrap().0, "approved");
    let r = bob_on_b.get(&format!("/v1/requests/{held}")).await;
    let vote = bob_on_b.vote(&held, "approve", &r.digest()).await;
    assert_eq!(vote.status, StatusCode::OK, "{}", vote.body);
    let client_b = rmcp_client_2026(&b.url, agent_key, ClientCapabilities::default()).await;
    match client_b.peer().call_tool_once(sum(9000)).await.unwrap() {
        CallToolResponse::Complete(result) => {
            let text = serde_json::to_value(&result).unwrap()["content"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(text.contains("9003"), "{result:?}");
        }
        other => panic!("expected the result, got {other:?}"),
    }
    let r = on_b.get(&format!("/v1/requests/{held}")).await;
    assert_eq!(
        r.state(),
        "executed",
        "the retry ran the approved request: {}",
        r.body
    );
}

/// Two replicas working the same request's chat messages at once (a vote makes it due again
/// while the first replica is still posting) post it once per target.
#[tokio::test(flavor = "multi_thread")]
async fn replicas_post_a_review_once_per_target_though_they_race() {
    use crate::support::fake_slack::{self, FakeSlack};
    let slack = FakeSlack::start().await;
    // A slow Slack: the first post takes long enough for the other replica to try too.
    slack.delay_posts(Duration::from_millis(1500));
    let config = format!(
        "channels:\n  slack:\n    bot_token: {}\n    signing_secret: {}\n    api_base_url: {}\n    notify: [\"#approvals\"]\n",
        fake_slack::BOT_TOKEN,
        fake_slack::SIGNING_SECRET,
        slack.url
    );
    let Some((_database, servers, keys, _dir)) = replicas(2, &config).await else {
        return;
    };
    let (a, b) = (&servers[0], &servers[1]);
    let agent = As::new(&a.url, &keys["agent:deploy-bot"]);
    // Two approvals needed: the first keeps it pending and makes its messages due again.
    let r = agent
        .submit("infra.rollback", "svc://payments", json!({"to": "v41"}))
        .await;
    assert_eq!(r.state(), "pending", "{}", r.body);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bob_on_b = As::new(&b.url, &keys["user:bob@example.com"]);
    let vote = bob_on_b.vote(&r.id(), "approve", &r.digest()).await;
    assert_eq!(vote.status, StatusCode::OK, "{}", vote.body);
    assert_eq!(vote.state(), "pending");
    slack.posted("CAPPROVALS", &r.id()).await;
    // Long enough for a second post (and the update after the vote) to land.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let posts = slack
        .messages()
        .into_iter()
        .filter(|m| {
            m.channel == "CAPPROVALS"
                && m.thread_ts.is_none()
                && m.blocks.to_string().contains(&r.id())
        })
        .count();
    assert_eq!(posts, 1, "one review message in #approvals");
}

/// Three replicas as one gateway: an agent waits on one, a Slack click arrives at another and
/// a Teams click at the third (and both are retried on the other replicas); the agent is
/// woken, each vote counts once, each chat target got one message, the webhook got every entry
/// once, and the log verifies.
#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_take_votes_and_clicks_anywhere_and_wake_the_waiter() {
    use crate::support::fake_slack::{self, FakeSlack};
    use crate::support::fake_teams::{self, FakeTeams};
    let slack = FakeSlack::start().await;
    let teams = FakeTeams::start().await;
    let hook = Hook::start().await;
    let config = format!(
        "audit:\n  webhooks:\n    - {{url: '{}'}}\nchannels:\n  slack:\n    bot_token: {}\n    signing_secret: {}\n    api_base_url: {}\n    notify: [\"#approvals\"]\n  teams:\n    app_id: {}\n    app_password: {}\n    tenant_ids: [{}]\n    openid_metadata_url: {}\n    token_url: {}\n    conversations: {{approvals: \"{}\"}}\n    notify: [approvals]\n",
        hook.url,
        fake_slack::BOT_TOKEN,
        fake_slack::SIGNING_SECRET,
        slack.url,
        fake_teams::APP_ID,
        fake_teams::APP_PASSWORD,
        fake_teams::TENANT,
        teams.metadata_url(),
        teams.token_url(),
        fake_teams::APPROVALS,
    );
    let Some((_database, servers, keys, dir)) = replicas(3, &config).await else {
        return;
    };
    let (a, b, c) = (&servers[0], &servers[1], &servers[2]);
    let (status, body) = teams
        .deliver(&c.url, &teams.installed(fake_teams::APPROVALS))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Submitted on A (two SRE approvals needed), waited on at C.
    let agent = As::new(&a.url, &keys["agent:deploy-bot"]);
    let r = agent
        .submit("infra.rollback", "k8s://prod/api", json!({"to": "v41"}))
        .await;
    assert_eq!(r.state(), "pending", "{}", r.body);
    let id = r.id();
    let message = slack.posted("CAPPROVALS", &id).await;
    let card = teams.posted(fake_teams::APPROVALS, &id).await;
    let waiting = long_poll(As::new(&c.url, &keys["agent:deploy-bot"]), id.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Bob clicks in Slack (reaching A, then retried at B); Erin in Teams (reaching B, then
    // retried at A).
    let click = fake_slack::form(&fake_slack::click_payload("UBOB", "approve", &message));
    let sent_at = fake_slack::now();
    for replica in [a, b] {
        let (status, body) =
            fake_slack::send_signed(&replica.url, &click, sent_at, fake_slack::SIGNING_SECRET)
                .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let invoke = teams.click("erin", "approve", card.card(), None);
    for replica in [b, a] {
        let (status, body) = teams.deliver(&replica.url, &invoke).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (state, took) = waiting.await.unwrap();
    assert_eq!(state, "approved");
    assert!(took < SOONER_THAN_THE_BACKSTOP, "{took:?}");
    let seen = As::new(&c.url, &keys["user:dana@example.com"])
        .get(&format!("/v1/requests/{id}"))
        .await;
    let votes = seen.body["votes"].as_array().unwrap();
    assert_eq!(votes.len(), 2, "each click counted once: {}", seen.body);

    // One message per chat target (updated in place, never posted twice).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let slack_posts = slack
        .messages()
        .into_iter()
        .filter(|m| {
            m.channel == "CAPPROVALS" && m.thread_ts.is_none() && m.blocks.to_string().contains(&id)
        })
        .count();
    assert_eq!(slack_posts, 1);
    let teams_posts = teams
        .sent()
        .into_iter()
        .filter(|s| {
            s.conversation == fake_teams::APPROVALS
                && s.reply_to.is_none()
                && s.card().to_string().contains(&id)
        })
        .count();
    assert_eq!(teams_posts, 1);

    // Every entry reached the webhook once; the log verifies.
    hook.got_every_entry_once(&b.url, &keys["user:bob@example.com"])
        .await;
    crate::cli::assert_audit_verifies(&dir.path().join("countersign.yaml"));
}
