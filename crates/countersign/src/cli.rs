//! The command line's shape: verbs, flags and their help. Parsing only; `commands` acts.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

pub const EXIT_CODES: &str = "\
Exit codes:
  0  approved / allowed (for `exec`: the command's own exit code; for `invoke`: the action
     ran and succeeded; for `hook`: any decision it printed, allow or deny)
  1  other failure (server unreachable, storage error, audit verification failed)
  2  bad usage or input (refused by the server with a 4xx, invalid file or flag, unknown
     executor)
  3  denied
  4  expired or cancelled
  5  still pending (the wait ended before a decision)
  6  the action ran and failed (`invoke`: its outcome is failed or unknown)";

#[derive(Parser)]
#[command(
    name = "countersign",
    version,
    about = "A human countersignature in front of the privileged actions of AI agents.",
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Clone)]
pub struct Global {
    /// Gateway URL.
    #[arg(
        long,
        global = true,
        env = "COUNTERSIGN_URL",
        default_value = "http://127.0.0.1:8750"
    )]
    pub url: String,
    /// API key (prefer the environment variable: flags show up in process lists).
    #[arg(long, global = true, env = "COUNTERSIGN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the gateway (SQLite file and sample policy when given no config).
    Serve {
        /// Config file (YAML). Without it: countersign.db here, the sample policy and principals.
        #[arg(long, short, env = "COUNTERSIGN_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Ask for an action as the agent whose key you hold.
    Request(RequestArgs),
    /// Ask for a plan: several actions approved as one review. Each step the policy sends to
    /// review is then approved at once when you request it (same kind, resource, params and
    /// run); a step the policy denies denies the plan.
    Plan(PlanArgs),
    /// Ask for `shell.exec` of a command, wait for approval, redeem the grant, run it, then
    /// report its outcome (exit code, duration, size and SHA-256 of its standard output).
    Exec(ExecArgs),
    /// Ask the gateway to run one of its executors (an HTTP call, a command, a SQL query with
    /// credentials the agent never holds): submit, wait for approval, execute, print the outcome.
    ///
    /// The HTTP status goes to stderr and the body to stdout; a command's stdout to stdout and
    /// its stderr to stderr; a query's rows to stdout as a table. Control characters other than
    /// line breaks and tabs are escaped. Then one summary line on stderr: status, duration, size
    /// and SHA-256 of the whole output. `--json` prints the whole `{request, outcome}` answer
    /// instead. Exit 0 when the action succeeded, 6 when it ran and failed.
    Invoke(InvokeArgs),
    /// List requests (pending by default).
    Ls {
        /// pending, approved, denied, expired, cancelled, executed, failed or all.
        #[arg(long, default_value = "pending")]
        state: String,
        #[arg(long)]
        run: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show one request in full.
    Show { id: String },
    /// Approve a request (as a person).
    Approve {
        id: String,
        #[arg(long)]
        comment: Option<String>,
        /// The digest you reviewed (default: the request's current digest, shown before voting).
        #[arg(long)]
        digest: Option<String>,
        /// One-time code from your authenticator, when the rule requires MFA.
        #[arg(long)]
        otp: Option<String>,
        /// Also approve the same agent's matching actions for this long (e.g. 30m), when the
        /// rule allows standing approvals and every approver asks for one.
        #[arg(long = "for", value_name = "DURATION", requires = "uses")]
        for_: Option<String>,
        /// How many matching actions the standing approval may approve (with --for).
        #[arg(long, requires = "for_")]
        uses: Option<u32>,
    },
    /// Deny a request (as a person).
    Deny {
        id: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        digest: Option<String>,
        #[arg(long)]
        otp: Option<String>,
    },
    /// Amend a request's params and approve the amended action (as a person, where the rule
    /// allows it with `review.amend: true`).
    Amend {
        id: String,
        /// The params to approve instead, as JSON.
        #[arg(long)]
        params: String,
        #[arg(long)]
        comment: Option<String>,
        /// One-time code from your authenticator, when the rule requires MFA.
        #[arg(long)]
        otp: Option<String>,
    },
    /// Cancel your own request.
    Cancel { id: String },
    /// Standing approvals: list them, or revoke one (the next matching action is asked about
    /// again).
    Standing {
        #[command(subcommand)]
        verb: StandingVerb,
    },
    /// Pause, resume or stop an autonomous run (people only).
    Run {
        #[command(subcommand)]
        verb: RunVerb,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        verb: AuditVerb,
    },
    /// Check, test and explain policy files offline.
    Policy {
        #[command(subcommand)]
        verb: PolicyVerb,
    },
    /// API keys.
    Key {
        #[command(subcommand)]
        verb: KeyVerb,
    },
    /// Second factor for votes on rules with `mfa: true`.
    Mfa {
        #[command(subcommand)]
        verb: MfaVerb,
    },
    /// The MCP gateway, from an agent host's side.
    Mcp {
        #[command(subcommand)]
        verb: McpVerb,
    },
    /// Print the signed attestation (in-toto statement in a DSSE envelope) of a request, after
    /// checking its signature with the gateway's audit key.
    Attest {
        id: String,
        /// The verifier key to check the envelope with (default: the gateway's /v1/audit/key).
        #[arg(long)]
        key: Option<String>,
    },
    /// Put the gateway in front of an agent's tool calls, as that agent's hook.
    Hook {
        #[command(subcommand)]
        agent: HookAgent,
    },
}

#[derive(Subcommand)]
pub enum McpVerb {
    /// Serve MCP on stdin/stdout for an agent host, relaying to the gateway's /mcp with the
    /// agent's key (COUNTERSIGN_TOKEN). Configure the host to launch `countersign mcp stdio`.
    Stdio {
        /// The run these tool calls belong to (default: a new `mcp-stdio:<id>` per launch).
        #[arg(long, env = "COUNTERSIGN_RUN")]
        run: Option<String>,
    },
}

#[derive(Args)]
pub struct RequestArgs {
    #[arg(long)]
    pub kind: String,
    #[arg(long)]
    pub resource: String,
    /// Parameters as a JSON object, shown to approvers.
    #[arg(long)]
    pub params: Option<String>,
    #[arg(long)]
    pub justification: Option<String>,
    #[arg(long)]
    pub run: Option<String>,
    /// Label as KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Wait for the decision: for DURATION (e.g. 10m), or until the request expires when given
    /// no value.
    #[arg(long, num_args = 0..=1, default_missing_value = "until-expiry", value_name = "DURATION")]
    pub wait: Option<String>,
}

#[derive(Args)]
pub struct PlanArgs {
    /// A JSON file (`-`: standard input) holding the steps: an array of
    /// `{"kind", "resource", "params"}` objects, in order.
    #[arg(long)]
    pub steps: PathBuf,
    #[arg(long)]
    pub justification: Option<String>,
    #[arg(long)]
    pub run: Option<String>,
    /// Label as KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Wait for the decision: for DURATION (e.g. 10m), or until the plan expires when given no
    /// value.
    #[arg(long, num_args = 0..=1, default_missing_value = "until-expiry", value_name = "DURATION")]
    pub wait: Option<String>,
}

#[derive(Args)]
pub struct ExecArgs {
    #[arg(long, default_value = "shell.exec")]
    pub kind: String,
    /// What the command touches (default: shell://<hostname>).
    #[arg(long)]
    pub resource: Option<String>,
    #[arg(long)]
    pub justification: Option<String>,
    #[arg(long)]
    pub run: Option<String>,
    /// How long to wait for approval (default: until the request expires).
    #[arg(long)]
    pub wait: Option<String>,
    /// The command and its arguments. Its stdout and stderr pass through (as pipes, not the
    /// terminal); the outcome reported covers the bytes of its stdout (`bytes`, and
    /// `output_sha256`: the SHA-256 of them), as an executor's does.
    #[arg(last = true, required = true, num_args = 1..)]
    pub command: Vec<String>,
}

#[derive(Args)]
pub struct InvokeArgs {
    /// The executor's name (the gateway's `GET /v1/executors` lists them).
    pub executor: String,
    /// A parameter as KEY=VALUE (repeatable). VALUE is a string, except for the parameters the
    /// executor's schema does not declare as strings (an HTTP executor's `body`, `query` and
    /// `headers`, a SQL executor's `args`): those are JSON when VALUE parses as JSON, else the
    /// string.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// The SQL of a SQL executor (the `sql` parameter).
    #[arg(long, value_name = "TEXT")]
    pub sql: Option<String>,
    /// The values of $1, $2, ... of a SQL executor's statement, as a JSON array (`args`).
    #[arg(long, value_name = "JSON")]
    pub args: Option<String>,
    #[arg(long)]
    pub justification: Option<String>,
    #[arg(long)]
    pub run: Option<String>,
    /// How long to wait for approval, e.g. 10m (default, and with no value: until the request
    /// expires). Still pending then: exit 5, nothing runs.
    #[arg(long, num_args = 0..=1, default_missing_value = "until-expiry", value_name = "DURATION")]
    pub wait: Option<String>,
}

#[derive(Subcommand)]
pub enum StandingVerb {
    /// List the standing approvals of the last 7 days (in force only, unless --all).
    Ls {
        #[arg(long)]
        all: bool,
    },
    /// Revoke a standing approval (`std_…`).
    Revoke { id: String },
}

#[derive(Subcommand)]
pub enum RunVerb {
    Pause { run: String },
    Resume { run: String },
    Stop { run: String },
}

#[derive(Subcommand)]
pub enum AuditVerb {
    /// Recompute every audit entry's hash, the chain and the Merkle tree, check them against
    /// every signed checkpoint, and name the first bad entry. Reads the database (default), an
    /// exported bundle (--bundle) or the gateway's API (--api, with --url and a person's key).
    Verify {
        /// The database file (default: the config's, or ./countersign.db).
        #[arg(long, conflicts_with_all = ["bundle", "api"])]
        database: Option<PathBuf>,
        #[arg(long, short, env = "COUNTERSIGN_CONFIG")]
        config: Option<PathBuf>,
        /// Verify a folder written by `countersign audit export`.
        #[arg(long, conflicts_with = "api")]
        bundle: Option<PathBuf>,
        /// Verify through the gateway's HTTP API (--url, COUNTERSIGN_TOKEN of a person).
        #[arg(long)]
        api: bool,
        /// The verifier key you trust (`<name>+<id>+<key>`, or a file holding it). Default: the
        /// config's key file (database), the bundle's `key` file, or the gateway's /v1/audit/key.
        #[arg(long)]
        key: Option<String>,
        /// A checkpoint you kept: also prove that the log extends it.
        #[arg(long)]
        trusted_checkpoint: Option<PathBuf>,
    },
    /// Write the audit log as a bundle anyone can verify: `entries.jsonl` (each line exactly
    /// the bytes hashed into its leaf), `checkpoints/<size>` (signed notes), `checkpoint` (the
    /// latest) and `key` (the verifier key).
    Export {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        database: Option<PathBuf>,
        #[arg(long, short, env = "COUNTERSIGN_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Fetch the gateway's latest checkpoint (--url), check that it extends the one kept in
    /// --state, and keep the new one: a job an outside team runs to detect a rewritten history
    /// or a split view. Exits 1, keeping the old state, when they are inconsistent.
    Witness {
        /// Where the last checkpoint seen (and the key it was signed with) is kept.
        #[arg(long)]
        state: PathBuf,
        /// The verifier key to trust on the first run (default: the gateway's /v1/audit/key).
        #[arg(long)]
        key: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum PolicyVerb {
    /// Validate a policy file; errors name the line and the rule.
    Check { file: PathBuf },
    /// Run expected-decision cases against a policy file.
    Test { file: PathBuf, cases: PathBuf },
    /// Show which rule decides an action, and why.
    Explain {
        file: PathBuf,
        /// Principal id; its owner and groups come from the config (or the sample principals).
        #[arg(long)]
        principal: String,
        /// The action as JSON: {"kind": ..., "resource": ..., "params": {...}}.
        #[arg(long)]
        action: String,
        #[arg(long, short, env = "COUNTERSIGN_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Decide the recorded actions again with a proposed policy and report how many decisions
    /// would change, by transition (allow → review, review → deny, ...) and rule, with examples.
    Replay {
        /// The proposed policy file.
        #[arg(long)]
        policy: PathBuf,
        /// How far back: actions asked in the last DURATION (e.g. 30d, 12h).
        #[arg(long, default_value = "30d")]
        since: String,
        /// The database (default: the config's): a SQLite file or a postgres:// URL.
        #[arg(long)]
        database: Option<PathBuf>,
        #[arg(long, short, env = "COUNTERSIGN_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum KeyVerb {
    /// Create an API key for PRINCIPAL; prints it once, alone on stdout.
    Create {
        principal: String,
        #[arg(long, short, env = "COUNTERSIGN_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Revoke every API key of PRINCIPAL and end all their console sessions (API-key and
    /// identity-provider sign-ins alike), recorded as `key.revoked`. Running gateways stop
    /// accepting the keys within 10 s and the sessions at once.
    Revoke {
        principal: String,
        #[arg(long, short, env = "COUNTERSIGN_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum HookAgent {
    /// Claude Code PreToolUse or PermissionRequest hook: reads the event on stdin, asks the
    /// gateway as the agent, prints allow or deny on stdout in the event's shape (see
    /// docs/claude-code.md). Exits 2 on a bad event.
    ClaudeCode {
        /// Seconds the hook may take in all, waiting included; keep it under the hook's
        /// `timeout` in settings.json (60 by default), or Claude Code kills the hook first.
        #[arg(long, default_value_t = 55, value_parser = clap::value_parser!(u64).range(1..))]
        timeout: u64,
    },
}

#[derive(Subcommand)]
pub enum MfaVerb {
    /// Enroll a TOTP authenticator; prints the otpauth:// URI to scan. When you already have a
    /// second factor, confirm with a current code from it (--otp).
    Enroll {
        /// A current one-time code from the authenticator being replaced.
        #[arg(long)]
        otp: Option<String>,
    },
    /// Remove every second factor of PRINCIPAL (a person who lost theirs, or whose factor was
    /// enrolled by someone else), recorded in the audit log. Local: opens the database named
    /// by the configuration, no gateway needed. The person then enrols anew.
    Reset {
        /// The person's id, e.g. user:alice@example.com.
        principal: String,
        #[arg(long, short, env = "COUNTERSIGN_CONFIG")]
        config: Option<PathBuf>,
    },
}
