//! Verbs that talk to a running gateway: ask, wait, list, show, vote, cancel, steer runs, enroll
//! MFA, relay MCP; and what `exec` and `invoke` share with them (the client, waiting).

use crate::cli::{Global, McpVerb, PlanArgs, RequestArgs, RunVerb};
use crate::client::Client;
use crate::outcome::{self, Failure, exit_for_state};
use crate::render;
use countersign_core::{State, VoteDecision};
use countersign_http::wire::{
    ActionBody, MfaEnrollment, PlanBody, RequestList, RequestView, RunView, VoteBody,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Longest single long-poll; the CLI re-polls until its own deadline.
const POLL: Duration = Duration::from_secs(60);

pub(super) fn client(g: &Global) -> Result<Client, Failure> {
    Client::new(&g.url, g.token.clone())
}

fn print_request(g: &Global, r: &RequestView) {
    if g.json {
        println!("{}", serde_json::to_string_pretty(r).unwrap_or_default());
    } else {
        print!("{}", render::detail(r));
    }
}

pub(super) fn parse_duration(s: &str) -> Result<Duration, Failure> {
    humantime::parse_duration(s)
        .map_err(|_| Failure::usage(format!("`{s}` is not a duration like 30s, 10m or 1h")))
}

/// `None` waits until the request is decided or expires.
pub(super) fn wait_deadline(wait: &str) -> Result<Option<Instant>, Failure> {
    if wait == "until-expiry" {
        return Ok(None);
    }
    Ok(Some(Instant::now() + parse_duration(wait)?))
}

/// Long-polls until `r` leaves `pending` or `deadline` passes (`None`: until it expires).
pub(super) async fn wait_for(
    c: &Client,
    mut r: RequestView,
    deadline: Option<Instant>,
) -> Result<RequestView, Failure> {
    while r.state == State::Pending {
        let left = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => POLL,
        };
        if left.is_zero() {
            break;
        }
        let chunk = left.min(POLL);
        let path = format!("/v1/requests/{}?wait={}s", r.id, chunk.as_secs().max(1));
        r = c.get(&path, chunk + Duration::from_secs(15)).await?;
    }
    Ok(r)
}

fn parse_params(params: Option<&str>) -> Result<Option<serde_json::Value>, Failure> {
    params
        .map(|p| {
            // Parsing would round an imprecise number or keep one of two equal keys, and the
            // gateway would then approve what was parsed, not what was typed (invariant 9).
            countersign_core::json_text::check(p.as_bytes())
                .map_err(|e| Failure::usage(format!("--params: {e}")))?;
            serde_json::from_str::<serde_json::Value>(p)
                .map_err(|e| Failure::usage(format!("--params is not valid JSON: {e}")))
                .and_then(|v| {
                    if v.is_object() {
                        Ok(v)
                    } else {
                        Err(Failure::usage("--params must be a JSON object"))
                    }
                })
        })
        .transpose()
}

fn parse_labels(labels: &[String]) -> Result<BTreeMap<String, String>, Failure> {
    labels
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| Failure::usage(format!("--label {l}: expected KEY=VALUE")))
        })
        .collect()
}

pub async fn request(g: &Global, args: RequestArgs) -> Result<u8, Failure> {
    let body = ActionBody {
        kind: args.kind,
        resource: args.resource,
        params: parse_params(args.params.as_deref())?,
        justification: args.justification,
        run: args.run,
        labels: parse_labels(&args.labels)?,
        requester: None,
    };
    let deadline = args.wait.as_deref().map(wait_deadline).transpose()?;
    let c = client(g)?;
    let mut r: RequestView = c.post("/v1/actions", &body).await?;
    if let Some(deadline) = deadline {
        if r.state == State::Pending && !g.json {
            eprintln!(
                "waiting for approval of {} ({})…",
                render::shown(&r.id),
                render::shown(r.review_url.as_deref().unwrap_or(""))
            );
        }
        r = wait_for(&c, r, deadline).await?;
    }
    print_request(g, &r);
    Ok(exit_for_state(r.state))
}

/// `countersign plan`: submits the steps in `--steps` as one plan, like `request` submits one
/// action (same waiting, printing and exit codes).
pub async fn plan(g: &Global, args: PlanArgs) -> Result<u8, Failure> {
    let text = if args.steps.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| Failure::usage(format!("--steps: cannot read standard input: {e}")))?;
        text
    } else {
        std::fs::read_to_string(&args.steps).map_err(|e| {
            Failure::usage(format!(
                "--steps: cannot read {}: {e}",
                args.steps.display()
            ))
        })?
    };
    countersign_core::json_text::check(text.as_bytes())
        .map_err(|e| Failure::usage(format!("--steps: {e}")))?;
    let steps: Vec<countersign_core::plan::StepInput> = serde_json::from_str(&text).map_err(|e| {
        Failure::usage(format!(
            "--steps must be a JSON array of {{\"kind\", \"resource\", \"params\"}} objects: {e}"
        ))
    })?;
    let body = PlanBody {
        steps,
        justification: args.justification,
        run: args.run,
        labels: parse_labels(&args.labels)?,
        requester: None,
    };
    let deadline = args.wait.as_deref().map(wait_deadline).transpose()?;
    let c = client(g)?;
    let mut r: RequestView = c.post("/v1/plans", &body).await?;
    if let Some(deadline) = deadline {
        if r.state == State::Pending && !g.json {
            eprintln!(
                "waiting for approval of plan {} ({})…",
                render::shown(&r.id),
                render::shown(r.review_url.as_deref().unwrap_or(""))
            );
        }
        r = wait_for(&c, r, deadline).await?;
    }
    print_request(g, &r);
    Ok(exit_for_state(r.state))
}

pub async fn ls(g: &Global, state: &str, run: Option<String>, limit: u32) -> Result<u8, Failure> {
    let c = client(g)?;
    let mut path = format!("/v1/requests?state={state}&limit={limit}");
    if let Some(run) = run {
        path.push_str(&format!("&run={run}"));
    }
    let list: RequestList = c.get(&path, Duration::from_secs(30)).await?;
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        );
    } else {
        print!("{}", render::table(&list.requests));
    }
    Ok(outcome::OK)
}

pub async fn show(g: &Global, id: &str) -> Result<u8, Failure> {
    let c = client(g)?;
    let r: RequestView = c
        .get(&format!("/v1/requests/{id}"), Duration::from_secs(30))
        .await?;
    print_request(g, &r);
    Ok(outcome::OK)
}

pub async fn vote(
    g: &Global,
    id: &str,
    decision: VoteDecision,
    comment: Option<String>,
    digest: Option<String>,
    otp: Option<String>,
    standing: Option<countersign_http::wire::StandingAskBody>,
) -> Result<u8, Failure> {
    let c = client(g)?;
    let digest = match digest {
        Some(d) => d,
        None => {
            // Show the approver exactly what they are voting on, then vote on that digest.
            let r: RequestView = c
                .get(&format!("/v1/requests/{id}"), Duration::from_secs(30))
                .await?;
            if !g.json {
                eprint!("{}", render::detail(&r));
            }
            r.digest
        }
    };
    let body = VoteBody {
        decision,
        digest,
        comment,
        otp,
        standing,
    };
    let r: RequestView = c.post(&format!("/v1/requests/{id}/votes"), &body).await?;
    if g.json {
        print_request(g, &r);
    } else {
        let verb = match decision {
            VoteDecision::Approve => "approved",
            VoteDecision::Deny => "denied",
        };
        println!(
            "you {verb} {}; it is now {}",
            render::shown(&r.id),
            r.state.as_str()
        );
    }
    Ok(outcome::OK)
}

/// `countersign amend`: shows the request, then amends its params to `params` and approves.
pub async fn amend(
    g: &Global,
    id: &str,
    params: &str,
    comment: Option<String>,
    otp: Option<String>,
) -> Result<u8, Failure> {
    let params: serde_json::Value = serde_json::from_str(params)
        .map_err(|e| Failure::usage(format!("--params is not JSON: {e}")))?;
    let c = client(g)?;
    let r: RequestView = c
        .get(&format!("/v1/requests/{id}"), Duration::from_secs(30))
        .await?;
    if !g.json {
        eprint!("{}", render::detail(&r));
    }
    let body = countersign_http::wire::AmendBody {
        params,
        comment,
        digest: Some(r.digest),
        otp,
    };
    let r: RequestView = c.post(&format!("/v1/requests/{id}/amend"), &body).await?;
    if g.json {
        print_request(g, &r);
    } else {
        println!(
            "you amended and approved {}; it is now {} (digest {})",
            render::shown(&r.id),
            r.state.as_str(),
            render::shown(&r.digest)
        );
    }
    Ok(outcome::OK)
}

/// `countersign standing ls|revoke`.
pub async fn standing(g: &Global, verb: crate::cli::StandingVerb) -> Result<u8, Failure> {
    use countersign_http::wire::{StandingList, StandingView};
    let c = client(g)?;
    let views = match verb {
        crate::cli::StandingVerb::Ls { all } => {
            let path = if all {
                "/v1/standing?state=all"
            } else {
                "/v1/standing?state=active"
            };
            let list: StandingList = c.get(path, Duration::from_secs(30)).await?;
            list.standing
        }
        crate::cli::StandingVerb::Revoke { id } => {
            let v: StandingView = c
                .post(&format!("/v1/standing/{id}/revoke"), &serde_json::json!({}))
                .await?;
            vec![v]
        }
    };
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&views).unwrap_or_default()
        );
    } else if views.is_empty() {
        println!("no standing approvals");
    } else {
        for v in &views {
            print!("{}", render::standing(v));
        }
    }
    Ok(outcome::OK)
}

pub async fn cancel(g: &Global, id: &str) -> Result<u8, Failure> {
    let c = client(g)?;
    let r: RequestView = c
        .post(&format!("/v1/requests/{id}/cancel"), &serde_json::json!({}))
        .await?;
    print_request(g, &r);
    Ok(outcome::OK)
}

pub async fn run_control(g: &Global, verb: RunVerb) -> Result<u8, Failure> {
    let (run, verb) = match verb {
        RunVerb::Pause { run } => (run, "pause"),
        RunVerb::Resume { run } => (run, "resume"),
        RunVerb::Stop { run } => (run, "stop"),
    };
    let c = client(g)?;
    let v: RunView = c
        .post(&format!("/v1/runs/{run}/{verb}"), &serde_json::json!({}))
        .await?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!("run {} is {:?}", render::shown(&v.id), v.state);
        for id in v.changed {
            println!("  changed {}", render::shown(&id));
        }
    }
    Ok(outcome::OK)
}

pub async fn mfa_enroll(g: &Global, otp: Option<String>) -> Result<u8, Failure> {
    let c = client(g)?;
    let body = countersign_http::wire::MfaEnrollBody { otp };
    let e: MfaEnrollment = c.post("/v1/mfa/totp", &body).await?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&e).unwrap_or_default());
    } else {
        println!("{}", e.otpauth_uri);
        eprintln!(
            "Add this to your authenticator app; then vote with --otp CODE where a rule requires MFA."
        );
    }
    Ok(outcome::OK)
}

/// `countersign mcp stdio`: checks the key with the gateway, then relays MCP between this
/// process's stdin/stdout and the gateway's `/mcp`. Nothing but MCP is written to stdout.
pub async fn mcp(g: &Global, verb: McpVerb) -> Result<u8, Failure> {
    let McpVerb::Stdio { run } = verb;
    let c = client(g)?;
    let _: serde_json::Value = c.get("/v1/whoami", Duration::from_secs(10)).await?;
    let token = g.token.clone().unwrap_or_default();
    let run = run.unwrap_or_else(|| {
        format!(
            "{}{}",
            countersign_mcp::naming::BRIDGE_RUN_PREFIX,
            uuid::Uuid::now_v7().simple()
        )
    });
    let endpoint = format!("{}/mcp", g.url.trim_end_matches('/'));
    countersign_mcp::bridge::run(&endpoint, &token, &run)
        .await
        .map_err(Failure::other)?;
    Ok(outcome::OK)
}
