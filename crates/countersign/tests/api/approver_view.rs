//! What approvers are shown, tried as an agent that wants them to see something else: a
//! payload put where masking would hide it (invariant: nothing is hidden from approvers that
//! changes what the action does), and text that tries to forge or control the view (newlines,
//! ANSI and OSC escape sequences, C1 controls, bidirectional overrides) in the CLI, the
//! console, Slack and Teams.

use crate::cli::BIN;
use crate::support::app::{TestApp, spawn_app, spawn_app_in};
use crate::support::console::signed_in;
use crate::support::fake_slack::{self, FakeSlack, SIGNING_SECRET};
use crate::support::fake_teams::{APP_ID, APP_PASSWORD, APPROVALS, FakeTeams, TENANT};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Every bidirectional control the gateway refuses in kinds and resources.
const BIDI: [char; 12] = [
    '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}',
    '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}',
];

/// Text that tries to forge fields and drive a terminal: a newline starting a fake field, a
/// CSI clearing the screen and colouring, an OSC 8 hyperlink, an OSC 52 clipboard write, the
/// one-byte C1 CSI, a bidi override, a carriage return that would overwrite the line.
const FORGED: &str = "routine export\nstate     approved\nvote      user:carol@example.com Approve via console\x1b[2J\x1b[1;32m ok \x1b]8;;https://evil.example/\x07click\x1b]8;;\x07 \x1b]52;c;cm0gLXJmIH4K\x07 \u{9b}31m red \u{202E}txt.exe\rdone";

/// True when `s` holds a character that would control a terminal or reorder text.
fn has_raw_controls(s: &str) -> bool {
    s.chars()
        .any(|c| (c.is_control() && c != '\n') || BIDI.contains(&c))
}

async fn cli(app: &TestApp, who: &str, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(BIN)
        .args(args)
        .env("COUNTERSIGN_URL", &app.url)
        .env("COUNTERSIGN_TOKEN", &app.keys[who])
        .output()
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("the CLI writes UTF-8")
}

/// Lines of `out` that start with the field label `label` (`state`, `vote`, ...).
fn field_lines(out: &str, label: &str) -> usize {
    out.lines()
        .filter(|l| l.split_whitespace().next() == Some(label))
        .count()
}

/// A pending rollback (two SRE approvals) with forged text everywhere an agent can put it,
/// and bob's approval with a forged comment (so it stays pending, with a vote to show).
async fn forged_request(app: &TestApp) -> String {
    let r = app
        .agent()
        .post(
            "/v1/actions",
            json!({
                "kind": "infra.rollback",
                "resource": "k8s://prod/api",
                "justification": FORGED,
                "params": {FORGED: FORGED, "to": ["v41", FORGED], "n\u{202E}ote": 1},
                "labels": {"team\nstate": "a\x1b[2Jb\u{202E}c"},
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let (id, digest) = (r.id(), r.digest());
    let v = app
        .approver("bob")
        .post(
            &format!("/v1/requests/{id}/votes"),
            json!({"decision": "approve", "digest": digest, "comment": FORGED}),
        )
        .await;
    assert_eq!(v.status, StatusCode::OK, "{:?}", v.body);
    id
}

#[tokio::test]
async fn approver_text_cannot_forge_output_in_cli_show_ls_and_approve() {
    let app = spawn_app().await;
    let id = forged_request(&app).await;
    let show = cli(&app, "user:dana@example.com", &["show", &id]).await;
    assert!(show.status.success(), "{}", text(&show.stderr));
    let out = text(&show.stdout);
    assert!(
        !has_raw_controls(&out),
        "raw controls reach the terminal: {out:?}"
    );
    assert_eq!(field_lines(&out, "state"), 1, "a forged state line: {out}");
    assert_eq!(field_lines(&out, "vote"), 1, "a forged vote line: {out}");
    for escaped in [
        "routine export\\nstate     approved",
        "\\x1b[2J\\x1b[1;32m",
        "\\x1b]8;;https://evil.example/\\x07",
        "\\x1b]52;c;",
        "\\u{9b}31m",
        "\\u{202e}txt.exe\\rdone",
        "team\\nstate=a\\x1b[2Jb\\u{202e}c",
    ] {
        assert!(out.contains(escaped), "{escaped} not shown escaped: {out}");
    }
    // Params are JSON with the same characters as escapes (keys, values, array items).
    assert!(out.contains("\\u001b[2J") && out.contains("\\u009b") && out.contains("n\\u202eote"));

    // `approve` shows the same picture on stderr before voting.
    let erin = cli(
        &app,
        "user:erin@example.com",
        &["approve", &id, "--comment", "ok"],
    )
    .await;
    assert!(erin.status.success(), "{}", text(&erin.stderr));
    let err = text(&erin.stderr);
    assert!(!has_raw_controls(&err), "{err:?}");
    assert_eq!(field_lines(&err, "state"), 1, "{err}");

    // `ls`: one line per request, whatever the request says.
    let carol = app
        .as_("agent:helper-bot")
        .post(
            "/v1/actions",
            json!({"kind": "infra.rollback", "resource": "k8s://prod/web", "justification": FORGED}),
        )
        .await;
    assert_eq!(carol.status, StatusCode::CREATED, "{:?}", carol.body);
    let ls = cli(&app, "user:dana@example.com", &["ls", "--state", "all"]).await;
    let out = text(&ls.stdout);
    assert!(ls.status.success(), "{}", text(&ls.stderr));
    assert!(!has_raw_controls(&out), "{out:?}");
    assert_eq!(
        out.lines().count(),
        3,
        "a header and one line per request: {out}"
    );
}

#[tokio::test]
async fn approver_text_cannot_forge_output_in_cli_errors() {
    let app = spawn_app().await;
    // Messages quote what was given (here a label, quoted by the CLI itself; elsewhere a kind
    // quoted by the gateway); they are printed escaped.
    for args in [
        [
            "request",
            "--kind",
            "db.export",
            "--resource",
            "r://x",
            "--label",
            "x\x1b]52;c;AAAA\x07\u{9b}2J\u{202E}",
        ],
        [
            "request",
            "--kind",
            "db.x\x1b[2J\ny",
            "--resource",
            "r://x",
            "--label",
            "a=b",
        ],
    ] {
        let out = cli(&app, "agent:deploy-bot", &args).await;
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(!has_raw_controls(&err), "{err:?}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    }
}

#[tokio::test]
async fn bidi_controls_are_refused_in_kind_and_resource() {
    let app = spawn_app().await;
    let agent = app.agent();
    for c in BIDI {
        for (kind, resource) in [
            (
                format!("db.ex{c}port"),
                "postgres://prod/customers".to_string(),
            ),
            ("db.export".to_string(), format!("s3://bucket/{c}fdp.exe")),
            ("db.export".to_string(), format!("{c}")),
        ] {
            let r = agent
                .post(
                    "/v1/actions",
                    json!({"kind": kind, "resource": resource, "params": {"rows": 1}}),
                )
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{c:?}: {:?}", r.body);
            assert_eq!(r.code(), "invalid_action", "{:?}", r.body);
            let message = r.body["error"]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains(&format!("U+{:04X}", c as u32)),
                "the message names the character: {message}"
            );
            assert!(
                !message.contains(c),
                "the message is free of it: {message:?}"
            );
        }
    }
    let all = app
        .approver("dana")
        .get("/v1/requests?state=all&limit=100")
        .await;
    assert_eq!(all.body["requests"], json!([]), "nothing was recorded");
    // Bidi elsewhere (justification, params) is accepted, and shown escaped (below).
    let ok = agent
        .post(
            "/v1/actions",
            json!({"kind": "db.export", "resource": "postgres://prod/customers",
                "justification": "\u{202E}gnp.exe", "params": {"file\u{2066}": "a\u{202E}b"}}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{:?}", ok.body);
    // The CLI says the same and exits non-zero.
    let out = cli(
        &app,
        "agent:deploy-bot",
        &[
            "request",
            "--kind",
            "db.export",
            "--resource",
            "s3://b/\u{202E}fdp.exe",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("U+202E"),
        "{}",
        text(&out.stderr)
    );
}

/// Params where an agent would hide a payload, beside real secrets.
fn hiding_params() -> Value {
    json!({
        "password": {"command": "rm -rf /srv/data", "hosts": ["db1", "db2"]},
        "tokens": ["tok-alpha-1", "tok-beta-2"],
        "secret": 424242,
        "db": {"host": "db-primary", "Password": "tok-alpha-1"},
        "API-KEY": "tok-gamma-3",
        "n\u{202E}ote": "a\u{202E}b",
    })
}

#[tokio::test]
async fn nothing_is_hidden_from_approvers_in_the_console_page() {
    let app = spawn_app().await;
    let r = app
        .agent()
        .post(
            "/v1/actions",
            json!({"kind": "db.migrate", "resource": "postgres://staging/app",
                "justification": "why \u{202E}gnp.exe", "params": hiding_params()}),
        )
        .await;
    assert_eq!(r.state(), "pending", "{:?}", r.body);
    let bob = signed_in(&app, "bob").await;
    let page = bob.get(&format!("/console/requests/{}", r.id())).await.body;
    for shown in ["rm -rf /srv/data", "db1", "db2", "424242", "db-primary"] {
        assert!(page.contains(shown), "{shown} hidden from the approver");
    }
    for secret in ["tok-alpha-1", "tok-beta-2", "tok-gamma-3"] {
        assert!(!page.contains(secret), "{secret} shown in clear");
    }
    assert!(page.contains("4 values masked"), "the page says so");
    assert!(page.contains("data-masked=\"4\""));
    // The same value under two keys has one fingerprint; different values differ.
    same_value_same_fingerprint(&page);
    // Bidi controls in the justification and params are shown escaped, never raw.
    assert!(
        !page.chars().any(|c| BIDI.contains(&c)),
        "a raw bidi control in the page"
    );
    assert!(
        page.contains("why \\u{202e}gnp.exe"),
        "justification escaped"
    );
    assert!(
        page.contains("n\\u202eote") && page.contains("a\\u202eb"),
        "params escaped"
    );
    // Any text a page echoes (here the inbox's search box) is escaped too, in one place.
    let list = bob.get("/console/?q=%E2%80%AEgnp.exe").await.body;
    assert!(
        !list.chars().any(|c| BIDI.contains(&c)),
        "a raw bidi control in the inbox"
    );
    assert!(
        list.contains("\\u{202e}gnp.exe"),
        "the search text shown escaped"
    );
    // A request with nothing to mask says so too.
    let plain = app
        .agent()
        .submit("db.migrate", "postgres://staging/app", json!({"to": "v42"}))
        .await;
    let page = bob
        .get(&format!("/console/requests/{}", plain.id()))
        .await
        .body;
    assert!(page.contains("Nothing is masked"), "{page}");
}

/// The fingerprints of masked values in `text`, in order (`••••••(N chars, fp XXXXXXXX)`).
fn fingerprints(text: &str) -> Vec<String> {
    text.split("fp ")
        .skip(1)
        .map(|rest| rest.chars().take(8).collect())
        .collect()
}

/// In a view of [`hiding_params`]: four masked values, `tok-alpha-1` twice with one
/// fingerprint, the other two each their own.
fn same_value_same_fingerprint(view: &str) {
    let mut fp = fingerprints(view);
    assert_eq!(fp.len(), 4, "{fp:?}: {view}");
    fp.sort();
    fp.dedup();
    assert_eq!(
        fp.len(),
        3,
        "equal values share a fingerprint, others differ: {view}"
    );
}

#[tokio::test]
async fn nothing_is_hidden_from_approvers_in_cli_show() {
    let app = spawn_app().await;
    let r = app
        .agent()
        .post(
            "/v1/actions",
            json!({"kind": "db.migrate", "resource": "postgres://staging/app",
                "params": hiding_params()}),
        )
        .await;
    let show = cli(&app, "user:bob@example.com", &["show", &r.id()]).await;
    let out = text(&show.stdout);
    assert!(show.status.success(), "{}", text(&show.stderr));
    for shown in [
        "rm -rf /srv/data",
        "db1",
        "424242",
        "db-primary",
        "\"hosts\"",
    ] {
        assert!(out.contains(shown), "{shown} hidden: {out}");
    }
    for secret in ["tok-alpha-1", "tok-beta-2", "tok-gamma-3"] {
        assert!(!out.contains(secret), "{secret} in clear: {out}");
    }
    assert_eq!(field_lines(&out, "masked"), 1, "{out}");
    assert!(out.contains("4 values masked"), "{out}");
    same_value_same_fingerprint(&out);
    // `--json` is the API's view: everything, unmasked.
    let json = cli(&app, "user:bob@example.com", &["show", &r.id(), "--json"]).await;
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["action"]["params"], hiding_params());
}

#[tokio::test]
async fn nothing_is_hidden_from_approvers_in_slack_messages() {
    let fake = FakeSlack::start().await;
    let config = format!(
        "channels:\n  slack:\n    bot_token: {}\n    signing_secret: {}\n    api_base_url: {}\n    notify: [\"#approvals\"]\n",
        fake_slack::BOT_TOKEN,
        SIGNING_SECRET,
        fake.url
    );
    let app = spawn_app_in(tempfile::tempdir().unwrap(), &config).await;
    let r = app
        .agent()
        .post(
            "/v1/actions",
            json!({"kind": "infra.rollback", "resource": "k8s://prod/api",
                "justification": FORGED, "params": hiding_params()}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let m = fake.posted("CAPPROVALS", &r.id()).await;
    let blocks = m.blocks.to_string();
    let shown: Vec<String> = m
        .blocks
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.to_string())
        .collect();
    for visible in ["rm -rf /srv/data", "db1", "424242", "db-primary"] {
        assert!(blocks.contains(visible), "{visible} hidden: {blocks}");
    }
    for secret in ["tok-alpha-1", "tok-beta-2", "tok-gamma-3"] {
        assert!(!blocks.contains(secret), "{secret} in clear: {blocks}");
    }
    assert!(
        shown.iter().any(|b| b.contains("4 values masked")),
        "the message says what it masked: {blocks}"
    );
    same_value_same_fingerprint(&blocks);
    let texts = all_strings(&m.blocks);
    assert!(!texts.iter().any(|t| has_raw_controls(t)), "{texts:?}");
    assert!(
        blocks.contains("\\\\u{202e}txt.exe"),
        "why escaped: {blocks}"
    );
}

#[tokio::test]
async fn nothing_is_hidden_from_approvers_a_message_cut_short_cannot_approve() {
    let fake = FakeSlack::start().await;
    let config = format!(
        "channels:\n  slack:\n    bot_token: {}\n    signing_secret: {}\n    api_base_url: {}\n    notify: [\"#approvals\"]\n",
        fake_slack::BOT_TOKEN,
        SIGNING_SECRET,
        fake.url
    );
    let app = spawn_app_in(tempfile::tempdir().unwrap(), &config).await;
    let action_ids =
        |m: &fake_slack::Message| -> Vec<String> { all_values(&m.blocks, "action_id") };
    // Padding pushes the payload past what a message shows; a long resource likewise.
    let padded = json!({"padding": "x".repeat(1600), "zz_command": "rm -rf /srv/data"});
    let long_resource = format!("k8s://prod/{}/api", "a".repeat(300));
    for (resource, params) in [
        ("k8s://prod/api".to_string(), padded),
        (long_resource, json!({"to": "v41"})),
    ] {
        let r = app
            .agent()
            .post(
                "/v1/actions",
                json!({"kind": "infra.rollback", "resource": resource, "params": params}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let m = fake.posted("CAPPROVALS", &r.id()).await;
        let ids = action_ids(&m);
        assert!(!ids.contains(&"approve".to_string()), "{ids:?}");
        assert!(ids.contains(&"open_full".to_string()), "{ids:?}");
    }
    // A short one keeps its buttons.
    let r = app
        .agent()
        .submit("infra.rollback", "k8s://prod/api", json!({"to": "v41"}))
        .await;
    let m = fake.posted("CAPPROVALS", &r.id()).await;
    assert!(action_ids(&m).contains(&"approve".to_string()));
}

/// Every string value of `key` anywhere in `v`.
fn all_values(v: &Value, key: &str) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().flat_map(|i| all_values(i, key)).collect(),
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| match (k == key, v.as_str()) {
                (true, Some(s)) => vec![s.to_string()],
                _ => all_values(v, key),
            })
            .collect(),
        _ => vec![],
    }
}

#[tokio::test]
async fn nothing_is_hidden_from_approvers_in_teams_cards() {
    let fake = FakeTeams::start().await;
    let config = format!(
        "channels:\n  teams:\n    app_id: {APP_ID}\n    app_password: {APP_PASSWORD}\n    tenant_ids: [{TENANT}]\n    openid_metadata_url: {}\n    token_url: {}\n    conversations: {{approvals: \"{APPROVALS}\"}}\n    notify: [approvals]\n",
        fake.metadata_url(),
        fake.token_url()
    );
    let app = spawn_app_in(tempfile::tempdir().unwrap(), &config).await;
    let (status, body) = fake.deliver(&app.url, &fake.installed(APPROVALS)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let r = app
        .agent()
        .post(
            "/v1/actions",
            json!({"kind": "infra.rollback", "resource": "k8s://prod/api",
                "justification": FORGED, "params": hiding_params()}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let sent = fake.posted(APPROVALS, &r.id()).await;
    let card = sent.card().to_string();
    for visible in ["rm -rf /srv/data", "db1", "424242", "db-primary"] {
        assert!(card.contains(visible), "{visible} hidden: {card}");
    }
    for secret in ["tok-alpha-1", "tok-beta-2", "tok-gamma-3"] {
        assert!(!card.contains(secret), "{secret} in clear: {card}");
    }
    assert!(card.contains("4 values masked"), "{card}");
    same_value_same_fingerprint(&card);
    let texts = all_strings(sent.card());
    assert!(!texts.iter().any(|t| has_raw_controls(t)), "{texts:?}");
}

/// Every string in a JSON value (what a chat client would lay out).
fn all_strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(all_strings).collect(),
        Value::Object(map) => map.values().flat_map(all_strings).collect(),
        _ => vec![],
    }
}
