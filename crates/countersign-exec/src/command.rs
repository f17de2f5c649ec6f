//! `exec.command.<name>`: one program run from a fixed argv template, without a shell.
//!
//! The action: `kind: exec.command.<name>`, `resource: command://<name>`, `params`: exactly the
//! template's declared parameters, each a string. A parameter is checked against its `pattern`
//! (which must match the whole value) or its `enum`, then put in place of its `{name}`
//! placeholders as it is: a value with spaces, `;` or `$(…)` stays inside its one argument and
//! nothing interprets it.
//!
//! **Invariant (no shell, no inherited secrets):** [`CommandExecutor::run`] is the one place
//! that starts a process. It runs the template's program directly, with a cleared environment
//! (the configured variables, and `PATH`, `HOME`, `LANG` copied from the gateway), stdin closed,
//! in a process group of its own that is killed whole at the timeout or when the output passes
//! `max_output_bytes`, and after the program exits. On Linux the program also dies if the
//! gateway does. Resolved secrets (`env` values) are never put in an error; what the program
//! prints is redacted by the crate's one redactor ([`crate::Executors`]), not here.

use crate::invalid;
use crate::output::Capture;
use crate::secret::Resolver;
use countersign_app::executors::{Checked, ExecRefusal, ExecutorInfo};
use countersign_core::{Action, ExecStatus, Outcome};
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt as _};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// The program and its arguments; arguments may hold `{param}` placeholders (`{{` and `}}`
    /// are literal braces).
    pub argv: Vec<String>,
    #[serde(default)]
    pub params: BTreeMap<String, ParamConfig>,
    /// The program's environment, beside `PATH`, `HOME` and `LANG`; values may hold secret
    /// references.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default = "default_timeout", deserialize_with = "crate::duration")]
    pub timeout: Duration,
    #[serde(default = "default_max_output", deserialize_with = "crate::size")]
    pub max_output_bytes: u64,
}

/// One declared parameter: exactly one of `pattern` and `enum`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamConfig {
    /// A regex the whole value must match.
    #[serde(default)]
    pub pattern: Option<String>,
    /// The values allowed.
    #[serde(default, rename = "enum")]
    pub one_of: Option<Vec<String>>,
    #[serde(default)]
    pub description: Option<String>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_max_output() -> u64 {
    1024 * 1024
}

/// The variables copied from the gateway's environment when it has them.
pub const INHERITED_ENV: &[&str] = &["PATH", "HOME", "LANG"];

/// How long to wait for a killed program to be reaped before giving up on its exit status.
const REAP_GRACE: Duration = Duration::from_secs(5);

/// The longest part of a refused value an error shows.
const SHOWN_VALUE_CHARS: usize = 60;

/// A piece of one argument of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Param(String),
}

/// What a parameter's value must be.
enum Rule {
    /// Compiled as `^(?:…)$`; the source is kept for errors and the schema.
    Pattern {
        regex: Regex,
        source: String,
    },
    OneOf(Vec<String>),
}

struct Param {
    rule: Rule,
    description: Option<String>,
}

/// A configured command, its secrets resolved. Not `Debug`: its environment holds them.
pub struct CommandExecutor {
    name: String,
    /// The template as configured, for the description.
    template: Vec<String>,
    program: String,
    args: Vec<Vec<Piece>>,
    params: BTreeMap<String, Param>,
    /// The whole environment of the program: the inherited variables, then the configured
    /// ones (which win).
    env: BTreeMap<String, String>,
    timeout: Duration,
    max_output_bytes: u64,
}

impl CommandExecutor {
    pub fn build(name: &str, c: &CommandConfig, r: &mut Resolver) -> Result<Self, String> {
        let Some((program, rest)) = c.argv.split_first() else {
            return Err("`argv` is empty: give the program and its arguments".into());
        };
        let program_pieces = parse_arg(program).map_err(|e| format!("`argv[0]`: {e}"))?;
        let program = match program_pieces.as_slice() {
            [] => return Err("`argv[0]`: the program is empty".into()),
            [Piece::Text(p)] => p.clone(),
            _ => return Err("`argv[0]`: the program may not hold a placeholder".into()),
        };
        if program.contains('\0') {
            return Err("`argv[0]`: the program holds a NUL byte".into());
        }
        let mut args = Vec::with_capacity(rest.len());
        for (i, arg) in rest.iter().enumerate() {
            let at = i + 1;
            let pieces = parse_arg(arg).map_err(|e| format!("`argv[{at}]`: {e}"))?;
            for piece in &pieces {
                match piece {
                    Piece::Text(t) if t.contains('\0') => {
                        return Err(format!("`argv[{at}]` holds a NUL byte"));
                    }
                    Piece::Param(p) if !c.params.contains_key(p) => {
                        return Err(format!(
                            "`argv[{at}]`: `{{{p}}}` names no parameter: declare it under `params`"
                        ));
                    }
                    _ => {}
                }
            }
            args.push(pieces);
        }
        let mut params = BTreeMap::new();
        for (p, config) in &c.params {
            if !valid_param_name(p) {
                return Err(format!(
                    "`params.{p}`: a parameter name is a-z or `_`, then a-z, 0-9 or `_`"
                ));
            }
            let used = args
                .iter()
                .flatten()
                .any(|piece| matches!(piece, Piece::Param(q) if q == p));
            if !used {
                return Err(format!(
                    "`params.{p}` is used in no `argv` entry: use it as `{{{p}}}` or remove it"
                ));
            }
            let rule = match (&config.pattern, &config.one_of) {
                (Some(source), None) => {
                    let regex = Regex::new(&format!("^(?:{source})$"))
                        .map_err(|e| format!("`params.{p}.pattern` is not a regex: {e}"))?;
                    Rule::Pattern {
                        regex,
                        source: source.clone(),
                    }
                }
                (None, Some(values)) => {
                    if values.is_empty() {
                        return Err(format!(
                            "`params.{p}.enum` is empty: list the values allowed"
                        ));
                    }
                    if values.iter().any(|v| v.contains('\0')) {
                        return Err(format!("`params.{p}.enum` holds a value with a NUL byte"));
                    }
                    Rule::OneOf(values.clone())
                }
                _ => {
                    return Err(format!(
                        "`params.{p}`: give exactly one of `pattern` (a regex the whole value \
                         must match) or `enum` (the values allowed)"
                    ));
                }
            };
            params.insert(
                p.clone(),
                Param {
                    rule,
                    description: config.description.clone(),
                },
            );
        }
        let mut env = BTreeMap::new();
        for var in INHERITED_ENV {
            if let Ok(value) = std::env::var(var) {
                env.insert((*var).to_owned(), value);
            }
        }
        for (k, v) in &c.env {
            if !valid_env_name(k) {
                return Err(format!(
                    "`env`: {k:?} is not a variable name (a letter or `_`, then letters, digits \
                     or `_`)"
                ));
            }
            let value = r.resolve(v).map_err(|e| format!("`env.{k}`: {e}"))?;
            if value.contains('\0') {
                return Err(format!("`env.{k}`: its value holds a NUL byte"));
            }
            env.insert(k.clone(), value);
        }
        if c.timeout.is_zero() {
            return Err("`timeout` must be above zero".into());
        }
        if c.max_output_bytes == 0 {
            return Err("`max_output_bytes` must be above zero".into());
        }
        Ok(CommandExecutor {
            name: name.to_owned(),
            template: c.argv.clone(),
            program,
            args,
            params,
            env,
            timeout: c.timeout,
            max_output_bytes: c.max_output_bytes,
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The resource every action of this executor names.
    fn resource(&self) -> String {
        format!("command://{}", self.name)
    }

    /// The arguments after the program `action` makes, or why it may not run.
    fn arguments(&self, action: &Action) -> Result<Vec<String>, ExecRefusal> {
        let resource = self.resource();
        if action.resource != resource {
            return Err(invalid("resource", format!("must be {resource:?}")));
        }
        let Some(given) = action.params.as_object() else {
            return Err(invalid(
                "params",
                format!("must be an object of strings: {}", self.param_list()),
            ));
        };
        if let Some(extra) = given.keys().find(|k| !self.params.contains_key(k.as_str())) {
            return Err(invalid(
                extra,
                format!(
                    "is not a parameter of executor {} (its parameters: {})",
                    self.name,
                    self.param_list()
                ),
            ));
        }
        let mut values = BTreeMap::new();
        for (p, param) in &self.params {
            let value = match given.get(p) {
                None => return Err(invalid(p, format!("is required: {}", param.expects()))),
                Some(serde_json::Value::String(s)) => s.as_str(),
                Some(other) => {
                    return Err(invalid(
                        p,
                        format!(
                            "must be a string, not {}: {}",
                            json_kind(other),
                            param.expects()
                        ),
                    ));
                }
            };
            if value.contains('\0') {
                return Err(invalid(p, "may not hold a NUL byte"));
            }
            let allowed = match &param.rule {
                Rule::Pattern { regex, .. } => regex.is_match(value),
                Rule::OneOf(values) => values.iter().any(|v| v == value),
            };
            if !allowed {
                return Err(invalid(
                    p,
                    format!("{:?} is refused: {}", shown(value), param.expects()),
                ));
            }
            values.insert(p.as_str(), value);
        }
        Ok(self
            .args
            .iter()
            .map(|pieces| {
                pieces
                    .iter()
                    .map(|piece| match piece {
                        Piece::Text(t) => t.as_str(),
                        // Every placeholder names a declared parameter (build), and every
                        // declared parameter has a value here.
                        Piece::Param(p) => values.get(p.as_str()).copied().unwrap_or_default(),
                    })
                    .collect()
            })
            .collect())
    }

    fn param_list(&self) -> String {
        if self.params.is_empty() {
            return "none".into();
        }
        self.params.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    pub fn check(&self, action: &Action) -> Result<Checked, ExecRefusal> {
        self.arguments(action)?;
        Ok(Checked {
            executor: self.name.clone(),
            timeout: self.timeout,
            facts: vec![],
        })
    }

    pub async fn run(&self, action: &Action) -> Outcome {
        let started_at = Instant::now();
        let args = match self.arguments(action) {
            Ok(a) => a,
            Err(e) => return Outcome::with_error(ExecStatus::Failed, e.to_string()),
        };
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(&args)
            .env_clear()
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Belt and braces: `Started` kills the whole group when dropped unreaped.
            .kill_on_drop(true);
        process_group::isolate(&mut command);
        let mut child = match command.spawn() {
            Ok(c) => c,
            Err(e) => {
                let mut o = Outcome::with_error(
                    ExecStatus::Failed,
                    format!("cannot start `{}`: {e}", self.program),
                );
                o.duration_ms = millis(started_at);
                return o;
            }
        };
        let group = child.id();
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let mut started = Started {
            child,
            group,
            reaped: false,
        };
        let (Some(stdout), Some(stderr)) = (stdout, stderr) else {
            return Outcome::with_error(ExecStatus::Failed, "the program's output was not piped");
        };
        let watched = self.watch(&mut started, stdout, stderr).await;
        let out = watched.stdout.finish();
        let err = watched.stderr.finish();
        let mut o = Outcome::with_status(ExecStatus::Failed);
        o.duration_ms = millis(started_at);
        o.bytes = out.bytes;
        o.output_sha256 = Some(out.sha256);
        o.truncated = out.cut || err.cut || matches!(watched.end, End::OverLimit);
        o.stdout = Some(out.copy);
        o.stderr = Some(err.copy);
        let program = &self.program;
        o.error = match watched.end {
            End::Exited(status) => match status.code() {
                Some(0) => {
                    o.status = ExecStatus::Succeeded;
                    None
                }
                Some(code) => {
                    o.exit_code = Some(code);
                    Some(format!("`{program}` exited with code {code}"))
                }
                None => Some(format!(
                    "`{program}` was killed by {}",
                    process_group::signal_of(&status)
                )),
            },
            End::TimedOut => Some(format!(
                "`{program}` timed out after {} and was killed, with every process it started \
                 in its process group",
                humantime::format_duration(self.timeout)
            )),
            End::OutputHeld(status) => {
                o.exit_code = status.code();
                Some(format!(
                    "`{program}` exited ({status}) but its output was still open when it timed \
                     out after {}: a process it started outside its process group holds it",
                    humantime::format_duration(self.timeout)
                ))
            }
            End::OverLimit => Some(format!(
                "the output passed max_output_bytes ({} bytes): `{program}` was killed, with its \
                 process group, and the rest was not read",
                self.max_output_bytes
            )),
            End::Lost(e) => {
                o.status = ExecStatus::Unknown;
                Some(format!("lost track of `{program}` (it was killed): {e}"))
            }
        };
        o
    }

    /// Reads both outputs while the program runs, until it has exited and both are closed, the
    /// timeout passes, or the output passes the limit; kills the process group unless the
    /// program ended on its own.
    async fn watch(
        &self,
        started: &mut Started,
        mut stdout: impl AsyncRead + Unpin,
        mut stderr: impl AsyncRead + Unpin,
    ) -> Watched {
        let mut out = Capture::default();
        let mut err = Capture::default();
        let mut out_buf = vec![0u8; 16 * 1024];
        let mut err_buf = vec![0u8; 16 * 1024];
        let (mut out_open, mut err_open) = (true, true);
        let mut exited: Option<ExitStatus> = None;
        let deadline = tokio::time::sleep(self.timeout);
        tokio::pin!(deadline);
        let end = loop {
            if let Some(status) = exited
                && !out_open
                && !err_open
            {
                break End::Exited(status);
            }
            let room = self
                .max_output_bytes
                .saturating_sub(out.bytes() + err.bytes());
            tokio::select! {
                read = stdout.read(&mut out_buf), if out_open => match read {
                    Ok(0) | Err(_) => out_open = false,
                    Ok(n) => if take(&mut out, &out_buf[..n], room) {
                        break End::OverLimit;
                    },
                },
                read = stderr.read(&mut err_buf), if err_open => match read {
                    Ok(0) | Err(_) => err_open = false,
                    Ok(n) => if take(&mut err, &err_buf[..n], room) {
                        break End::OverLimit;
                    },
                },
                status = started.wait(), if exited.is_none() => match status {
                    Ok(status) => {
                        exited = Some(status);
                        started.kill_leftovers();
                    }
                    Err(e) => break End::Lost(e.to_string()),
                },
                () = &mut deadline => break match exited {
                    Some(status) => End::OutputHeld(status),
                    None => End::TimedOut,
                },
            }
        };
        if !started.reaped {
            started.kill();
            if tokio::time::timeout(REAP_GRACE, started.wait())
                .await
                .is_err()
            {
                tracing::warn!(executor = %self.name, "a killed command was not reaped in time");
            }
        }
        Watched {
            stdout: out,
            stderr: err,
            end,
        }
    }

    pub fn info(&self) -> ExecutorInfo {
        let mut properties = serde_json::Map::new();
        for (p, param) in &self.params {
            let mut schema = serde_json::json!({"type": "string"});
            match &param.rule {
                Rule::Pattern { source, .. } => {
                    schema["pattern"] = format!("^(?:{source})$").into();
                }
                Rule::OneOf(values) => schema["enum"] = values.clone().into(),
            }
            if let Some(d) = &param.description {
                schema["description"] = d.clone().into();
            }
            properties.insert(p.clone(), schema);
        }
        ExecutorInfo {
            name: self.name.clone(),
            kind: format!("exec.command.{}", self.name),
            description: format!(
                "Runs `{}` on the gateway, without a shell; each {{parameter}} is replaced by \
                 its checked value, which stays within its one argument",
                self.template.join(" ")
            ),
            params_schema: serde_json::json!({
                "type": "object",
                "properties": properties,
                "required": self.params.keys().collect::<Vec<_>>(),
                "additionalProperties": false
            }),
            resource: self.resource(),
        }
    }
}

impl Param {
    /// What a value must be, for refusals.
    fn expects(&self) -> String {
        match &self.rule {
            Rule::Pattern { source, .. } => {
                format!("a string matching the whole of the pattern {source:?}")
            }
            Rule::OneOf(values) => format!("one of {}", values.join(", ")),
        }
    }
}

/// How a watched run ended.
enum End {
    Exited(ExitStatus),
    TimedOut,
    /// The program exited, but its output was still open at the timeout.
    OutputHeld(ExitStatus),
    OverLimit,
    /// Waiting for the program failed: it may still be running.
    Lost(String),
}

/// A started program. Dropped before it is reaped (the run was cancelled), it kills its
/// process group.
struct Started {
    child: tokio::process::Child,
    /// The process group's id: the program's pid.
    group: Option<u32>,
    reaped: bool,
}

impl Started {
    async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let status = self.child.wait().await;
        if status.is_ok() {
            self.reaped = true;
        }
        status
    }

    /// Kills the process group. Only before the program is reaped: until then the group's id
    /// is its pid and cannot name anyone else's group.
    fn kill(&mut self) {
        if !self.reaped {
            process_group::kill(&mut self.child, self.group);
        }
    }

    /// Kills what the program left running in its group, once, just after it was reaped. The
    /// leftovers keep the group's id reserved; with none left the id is free, and another group
    /// could only have taken it if the kernel's pids (handed out in sequence) wrapped around in
    /// the microseconds since. No signal is sent to the group after this one.
    fn kill_leftovers(&mut self) {
        if self.reaped {
            process_group::kill_leftovers(self.group);
        }
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Watched {
    stdout: Capture,
    stderr: Capture,
    end: End,
}

/// Captures at most `room` bytes of `chunk`; true when the chunk did not fit.
fn take(capture: &mut Capture, chunk: &[u8], room: u64) -> bool {
    let fits = usize::try_from(room).map_or(chunk.len(), |r| r.min(chunk.len()));
    capture.push(&chunk[..fits]);
    fits < chunk.len()
}

/// Splits one template argument into text and placeholders.
fn parse_arg(arg: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = arg.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '}' => return Err("a `}` without its `{` (write `}}` for a literal brace)".into()),
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => {
                            return Err(
                                "a `{` without its `}` (write `{{` for a literal brace)".into()
                            );
                        }
                    }
                }
                if !valid_param_name(&name) {
                    return Err(format!(
                        "`{{{name}}}` is not a placeholder: a parameter name is a-z or `_`, then \
                         a-z, 0-9 or `_` (write `{{{{` for a literal brace)"
                    ));
                }
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Param(name));
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// `[a-z_][a-z0-9_]*`.
fn valid_param_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
fn valid_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The start of a refused value, for its error.
fn shown(value: &str) -> String {
    let mut s: String = value.chars().take(SHOWN_VALUE_CHARS).collect();
    if s.len() < value.len() {
        s.push('…');
    }
    s
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

mod process_group;

#[cfg(test)]
mod tests;
