//! `countersign policy replay`: the recorded actions of a period, read from the database,
//! decided again by a proposed policy (`countersign_policy::replay`), and what would change.

use super::audit::open_for_reading;
use crate::cli::Global;
use crate::outcome::{self, Failure};
use countersign_policy::Policy;
use countersign_policy::replay::{ReplayReport, replay as decide_again};
use countersign_store::{MAX_PAGE, RequestQuery};
use std::path::{Path, PathBuf};

pub async fn replay(
    g: &Global,
    policy: &Path,
    since: &str,
    database: Option<PathBuf>,
    config: Option<&Path>,
) -> Result<u8, Failure> {
    let proposed = Policy::load(policy).map_err(|e| Failure::usage(e.to_string()))?;
    let span = humantime::parse_duration(since).map_err(|e| {
        Failure::usage(format!(
            "--since {since}: not a duration like 30d or 12h: {e}"
        ))
    })?;
    let from = chrono::Utc::now()
        - chrono::Duration::from_std(span)
            .map_err(|_| Failure::usage(format!("--since {since} is too long")))?;
    let database = match database {
        Some(d) => d,
        None => PathBuf::from(
            countersign_server::config::Config::load(config)
                .map_err(|e| Failure::usage(e.to_string()))?
                .database,
        ),
    };
    let store = open_for_reading(&database).await?;
    let mut requests = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list_requests(&RequestQuery {
                limit: MAX_PAGE,
                before: before.take(),
                ..RequestQuery::default()
            })
            .await
            .map_err(|e| Failure::other(format!("cannot read the requests: {e}")))?;
        let full = page.len() == MAX_PAGE as usize;
        let last = page.last().map(|r| (r.id().to_owned(), r.created_at()));
        requests.extend(page.into_iter().filter(|r| r.created_at() >= from));
        match last {
            Some((id, created)) if full && created >= from => before = Some(id),
            _ => break,
        }
    }
    let report = decide_again(&proposed, &requests);
    if g.json {
        let mut v = serde_json::to_value(&report).unwrap_or_default();
        v["policy_hash"] = proposed.hash().into();
        v["since"] = from.to_rfc3339().into();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", text(&report, policy, proposed.hash(), since));
    }
    Ok(outcome::OK)
}

fn text(r: &ReplayReport, policy: &Path, hash: &str, since: &str) -> String {
    use std::fmt::Write as _;
    let shown = |s: &str| countersign_core::text::visible(s).into_owned();
    let rule = |r: &Option<String>| r.as_deref().map_or("(default)".to_owned(), shown);
    let mut out = String::new();
    let changed: usize = r.transitions.iter().map(|t| t.count).sum();
    let _ = writeln!(
        out,
        "{} actions of the last {since} decided again by {} ({hash}):",
        r.replayed,
        policy.display()
    );
    let _ = writeln!(
        out,
        "  {} unchanged ({} by another rule), {changed} would change",
        r.unchanged, r.rule_changed
    );
    for t in &r.transitions {
        let _ = writeln!(out, "  {} -> {}: {}", t.from, t.to, t.count);
        for c in &t.rules {
            let _ = writeln!(
                out,
                "    {} -> {}: {}",
                rule(&c.from_rule),
                rule(&c.to_rule),
                c.count
            );
        }
        for e in &t.examples {
            let _ = writeln!(
                out,
                "    e.g. {} {} on {} by {}",
                shown(&e.request),
                shown(&e.kind),
                shown(&e.resource),
                shown(&e.requester)
            );
        }
    }
    out
}
