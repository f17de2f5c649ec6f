//! `countersign`: the gateway (`serve`) and its command line for agents, scripts and people.
//! Each verb lives in `commands`; this file parses, dispatches and turns the outcome into an
//! exit code.
#![forbid(unsafe_code)]

mod cli;
mod client;
mod commands;
mod outcome;
mod render;

use clap::Parser;
use std::process::ExitCode;

/// jemalloc instead of glibc's malloc: under load the request path's many small, short-lived
/// allocations cost ~12% of server CPU in glibc (see BENCHMARKS.md), and jemalloc keeps the
/// idle parts of connection buffers out of resident memory.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                outcome::USAGE
            } else {
                outcome::OK
            });
        }
    };
    // A panic anywhere is logged (with where it happened) before the default report.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!(panic = %info, "countersign panicked");
        default_hook(info);
    }));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("countersign: cannot start the async runtime: {e}");
            return ExitCode::from(outcome::FAILURE);
        }
    };
    let json = cli.global.json;
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            if json {
                let body = serde_json::json!({"error": {"code": f.code.as_deref().unwrap_or("cli_error"), "message": f.message}});
                eprintln!("{body}");
            } else {
                // The message may quote what an agent sent (a kind, a resource, a reason).
                eprintln!("countersign: {}", render::shown(&f.message));
            }
            ExitCode::from(f.exit)
        }
    }
}
