use super::*;
use sha2::{Digest as _, Sha256};
use std::sync::atomic::{AtomicU32, Ordering};

const SECRET: &str = "s3cr3t-kube-token-42";

fn resolver() -> Resolver {
    Resolver::with_env(|n| (n == "TOKEN").then(|| SECRET.to_owned()))
}

/// A config from its argv (written as JSON, which YAML reads) and the rest of its YAML.
fn config(argv: &[&str], rest: &str) -> CommandConfig {
    let yaml = format!("argv: {}\n{rest}", serde_json::to_string(argv).unwrap());
    yaml_serde::from_str(&yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
}

fn executor(argv: &[&str], rest: &str) -> CommandExecutor {
    CommandExecutor::build("job", &config(argv, rest), &mut resolver())
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
}

fn action(params: serde_json::Value) -> Action {
    Action {
        kind: "exec.command.job".into(),
        resource: "command://job".into(),
        params,
        justification: None,
        run: None,
        labels: Default::default(),
    }
}

fn no_params() -> Action {
    action(serde_json::json!({}))
}

/// A fresh path in the temporary directory.
fn temp_path(what: &str) -> std::path::PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "cs-command-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Whether process `pid` is gone: `kill -0` fails, or only its zombie is left (the container's
/// init may be slow to reap it, or not reap at all).
fn gone(pid: &str) -> bool {
    let alive = std::process::Command::new("/bin/sh")
        .args(["-c", &format!("kill -0 {pid} 2>/dev/null")])
        .status()
        .unwrap()
        .success();
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
    });
    !alive || zombie
}

async fn eventually_gone(pid: &str) -> bool {
    for _ in 0..50 {
        if gone(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

const KUBECTL: &[&str] = &[
    "kubectl",
    "rollout",
    "undo",
    "deployment/{service}",
    "-n",
    "{namespace}",
];
const KUBECTL_PARAMS: &str = "params:\n  service: {pattern: \"[a-z0-9-]{1,63}\", description: The deployment}\n  namespace: {enum: [prod, staging]}\n";

#[test]
fn a_bad_template_fails_the_build_naming_its_key() {
    let p = "params:\n  x: {pattern: \"[a-z]+\"}\n";
    for (argv, rest, says) in [
        (&[][..], "", "`argv` is empty"),
        (&[""][..], "", "`argv[0]`: the program is empty"),
        (
            &["{x}", "a"][..],
            p,
            "`argv[0]`: the program may not hold a placeholder",
        ),
        (
            &["/bin/{x}"][..],
            p,
            "`argv[0]`: the program may not hold a placeholder",
        ),
        (
            &["echo", "{y}"][..],
            p,
            "`argv[1]`: `{y}` names no parameter",
        ),
        (
            &["echo", "a", "{x"][..],
            p,
            "`argv[2]`: a `{` without its `}`",
        ),
        (&["echo", "x}"][..], "", "`argv[1]`: a `}` without its `{`"),
        (
            &["echo", "{}"][..],
            "",
            "`argv[1]`: `{}` is not a placeholder",
        ),
        (
            &["echo", "{X}"][..],
            "",
            "`argv[1]`: `{X}` is not a placeholder",
        ),
        (
            &["echo", "{a b}"][..],
            "",
            "`argv[1]`: `{a b}` is not a placeholder",
        ),
        (
            &["echo", "{1x}"][..],
            "",
            "`argv[1]`: `{1x}` is not a placeholder",
        ),
        (&["echo", "a\u{0}b"][..], "", "`argv[1]` holds a NUL byte"),
        (&["echo"][..], p, "`params.x` is used in no `argv` entry"),
        (
            &["echo", "{x}"][..],
            "params:\n  x: {pattern: \"[a-z]+\"}\n  Bad: {enum: [a]}\n",
            "`params.Bad`: a parameter name",
        ),
        (
            &["echo", "{x}"][..],
            "params:\n  x: {}\n",
            "`params.x`: give exactly one of",
        ),
        (
            &["echo", "{x}"][..],
            "params:\n  x: {pattern: a, enum: [a]}\n",
            "`params.x`: give exactly one of",
        ),
        (
            &["echo", "{x}"][..],
            "params:\n  x: {enum: []}\n",
            "`params.x.enum` is empty",
        ),
        (
            &["echo", "{x}"][..],
            "params:\n  x: {pattern: \"([a-z\"}\n",
            "`params.x.pattern` is not a regex",
        ),
        (
            &["echo"][..],
            "env: {\"1BAD\": x}\n",
            "`env`: \"1BAD\" is not a variable name",
        ),
        (
            &["echo"][..],
            "env: {\"A-B\": x}\n",
            "`env`: \"A-B\" is not a variable name",
        ),
        (
            &["echo"][..],
            "env: {T: \"${env:MISSING}\"}\n",
            "`env.T`: the environment variable MISSING",
        ),
        (
            &["echo"][..],
            "timeout: 0s\n",
            "`timeout` must be above zero",
        ),
        (
            &["echo"][..],
            "max_output_bytes: 0\n",
            "`max_output_bytes` must be above zero",
        ),
    ] {
        let got = CommandExecutor::build("job", &config(argv, rest), &mut resolver());
        match got {
            Err(e) => assert!(e.contains(says), "{argv:?} {rest}: {e}"),
            Ok(_) => panic!("{argv:?} {rest}: built"),
        }
    }
}

#[test]
fn a_config_refuses_unknown_keys() {
    for yaml in [
        "argv: [echo]\nshell: true\n",
        "argv: [echo, \"{x}\"]\nparams: {x: {regex: a}}\n",
    ] {
        assert!(
            yaml_serde::from_str::<CommandConfig>(yaml).is_err(),
            "{yaml}"
        );
    }
}

#[test]
fn a_build_error_never_shows_a_secret() {
    let mut r = Resolver::with_env(|_| Some("secret-with\u{0}-nul".into()));
    let e = CommandExecutor::build(
        "job",
        &config(&["echo"], "env: {T: \"${env:X}\"}\n"),
        &mut r,
    )
    .err()
    .unwrap();
    assert!(e.contains("`env.T`: its value holds a NUL byte"), "{e}");
    assert!(!e.contains("secret-with"), "{e}");
}

#[test]
fn placeholders_may_sit_inside_an_argument_and_braces_double() {
    let e = executor(
        &["printf", "{{%s}}", "--to={a}:{b}", "{{a}}"],
        "params: {a: {enum: [x]}, b: {pattern: \"[0-9]+\"}}\n",
    );
    let args = e
        .arguments(&action(serde_json::json!({"a": "x", "b": "42"})))
        .unwrap();
    assert_eq!(args, ["{%s}", "--to=x:42", "{a}"]);
}

#[test]
fn params_are_checked_whole_and_named() {
    let e = executor(KUBECTL, KUBECTL_PARAMS);
    let ok = action(serde_json::json!({"service": "api-7", "namespace": "prod"}));
    assert_eq!(
        e.check(&ok),
        Ok(Checked {
            executor: "job".into(),
            timeout: Duration::from_secs(60),
            facts: vec![],
        })
    );
    assert_eq!(
        e.arguments(&ok).unwrap(),
        ["rollout", "undo", "deployment/api-7", "-n", "prod"]
    );
    let long = "a".repeat(64);
    for (params, named, says) in [
        (
            serde_json::json!({"service": "x; rm -rf /", "namespace": "prod"}),
            "service",
            "matching the whole of the pattern",
        ),
        (
            serde_json::json!({"service": "$(id)", "namespace": "prod"}),
            "service",
            "pattern",
        ),
        (
            serde_json::json!({"service": "`id`", "namespace": "prod"}),
            "service",
            "pattern",
        ),
        (
            serde_json::json!({"service": "../etc", "namespace": "prod"}),
            "service",
            "pattern",
        ),
        (
            serde_json::json!({"service": "api\n", "namespace": "prod"}),
            "service",
            "pattern",
        ),
        (
            serde_json::json!({"service": "api\nrm", "namespace": "prod"}),
            "service",
            "pattern",
        ),
        (
            serde_json::json!({"service": "api\u{0}", "namespace": "prod"}),
            "service",
            "NUL",
        ),
        (
            serde_json::json!({"service": "", "namespace": "prod"}),
            "service",
            "pattern",
        ),
        (
            serde_json::json!({"service": long, "namespace": "prod"}),
            "service",
            "pattern",
        ),
        (
            serde_json::json!({"service": "-rf", "namespace": "prod "}),
            "namespace",
            "one of prod, staging",
        ),
        (
            serde_json::json!({"service": "api", "namespace": "Prod"}),
            "namespace",
            "one of prod, staging",
        ),
        (
            serde_json::json!({"service": "api", "namespace": "prod;id"}),
            "namespace",
            "one of",
        ),
        (
            serde_json::json!({"service": "api"}),
            "namespace",
            "is required",
        ),
        (
            serde_json::json!({"service": 7, "namespace": "prod"}),
            "service",
            "must be a string, not a number",
        ),
        (
            serde_json::json!({"service": ["api"], "namespace": "prod"}),
            "service",
            "not an array",
        ),
        (
            serde_json::json!({"service": null, "namespace": "prod"}),
            "service",
            "not null",
        ),
        (
            serde_json::json!({"service": "api", "namespace": "prod", "context": "x"}),
            "context",
            "is not a parameter of executor job (its parameters: namespace, service)",
        ),
        (
            serde_json::json!(["api", "prod"]),
            "params",
            "must be an object",
        ),
        (serde_json::json!("api prod"), "params", "must be an object"),
    ] {
        match e.check(&action(params.clone())) {
            Err(ExecRefusal::InvalidParams { param, message }) => {
                assert_eq!(param, named, "{params}");
                assert!(message.contains(says), "{params}: {message}");
            }
            other => panic!("{params}: {other:?}"),
        }
    }
    for resource in ["command://other", "command://job/x", "job", ""] {
        let mut wrong = ok.clone();
        wrong.resource = resource.into();
        match e.check(&wrong) {
            Err(ExecRefusal::InvalidParams { param, message }) => {
                assert_eq!(param, "resource");
                assert!(message.contains("command://job"), "{message}");
            }
            other => panic!("{resource}: {other:?}"),
        }
    }
}

#[test]
fn info_lists_the_template_and_a_strict_schema() {
    let info = executor(KUBECTL, KUBECTL_PARAMS).info();
    assert_eq!(info.name, "job");
    assert_eq!(info.kind, "exec.command.job");
    assert_eq!(info.resource, "command://job");
    assert!(
        info.description
            .contains("kubectl rollout undo deployment/{service} -n {namespace}"),
        "{}",
        info.description
    );
    assert_eq!(
        info.params_schema,
        serde_json::json!({
            "type": "object",
            "properties": {
                "namespace": {"type": "string", "enum": ["prod", "staging"]},
                "service": {"type": "string", "pattern": "^(?:[a-z0-9-]{1,63})$", "description": "The deployment"}
            },
            "required": ["namespace", "service"],
            "additionalProperties": false
        })
    );
}

#[tokio::test]
async fn a_value_is_one_argument_whatever_it_holds() {
    let e = executor(
        &[
            "/bin/sh",
            "-c",
            "printf '%s|' \"$#\" \"$@\"",
            "sh",
            "{v}",
            "--x={v}",
        ],
        "params: {v: {pattern: \".*\"}}\n",
    );
    let value = "a b; rm -rf / $(id) `id` * \"q\" 'q' > out";
    let o = e.run(&action(serde_json::json!({"v": value}))).await;
    assert_eq!(o.status, ExecStatus::Succeeded, "{o:?}");
    assert_eq!(
        o.stdout.as_deref(),
        Some(format!("2|{value}|--x={value}|").as_str())
    );
}

#[tokio::test]
async fn a_successful_run_reports_its_output() {
    let o = executor(&["/bin/echo", "hello"], "")
        .run(&no_params())
        .await;
    assert_eq!(o.status, ExecStatus::Succeeded, "{o:?}");
    assert_eq!(o.exit_code, None);
    assert_eq!(o.error, None);
    assert_eq!(o.stdout.as_deref(), Some("hello\n"));
    assert_eq!(o.stderr.as_deref(), Some(""));
    assert_eq!(o.bytes, 6);
    assert_eq!(
        o.output_sha256,
        Some(hex::encode(Sha256::digest(b"hello\n")))
    );
    assert!(!o.truncated);
}

#[tokio::test]
async fn stdin_is_closed() {
    let o = executor(&["/bin/cat"], "timeout: 10s\n")
        .run(&no_params())
        .await;
    assert_eq!(o.status, ExecStatus::Succeeded, "{o:?}");
    assert_eq!(o.bytes, 0);
}

#[tokio::test]
async fn exit_codes_and_signals_are_failures() {
    let o = executor(&["/bin/sh", "-c", "echo oops >&2; exit 3"], "")
        .run(&no_params())
        .await;
    assert_eq!(o.status, ExecStatus::Failed);
    assert_eq!(o.exit_code, Some(3));
    assert_eq!(o.stderr.as_deref(), Some("oops\n"));
    assert!(
        o.error.as_deref().unwrap().contains("exited with code 3"),
        "{o:?}"
    );

    let o = executor(&["/bin/sh", "-c", "kill -TERM $$"], "")
        .run(&no_params())
        .await;
    assert_eq!(o.status, ExecStatus::Failed);
    assert_eq!(o.exit_code, None);
    assert!(
        o.error.as_deref().unwrap().contains("killed by SIGTERM"),
        "{o:?}"
    );
}

#[tokio::test]
async fn a_missing_program_is_a_clear_failure() {
    let o = executor(&["/nonexistent/countersign-tool", "x"], "")
        .run(&no_params())
        .await;
    assert_eq!(o.status, ExecStatus::Failed);
    let error = o.error.unwrap();
    assert!(
        error.contains("cannot start `/nonexistent/countersign-tool`"),
        "{error}"
    );
    assert_eq!(o.stdout, None);

    let o = executor(&["countersign-no-such-program"], "")
        .run(&no_params())
        .await;
    assert_eq!(o.status, ExecStatus::Failed);
    assert!(o.error.unwrap().contains("cannot start"));
}

#[tokio::test]
async fn the_environment_holds_only_what_is_configured() {
    let e = executor(
        &["env"],
        "env: {KUBE_TOKEN: \"Bearer ${env:TOKEN}\", MODE: plain}\n",
    );
    let o = e.run(&no_params()).await;
    assert_eq!(o.status, ExecStatus::Succeeded, "{o:?}");
    let stdout = o.stdout.unwrap();
    let vars: BTreeMap<&str, &str> = stdout.lines().filter_map(|l| l.split_once('=')).collect();
    for name in vars.keys() {
        assert!(
            ["KUBE_TOKEN", "MODE", "PATH", "HOME", "LANG"].contains(name),
            "the program saw {name}"
        );
    }
    assert_eq!(
        vars.get("KUBE_TOKEN"),
        Some(&format!("Bearer {SECRET}").as_str())
    );
    assert_eq!(vars.get("MODE"), Some(&"plain"));
    assert_eq!(
        vars.get("PATH").copied(),
        std::env::var("PATH").ok().as_deref()
    );
}

#[tokio::test]
async fn a_secret_the_program_prints_is_redacted_by_the_executors() {
    use countersign_app::executors::Executors as _;
    let configs: Vec<crate::ExecutorConfig> = yaml_serde::from_str(
        "- name: dump\n  command:\n    argv: [/bin/sh, -c, 'env; echo \"$KUBE_TOKEN\" >&2; exit 1']\n    env: {KUBE_TOKEN: \"${env:TOKEN}\"}\n",
    )
    .unwrap();
    let executors = crate::Executors::build(&configs, resolver()).unwrap();
    let mut a = no_params();
    a.kind = "exec.command.dump".into();
    a.resource = "command://dump".into();
    assert!(executors.check(&a).unwrap().is_some());
    let o = executors.run(&a).await;
    assert_eq!(o.status, ExecStatus::Failed);
    let text = serde_json::to_string(&o).unwrap();
    assert!(!text.contains(SECRET), "{text}");
    assert!(o.stdout.unwrap().contains("KUBE_TOKEN=[redacted]"));
    assert_eq!(o.stderr.as_deref(), Some("[redacted]\n"));
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let pidfile = temp_path("pid");
    let script = format!("sleep 30 & echo $! > {}; sleep 30", pidfile.display());
    let e = executor(&["/bin/sh", "-c", &script], "timeout: 1s\n");
    let started = Instant::now();
    let o = e.run(&no_params()).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(o.status, ExecStatus::Failed);
    assert_eq!(o.exit_code, None);
    let error = o.error.unwrap();
    assert!(
        error.contains("timed out after 1s and was killed"),
        "{error}"
    );
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    let _ = std::fs::remove_file(&pidfile);
    let pid = pid.trim();
    assert!(!pid.is_empty());
    assert!(
        eventually_gone(pid).await,
        "the background sleep {pid} outlived the timeout"
    );
}

#[tokio::test]
async fn what_a_program_leaves_running_in_its_group_is_killed_when_it_exits() {
    let pidfile = temp_path("pid");
    let script = format!("sleep 30 & echo $! > {}; echo done", pidfile.display());
    let e = executor(&["/bin/sh", "-c", &script], "timeout: 20s\n");
    let started = Instant::now();
    let o = e.run(&no_params()).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(o.status, ExecStatus::Succeeded, "{o:?}");
    assert_eq!(o.stdout.as_deref(), Some("done\n"));
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    let _ = std::fs::remove_file(&pidfile);
    assert!(
        eventually_gone(pid.trim()).await,
        "the background sleep outlived its program"
    );
}

#[tokio::test]
async fn output_past_the_limit_kills_the_program() {
    for script in ["yes", "yes >&2"] {
        let e = executor(
            &["/bin/sh", "-c", script],
            "max_output_bytes: 1KiB\ntimeout: 20s\n",
        );
        let started = Instant::now();
        let o = e.run(&no_params()).await;
        assert!(started.elapsed() < Duration::from_secs(10), "{script}");
        assert_eq!(o.status, ExecStatus::Failed, "{script}");
        assert!(o.truncated, "{script}");
        let error = o.error.unwrap();
        assert!(
            error.contains("passed max_output_bytes (1024 bytes)"),
            "{error}"
        );
        let kept = o.stdout.unwrap().len() + o.stderr.unwrap().len();
        assert_eq!(kept, 1024, "{script}");
    }
}

#[tokio::test]
async fn both_outputs_are_read_at_once_and_copies_are_bounded() {
    // 200 kB on stderr first: a pipe holds 64 KiB, so reading stdout alone would deadlock.
    let e = executor(
        &[
            "/bin/sh",
            "-c",
            "head -c 200000 /dev/zero >&2; head -c 200000 /dev/zero | tr '\\0' x",
        ],
        "timeout: 20s\n",
    );
    let o = e.run(&no_params()).await;
    assert_eq!(o.status, ExecStatus::Succeeded, "{:?}", o.error);
    assert_eq!(o.bytes, 200_000);
    assert_eq!(
        o.output_sha256,
        Some(hex::encode(Sha256::digest("x".repeat(200_000))))
    );
    assert_eq!(o.stdout.unwrap().len(), crate::output::COPY_LIMIT);
    assert!(o.truncated);
}

#[tokio::test]
async fn run_refuses_what_check_refuses() {
    let e = executor(KUBECTL, KUBECTL_PARAMS);
    let o = e
        .run(&action(
            serde_json::json!({"service": "$(id)", "namespace": "prod"}),
        ))
        .await;
    assert_eq!(o.status, ExecStatus::Failed);
    assert!(o.error.unwrap().contains("parameter `service`"));
    assert_eq!(o.stdout, None);
}
