//! The smaller holes of issue 14 (hole 12), each an invariant tried from outside: runs are
//! scoped to their requester, a half-written policy is never loaded, the console's `next` is a
//! console path or a 400 that sets nothing, the redeem refusal says redeem, the database is
//! private, and `audit export` never writes through a planted link.

use crate::cli::BIN;
use crate::support::app::{TestApp, big_export, spawn_app, write_world};
use crate::support::console::Browser;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::time::{Duration, Instant};

async fn in_run(
    app: &TestApp,
    who: &str,
    kind: &str,
    params: Value,
    run: &str,
) -> crate::support::app::Resp {
    app.as_(who)
        .post(
            "/v1/actions",
            json!({"kind": kind, "resource": "postgres://prod/customers", "params": params, "run": run}),
        )
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_are_scoped_to_their_agent() {
    let app = spawn_app().await;
    let (deploy, helper) = ("agent:deploy-bot", "agent:helper-bot");
    // helper-bot's big export pauses *its* run-x while it is reviewed.
    let pausing = in_run(&app, helper, "db.export", big_export(), "run-x").await;
    assert_eq!(pausing.state(), "pending", "{}", pausing.body);
    let held = in_run(&app, helper, "db.query", json!({"readonly": true}), "run-x").await;
    assert_eq!(
        (held.state(), &held.body["held"]),
        ("pending", &json!(true))
    );
    // deploy-bot naming the same run id is not held by helper-bot's review.
    let free = in_run(&app, deploy, "db.query", json!({"readonly": true}), "run-x").await;
    assert_eq!(free.state(), "approved", "{}", free.body);
    // deploy-bot's own pausing review holds only deploy-bot's actions...
    let mine = in_run(&app, deploy, "db.export", big_export(), "run-x").await;
    assert_eq!(mine.state(), "pending");
    let mine_held = in_run(&app, deploy, "db.query", json!({"readonly": true}), "run-x").await;
    assert_eq!(mine_held.body["held"], true, "{}", mine_held.body);
    // ...and deciding it releases deploy-bot's held action, not helper-bot's.
    let d = app
        .approver("bob")
        .vote(&mine.id(), "deny", &mine.digest())
        .await;
    assert_eq!(d.state(), "denied", "{}", d.body);
    let released = app
        .as_(deploy)
        .get(&format!("/v1/requests/{}", mine_held.id()))
        .await;
    assert_eq!(released.state(), "approved", "{}", released.body);
    let still = app
        .as_(helper)
        .get(&format!("/v1/requests/{}", held.id()))
        .await;
    assert_eq!(
        (still.state(), &still.body["held"]),
        ("pending", &json!(true))
    );
    // helper-bot's review decided: its held action goes on.
    app.approver("bob")
        .vote(&pausing.id(), "approve", &pausing.digest())
        .await;
    let done = app
        .approver("carol")
        .vote(&pausing.id(), "approve", &pausing.digest())
        .await;
    assert_eq!(done.state(), "approved", "{}", done.body);
    let now = app
        .as_(helper)
        .get(&format!("/v1/requests/{}", held.id()))
        .await;
    assert_eq!(now.state(), "approved", "{}", now.body);
    // Agents still cannot pause, resume or stop any run, their own included.
    for verb in ["pause", "resume", "stop"] {
        let r = app
            .as_(deploy)
            .post(&format!("/v1/runs/run-x/{verb}"), json!({}))
            .await;
        assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "people_only"));
    }
}

/// How many `policy.loaded` entries the log holds.
async fn policy_loads(app: &TestApp) -> usize {
    let body = app
        .http
        .get(format!("{}/v1/audit/entries?limit=10000", app.url))
        .bearer_auth(&app.keys["user:bob@example.com"])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.lines()
        .filter(|l| l.contains("\"event\":\"policy.loaded\""))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_half_written_policy_is_never_loaded() {
    let app = spawn_app().await;
    let policy = app.dir.path().join("policy.yaml");
    let before = policy_loads(&app).await;
    // The first half is a valid policy on its own (it differs from the one in force).
    let first = format!(
        "{}  - name: half\n    match: {{kind: \"test.half\"}}\n    effect: deny\n    reason: half\n",
        crate::support::app::TEST_POLICY
    );
    let second = "  - name: whole\n    match: {kind: \"test.whole\"}\n    effect: allow\n";
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&policy).unwrap();
        f.write_all(first.as_bytes()).unwrap();
        f.sync_all().unwrap();
        // A writer that is slow, but not stalled for a whole poll interval.
        std::thread::sleep(Duration::from_millis(200));
        f.write_all(second.as_bytes()).unwrap();
        f.sync_all().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    // Each try is another action: the same action again would be answered with the request
    // still pending under the old policy (one question per action, issue 18).
    for attempt in 0.. {
        let r = app
            .agent()
            .submit("test.whole", "x", json!({"attempt": attempt}))
            .await;
        if r.state() == "approved" {
            break;
        }
        assert!(Instant::now() < deadline, "the whole policy never loaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        policy_loads(&app).await,
        before + 1,
        "only the whole file was loaded, never its first half"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sign_in_next_is_a_console_path_or_400_and_sets_nothing() {
    let app = spawn_app().await;
    let bad = [
        "/console/%0d%0aSet-Cookie:%20x=1",
        "/console/%0a",
        "/console/%00",
        "/console/%09x",
        "/console/%20x",
        "/console/%7F",
        "/console/%C3%A9",
        "https://evil.example/console/",
        "//evil.example/console/",
        "/console//evil.example",
        "/console/%5Cevil",
        "/console/\\evil",
    ];
    for next in bad {
        let b = Browser::new(&app);
        let page = b.get(&format!("/console/sign-in?next={next}")).await;
        assert_eq!(
            page.status,
            StatusCode::BAD_REQUEST,
            "{next}: {}",
            page.body
        );
        assert_eq!(page.error_code(), "invalid_next", "{next}");
        assert!(
            page.headers.get_all("set-cookie").iter().next().is_none(),
            "{next}: no cookie is set"
        );
    }
    // With a valid key through the form: refused before any session is issued.
    let key = app.keys["user:bob@example.com"].clone();
    for next in [
        "/console/\r\nSet-Cookie: x=1",
        "/console/\0",
        "//evil.example/",
        "https://evil.example/",
        "/console/\\x",
    ] {
        let b = Browser::new(&app);
        let form = b.get("/console/sign-in").await;
        let csrf = form.field("csrf");
        let r = b
            .post(
                "/console/sign-in",
                &[("csrf", &csrf), ("key", &key), ("next", next)],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{next:?}: {}", r.body);
        assert!(
            r.headers.get_all("set-cookie").iter().next().is_none(),
            "{next:?}: no cookie is set"
        );
    }
    // A console path still works.
    let b = Browser::new(&app);
    let form = b.get("/console/sign-in?next=%2Fconsole%2Faudit").await;
    assert_eq!(form.status, StatusCode::OK);
    let csrf = form.field("csrf");
    let r = b
        .post(
            "/console/sign-in",
            &[("csrf", &csrf), ("key", &key), ("next", "/console/audit")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), "/console/audit");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_redeem_refusal_for_another_agent_says_redeem() {
    let app = spawn_app().await;
    let r = app
        .agent()
        .submit(
            "db.query",
            "postgres://prod/customers",
            json!({"readonly": true}),
        )
        .await;
    assert_eq!(r.state(), "approved");
    let grant = r.body["grant"]["id"].as_str().unwrap().to_owned();
    let other = app
        .as_("agent:helper-bot")
        .post(
            &format!("/v1/grants/{grant}/redeem"),
            json!({"digest": r.digest()}),
        )
        .await;
    assert_eq!(
        (other.status, other.code()),
        (StatusCode::FORBIDDEN, "not_requester")
    );
    let message = other.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("redeem"), "{message}");
    assert!(!message.contains("cancel"), "{message}");
    // The cancel refusal still speaks of cancelling.
    let c = app
        .approver("bob")
        .post(&format!("/v1/requests/{}/cancel", r.id()), json!({}))
        .await;
    assert!(
        c.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cancel"),
        "{}",
        c.body
    );
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_is_created_private() {
    // A new database, by the gateway (the test's umask is usually 022).
    let app = spawn_app().await;
    app.agent()
        .submit("db.query", "x", json!({"readonly": true}))
        .await;
    let db = app.db_path();
    assert_eq!(mode(&db), 0o600);
    let wal = db.with_extension("db-wal");
    if wal.exists() {
        assert_eq!(mode(&wal), 0o600);
    }
    // A new database under umask 000, by the command line.
    let dir = tempfile::tempdir().unwrap();
    let config = write_world(&dir, 0);
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 000; exec '{BIN}' key create --config '{}' user:bob@example.com",
            config.display()
        ))
        .current_dir(dir.path())
        .env_remove("COUNTERSIGN_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&dir.path().join("countersign.db")), 0o600);
    // A database left world-readable (by an older version) is narrowed when opened.
    let dir = tempfile::tempdir().unwrap();
    let config = write_world(&dir, 0);
    let db = dir.path().join("countersign.db");
    std::fs::write(&db, b"").unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(BIN)
        .args(["key", "create", "--config"])
        .arg(&config)
        .arg("user:bob@example.com")
        .current_dir(dir.path())
        .env_remove("COUNTERSIGN_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&db), 0o600);
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_export_never_writes_through_a_planted_link() {
    let app = spawn_app().await;
    app.agent()
        .submit("db.query", "x", json!({"readonly": true}))
        .await;
    let config = app.dir.path().join("countersign.yaml");
    let victim = app.dir.path().join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    let export = |out: &std::path::Path| {
        Command::new(BIN)
            .args(["audit", "export", "--out"])
            .arg(out)
            .arg("--config")
            .arg(&config)
            .env_remove("COUNTERSIGN_CONFIG")
            .output()
            .unwrap()
    };
    // A link planted where each file of the bundle goes, and a dangling one.
    for name in ["entries.jsonl", "key", "checkpoint", "checkpoints"] {
        let out = app.dir.path().join(format!("bundle-{name}"));
        std::fs::create_dir_all(&out).unwrap();
        std::os::unix::fs::symlink(&victim, out.join(name)).unwrap();
        let r = export(&out);
        assert!(
            !r.status.success(),
            "{name}: the export went through the link"
        );
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "precious",
            "{name}"
        );
    }
    let out = app.dir.path().join("bundle-dangling");
    std::fs::create_dir_all(&out).unwrap();
    let planted = app.dir.path().join("planted.txt");
    std::os::unix::fs::symlink(&planted, out.join("entries.jsonl")).unwrap();
    assert!(!export(&out).status.success());
    assert!(
        !planted.exists(),
        "no file was created through a dangling link"
    );
    // The bundle directory itself a link to another directory.
    let elsewhere = app.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let linked = app.dir.path().join("bundle-linked");
    std::os::unix::fs::symlink(&elsewhere, &linked).unwrap();
    let r = export(&linked);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("symbolic link"));
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    // An existing regular file is not overwritten either; a fresh directory works.
    let out = app.dir.path().join("bundle-existing");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("entries.jsonl"), "mine").unwrap();
    let r = export(&out);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("already exists"));
    assert_eq!(
        std::fs::read_to_string(out.join("entries.jsonl")).unwrap(),
        "mine"
    );
    let fresh = app.dir.path().join("bundle-fresh");
    let r = export(&fresh);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(fresh.join("entries.jsonl").is_file());
}
