//! `loadgen standing`: actions approved at once by a standing approval against auto-allowed
//! actions, with the same client load, in alternating rounds. Each client has its own standing
//! approval (its own resource, 1,000 uses for an hour), formed once before the rounds: a
//! covered action costs one durable write that takes a use from the count beside the pair
//! (which names the holder) and records the covered request.

use crate::http::Conn;
use crate::server;
use bytes::Bytes;
use hdrhistogram::Histogram;
use std::time::{Duration, Instant};

/// One round: every client sends `calls` actions back to back. Returns the latency histogram,
/// the throughput and the answers that were not what the round expects.
async fn round(
    addr: &str,
    key: &str,
    clients: usize,
    calls: usize,
    kind: &'static str,
    tag: usize,
) -> anyhow::Result<(Histogram<u64>, f64, u64)> {
    let mut tasks = vec![];
    let start = Instant::now();
    for c in 0..clients {
        let mut conn = Conn::open(addr).await?;
        let key = key.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut hist =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            let mut unexpected = 0u64;
            for i in 0..calls {
                let body = Bytes::from(format!(
                    r#"{{"kind":"{kind}","resource":"bench://client/{c}","params":{{"n":{i},"round":{tag}}},"justification":"bench"}}"#
                ));
                let t = Instant::now();
                match conn.send("POST", "/v1/actions", Some(&key), body).await {
                    Ok(r) if r.status == 201 && approved(&r.body) => {}
                    _ => unexpected += 1,
                }
                let _ = hist.record(t.elapsed().as_micros().max(1) as u64);
            }
            (hist, unexpected)
        }));
    }
    let mut total = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut unexpected = 0;
    for t in tasks {
        let (h, u) = t.await?;
        total.add(h)?;
        unexpected += u;
    }
    let rate = (clients * calls) as f64 / start.elapsed().as_secs_f64();
    Ok((total, rate, unexpected))
}

fn approved(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v["state"] == "approved")
}

pub async fn run(bin: &str, clients: usize, calls: usize, rounds: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        calls * rounds + calls / 10 <= 1000,
        "each client's standing approval has 1,000 uses: lower --calls or --rounds"
    );
    let cs = server::countersign(bin)?;
    let agent = cs.keys["agent:bench"].clone();
    let approver = cs.keys["user:approver@example.com"].clone();
    let mut conn = Conn::open(&cs.addr).await?;
    for c in 0..clients {
        let body = Bytes::from(format!(
            r#"{{"kind":"bench.standing","resource":"bench://client/{c}","params":{{"n":-1}}}}"#
        ));
        let r = conn.send("POST", "/v1/actions", Some(&agent), body).await?;
        let v: serde_json::Value = serde_json::from_slice(&r.body)?;
        let (id, digest) = (
            v["id"].as_str().unwrap_or(""),
            v["digest"].as_str().unwrap_or(""),
        );
        let vote = Bytes::from(format!(
            r#"{{"decision":"approve","digest":"{digest}","standing":{{"for":"1h","uses":1000}}}}"#
        ));
        let r = conn
            .send(
                "POST",
                &format!("/v1/requests/{id}/votes"),
                Some(&approver),
                vote,
            )
            .await?;
        let v: serde_json::Value = serde_json::from_slice(&r.body)?;
        anyhow::ensure!(
            v["standing"]["state"] == "active",
            "no standing approval formed: {v}"
        );
    }
    // Warm both paths up.
    round(&cs.addr, &agent, clients, calls / 10, "bench.allow", 0).await?;
    round(&cs.addr, &agent, clients, calls / 10, "bench.standing", 0).await?;
    println!("{clients} clients x {calls} actions per round, {rounds} rounds of each, alternating");
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let mut totals = [(0.0, Vec::new()), (0.0, Vec::new())];
    for r in 1..=rounds {
        for (slot, (name, kind)) in [
            ("auto-allowed", "bench.allow"),
            ("standing approval", "bench.standing"),
        ]
        .into_iter()
        .enumerate()
        {
            let (h, rate, unexpected) = round(&cs.addr, &agent, clients, calls, kind, r).await?;
            println!(
                "  round {r} {name:<18} {rate:>7.0} actions/s   p50 {:>6.3} ms   p99 {:>6.3} ms   not approved {unexpected}",
                ms(&h, 0.5),
                ms(&h, 0.99)
            );
            totals[slot].0 += rate;
            totals[slot].1.push(ms(&h, 0.5));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (allow_rate, standing_rate) = (totals[0].0 / rounds as f64, totals[1].0 / rounds as f64);
    let (allow_p50, standing_p50) = (mean(&totals[0].1), mean(&totals[1].1));
    println!(
        "standing / auto-allowed: throughput {:.3}, p50 latency {:.3}",
        standing_rate / allow_rate,
        standing_p50 / allow_p50
    );
    Ok(())
}
