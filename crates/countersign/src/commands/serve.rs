//! `countersign serve`: start the gateway and, on first start, print the new API keys and a
//! copy-paste tour.

use crate::outcome::{self, Failure};

/// `println!` that ignores a closed stdout: the gateway keeps serving when whoever read its
/// banner has gone (`println!` would panic on the broken pipe and end the process).
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}
use countersign_server::Config;
use std::path::Path;

pub async fn run(config_path: Option<&Path>) -> Result<u8, Failure> {
    init_tracing();
    let config = Config::load(config_path).map_err(|e| Failure::usage(e.to_string()))?;
    let sample_policy = config.policy.is_none();
    let running = countersign_server::start(config.clone())
        .await
        .map_err(|e| Failure::other(e.to_string()))?;
    let url = format!("http://{}", running.addr);
    say!("Countersign gateway listening on {url}");
    say!("  console:  {url}/console/");
    say!(
        "  database: {}",
        countersign_server::config::database_display(&config.database)
    );
    match &config.policy {
        Some(p) => say!("  policy:   {} (reloaded on change or SIGHUP)", p.display()),
        None => say!("  policy:   the built-in sample policy"),
    }
    if !running.bootstrap_keys.is_empty() {
        say!("\nFirst start: one API key per principal. They are shown only now; store them.");
        for (who, key) in &running.bootstrap_keys {
            say!("  {:<28} {key}", who.as_str());
        }
        if sample_policy {
            print_tour(&url, &running.bootstrap_keys);
        }
    }
    running
        .until_signalled()
        .await
        .map_err(|e| Failure::other(e.to_string()))?;
    Ok(outcome::OK)
}

fn key_of<'a>(keys: &'a [(countersign_core::PrincipalId, String)], who: &str) -> &'a str {
    keys.iter()
        .find(|(p, _)| p.as_str() == who)
        .map_or("<key>", |(_, k)| k.as_str())
}

fn print_tour(url: &str, keys: &[(countersign_core::PrincipalId, String)]) {
    let agent = key_of(keys, "agent:deploy-bot");
    let bob = key_of(keys, "user:bob@example.com");
    let carol = key_of(keys, "user:carol@example.com");
    say!(
        "
Tour (in another terminal):
  export COUNTERSIGN_URL={url}
  # 1. As the agent, ask to export 5000 rows from production, and wait:
  COUNTERSIGN_TOKEN={agent} countersign request --kind db.export \\
      --resource postgres://prod/customers --params '{{\"rows\": 5000}}' \\
      --justification 'quarterly churn report' --wait
  # 2. In a third terminal, list what waits, then approve as bob (sre) and carol (security):
  COUNTERSIGN_TOKEN={bob} countersign ls
  COUNTERSIGN_TOKEN={bob} countersign approve <ID>
  COUNTERSIGN_TOKEN={carol} countersign approve <ID>
  #    (or open {url}/console/ and sign in with bob's, then carol's key)
  # The agent's `request --wait` returns: approved, exit code 0.
  # 3. Check the record:
  countersign audit verify
"
    );
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("COUNTERSIGN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
