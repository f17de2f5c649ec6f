//! The tamper-evident audit log from outside (issue 5): checkpoints, keys, proofs and receipts
//! checked with `countersign-audit` against what the API serves; export and `audit verify` from
//! the database, a bundle and the API, with every kind of tampering named; the witness; DSSE
//! attestations cross-checked with Python's securesystemslib; the SSE stream resuming without
//! gaps; Standard Webhooks deliveries, signed and retried.

use crate::cli::BIN;
use crate::support::app::{TestApp, big_export, spawn_app, spawn_app_in};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use countersign_audit::{Checkpoint, NoteSigner, NoteVerifier, merkle};
use futures::StreamExt as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};

fn h(b64: &Value) -> merkle::Hash {
    let bytes = BASE64
        .decode(b64.as_str().expect("a string"))
        .expect("base64");
    bytes.try_into().expect("32 bytes")
}

fn hashes(v: &Value) -> Vec<merkle::Hash> {
    v.as_array().expect("an array").iter().map(h).collect()
}

async fn text(app: &TestApp, path: &str) -> String {
    app.http
        .get(format!("{}{path}", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn key_of(app: &TestApp) -> NoteVerifier {
    NoteVerifier::parse(&text(app, "/v1/audit/key").await).expect("a verifier key")
}

/// The entries as a person reads them over the API: exact bytes, one per line.
async fn entry_lines(app: &TestApp) -> Vec<Vec<u8>> {
    let body = app
        .http
        .get(format!("{}/v1/audit/entries?limit=10000", app.url))
        .bearer_auth(&app.keys["user:bob@example.com"])
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    body.strip_suffix(b"\n")
        .unwrap_or(&body)
        .split(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

/// A reviewed request approved by bob and carol; returns (id, the final vote's response).
async fn approved(app: &TestApp) -> (String, Value) {
    let r = app
        .agent()
        .submit("db.export", "postgres://prod/customers", big_export())
        .await;
    let (id, digest) = (r.id(), r.digest());
    app.approver("bob").vote(&id, "approve", &digest).await;
    let done = app.approver("carol").vote(&id, "approve", &digest).await;
    assert_eq!(done.state(), "approved", "{}", done.body);
    (id, done.body)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vote_receipt_proves_its_entries_are_in_the_signed_log() {
    let app = spawn_app().await;
    let key = key_of(&app).await;
    assert_eq!(key.to_string(), app._running.audit_key);
    let (_, body) = approved(&app).await;
    let receipt = &body["receipt"];
    let cp = Checkpoint::open(receipt["checkpoint"].as_str().unwrap(), &key, None)
        .expect("the receipt's checkpoint is signed by the gateway");
    assert_eq!(cp.size, receipt["tree_size"].as_u64().unwrap());
    let lines = entry_lines(&app).await;
    let entries = receipt["entries"].as_array().unwrap();
    assert!(!entries.is_empty());
    for e in entries {
        let index = e["index"].as_u64().unwrap();
        let leaf = merkle::leaf_hash(&lines[index as usize]);
        assert_eq!(leaf, h(&e["leaf_hash"]));
        let entry: Value = serde_json::from_slice(&lines[index as usize]).unwrap();
        assert_eq!(entry["actor"], "user:carol@example.com", "{entry}");
        merkle::verify_inclusion(
            index,
            cp.size,
            &leaf,
            &hashes(&e["inclusion_proof"]),
            &cp.root,
        )
        .expect("the inclusion proof leads to the signed root");
    }
    // The key file was created private.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(app.dir.path().join("countersign-audit.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoints_and_proofs_served_over_http_verify() {
    let app = spawn_app().await;
    let key = key_of(&app).await;
    let first = Checkpoint::open(&text(&app, "/v1/audit/checkpoint").await, &key, None).unwrap();
    approved(&app).await;
    let r = app
        .agent()
        .post(
            "/v1/actions?receipt=true",
            json!({"kind": "db.query", "resource": "x", "params": {"readonly": true}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let size = r.body["receipt"]["tree_size"].as_u64().expect("a receipt");
    let latest = Checkpoint::open(&text(&app, "/v1/audit/checkpoint").await, &key, None).unwrap();
    assert!(latest.size >= size && latest.size > first.size);
    assert_eq!(latest.origin, key.name());

    let lines = entry_lines(&app).await;
    for index in [0, latest.size / 2, latest.size - 1] {
        let p: Value = app
            .http
            .get(format!(
                "{}/v1/audit/entries/{index}/proof?size={}",
                app.url, latest.size
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let leaf = merkle::leaf_hash(&lines[index as usize]);
        assert_eq!(h(&p["leaf_hash"]), leaf);
        merkle::verify_inclusion(
            index,
            latest.size,
            &leaf,
            &hashes(&p["hashes"]),
            &latest.root,
        )
        .unwrap();
    }
    let c: Value = app
        .http
        .get(format!(
            "{}/v1/audit/consistency?from={}&to={}",
            app.url, first.size, latest.size
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    merkle::verify_consistency(
        first.size,
        latest.size,
        &hashes(&c["hashes"]),
        &first.root,
        &latest.root,
    )
    .expect("the log only grew");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_audit_parameters_get_clear_4xx_codes() {
    let app = spawn_app().await;
    let get = |p: String| app.http.get(format!("{}{p}", app.url)).send();
    for (path, status, code) in [
        (
            "/v1/audit/entries/999999/proof?size=1".to_string(),
            400,
            "index_out_of_range",
        ),
        (
            "/v1/audit/entries/0/proof?size=999999".into(),
            400,
            "size_beyond_log",
        ),
        ("/v1/audit/entries/x/proof".into(), 400, "invalid_query"),
        (
            "/v1/audit/entries/0/proof?size=-1".into(),
            400,
            "invalid_query",
        ),
        (
            "/v1/audit/entries/0/proof?colour=red".into(),
            400,
            "invalid_query",
        ),
        (
            "/v1/audit/consistency?from=0&to=1".into(),
            400,
            "invalid_range",
        ),
        ("/v1/audit/consistency?to=1".into(), 400, "invalid_query"),
        (
            "/v1/audit/consistency?from=2&to=1".into(),
            400,
            "invalid_range",
        ),
        ("/v1/audit/entries".into(), 401, "unauthenticated"),
    ] {
        let r = get(path.clone()).await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().len() > 10);
    }
    let r = app.agent().get("/v1/audit/entries").await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "people_only"));
    let r = app
        .approver("bob")
        .get("/v1/requests/req_nope/attestation")
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"));
}

fn run(args: &[&str], extra: impl FnOnce(&mut Command)) -> Output {
    let mut c = Command::new(BIN);
    c.args(args).env_remove("COUNTERSIGN_CONFIG");
    extra(&mut c);
    c.output().unwrap()
}

fn assert_fails_with(out: &Output, says: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(says), "expected `{says}` in: {err}");
}

fn assert_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("checkpoints")).unwrap();
    for name in ["entries.jsonl", "key", "checkpoint"] {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
    for e in std::fs::read_dir(from.join("checkpoints")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join("checkpoints").join(e.file_name())).unwrap();
    }
}

/// Some activity, with a checkpoint signed after each vote.
async fn busy(app: &TestApp) {
    for _ in 0..3 {
        approved(app).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exported_bundle_verifies_and_every_tampering_is_named() {
    let app = spawn_app().await;
    busy(&app).await;
    let out = app.dir.path().join("bundle");
    let config = app.dir.path().join("countersign.yaml");
    let exported = assert_ok(&run(
        &[
            "audit",
            "export",
            "--out",
            out.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
        |_| {},
    ));
    assert!(exported.contains("exported"), "{exported}");
    let verify = |dir: &Path, extra: &[&str]| {
        let mut args = vec!["audit", "verify", "--bundle", dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        run(&args, |_| {})
    };
    let ok = assert_ok(&verify(&out, &[]));
    assert!(ok.contains("audit log intact"), "{ok}");
    // Any RFC 9162 implementation can recompute the root from the lines alone.
    let text = std::fs::read_to_string(out.join("entries.jsonl")).unwrap();
    let mut f = countersign_audit::Frontier::new();
    for line in text.lines() {
        f.push(merkle::leaf_hash(line.as_bytes()), |_| {});
    }
    let key = key_of(&app).await;
    let latest = Checkpoint::open(
        &std::fs::read_to_string(out.join("checkpoint")).unwrap(),
        &key,
        None,
    )
    .unwrap();
    assert_eq!(latest.size, f.size());
    assert_eq!(latest.root, f.root());

    let lines: Vec<&str> = text.lines().collect();
    let n = lines.len();
    let tampered = |name: &str, edit: &dyn Fn(&mut Vec<String>)| {
        let dir = app.dir.path().join(name);
        copy_dir(&out, &dir);
        let mut ls: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        edit(&mut ls);
        std::fs::write(dir.join("entries.jsonl"), ls.join("\n") + "\n").unwrap();
        dir
    };
    // Edit: still valid, canonical JSON, the right seq; only the signed roots give it away.
    let edited = tampered("edit", &|ls| ls[3] = ls[3].replace("user:", "user:x"));
    assert_fails_with(
        &verify(&edited, &[]),
        "do not hash to the root signed in the checkpoint",
    );
    let deleted = tampered("delete", &|ls| {
        ls.remove(4);
    });
    assert_fails_with(
        &verify(&deleted, &[]),
        "first bad entry is #4: entry 4 missing",
    );
    let inserted = tampered("insert", &|ls| {
        let copy = ls[2].clone();
        ls.insert(3, copy);
    });
    assert_fails_with(&verify(&inserted, &[]), "first bad entry is #3");
    let reordered = tampered("reorder", &|ls| ls.swap(5, 6));
    assert_fails_with(&verify(&reordered, &[]), "first bad entry is #5");
    let keep = latest.size as usize - 1;
    assert!(keep < n);
    let truncated = tampered("truncate", &|ls| ls.truncate(keep));
    assert_fails_with(&verify(&truncated, &[]), "are missing (truncated?)");

    // Checkpoints: one swapped for another's file, one edited, and the wrong key.
    let swapped = tampered("swap", &|_| {});
    let mut files: Vec<_> = std::fs::read_dir(swapped.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    std::fs::copy(&files[0], &files[1]).unwrap();
    assert_fails_with(&verify(&swapped, &[]), "(swapped?)");
    let edited_cp = tampered("edit-checkpoint", &|_| {});
    let name = files[1].file_name().unwrap().to_owned();
    let note = std::fs::read_to_string(out.join("checkpoints").join(&name)).unwrap();
    let size: u64 = name.to_str().unwrap().parse().unwrap();
    let cp_file = edited_cp.join("checkpoints").join(&name);
    std::fs::write(
        &cp_file,
        note.replacen(&format!("\n{size}\n"), &format!("\n{}\n", size - 1), 1),
    )
    .unwrap();
    assert_fails_with(&verify(&edited_cp, &[]), "does not verify");
    let other = NoteSigner::generate(key.name())
        .unwrap()
        .verifier()
        .to_string();
    assert_fails_with(&verify(&out, &["--key", &other]), "is not signed by");
    // The right key, pinned, passes.
    assert_ok(&verify(&out, &["--key", &key.to_string()]));
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_verify_from_the_database_catches_a_resealed_rewrite_and_checks_the_trusted_checkpoint()
 {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir, "").await;
    busy(&app).await;
    let key = key_of(&app).await;
    let kept = app.dir.path().join("kept.checkpoint");
    std::fs::write(&kept, text(&app, "/v1/audit/checkpoint").await).unwrap();
    approved(&app).await;
    let db = app.db_path();
    let db_arg = db.to_str().unwrap().to_owned();
    let kept_arg = kept.to_str().unwrap().to_owned();
    let ok = assert_ok(&run(
        &[
            "audit",
            "verify",
            "--database",
            &db_arg,
            "--key",
            &key.to_string(),
            "--trusted-checkpoint",
            &kept_arg,
        ],
        |_| {},
    ));
    assert!(ok.contains("extends the trusted checkpoint"), "{ok}");

    // A forged "trusted" checkpoint: same key name, another key.
    let forger = NoteSigner::generate(key.name()).unwrap();
    let forged = app.dir.path().join("forged.checkpoint");
    let cp = Checkpoint::open(&std::fs::read_to_string(&kept).unwrap(), &key, None).unwrap();
    std::fs::write(&forged, cp.sign(&forger).unwrap()).unwrap();
    assert_fails_with(
        &run(
            &[
                "audit",
                "verify",
                "--database",
                &db_arg,
                "--trusted-checkpoint",
                forged.to_str().unwrap(),
            ],
            |_| {},
        ),
        "is not signed by",
    );

    // Someone with the file rewrites an early entry and recomputes every leaf and chain hash.
    {
        use sqlx::Connection as _;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query("DROP TRIGGER IF EXISTS audit_no_update")
            .execute(&mut conn)
            .await
            .unwrap();
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as("SELECT seq, bytes FROM audit ORDER BY seq")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        let mut prev = [0u8; 32];
        for (seq, bytes) in rows {
            let mut bytes = bytes;
            if seq == 2 {
                let mut e: countersign_audit::AuditEntry = serde_json::from_slice(&bytes).unwrap();
                e.actor = "user:nobody@example.com".into();
                bytes = e.canonical_bytes();
            }
            let leaf = merkle::leaf_hash(&bytes);
            let chain = countersign_audit::chain_hash(&prev, &leaf);
            prev = chain;
            sqlx::query("UPDATE audit SET bytes = ?, leaf = ?, chain = ? WHERE seq = ?")
                .bind(bytes)
                .bind(leaf.to_vec())
                .bind(chain.to_vec())
                .bind(seq)
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
    let bad = run(
        &["audit", "verify", "--database", &db_arg, "--json"],
        |_| {},
    );
    assert_eq!(bad.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["first_bad"]["seq"], 0, "{report}");
    assert!(
        report["problem"]
            .as_str()
            .unwrap()
            .contains("do not hash to the root signed"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_verify_over_the_api_and_the_witness_detect_a_rewritten_history() {
    let app = spawn_app().await;
    busy(&app).await;
    let token = app.keys["user:bob@example.com"].clone();
    let kept = app.dir.path().join("kept.checkpoint");
    std::fs::write(&kept, text(&app, "/v1/audit/checkpoint").await).unwrap();
    approved(&app).await;
    let ok = assert_ok(&run(
        &[
            "audit",
            "verify",
            "--api",
            "--url",
            &app.url,
            "--trusted-checkpoint",
            kept.to_str().unwrap(),
        ],
        |c| {
            c.env("COUNTERSIGN_TOKEN", &token);
        },
    ));
    assert!(
        ok.contains("audit log intact") && ok.contains("extends the trusted"),
        "{ok}"
    );

    let state = app.dir.path().join("witness.json");
    let witness = || {
        run(
            &[
                "audit",
                "witness",
                "--url",
                &app.url,
                "--state",
                state.to_str().unwrap(),
            ],
            |_| {},
        )
    };
    assert!(assert_ok(&witness()).contains("first checkpoint kept"));
    approved(&app).await;
    assert!(assert_ok(&witness()).contains("consistent: size"));

    // A split view: the log's own key signed a different root for a size the witness holds.
    let signer = NoteSigner::parse(
        &std::fs::read_to_string(app.dir.path().join("countersign-audit.key")).unwrap(),
    )
    .unwrap();
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let held = Checkpoint::open(
        saved["checkpoint"].as_str().unwrap(),
        &signer.verifier(),
        None,
    )
    .unwrap();
    let fake = Checkpoint {
        root: [7; 32],
        ..held.clone()
    };
    let forked = json!({"key": saved["key"], "checkpoint": fake.sign(&signer).unwrap()});
    std::fs::write(&state, forked.to_string()).unwrap();
    let alert = witness();
    assert_fails_with(&alert, "ALERT");
    // The old state is kept for the next run to alert again.
    let after: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(after, forked);
}

#[tokio::test(flavor = "multi_thread")]
async fn attestation_verifies_with_securesystemslib() {
    let app = spawn_app().await;
    let (id, _) = approved(&app).await;
    let out = assert_ok(&run(&["attest", &id, "--url", &app.url], |c| {
        c.env("COUNTERSIGN_TOKEN", &app.keys["user:bob@example.com"]);
    }));
    let envelope: Value = serde_json::from_str(&out).unwrap();
    let key = key_of(&app).await;
    let statement: Value = serde_json::from_slice(
        &BASE64
            .decode(envelope["payload"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(
        statement["predicateType"],
        countersign_audit::attestation::PREDICATE_TYPE
    );
    let digest = app
        .approver("bob")
        .get(&format!("/v1/requests/{id}"))
        .await
        .digest();
    assert_eq!(
        format!(
            "sha256:{}",
            statement["subject"][0]["digest"]["sha256"]
                .as_str()
                .unwrap()
        ),
        digest
    );
    let p = &statement["predicate"];
    assert_eq!(p["state"], "approved");
    assert_eq!(p["policy"]["rule"], "prod-export-needs-two");
    assert_eq!(p["votes"].as_array().unwrap().len(), 2);
    assert_eq!(p["votes"][0]["channel"], "api");
    let cp = Checkpoint::open(p["audit"]["checkpoint"].as_str().unwrap(), &key, None).unwrap();
    for e in p["audit"]["entries"].as_array().unwrap() {
        merkle::verify_inclusion(
            e["index"].as_u64().unwrap(),
            cp.size,
            &h(&e["leaf_hash"]),
            &hashes(&e["inclusion_proof"]),
            &cp.root,
        )
        .unwrap();
    }

    // An independent DSSE implementation: Python's securesystemslib.
    let have = Command::new("python3")
        .args([
            "-c",
            "import securesystemslib.dsse, securesystemslib.signer",
        ])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        have,
        "this test cross-checks DSSE with Python's securesystemslib: run \
         `python3 -m pip install 'securesystemslib[crypto]>=1,<2'` (as .ci/run does)"
    );
    let env_file = app.dir.path().join("envelope.json");
    std::fs::write(&env_file, &out).unwrap();
    let check = |env_path: &Path| {
        Command::new("python3")
            .arg("-c")
            .arg(PY_VERIFY)
            .arg(env_path)
            .arg(hex::encode(key.public_key()))
            .arg(envelope["signatures"][0]["keyid"].as_str().unwrap())
            .output()
            .unwrap()
    };
    let good = check(&env_file);
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&good.stdout).trim(), "verified");
    let mut edited = envelope.clone();
    let forged = String::from_utf8(
        BASE64
            .decode(envelope["payload"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap()
    .replace("approved", "denied");
    edited["payload"] = Value::String(BASE64.encode(forged));
    let bad_file = app.dir.path().join("edited.json");
    std::fs::write(&bad_file, edited.to_string()).unwrap();
    let bad = check(&bad_file);
    assert!(
        !bad.status.success(),
        "securesystemslib accepted an edited payload"
    );
}

/// Verifies a DSSE envelope file with securesystemslib: argv = file, ed25519 public key hex,
/// key id. Prints `verified`.
const PY_VERIFY: &str = r#"
import json, sys
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey
env = Envelope.from_dict(json.load(open(sys.argv[1])))
key = SSlibKey(sys.argv[3], "ed25519", "ed25519", {"public": sys.argv[2]})
env.verify([key], 1)
print("verified")
"#;

/// Reads SSE events (id, data) from a response until `n` have arrived.
async fn read_events(resp: reqwest::Response, n: usize) -> Vec<(u64, String)> {
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let mut out = Vec::new();
    while out.len() < n {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
            .await
            .expect("an event in time")
            .expect("the stream goes on")
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (mut id, mut data) = (None, String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if let Some(id) = id {
                out.push((id, data));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_stream_resumes_without_gaps_after_a_disconnect() {
    let app = spawn_app().await;
    let key = &app.keys["user:bob@example.com"];
    let open = |last: Option<u64>| {
        let mut r = app
            .http
            .get(format!("{}/v1/audit/stream", app.url))
            .bearer_auth(key);
        if let Some(last) = last {
            r = r.header("Last-Event-ID", last.to_string());
        }
        r.send()
    };
    let first = open(None).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let before = entry_lines(&app).await.len();
    let seen = read_events(first, before).await; // then disconnect
    approved(&app).await; // entries committed while nobody listens
    let resumed = open(Some(seen.last().unwrap().0)).await.unwrap();
    let total = entry_lines(&app).await;
    let rest = read_events(resumed, total.len() - seen.len()).await;
    let all: Vec<(u64, String)> = seen.into_iter().chain(rest).collect();
    for (i, (id, data)) in all.iter().enumerate() {
        assert_eq!(*id, i as u64, "no gap, no repeat");
        assert_eq!(
            data.as_bytes(),
            total[i].as_slice(),
            "the data is the entry's bytes"
        );
    }
    // Live: a new entry arrives on an open stream.
    let live = open(Some(all.len() as u64 - 1)).await.unwrap();
    app.agent()
        .submit("db.query", "x", json!({"readonly": true}))
        .await;
    let next = read_events(live, 1).await;
    assert_eq!(next[0].0, all.len() as u64);
    let r = app.agent().get("/v1/audit/stream").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_deliver_every_entry_signed_retried_and_never_block_decisions() {
    use std::sync::{Arc, Mutex};
    #[derive(Default)]
    struct Seen {
        calls: usize,
        accepted: Vec<(String, String, String, Vec<u8>)>,
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let shared = seen.clone();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let shared = shared.clone();
                async move {
                    let mut s = shared.lock().unwrap();
                    s.calls += 1;
                    // The receiver is down for its first three calls.
                    if s.calls <= 3 {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let get = |n: &str| headers[n].to_str().unwrap().to_string();
                    s.accepted.push((
                        get("webhook-id"),
                        get("webhook-timestamp"),
                        get("webhook-signature"),
                        body.to_vec(),
                    ));
                    StatusCode::NO_CONTENT
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(
        dir,
        &format!("audit:\n  webhooks:\n    - {{url: 'http://{addr}/hook', secret: {secret}}}\n"),
    )
    .await;
    // Decisions go through while the receiver refuses.
    let started = std::time::Instant::now();
    approved(&app).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    let total = entry_lines(&app).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let distinct: std::collections::BTreeSet<String> = seen
            .lock()
            .unwrap()
            .accepted
            .iter()
            .map(|a| a.0.clone())
            .collect();
        if distinct.len() >= total.len() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "webhooks did not catch up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let key = key_of(&app).await;
    let raw_secret = BASE64.decode(&secret["whsec_".len()..]).unwrap();
    let s = seen.lock().unwrap();
    assert!(s.calls > s.accepted.len(), "the failures were retried");
    let mut last_seq = None;
    for (id, ts, sig, body) in &s.accepted {
        let mut content = format!("{id}.{ts}.").into_bytes();
        content.extend_from_slice(body);
        use hmac::{KeyInit as _, Mac as _};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&raw_secret).unwrap();
        mac.update(&content);
        let want_v1 = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
        let parts: Vec<&str> = sig.split(' ').collect();
        assert!(parts.contains(&want_v1.as_str()), "{sig}");
        let v1a = parts
            .iter()
            .find_map(|p| p.strip_prefix("v1a,"))
            .expect("a v1a signature");
        assert!(
            key.verify_raw(&content, &BASE64.decode(v1a).unwrap()),
            "v1a verifies with the audit key"
        );
        let msg: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(msg["type"], "audit.entry");
        let seq = msg["data"]["seq"].as_u64().unwrap();
        assert!(id.ends_with(&format!("_{seq}")));
        // In order (a repeat after a retry may come again, never out of order).
        if let Some(last) = last_seq {
            assert!(seq == last + 1 || seq <= last, "{last} then {seq}");
        }
        last_seq = Some(seq);
        assert_eq!(
            countersign_audit::AuditEntry::canonical_bytes(
                &serde_json::from_value(msg["data"].clone()).unwrap()
            ),
            total[seq as usize]
        );
    }
}
