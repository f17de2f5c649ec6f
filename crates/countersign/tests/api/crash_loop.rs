//! Issue 21 part 2, the crash loop: mixed load (submissions, votes, redemptions, MCP calls, a
//! run paused and resumed) while the real binary is killed with SIGKILL at random moments and
//! started again on the same database, on SQLite and on PostgreSQL. After every restart each
//! acknowledged submission, vote, redemption and run change is there; at the end no grant was
//! redeemed twice (counted in the audit log, so a redemption cut off before its answer counts
//! too) and `audit verify` passes.
//!
//! `COUNTERSIGN_CRASH_LOOP_KILLS` kills per backend (3 by default, what CI runs; the proof is
//! `COUNTERSIGN_CRASH_LOOP_KILLS=20 ./test crash_loop`); `COUNTERSIGN_CRASH_LOOP_SEED` replays
//! a run's random moments (each run prints its seed).

use crate::cli::{Server, assert_audit_verifies, serve};
use crate::postgres::world_on_postgres;
use crate::support::app::{As, write_world};
use crate::support::mcp::{mcp_config, rmcp_client_2026, stdio_upstream};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the gateway acknowledged (answered 2xx to), and so must keep across any crash.
#[derive(Default)]
struct Ledger {
    /// Request id → what was acknowledged about it.
    requests: BTreeMap<String, Acked>,
    /// Votes acknowledged: (request, voter).
    votes: Vec<(String, String)>,
    /// The run's state as last acknowledged, and a change sent but not (yet) answered.
    run: Option<(String, Option<String>)>,
    /// `a` of every MCP `get-sum` call answered with its sum.
    sums: Vec<i64>,
}

#[derive(Clone)]
struct Acked {
    state: String,
    digest: String,
    grant: Option<String>,
    redeemed: bool,
}

const RUN: &str = "crash-loop-run";

/// A small deterministic generator (xorshift), so a seed replays the kill moments.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn kills() -> usize {
    std::env::var("COUNTERSIGN_CRASH_LOOP_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

fn seed() -> u64 {
    std::env::var("COUNTERSIGN_CRASH_LOOP_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_loop_on_sqlite_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_world(&dir, 0);
    crash_loop("SQLite", &config).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_loop_on_postgresql_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let Some((config, _)) = world_on_postgres(&dir).await else {
        return;
    };
    crash_loop("PostgreSQL", &config).await;
}

async fn crash_loop(backend: &str, config: &Path) {
    let mcp = mcp_config(&stdio_upstream("everything"), "");
    let text = std::fs::read_to_string(config).unwrap() + &mcp;
    std::fs::write(config, text).unwrap();
    let seed = seed();
    eprintln!("crash loop on {backend}: seed {seed} ({} kills)", kills());
    let mut rng = Rng(seed);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let next_sum = Arc::new(AtomicI64::new(1));
    let next_row = Arc::new(AtomicU64::new(2000));

    let mut server = serve(config, 8);
    let keys = server.keys.clone();
    for kill in 0..=kills() {
        let workers = load(&server, &keys, &ledger, &next_sum, &next_row);
        if kill == kills() {
            // The last start: let the load run until every kind of it was acknowledged at
            // least once (however loaded the machine), then stop it cleanly and check.
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let l = ledger.lock().unwrap();
                let every_kind = l.requests.values().any(|r| r.redeemed)
                    && !l.votes.is_empty()
                    && !l.sums.is_empty()
                    && l.run.as_ref().is_some_and(|r| r.1.is_none());
                if every_kind || std::time::Instant::now() > deadline {
                    break;
                }
            }
            for w in &workers {
                w.abort();
            }
        } else {
            tokio::time::sleep(Duration::from_millis(rng.below(1500))).await;
            server.child.kill().unwrap(); // SIGKILL, wherever the gateway is
            server.child.wait().unwrap();
        }
        for w in workers {
            // A worker ends at the kill or is stopped; one that failed a check fails the test.
            if let Err(e) = w.await
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        if kill < kills() {
            server = serve(config, 0);
        }
        check(&server, &keys, &ledger, kill).await;
    }
    {
        let l = ledger.lock().unwrap();
        let redeemed = l.requests.values().filter(|r| r.redeemed).count();
        eprintln!(
            "crash loop on {backend}: {} kills; acknowledged {} submissions, {} votes, {redeemed} \
             redemptions, {} MCP calls; the run is {:?}",
            kills(),
            l.requests.len(),
            l.votes.len(),
            l.sums.len(),
            l.run
        );
        assert!(l.requests.len() > kills(), "the load ran");
        assert!(
            !l.votes.is_empty() && !l.sums.is_empty() && l.run.is_some(),
            "every kind of load ran"
        );
    }
    no_grant_redeemed_twice(&server, &keys).await;
    drop(server);
    assert_audit_verifies(config);
}

/// Starts the load on `server`: each worker stops at its first failed connection (the kill).
fn load(
    server: &Server,
    keys: &HashMap<String, String>,
    ledger: &Arc<Mutex<Ledger>>,
    next_sum: &Arc<AtomicI64>,
    next_row: &Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let who = |p: &str| As::new(&server.url, &keys[p]);
    let agent = who("agent:deploy-bot");
    let bob = who("user:bob@example.com");
    let carol = who("user:carol@example.com");
    let mut workers = vec![];
    // Allowed actions, each redeemed (and a second redemption tried, which must be refused).
    for _ in 0..2 {
        let (agent, ledger) = (agent.clone(), ledger.clone());
        workers.push(tokio::spawn(async move {
            for i in 0u64.. {
                let body = json!({"kind": "db.query", "resource": format!("postgres://x/{i}"),
                    "params": {"readonly": true}});
                let Some((status, r)) = post(&agent, "/v1/actions", body).await else {
                    return;
                };
                assert!(status.is_success(), "{status} {r}");
                let id = acknowledge(&ledger, &r);
                if redeem(&agent, &ledger, &id).await.is_none() {
                    return;
                }
            }
        }));
    }
    // Reviewed actions: two votes, then the redemption.
    {
        let (agent, ledger, next_row) = (agent.clone(), ledger.clone(), next_row.clone());
        let voters = [
            ("user:bob@example.com", bob.clone()),
            ("user:carol@example.com", carol.clone()),
        ];
        workers.push(tokio::spawn(async move {
            loop {
                let rows = next_row.fetch_add(1, Ordering::Relaxed);
                let body = json!({"kind": "db.export", "resource": "postgres://prod/customers",
                    "params": {"rows": rows}});
                let Some((status, r)) = post(&agent, "/v1/actions", body).await else {
                    return;
                };
                assert!(status.is_success(), "{status} {r}");
                let id = acknowledge(&ledger, &r);
                let digest = r["digest"].as_str().unwrap().to_owned();
                for (name, voter) in &voters {
                    let path = format!("/v1/requests/{id}/votes");
                    let body = json!({"decision": "approve", "digest": digest});
                    let Some((status, v)) = post(voter, &path, body).await else {
                        return;
                    };
                    assert!(status.is_success(), "{status} {v}");
                    let mut l = ledger.lock().unwrap();
                    l.votes.push((id.clone(), name.to_string()));
                    let acked = l.requests.get_mut(&id).unwrap();
                    acked.state = v["state"].as_str().unwrap().to_owned();
                    acked.grant = v["grant"]["id"].as_str().map(str::to_owned);
                }
                if redeem(&agent, &ledger, &id).await.is_none() {
                    return;
                }
            }
        }));
    }
    // A run paused and resumed by a person.
    {
        let (bob, ledger) = (bob.clone(), ledger.clone());
        workers.push(tokio::spawn(async move {
            for verb in ["pause", "resume"].into_iter().cycle() {
                let target = if verb == "pause" { "paused" } else { "active" };
                {
                    let mut l = ledger.lock().unwrap();
                    let last = l.run.as_ref().map(|r| r.0.clone()).unwrap_or_default();
                    l.run = Some((last, Some(target.to_owned())));
                }
                let path = format!("/v1/runs/{RUN}/{verb}");
                let Some((status, r)) = post(&bob, &path, json!({})).await else {
                    return;
                };
                assert!(status.is_success(), "{status} {r}");
                assert_eq!(r["state"], target, "{r}");
                ledger.lock().unwrap().run = Some((target.to_owned(), None));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    // MCP calls that policy allows, forwarded to a real MCP server.
    {
        let (url, key) = (server.url.clone(), keys["agent:deploy-bot"].clone());
        let (ledger, next_sum) = (ledger.clone(), next_sum.clone());
        workers.push(tokio::spawn(async move {
            use rmcp::model::{CallToolRequestParams, CallToolResponse, ClientCapabilities};
            // The helper panics when it cannot connect: the gateway was killed first.
            let connect = tokio::spawn(async move {
                rmcp_client_2026(&url, &key, ClientCapabilities::default()).await
            });
            let Ok(client) = connect.await else {
                return;
            };
            loop {
                let a = next_sum.fetch_add(1, Ordering::Relaxed) % 900;
                let mut params = CallToolRequestParams::new("everything__get-sum");
                params.arguments = json!({"a": a, "b": 1_000_000}).as_object().cloned();
                match client.peer().call_tool_once(params).await {
                    Ok(CallToolResponse::Complete(result)) => {
                        let text = serde_json::to_value(&result).unwrap()["content"][0]["text"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned();
                        assert!(text.contains(&(a + 1_000_000).to_string()), "{text}");
                        ledger.lock().unwrap().sums.push(a);
                    }
                    Ok(other) => panic!("an allowed call answered {other:?}"),
                    Err(_) => return, // the gateway is gone
                }
            }
        }));
    }
    workers
}

/// POSTs `body`; `None` when the gateway could not be reached or cut the answer off.
async fn post(who: &As, path: &str, body: Value) -> Option<(reqwest::StatusCode, Value)> {
    let r = who
        .http
        .post(format!("{}{path}", who.url))
        .bearer_auth(&who.key)
        .json(&body)
        .send()
        .await
        .ok()?;
    let status = r.status();
    let body = r.json().await.ok()?;
    Some((status, body))
}

fn acknowledge(ledger: &Mutex<Ledger>, r: &Value) -> String {
    let id = r["id"].as_str().unwrap().to_owned();
    let acked = Acked {
        state: r["state"].as_str().unwrap().to_owned(),
        digest: r["digest"].as_str().unwrap().to_owned(),
        grant: r["grant"]["id"].as_str().map(str::to_owned),
        redeemed: false,
    };
    ledger.lock().unwrap().requests.insert(id.clone(), acked);
    id
}

/// Redeems request `id`'s grant, then tries again (refused: `grant_used`). `None`: cut off.
async fn redeem(agent: &As, ledger: &Mutex<Ledger>, id: &str) -> Option<()> {
    let acked = ledger.lock().unwrap().requests[id].clone();
    let grant = acked.grant.expect("an approved request has a grant");
    let path = format!("/v1/grants/{grant}/redeem");
    let body = json!({"digest": acked.digest});
    let (status, r) = post(agent, &path, body.clone()).await?;
    assert!(status.is_success(), "{status} {r}");
    ledger
        .lock()
        .unwrap()
        .requests
        .get_mut(id)
        .unwrap()
        .redeemed = true;
    let (status, r) = post(agent, &path, body).await?;
    assert_eq!(r["error"]["code"], "grant_used", "{status} {r}");
    Some(())
}

/// After a restart: everything acknowledged is there, in its acknowledged state or a later one.
async fn check(
    server: &Server,
    keys: &HashMap<String, String>,
    ledger: &Mutex<Ledger>,
    kill: usize,
) {
    let reader = As::new(&server.url, &keys["user:bob@example.com"]);
    let (requests, votes, run, sums) = {
        let l = ledger.lock().unwrap();
        (
            l.requests.clone(),
            l.votes.clone(),
            l.run.clone(),
            l.sums.clone(),
        )
    };
    let mut votes_of: HashMap<&str, Vec<&str>> = HashMap::new();
    for (id, voter) in &votes {
        votes_of.entry(id).or_default().push(voter);
    }
    for (id, acked) in &requests {
        let r = reader.get(&format!("/v1/requests/{id}")).await;
        assert_eq!(
            r.status,
            reqwest::StatusCode::OK,
            "after kill {kill}: {id} is lost: {}",
            r.body
        );
        let state = r.state();
        let later: &[&str] = match acked.state.as_str() {
            "pending" => &["pending", "approved", "executed"],
            "approved" if acked.redeemed => &["executed"],
            "approved" => &["approved", "executed"],
            other => panic!("acknowledged in state {other}"),
        };
        assert!(
            later.contains(&state),
            "after kill {kill}: {id} was acknowledged {} (redeemed: {}), is {state}",
            acked.state,
            acked.redeemed
        );
        for voter in votes_of.get(id.as_str()).into_iter().flatten() {
            let recorded = r.body["votes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["approver"] == *voter);
            assert!(
                recorded,
                "after kill {kill}: {voter}'s vote on {id} is lost: {}",
                r.body
            );
        }
    }
    if let Some((acked, in_flight)) = run {
        let r = reader.get(&format!("/v1/runs/{RUN}")).await;
        let state = r.state().to_owned();
        assert!(
            state == acked || in_flight.as_deref() == Some(&state),
            "after kill {kill}: the run was acknowledged {acked} (then {in_flight:?}), is {state}"
        );
    }
    if !sums.is_empty() {
        let calls = all_requests(&reader).await;
        for a in sums {
            let found = calls.iter().any(|r| {
                r["action"]["kind"] == "mcp.tool.everything.get-sum"
                    && r["action"]["params"]["a"] == a
                    && r["state"] == "executed"
            });
            assert!(
                found,
                "after kill {kill}: the answered MCP call a={a} is not recorded"
            );
        }
    }
}

/// Every request, newest first, page by page.
async fn all_requests(reader: &As) -> Vec<Value> {
    let mut all = vec![];
    let mut path = "/v1/requests?limit=500".to_owned();
    loop {
        let r = reader.get(&path).await;
        let page = r.body["requests"].as_array().cloned().unwrap_or_default();
        let Some(last) = page
            .last()
            .and_then(|p| p["id"].as_str())
            .map(str::to_owned)
        else {
            return all;
        };
        all.extend(page);
        path = format!("/v1/requests?limit=500&before={last}");
    }
}

/// The audit log has at most one `grant.redeemed` per request, answered or not.
async fn no_grant_redeemed_twice(server: &Server, keys: &HashMap<String, String>) {
    let entries = As::new(&server.url, &keys["user:bob@example.com"])
        .audit_entries()
        .await;
    let mut redeemed: HashMap<String, u32> = HashMap::new();
    for e in entries {
        if e["event"] == "grant.redeemed" {
            *redeemed
                .entry(e["request"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    assert!(!redeemed.is_empty(), "grants were redeemed");
    let twice: Vec<_> = redeemed.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "grants redeemed twice: {twice:?}");
}
