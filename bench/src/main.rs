//! `loadgen`: the HTTP benchmarks of BENCHMARKS.md. It starts the real `countersign serve`
//! (release build) as a separate process on loopback with a benchmark policy, drives it with
//! raw HTTP/1.1 keep-alive connections (hyper, one connection per client), and prints figures.
//! Every loop is bounded in count and time, and only 127.0.0.1 is ever contacted.

mod exec;
mod http;
mod mcp;
mod scenarios;
mod server;
mod soak;
mod standing;

use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    /// The countersign binary to benchmark.
    #[arg(long, default_value = "target/release/countersign", global = true)]
    bin: String,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Auto-allowed actions with durable audit vs a bare axum endpoint, same client load.
    Actions {
        #[arg(long, default_value_t = 64)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// A PostgreSQL server (`postgres://user@host/db`): the gateways use a fresh database
        /// on it instead of SQLite.
        #[arg(long)]
        postgres: Option<String>,
        /// How many replicas share the database (with `--postgres`); clients are spread over
        /// them.
        #[arg(long, default_value_t = 1)]
        replicas: usize,
    },
    /// Vote accepted → waiting long-poll returns. With `--postgres`, two replicas on a fresh
    /// database: the vote on one, the long-poll on the other.
    Wake {
        #[arg(long, default_value_t = 500)]
        requests: usize,
        #[arg(long)]
        postgres: Option<String>,
    },
    /// Slack click received → vote recorded → waiting agent resumed (Slack itself stubbed).
    SlackClick {
        #[arg(long, default_value_t = 300)]
        requests: usize,
    },
    /// Many agents waiting at once: server memory.
    Waiters {
        #[arg(long, default_value_t = 10_000)]
        count: usize,
    },
    /// MCP `tools/call` (allowed) through the gateway vs directly to the same upstream, then
    /// many concurrent agent sessions.
    Mcp {
        /// server-everything's entry point (installed by `npm ci --prefix tests/peers`).
        #[arg(
            long,
            default_value = "tests/peers/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
        )]
        everything: String,
        #[arg(long, default_value_t = 3000)]
        calls: usize,
        #[arg(long, default_value_t = 200)]
        sessions: usize,
    },
    /// An allowed `exec.http` call through the gateway (record, call, outcome) vs the same
    /// call straight to the upstream, interleaved.
    Exec {
        #[arg(long, default_value_t = 2000)]
        calls: usize,
    },
    /// Actions approved at once by a standing approval vs auto-allowed actions, same clients,
    /// alternating rounds.
    Standing {
        #[arg(long, default_value_t = 16)]
        clients: usize,
        #[arg(long, default_value_t = 300)]
        calls: usize,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Mixed load at half the measured capacity for a long time: memory, descriptors, WAL size
    /// and p99 every 10 s, to a CSV file (`bench/soak-plot.py` draws it); exits 1 if they drift.
    Soak {
        #[arg(long, default_value_t = 30)]
        minutes: u64,
        #[arg(long, default_value = "soak.csv")]
        out: String,
    },
    /// (internal) a bare axum server that returns the request body, for comparison.
    BareServer,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _ = rlimit::increase_nofile_limit(65_536);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.scenario {
            Scenario::Actions {
                clients,
                seconds,
                postgres,
                replicas,
            } => scenarios::actions(&cli.bin, clients, seconds, postgres, replicas).await,
            Scenario::Wake { requests, postgres } => {
                scenarios::wake(&cli.bin, requests, postgres).await
            }
            Scenario::SlackClick { requests } => scenarios::slack_click(&cli.bin, requests).await,
            Scenario::Waiters { count } => scenarios::waiters(&cli.bin, count).await,
            Scenario::Mcp {
                everything,
                calls,
                sessions,
            } => mcp::run(&cli.bin, &everything, calls, sessions).await,
            Scenario::Exec { calls } => exec::run(&cli.bin, calls).await,
            Scenario::Standing {
                clients,
                calls,
                rounds,
            } => standing::run(&cli.bin, clients, calls, rounds).await,
            Scenario::Soak { minutes, out } => soak::run(&cli.bin, minutes, &out).await,
            Scenario::BareServer => server::serve_bare().await,
        }
    })
}
