//! `loadgen mcp`: the added latency of the MCP gateway on an allowed `tools/call`, measured
//! against the same upstream (the reference server `server-everything` over Streamable HTTP)
//! called directly, interleaved call by call in the same run (and, as the baseline of what
//! `mcp.hold_for` costs an allowed call, through a second gateway with `hold_for: off`); then
//! many concurrent agent sessions through the gateway. Clients are the official Rust SDK
//! (`rmcp`).

use crate::server;
use hdrhistogram::Histogram;
use rmcp::RoleClient;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion,
};
use rmcp::service::RunningService;
use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use std::process::Stdio;
use std::time::{Duration, Instant};

type Client = RunningService<RoleClient, ClientConfig>;

async fn connect(url: &str, token: Option<&str>) -> anyhow::Result<Client> {
    connect_with(url, token, ClientLifecycleMode::Initialize).await
}

/// `Initialize` is the handshake of the protocol revisions up to 2025-11-25 (a session per
/// agent); `Discover` is the 2026-07-28 revision's (no session: every request stands alone).
async fn connect_with(
    url: &str,
    token: Option<&str>,
    lifecycle: ClientLifecycleMode,
) -> anyhow::Result<Client> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url);
    config.auth_header = token.map(str::to_string);
    let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
    let info = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("countersign-loadgen", "0"),
    );
    Ok(info.serve_with_lifecycle(transport, lifecycle).await?)
}

async fn echo(client: &Client, tool: &str, i: usize) -> anyhow::Result<()> {
    let mut params = CallToolRequestParams::new(tool.to_string());
    params.arguments = serde_json::json!({"message": format!("bench {i}")})
        .as_object()
        .cloned();
    let result = client.peer().call_tool(params).await?;
    anyhow::ensure!(
        result.is_error != Some(true),
        "tool error: {:?}",
        result.content
    );
    Ok(())
}

fn line(name: &str, h: &Histogram<u64>) {
    println!(
        "{name:<28} p50 {:>6.3} ms   p90 {:>6.3} ms   p99 {:>6.3} ms   max {:>7.3} ms",
        h.value_at_quantile(0.50) as f64 / 1000.0,
        h.value_at_quantile(0.90) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0,
    );
}

pub async fn run(bin: &str, everything: &str, calls: usize, sessions: usize) -> anyhow::Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut upstream = tokio::process::Command::new("node")
        .arg(everything)
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        anyhow::ensure!(Instant::now() < deadline, "server-everything did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let upstream_url = format!("http://127.0.0.1:{port}/mcp");
    let cs = server::countersign_with(
        bin,
        &format!("mcp:\n  upstreams:\n    - name: everything\n      url: {upstream_url}\n"),
    )?;
    let key = cs.keys["agent:bench"].clone();
    let gateway_url = format!("http://{}/mcp", cs.addr);
    // The same gateway without parking (no lookup of a parked call before each submit).
    let cs_off = server::countersign_with(
        bin,
        &format!(
            "mcp:\n  hold_for: \"{}\"\n  upstreams:\n    - name: everything\n      url: {upstream_url}\n",
            std::env::var("LOADGEN_BASELINE_HOLD_FOR").unwrap_or_else(|_| "off".into())
        ),
    )?;
    let off_url = format!("http://{}/mcp", cs_off.addr);
    let off = connect(&off_url, Some(&cs_off.keys["agent:bench"])).await?;

    let direct = connect(&upstream_url, None).await?;
    let via = connect(&gateway_url, Some(&key)).await?;
    let modern = connect_with(
        &gateway_url,
        Some(&key),
        ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
    )
    .await?;
    for i in 0..200 {
        echo(&direct, "echo", i).await?;
        echo(&via, "everything__echo", i).await?;
        echo(&modern, "everything__echo", i).await?;
        echo(&off, "everything__echo", i).await?;
    }
    let mut ho = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut hd = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut hg = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut hm = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for i in 0..calls {
        let t = Instant::now();
        echo(&direct, "echo", i).await?;
        hd.record(t.elapsed().as_micros() as u64)?;
        let t = Instant::now();
        echo(&via, "everything__echo", i).await?;
        hg.record(t.elapsed().as_micros() as u64)?;
        let t = Instant::now();
        echo(&modern, "everything__echo", i).await?;
        hm.record(t.elapsed().as_micros() as u64)?;
        let t = Instant::now();
        echo(&off, "everything__echo", i).await?;
        ho.record(t.elapsed().as_micros() as u64)?;
    }
    println!("{calls} sequential allowed tools/call (echo), interleaved, one client each");
    line("direct to upstream", &hd);
    line("through countersign", &hg);
    line("through, 2026-07-28 agent", &hm);
    line("through, hold_for: off", &ho);
    let added = |h: &Histogram<u64>, q: f64| {
        (h.value_at_quantile(q) as f64 - hd.value_at_quantile(q) as f64) / 1000.0
    };
    println!(
        "added latency: p50 {:.3} ms, p99 {:.3} ms (agent on 2026-07-28: p50 {:.3} ms, p99 {:.3} ms)",
        added(&hg, 0.50),
        added(&hg, 0.99),
        added(&hm, 0.50),
        added(&hm, 0.99),
    );
    println!(
        "hold_for (50s) vs off: p50 {:+.3} ms, p99 {:+.3} ms",
        (hg.value_at_quantile(0.5) as f64 - ho.value_at_quantile(0.5) as f64) / 1000.0,
        (hg.value_at_quantile(0.99) as f64 - ho.value_at_quantile(0.99) as f64) / 1000.0,
    );

    // Many agent sessions at once: each connects, then all call together.
    let mut clients = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        clients.push(connect(&gateway_url, Some(&key)).await?);
    }
    let per = 10;
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(s, client)| {
            tokio::spawn(async move {
                let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
                let mut errors = 0usize;
                for i in 0..per {
                    let t = Instant::now();
                    match echo(&client, "everything__echo", s * per + i).await {
                        Ok(()) => {
                            let _ = h.record(t.elapsed().as_micros() as u64);
                        }
                        Err(_) => errors += 1,
                    }
                }
                (h, errors)
            })
        })
        .collect();
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut errors = 0;
    for t in tasks {
        let (h, e) = t.await?;
        all.add(&h)?;
        errors += e;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{sessions} concurrent sessions x {per} calls: {} ok, {errors} errors, {:.0} calls/s",
        all.len(),
        all.len() as f64 / secs
    );
    line("through countersign", &all);
    let _ = upstream.kill().await;
    Ok(())
}
