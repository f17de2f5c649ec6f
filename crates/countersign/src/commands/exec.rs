//! `countersign exec -- CMD`: ask for `shell.exec` of a command, wait for approval, redeem the
//! grant, run the command exactly as approved on this machine, then report its outcome to the
//! gateway (`POST /v1/requests/{id}/outcome`), so the record says what it did.
//!
//! The command's stdout and stderr are passed through to ours as they arrive, and its stdout is
//! digested on the way: the outcome's `bytes` and `output_sha256` are the size and SHA-256 of
//! every byte the command wrote to stdout, the rule the gateway's command executor follows.
//! `exec` exits with the command's own exit code, whether or not the report gets through.

use super::remote::{client, parse_duration, wait_for};
use crate::cli::{ExecArgs, Global};
use crate::client::Client;
use crate::outcome::{self, Failure, exit_for_state};
use crate::render;
use countersign_core::State;
use countersign_http::wire::{
    ActionBody, OutcomeBody, RedeemBody, RedeemView, ReportedStatus, RequestView,
};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// How long, after the command exits, its outputs may stay open (held by a process it left
/// running) before the outcome is reported with what was read by then.
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

pub async fn exec(g: &Global, args: ExecArgs) -> Result<u8, Failure> {
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let body = ActionBody {
        kind: args.kind,
        resource: args
            .resource
            .unwrap_or_else(|| format!("shell://{}", hostname())),
        params: Some(serde_json::json!({"argv": args.command, "cwd": cwd})),
        justification: args.justification,
        run: args.run,
        labels: BTreeMap::new(),
        requester: None,
    };
    let deadline = match args.wait.as_deref() {
        Some(w) => Some(Instant::now() + parse_duration(w)?),
        None => None,
    };
    let c = client(g)?;
    let r: RequestView = c.post("/v1/actions", &body).await?;
    if r.state == State::Pending {
        eprintln!(
            "countersign: waiting for approval of {} ({})…",
            render::shown(&r.id),
            render::shown(r.review_url.as_deref().unwrap_or(""))
        );
    }
    let r = wait_for(&c, r, deadline).await?;
    if r.state != State::Approved {
        let why = r
            .outcome
            .clone()
            .unwrap_or_else(|| r.decision.reason.clone());
        eprintln!(
            "countersign: not running the command: request {} is {}: {}",
            render::shown(&r.id),
            r.state.as_str(),
            render::shown(&why)
        );
        return Ok(exit_for_state(r.state));
    }
    let grant = r
        .grant
        .as_ref()
        .ok_or_else(|| Failure::other("the request is approved but carries no grant"))?;
    let _: RedeemView = c
        .post(
            &format!("/v1/grants/{}/redeem", grant.id),
            &RedeemBody {
                digest: r.digest.clone(),
            },
        )
        .await?;
    let argv = body_argv(&r)?;
    let program = argv[0].clone();
    let ran = tokio::task::spawn_blocking(move || {
        run_passing_through(&argv, std::io::stdout(), std::io::stderr())
    })
    .await
    .map_err(|e| Failure::other(format!("the command's runner failed: {e}")))?;
    match ran {
        Ok(ran) => {
            report(&c, &r.id, outcome_of(&ran)).await;
            Ok(exit_code_of(ran.status))
        }
        Err(e) => {
            let error = format!("cannot run {program}: {e}");
            let body = OutcomeBody {
                status: Some(ReportedStatus::Failed),
                error: Some(error.clone()),
                ..OutcomeBody::default()
            };
            report(&c, &r.id, body).await;
            Err(Failure::other(error))
        }
    }
}

/// Reports how the command went; a report that does not get through is a warning, never a
/// change of `exec`'s exit code.
async fn report(c: &Client, id: &str, body: OutcomeBody) {
    let path = format!("/v1/requests/{id}/outcome");
    if let Err(f) = c.post::<_, RequestView>(&path, &body).await {
        eprintln!(
            "countersign: warning: the outcome of {} was not recorded: {}",
            render::shown(id),
            render::shown(&f.message)
        );
    }
}

/// The command line exactly as approved (from the request, not from our own arguments).
fn body_argv(r: &RequestView) -> Result<Vec<String>, Failure> {
    let argv: Vec<String> = r
        .action
        .params
        .get("argv")
        .and_then(|a| serde_json::from_value(a.clone()).ok())
        .unwrap_or_default();
    if argv.is_empty() {
        return Err(Failure::other("the approved action has no command line"));
    }
    Ok(argv)
}

fn exit_code_of(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(c), _) => (c & 0xff) as u8,
        (None, Some(sig)) => (128 + sig).clamp(0, 255) as u8,
        _ => outcome::FAILURE,
    }
}

/// What the command did: how it ended, how long it ran, what its stdout held.
struct Ran {
    status: ExitStatus,
    duration: Duration,
    stdout: Tally,
    /// False when an output was still open `OUTPUT_GRACE` after the command exited: `stdout`
    /// then covers what was read by then.
    outputs_closed: bool,
}

/// The size and SHA-256 of the bytes read so far.
#[derive(Clone, Default)]
struct Tally {
    bytes: u64,
    hash: Sha256,
}

/// The report of `ran`: succeeded on exit code 0, failed otherwise.
fn outcome_of(ran: &Ran) -> OutcomeBody {
    use std::os::unix::process::ExitStatusExt as _;
    let mut errors = vec![];
    if let Some(sig) = ran.status.signal() {
        errors.push(format!("killed by signal {sig}"));
    }
    if !ran.outputs_closed {
        errors.push(format!(
            "its output was still open {}s after it exited (held by a process it started): \
             bytes and output_sha256 cover stdout up to then",
            OUTPUT_GRACE.as_secs()
        ));
    }
    OutcomeBody {
        status: Some(if ran.status.success() {
            ReportedStatus::Succeeded
        } else {
            ReportedStatus::Failed
        }),
        duration_ms: Some(u64::try_from(ran.duration.as_millis()).unwrap_or(u64::MAX)),
        bytes: Some(ran.stdout.bytes),
        output_sha256: Some(hex::encode(ran.stdout.hash.clone().finalize())),
        exit_code: ran.status.code(),
        http_status: None,
        error: (!errors.is_empty()).then(|| errors.join("; ")),
    }
}

/// Runs `argv` (stdin inherited), copying its stdout to `to_out` and its stderr to `to_err` as
/// they arrive, and tallies its stdout. Returns once it has exited and its outputs are closed,
/// or `OUTPUT_GRACE` after it exited.
fn run_passing_through(
    argv: &[String],
    to_out: impl Write + Send + 'static,
    to_err: impl Write + Send + 'static,
) -> std::io::Result<Ran> {
    let started = Instant::now();
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(std::io::Error::other("the command's output was not piped"));
    };
    let tally = Arc::new(Mutex::new(Tally::default()));
    let (closed_tx, closed) = mpsc::channel();
    let out_done = closed_tx.clone();
    let out_tally = Arc::clone(&tally);
    std::thread::spawn(move || {
        pass_through(out, to_out, Some(&out_tally));
        let _ = out_done.send(());
    });
    std::thread::spawn(move || {
        pass_through(err, to_err, None);
        let _ = closed_tx.send(());
    });
    let status = child.wait()?;
    let duration = started.elapsed();
    let grace_ends = Instant::now() + OUTPUT_GRACE;
    let outputs_closed = (0..2).all(|_| {
        closed
            .recv_timeout(grace_ends.saturating_duration_since(Instant::now()))
            .is_ok()
    });
    let stdout = tally.lock().map(|t| t.clone()).unwrap_or_default();
    Ok(Ran {
        status,
        duration,
        stdout,
        outputs_closed,
    })
}

/// Copies `from` to `to` chunk by chunk, flushing each, until `from` closes, adding what it
/// reads to `tally`. A `to` that fails (a closed pipe) stops the copying, not the reading.
fn pass_through(mut from: impl Read, mut to: impl Write, tally: Option<&Mutex<Tally>>) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut writing = true;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        if let Some(tally) = tally
            && let Ok(mut t) = tally.lock()
        {
            t.bytes += n as u64;
            t.hash.update(&buf[..n]);
        }
        if writing {
            writing = to.write_all(&buf[..n]).and_then(|()| to.flush()).is_ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_digests_stdout_and_follows_the_exit_code() {
        let argv: Vec<String> = ["sh", "-c", "echo hi; echo oops >&2; exit 3"]
            .map(String::from)
            .to_vec();
        let ran = run_passing_through(&argv, std::io::sink(), std::io::sink()).unwrap();
        let body = outcome_of(&ran);
        assert_eq!(body.status, Some(ReportedStatus::Failed));
        assert_eq!(body.exit_code, Some(3));
        assert_eq!(body.bytes, Some(3));
        assert_eq!(
            body.output_sha256.as_deref(),
            Some(hex::encode(Sha256::digest(b"hi\n")).as_str())
        );
        assert_eq!(body.error, None);
        assert_eq!(exit_code_of(ran.status), 3);
    }

    #[test]
    fn a_signal_and_a_held_output_are_said() {
        let argv: Vec<String> = ["sh", "-c", "sleep 5 & kill -9 $$"]
            .map(String::from)
            .to_vec();
        let ran = run_passing_through(&argv, std::io::sink(), std::io::sink()).unwrap();
        let body = outcome_of(&ran);
        assert_eq!(body.status, Some(ReportedStatus::Failed));
        assert_eq!(body.exit_code, None);
        let error = body.error.unwrap();
        assert!(error.contains("killed by signal 9"), "{error}");
        assert!(error.contains("still open"), "{error}");
        assert_eq!(exit_code_of(ran.status), 137);
    }
}
