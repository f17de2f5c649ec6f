//! The three scenarios. Each prints one block of figures, in the units BENCHMARKS.md uses.

use crate::http::Conn;
use crate::server;
use bytes::Bytes;
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn action_body(i: usize) -> Bytes {
    Bytes::from(format!(
        r#"{{"kind":"bench.allow","resource":"bench://item/{i}","params":{{"n":{i},"note":"load"}},"justification":"bench"}}"#
    ))
}

struct LoadResult {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    hist: Histogram<u64>,
}

/// `clients` connections, each sending requests back to back for `seconds` (client `c` to
/// `addrs[c % addrs.len()]`).
async fn closed_loop(
    addrs: &[&str],
    clients: usize,
    seconds: u64,
    path: &'static str,
    key: Option<String>,
) -> anyhow::Result<LoadResult> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = vec![];
    for c in 0..clients {
        let mut conn = Conn::open(addrs[c % addrs.len()]).await?;
        let stop = stop.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            let (mut n, mut errors) = (0u64, 0u64);
            let mut i = c * 1_000_000;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match conn
                    .send("POST", path, key.as_deref(), action_body(i))
                    .await
                {
                    Ok(r) if r.status < 300 => n += 1,
                    _ => errors += 1,
                }
                let _ = hist.record(t.elapsed().as_micros().max(1) as u64);
                i += 1;
            }
            (n, errors, hist)
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = LoadResult {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        hist: Histogram::new_with_bounds(1, 60_000_000, 3)?,
    };
    for t in tasks {
        let (n, e, h) = t.await?;
        total.requests += n;
        total.errors += e;
        total.hist.add(h)?;
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

fn report(name: &str, r: &LoadResult) -> f64 {
    let rate = r.requests as f64 / r.elapsed.as_secs_f64();
    println!(
        "{name:<34} {rate:>10.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   max {:>7.2} ms   errors {}",
        r.hist.value_at_quantile(0.50) as f64 / 1000.0,
        r.hist.value_at_quantile(0.99) as f64 / 1000.0,
        r.hist.max() as f64 / 1000.0,
        r.errors
    );
    rate
}

pub async fn actions(
    bin: &str,
    clients: usize,
    seconds: u64,
    postgres: Option<String>,
    replicas: usize,
) -> anyhow::Result<()> {
    let me = std::env::current_exe()?;
    let bare = server::bare(&me.display().to_string())?;
    let (gateways, store) = match &postgres {
        Some(server) => {
            let database = server::fresh_database(server).await?;
            let n = replicas.max(1);
            (
                server::countersign_replicas(bin, &database, n)?,
                format!("PostgreSQL, {n} replica(s)"),
            )
        }
        None => (vec![server::countersign(bin)?], "SQLite".to_owned()),
    };
    let addrs: Vec<&str> = gateways.iter().map(|g| g.addr.as_str()).collect();
    let key = gateways[0].keys.get("agent:bench").cloned();
    // Warm up both, then measure each with the same client load.
    closed_loop(&[&bare.addr], clients, 1, "/echo", None).await?;
    closed_loop(&addrs, clients, 1, "/v1/actions", key.clone()).await?;
    println!(
        "{clients} concurrent clients, {seconds} s each, HTTP/1.1 keep-alive on loopback; {store}"
    );
    let b = closed_loop(&[&bare.addr], clients, seconds, "/echo", None).await?;
    let bare_rate = report("bare axum echo", &b);
    let c = closed_loop(&addrs, clients, seconds, "/v1/actions", key).await?;
    let cs_rate = report("POST /v1/actions (allow, durable)", &c);
    println!("ratio countersign / bare: {:.3}", cs_rate / bare_rate);
    Ok(())
}

/// Submits a `bench.review` action and opens the agent's long-poll on it (registered when
/// this returns). The task yields when the long-poll returned, and the state it saw.
async fn review_with_waiter(
    submit: &mut Conn,
    addr: &str,
    agent: &str,
    tag: &str,
    i: usize,
) -> anyhow::Result<(String, String, tokio::task::JoinHandle<(Instant, String)>)> {
    let body = Bytes::from(format!(
        r#"{{"kind":"bench.review","resource":"bench://{tag}/{i}"}}"#
    ));
    let r = submit
        .send("POST", "/v1/actions", Some(agent), body)
        .await?;
    let v: serde_json::Value = serde_json::from_slice(&r.body)?;
    let id = v["id"].as_str().unwrap_or_default().to_string();
    let digest = v["digest"].as_str().unwrap_or_default().to_string();
    let mut waiter = Conn::open(addr).await?;
    let path = format!("/v1/requests/{id}?wait=30s");
    let agent_key = agent.to_string();
    let wait = tokio::spawn(async move {
        let r = waiter
            .send("GET", &path, Some(&agent_key), Bytes::new())
            .await;
        let state = r
            .ok()
            .and_then(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
            .and_then(|v| v["state"].as_str().map(str::to_string))
            .unwrap_or_default();
        (Instant::now(), state)
    });
    // Let the long-poll reach the server and register.
    tokio::time::sleep(Duration::from_millis(5)).await;
    Ok((id, digest, wait))
}

pub async fn wake(bin: &str, requests: usize, postgres: Option<String>) -> anyhow::Result<()> {
    let gateways = match &postgres {
        Some(server) => {
            let database = server::fresh_database(server).await?;
            server::countersign_replicas(bin, &database, 2)?
        }
        None => vec![server::countersign(bin)?],
    };
    // The vote goes to the first; the long-poll waits on the last (the other replica).
    let (cs, waiting_on) = (&gateways[0], &gateways[gateways.len() - 1]);
    let agent = cs.keys["agent:bench"].clone();
    let approver = cs.keys["user:approver@example.com"].clone();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut from_sent = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut submit = Conn::open(&cs.addr).await?;
    let mut voter = Conn::open(&cs.addr).await?;
    if postgres.is_some() {
        println!("two replicas on one PostgreSQL database: vote on one, long-poll on the other");
    }
    for i in 0..requests {
        let (id, digest, wait) =
            review_with_waiter(&mut submit, &waiting_on.addr, &agent, "wake", i).await?;
        let vote = Bytes::from(format!(r#"{{"decision":"approve","digest":"{digest}"}}"#));
        let sent = Instant::now();
        let vr = voter
            .send(
                "POST",
                &format!("/v1/requests/{id}/votes"),
                Some(&approver),
                vote,
            )
            .await?;
        let accepted = Instant::now();
        anyhow::ensure!(
            vr.status == 200,
            "vote refused: {}",
            String::from_utf8_lossy(&vr.body)
        );
        let (returned, state) = tokio::time::timeout(Duration::from_secs(30), wait).await??;
        anyhow::ensure!(state == "approved", "the agent saw {state:?}, not approved");
        let after_accept = returned.saturating_duration_since(accepted);
        hist.record(after_accept.as_micros().max(1) as u64)?;
        from_sent.record(returned.saturating_duration_since(sent).as_micros().max(1) as u64)?;
    }
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!("{requests} decisions, one waiting long-poll each");
    println!(
        "vote accepted -> long-poll returns   p50 {:.3} ms   p99 {:.3} ms   max {:.3} ms",
        ms(&hist, 0.5),
        ms(&hist, 0.99),
        hist.max() as f64 / 1000.0
    );
    println!(
        "vote sent     -> long-poll returns   p50 {:.3} ms   p99 {:.3} ms   max {:.3} ms",
        ms(&from_sent, 0.5),
        ms(&from_sent, 0.99),
        from_sent.max() as f64 / 1000.0
    );
    Ok(())
}

pub async fn waiters(bin: &str, count: usize) -> anyhow::Result<()> {
    let cs = server::countersign(bin)?;
    let agent = cs.keys["agent:bench"].clone();
    let (idle_rss, _) = cs.rss_kib();
    // Submit the requests over a few connections.
    let mut ids = Vec::with_capacity(count);
    let mut submitters = vec![];
    let per = count.div_ceil(16);
    for s in 0..16 {
        let mut conn = Conn::open(&cs.addr).await?;
        let agent = agent.clone();
        submitters.push(tokio::spawn(async move {
            let mut ids = vec![];
            for i in s * per..((s + 1) * per) {
                let body = Bytes::from(format!(
                    r#"{{"kind":"bench.review","resource":"bench://wait/{i}"}}"#
                ));
                if let Ok(r) = conn.send("POST", "/v1/actions", Some(&agent), body).await
                    && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&r.body)
                    && let Some(id) = v["id"].as_str()
                {
                    ids.push(id.to_string());
                }
            }
            ids
        }));
    }
    for s in submitters {
        ids.extend(s.await?);
    }
    ids.truncate(count);
    let (after_submit_rss, _) = cs.rss_kib();
    // Open one waiting long-poll per request.
    let mut waiters = Vec::with_capacity(ids.len());
    for id in &ids {
        let mut conn = Conn::open(&cs.addr).await?;
        let path = format!("/v1/requests/{id}?wait=120s");
        let agent = agent.clone();
        waiters.push(tokio::spawn(async move {
            conn.send("GET", &path, Some(&agent), Bytes::new())
                .await
                .map(|r| r.status)
                .unwrap_or(0)
        }));
    }
    // Wait until the server reports them all waiting (bounded).
    let mut metrics = Conn::open(&cs.addr).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut waiting = 0;
    while Instant::now() < deadline {
        let r = metrics.send("GET", "/metrics", None, Bytes::new()).await?;
        let text = String::from_utf8_lossy(&r.body).to_string();
        waiting = text
            .lines()
            .find(|l| l.starts_with("countersign_waiting_clients "))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0) as usize;
        if waiting >= ids.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss, peak) = cs.rss_kib();
    println!(
        "{} agents waiting at once (server reports {waiting})",
        ids.len()
    );
    println!(
        "server RSS: idle {:.1} MiB, after submitting {:.1} MiB, all waiting {:.1} MiB (peak {:.1} MiB)",
        idle_rss as f64 / 1024.0,
        after_submit_rss as f64 / 1024.0,
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    for w in waiters {
        w.abort();
    }
    Ok(())
}

const SLACK_SECRET: &str = "bench-signing-secret";

/// A signed Slack interactivity request approving `id` as the stub's `UAPPROVER`.
fn slack_click_body(id: &str, digest: &str) -> (String, String, String) {
    use hmac::{Hmac, KeyInit, Mac};
    let payload = serde_json::json!({"type": "block_actions", "user": {"id": "UAPPROVER"},
        "channel": {"id": "C1"}, "trigger_id": "t",
        "actions": [{"action_id": "approve", "type": "button", "value": format!("{id}|{digest}")}]});
    let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap_or_default();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .to_string();
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(SLACK_SECRET.as_bytes())
        .expect("HMAC takes any key");
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    let sig = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
    (body, ts, sig)
}

pub async fn slack_click(bin: &str, requests: usize) -> anyhow::Result<()> {
    let slack = server::slack_stub().await?;
    let extra = format!(
        "channels:\n  slack:\n    bot_token: xoxb-bench\n    signing_secret: {SLACK_SECRET}\n    api_base_url: {slack}\n    notify: [\"#approvals\"]\n"
    );
    let cs = server::countersign_with(bin, &extra)?;
    let agent = cs.keys["agent:bench"].clone();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut acks = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut submit = Conn::open(&cs.addr).await?;
    let mut clicker = Conn::open(&cs.addr).await?;
    for i in 0..requests {
        let (id, digest, wait) =
            review_with_waiter(&mut submit, &cs.addr, &agent, "slack", i).await?;
        let (form, ts, sig) = slack_click_body(&id, &digest);
        let headers = [
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-slack-request-timestamp", ts.as_str()),
            ("x-slack-signature", sig.as_str()),
        ];
        let sent = Instant::now();
        let ack = clicker
            .send_with(
                "POST",
                "/v1/channels/slack/interactions",
                &headers,
                Bytes::from(form),
            )
            .await?;
        let acked = Instant::now();
        anyhow::ensure!(
            ack.status == 200,
            "click refused: {}",
            String::from_utf8_lossy(&ack.body)
        );
        let (returned, state) = tokio::time::timeout(Duration::from_secs(30), wait).await??;
        anyhow::ensure!(state == "approved", "the agent saw {state:?}, not approved");
        acks.record(acked.saturating_duration_since(sent).as_micros().max(1) as u64)?;
        hist.record(returned.saturating_duration_since(sent).as_micros().max(1) as u64)?;
    }
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!("{requests} Slack clicks, one waiting agent each");
    println!(
        "click sent -> Slack acknowledged    p50 {:.3} ms   p99 {:.3} ms   max {:.3} ms",
        ms(&acks, 0.5),
        ms(&acks, 0.99),
        acks.max() as f64 / 1000.0
    );
    println!(
        "click sent -> agent resumed         p50 {:.3} ms   p99 {:.3} ms   max {:.3} ms",
        ms(&hist, 0.5),
        ms(&hist, 0.99),
        hist.max() as f64 / 1000.0
    );
    Ok(())
}
