//! `loadgen soak --minutes 30` (issue 21 part 3): mixed load at half the measured capacity for a
//! long time, to show the gateway does not leak or slow down. The mix, per step of a client:
//! six in ten an allowed action then its redemption, two in ten a reviewed action, a person's
//! approval and the redemption, one a read of a request, one a page of the request list.
//! Capacity is measured first (closed loop, 16 clients, 20 s); the soak then runs open loop at
//! half of it. Every 10 s it samples the gateway's resident memory and open file descriptors,
//! the SQLite WAL's size, and the window's request p99, and writes them to a CSV file.
//!
//! Verdict (exit 1 if it fails), after a warm-up of the first fifth (at least 2 minutes): memory
//! and descriptors grow less than 10 % from the first samples after warm-up to the last, and
//! p99 does not drift (the median p99 of the last third is at most 1.5× that of the first third
//! after warm-up). `bench/soak-plot.py` draws the CSV.

use crate::http::Conn;
use crate::server::{self, Server};
use bytes::Bytes;
use hdrhistogram::Histogram;
use serde_json::Value;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SAMPLE_EVERY: Duration = Duration::from_secs(10);
const PROBE_CLIENTS: u64 = 16;
const PROBE: Duration = Duration::from_secs(20);

struct Keys {
    agent: String,
    approver: String,
}

/// What every client records into: the current window's latencies, steps and errors.
struct Window {
    hist: Mutex<Histogram<u64>>,
    steps: AtomicU64,
    errors: AtomicU64,
}

impl Window {
    fn new() -> anyhow::Result<Self> {
        Ok(Window {
            hist: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3)?),
            steps: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        })
    }
}

async fn timed(
    conn: &mut Conn,
    window: &Window,
    method: &str,
    path: &str,
    key: &str,
    body: Bytes,
) -> Option<Value> {
    let t = Instant::now();
    let reply = conn.send(method, path, Some(key), body).await;
    let us = t.elapsed().as_micros().max(1) as u64;
    if let Ok(mut h) = window.hist.lock() {
        let _ = h.record(us);
    }
    match reply {
        Ok(r) if r.status < 300 => serde_json::from_slice(&r.body).ok(),
        _ => {
            window.errors.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// One step of the mix (`i` picks which).
async fn step(conn: &mut Conn, keys: &Keys, window: &Window, i: u64, last: &mut Option<String>) {
    let body = |kind: &str| {
        Bytes::from(format!(
            r#"{{"kind":"{kind}","resource":"bench://soak/{i}","params":{{"n":{i}}},"justification":"soak"}}"#
        ))
    };
    let agent = keys.agent.as_str();
    match i % 10 {
        0..=5 => {
            let submit = body("bench.allow");
            let Some(r) = timed(conn, window, "POST", "/v1/actions", agent, submit).await else {
                return;
            };
            redeem(conn, keys, window, &r).await;
            *last = r["id"].as_str().map(str::to_owned);
        }
        6 | 7 => {
            let submit = body("bench.review");
            let Some(r) = timed(conn, window, "POST", "/v1/actions", agent, submit).await else {
                return;
            };
            let (Some(id), Some(digest)) = (r["id"].as_str(), r["digest"].as_str()) else {
                return;
            };
            let vote = Bytes::from(format!(r#"{{"decision":"approve","digest":"{digest}"}}"#));
            let path = format!("/v1/requests/{id}/votes");
            if let Some(v) = timed(conn, window, "POST", &path, &keys.approver, vote).await {
                redeem(conn, keys, window, &v).await;
            }
        }
        8 => {
            if let Some(id) = last.as_deref() {
                let path = format!("/v1/requests/{id}");
                timed(conn, window, "GET", &path, &keys.agent, Bytes::new()).await;
            }
        }
        _ => {
            let path = "/v1/requests?state=all&limit=20";
            timed(conn, window, "GET", path, &keys.approver, Bytes::new()).await;
        }
    }
    window.steps.fetch_add(1, Ordering::Relaxed);
}

async fn redeem(conn: &mut Conn, keys: &Keys, window: &Window, request: &Value) {
    let (Some(grant), Some(digest)) = (request["grant"]["id"].as_str(), request["digest"].as_str())
    else {
        return;
    };
    let path = format!("/v1/grants/{grant}/redeem");
    let body = Bytes::from(format!(r#"{{"digest":"{digest}"}}"#));
    timed(conn, window, "POST", &path, &keys.agent, body).await;
}

/// Starts `clients` clients stepping until `stop`: back to back, or each once per `every`.
/// Client `c` numbers its steps from `first + c * 10^9`.
async fn clients(
    cs: &Server,
    keys: &Arc<Keys>,
    window: &Arc<Window>,
    stop: &Arc<AtomicBool>,
    clients: u64,
    every: Option<Duration>,
    first: u64,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = vec![];
    for c in 0..clients {
        let mut conn = Conn::open(&cs.addr).await?;
        let (keys, window, stop) = (keys.clone(), window.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = every.map(|every| {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick
            });
            let (mut i, mut last) = (first + c * 1_000_000_000, None);
            while !stop.load(Ordering::Relaxed) {
                if let Some(tick) = tick.as_mut() {
                    tick.tick().await;
                }
                step(&mut conn, &keys, &window, i, &mut last).await;
                i += 1;
            }
        }));
    }
    Ok(tasks)
}

/// Steps per second with `PROBE_CLIENTS` clients back to back.
async fn capacity(cs: &Server, keys: &Arc<Keys>) -> anyhow::Result<f64> {
    let window = Arc::new(Window::new()?);
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = clients(cs, keys, &window, &stop, PROBE_CLIENTS, None, 0).await?;
    let start = Instant::now();
    tokio::time::sleep(PROBE).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await?;
    }
    Ok(window.steps.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

struct Sample {
    at: f64,
    rss_kib: u64,
    fds: u64,
    wal_kib: u64,
    p99_ms: f64,
    steps_per_s: f64,
    errors: u64,
}

pub async fn run(bin: &str, minutes: u64, out: &str) -> anyhow::Result<()> {
    let cs = server::countersign(bin)?;
    let keys = Arc::new(Keys {
        agent: cs.keys["agent:bench"].clone(),
        approver: cs.keys["user:approver@example.com"].clone(),
    });
    let full = capacity(&cs, &keys).await?;
    let rate = full / 2.0;
    println!(
        "soak: capacity {full:.0} steps/s (mixed); soaking at {rate:.0} steps/s for {minutes} min"
    );

    // Open loop: 8 clients, each on its own schedule of rate/8 steps a second.
    let every = Duration::from_secs_f64(8.0 / rate);
    let window = Arc::new(Window::new()?);
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = clients(&cs, &keys, &window, &stop, 8, Some(every), 5_000_000_000).await?;
    let wal = cs.dir().map(|d| d.join("countersign.db-wal"));
    let pid = cs.child.id();
    let mut file = std::fs::File::create(out)?;
    writeln!(
        file,
        "seconds,rss_kib,fds,wal_kib,p99_ms,steps_per_s,errors"
    )?;
    let start = Instant::now();
    let mut samples = vec![];
    while start.elapsed() < Duration::from_secs(minutes * 60) {
        tokio::time::sleep(SAMPLE_EVERY).await;
        let hist = {
            let mut h = window
                .hist
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?;
            let copy = h.clone();
            h.reset();
            copy
        };
        let steps = window.steps.swap(0, Ordering::Relaxed);
        let s = Sample {
            at: start.elapsed().as_secs_f64(),
            rss_kib: cs.rss_kib().0,
            fds: open_fds(pid),
            wal_kib: wal
                .as_ref()
                .and_then(|w| std::fs::metadata(w).ok())
                .map_or(0, |m| m.len() / 1024),
            p99_ms: hist.value_at_quantile(0.99) as f64 / 1000.0,
            steps_per_s: steps as f64 / SAMPLE_EVERY.as_secs_f64(),
            errors: window.errors.swap(0, Ordering::Relaxed),
        };
        writeln!(
            file,
            "{:.0},{},{},{},{:.2},{:.1},{}",
            s.at, s.rss_kib, s.fds, s.wal_kib, s.p99_ms, s.steps_per_s, s.errors
        )?;
        file.flush()?;
        samples.push(s);
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await?;
    }
    verdict(&samples)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn verdict(samples: &[Sample]) -> anyhow::Result<()> {
    let warm = (samples.len() / 5)
        .max(12)
        .min(samples.len().saturating_sub(6));
    let after = &samples[warm..];
    anyhow::ensure!(
        after.len() >= 6,
        "too short a soak to judge (at least 3 minutes)"
    );
    let third = after.len() / 3;
    let mean =
        |xs: &[Sample], f: fn(&Sample) -> f64| xs.iter().map(f).sum::<f64>() / xs.len() as f64;
    let (first, last) = (&after[..3], &after[after.len() - 3..]);
    let growth = |f: fn(&Sample) -> f64| (mean(last, f) - mean(first, f)) / mean(first, f);
    let rss = growth(|s| s.rss_kib as f64);
    let fds = growth(|s| s.fds as f64);
    let p99_first = median(after[..third].iter().map(|s| s.p99_ms).collect());
    let p99_last = median(
        after[after.len() - third..]
            .iter()
            .map(|s| s.p99_ms)
            .collect(),
    );
    let errors: u64 = samples.iter().map(|s| s.errors).sum();
    let steps = mean(after, |s| s.steps_per_s);
    println!(
        "soak: after warm-up ({:.0} s): memory {:+.1} %, descriptors {:+.1} %, p99 {p99_first:.2} ms → {p99_last:.2} ms (median of first and last thirds), {steps:.0} steps/s, {errors} errors; WAL at most {} KiB",
        after[0].at,
        rss * 100.0,
        fds * 100.0,
        samples.iter().map(|s| s.wal_kib).max().unwrap_or(0),
    );
    let pass = rss < 0.10 && fds < 0.10 && p99_last <= 1.5 * p99_first.max(0.5) && errors == 0;
    println!("soak: {}", if pass { "PASS" } else { "FAIL" });
    anyhow::ensure!(pass, "the soak failed its criteria");
    Ok(())
}
