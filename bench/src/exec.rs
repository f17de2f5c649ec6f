//! `loadgen exec`: an allowed `exec.http` call through the gateway (`POST /v1/actions?execute=
//! true`: the record, the upstream call, the outcome; two durable writes) against the same call
//! made straight to the upstream, interleaved call by call, one at a time.

use crate::http::Conn;
use crate::server;
use bytes::Bytes;
use hdrhistogram::Histogram;
use std::time::Instant;

pub async fn run(bin: &str, calls: usize) -> anyhow::Result<()> {
    let me = std::env::current_exe()?;
    let upstream = server::bare(&me.to_string_lossy())?;
    let extra = format!(
        "executors:\n  - name: echo\n    http:\n      base_url: http://{}\n      methods: [POST]\n      headers: {{X-Bench: \"1\"}}\n      timeout: 10s\n",
        upstream.addr
    );
    let gateway = server::countersign_with(bin, &extra)?;
    let key = gateway.keys["agent:bench"].clone();
    let mut direct = Conn::open(&upstream.addr).await?;
    let mut through = Conn::open(&gateway.addr).await?;
    let new_hist = || Histogram::<u64>::new_with_bounds(1, 60_000_000, 3);
    let (mut h_direct, mut h_gateway) = (new_hist()?, new_hist()?);
    let warmup = calls / 10;
    let mut errors = 0usize;
    for i in 0..warmup + calls {
        let payload = format!(r#"{{"n":{i},"note":"bench"}}"#);
        let t = Instant::now();
        let r = direct
            .send("POST", "/echo", None, Bytes::from(payload.clone()))
            .await?;
        let d = t.elapsed();
        if r.status != 200 {
            errors += 1;
        }
        let action = format!(
            r#"{{"kind":"exec.http.echo","resource":"http://{}/echo","params":{{"method":"POST","path":"/echo","body":{payload}}}}}"#,
            upstream.addr
        );
        let t = Instant::now();
        let r = through
            .send(
                "POST",
                "/v1/actions?execute=true",
                Some(&key),
                Bytes::from(action),
            )
            .await?;
        let g = t.elapsed();
        let ok = r.status == 201
            && serde_json::from_slice::<serde_json::Value>(&r.body)
                .is_ok_and(|v| v["execution"]["outcome"]["status"] == "succeeded");
        if !ok {
            errors += 1;
            if errors < 3 {
                eprintln!("{} {}", r.status, String::from_utf8_lossy(&r.body));
            }
        }
        if i >= warmup {
            h_direct.record(d.as_micros().max(1) as u64)?;
            h_gateway.record(g.as_micros().max(1) as u64)?;
        }
    }
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!("exec.http, {calls} calls interleaved (after {warmup} warm-up), errors {errors}");
    for (name, h) in [("direct", &h_direct), ("through the gateway", &h_gateway)] {
        println!(
            "  {name:<20} p50 {:>6.3} ms   p99 {:>6.3} ms   max {:>7.3} ms",
            ms(h, 0.5),
            ms(h, 0.99),
            h.max() as f64 / 1000.0
        );
    }
    println!(
        "  added                p50 {:>+6.3} ms   p99 {:>+6.3} ms",
        ms(&h_gateway, 0.5) - ms(&h_direct, 0.5),
        ms(&h_gateway, 0.99) - ms(&h_direct, 0.99)
    );
    Ok(())
}
