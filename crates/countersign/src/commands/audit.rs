//! The audit verbs: `audit verify` (from the database, an exported bundle or the HTTP API, with
//! an optional checkpoint the auditor kept), `audit export`, `audit witness` and `attest`.
//! Every check here is done with `countersign-audit` on bytes this command read itself; the
//! server is trusted for nothing but handing them over.

use crate::cli::{AuditVerb, Global};
use crate::client::Client;
use crate::outcome::{self, Failure};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use countersign_audit::{AuditReport, Checkpoint, NoteSigner, NoteVerifier, Verifier, merkle};
use countersign_http::wire::ConsistencyProofView;
use countersign_server::Config;
use countersign_store::{RequestMismatch, SqliteStore, Store};
use std::path::{Path, PathBuf};

pub async fn run(g: &Global, verb: AuditVerb) -> Result<u8, Failure> {
    match verb {
        AuditVerb::Verify {
            database,
            config,
            bundle,
            api,
            key,
            trusted_checkpoint,
        } => {
            let trusted = trusted_checkpoint.as_deref();
            let key = key.as_deref();
            let outcome = if let Some(dir) = bundle {
                verify_bundle(&dir, key, trusted)?
            } else if api {
                verify_api(g, key, trusted).await?
            } else {
                verify_database(database, config.as_deref(), key, trusted).await?
            };
            report(g, outcome)
        }
        AuditVerb::Export {
            out,
            database,
            config,
        } => export(g, &out, database, config.as_deref()).await,
        AuditVerb::Witness { state, key } => witness(g, &state, key.as_deref()).await,
    }
}

fn load_config(path: Option<&Path>) -> Result<Config, Failure> {
    Config::load(path).map_err(|e| Failure::usage(e.to_string()))
}

/// A verifier key given as the key itself or as a file holding it.
fn parse_key(given: &str) -> Result<NoteVerifier, Failure> {
    let text = match Path::new(given).is_file() {
        true => std::fs::read_to_string(given)
            .map_err(|e| Failure::usage(format!("cannot read the key file {given}: {e}")))?,
        false => given.to_owned(),
    };
    NoteVerifier::parse(&text).map_err(|e| Failure::usage(format!("--key: {e}")))
}

/// Opens a signed checkpoint with `key`, naming `what` in the error.
fn open_checkpoint(note: &str, key: &NoteVerifier, what: &str) -> Result<Checkpoint, String> {
    Checkpoint::open(note, key, None).map_err(|e| format!("{what}: {e}"))
}

fn read_trusted(path: &Path, key: &NoteVerifier) -> Result<Checkpoint, Failure> {
    let note = std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
    open_checkpoint(
        &note,
        key,
        &format!("the trusted checkpoint {}", path.display()),
    )
    .map_err(Failure::other)
}

/// What a verification found, ready to print.
struct Outcome {
    report: AuditReport,
    /// Where the key came from, when it was not given.
    key_note: Option<String>,
    /// A problem outside any entry (a checkpoint that does not verify).
    problem: Option<String>,
    trusted: Option<Checkpoint>,
    /// Requests whose row is not what their audit entries produce (from the database only).
    requests: Vec<RequestMismatch>,
}

fn report(g: &Global, o: Outcome) -> Result<u8, Failure> {
    let r = &o.report;
    let problem = o
        .problem
        .clone()
        .or_else(|| {
            r.first_bad
                .as_ref()
                .map(|f| format!("first bad entry is #{}: {}", f.seq, f.problem))
        })
        .or_else(|| match o.requests.as_slice() {
            [] => None,
            found => Some(format!(
                "{} stored request(s) do not match their audit log: {}",
                found.len(),
                found
                    .iter()
                    .map(|m| m.request.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        });
    if !g.json {
        // Every request and every way it differs: the operator needs each one, not the first.
        for m in &o.requests {
            eprintln!("request {}: {}", m.request, m.problems.join("; "));
        }
    }
    if g.json {
        let body = serde_json::json!({
            "ok": problem.is_none(),
            "entries": r.entries,
            "root": BASE64.encode(r.root),
            "head": r.head_hex(),
            "checkpoints_matched": r.checkpoints_matched,
            "latest_checkpoint": r.latest_checkpoint,
            "trusted_checkpoint": o.trusted.as_ref().map(|t| t.size),
            "first_bad": r.first_bad.as_ref().map(|f| serde_json::json!({"seq": f.seq, "problem": f.problem})),
            "problem": problem,
            "requests": o.requests.iter().map(|m| serde_json::json!({"request": m.request, "problems": m.problems})).collect::<Vec<_>>(),
        });
        println!("{body}");
    }
    if let Some(note) = &o.key_note
        && !g.json
    {
        eprintln!("note: {note}");
    }
    match problem {
        Some(p) => Err(Failure::other(format!("audit log NOT intact: {p}"))),
        None => {
            if !g.json {
                let checkpoints = match r.latest_checkpoint {
                    Some(size) => format!(
                        "{} signed checkpoint(s) match, the latest at size {size}",
                        r.checkpoints_matched
                    ),
                    None => "no signed checkpoint checked".into(),
                };
                println!(
                    "audit log intact: {} entries, root {}, head {}; {checkpoints}",
                    r.entries,
                    BASE64.encode(r.root),
                    r.head_hex().unwrap_or_else(|| "-".into())
                );
                if let Some(t) = &o.trusted {
                    println!("it extends the trusted checkpoint at size {}", t.size);
                }
            }
            Ok(outcome::OK)
        }
    }
}

/// `audit verify` from the database: the rows (bytes, leaf, chain), the tree, every stored
/// checkpoint's signature, and the trusted checkpoint.
async fn verify_database(
    database: Option<PathBuf>,
    config: Option<&Path>,
    key: Option<&str>,
    trusted: Option<&Path>,
) -> Result<Outcome, Failure> {
    let (path, key_file) = database_and_key(database, config)?;
    let store = open_for_reading(&path).await?;
    let (verifier, key_note) = match key {
        Some(k) => (Some(parse_key(k)?), None),
        None => match std::fs::read_to_string(&key_file)
            .ok()
            .and_then(|t| NoteSigner::parse(&t).ok())
        {
            Some(signer) => (
                Some(signer.verifier()),
                Some(format!(
                    "checked with the gateway's own key file {}; pass --key to pin the key you trust",
                    key_file.display()
                )),
            ),
            None => (
                None,
                Some(
                    "no --key and no readable key file: signed checkpoints were not checked".into(),
                ),
            ),
        },
    };
    let mut checkpoints = vec![];
    let mut problem = None;
    if let Some(v) = &verifier {
        let stored = store
            .checkpoints(0, u32::MAX)
            .await
            .map_err(|e| Failure::other(format!("cannot read the checkpoints: {e}")))?;
        for c in stored {
            match open_checkpoint(
                &c.note,
                v,
                &format!("the checkpoint stored for size {}", c.size),
            ) {
                Ok(cp) if cp.size == c.size => checkpoints.push(cp),
                Ok(cp) => {
                    problem = Some(format!(
                        "the checkpoint stored for size {} says size {} (swapped?)",
                        c.size, cp.size
                    ));
                    break;
                }
                Err(e) => {
                    problem = Some(e);
                    break;
                }
            }
        }
    }
    let trusted = match (trusted, &verifier) {
        (Some(path), Some(v)) => Some(read_trusted(path, v)?),
        (Some(_), None) => {
            return Err(Failure::usage(
                "--trusted-checkpoint needs the key it was signed with (--key)",
            ));
        }
        (None, _) => None,
    };
    checkpoints.extend(trusted.clone());
    let report = store
        .verify_audit_against(checkpoints)
        .await
        .map_err(|e| Failure::other(format!("cannot read the audit log: {e}")))?;
    let requests = store
        .verify_requests()
        .await
        .map_err(|e| Failure::other(format!("cannot replay the requests: {e}")))?;
    Ok(Outcome {
        report,
        key_note,
        problem,
        trusted,
        requests,
    })
}

/// `audit verify --bundle DIR`: the export's lines, its checkpoints, and the trusted one.
fn verify_bundle(
    dir: &Path,
    key: Option<&str>,
    trusted: Option<&Path>,
) -> Result<Outcome, Failure> {
    let (verifier, key_note) = match key {
        Some(k) => (parse_key(k)?, None),
        None => {
            let file = dir.join("key");
            let text = std::fs::read_to_string(&file).map_err(|e| {
                Failure::usage(format!("no --key, and cannot read {}: {e}", file.display()))
            })?;
            let v = NoteVerifier::parse(&text)
                .map_err(|e| Failure::other(format!("{}: {e}", file.display())))?;
            let note = format!(
                "checked with the key in the bundle ({v}); pass --key to pin the key you trust"
            );
            (v, Some(note))
        }
    };
    let mut checkpoints = vec![];
    let mut problem = None;
    let cp_dir = dir.join("checkpoints");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&cp_dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => vec![],
    };
    files.sort();
    for file in files {
        let note = std::fs::read_to_string(&file)
            .map_err(|e| Failure::other(format!("cannot read {}: {e}", file.display())))?;
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        match open_checkpoint(&note, &verifier, &file.display().to_string()) {
            Ok(cp) if name.parse::<u64>().ok() == Some(cp.size) => checkpoints.push(cp),
            Ok(cp) => {
                problem = Some(format!(
                    "{} holds the checkpoint of size {} (swapped?)",
                    file.display(),
                    cp.size
                ));
                break;
            }
            Err(e) => {
                problem = Some(e);
                break;
            }
        }
    }
    let trusted = trusted.map(|p| read_trusted(p, &verifier)).transpose()?;
    checkpoints.extend(trusted.clone());
    let entries = dir.join("entries.jsonl");
    let bytes = std::fs::read(&entries)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", entries.display())))?;
    let mut v = Verifier::with_checkpoints(checkpoints);
    if !bytes.is_empty() {
        let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        for line in body.split(|b| *b == b'\n') {
            if !v.push_line(line) {
                break;
            }
        }
    }
    Ok(Outcome {
        report: v.finish(),
        key_note,
        problem,
        trusted,
        requests: vec![],
    })
}

/// `audit verify --api`: the gateway's key (unless given), its latest checkpoint, all entries
/// over HTTP, and, with a trusted checkpoint, the consistency proof the gateway serves.
async fn verify_api(
    g: &Global,
    key: Option<&str>,
    trusted: Option<&Path>,
) -> Result<Outcome, Failure> {
    let client = Client::new(&g.url, g.token.clone())?;
    let (verifier, key_note) = match key {
        Some(k) => (parse_key(k)?, None),
        None => {
            let v = fetch_key(&client).await?;
            let note = format!(
                "checked with the key the gateway serves ({v}); pass --key to pin the key you trust"
            );
            (v, Some(note))
        }
    };
    let note = text(client.get_bytes("/v1/audit/checkpoint", false).await?)?;
    let latest = open_checkpoint(&note, &verifier, "the gateway's latest checkpoint")
        .map_err(Failure::other)?;
    let trusted = trusted.map(|p| read_trusted(p, &verifier)).transpose()?;
    let mut problem = None;
    if let Some(t) = &trusted {
        problem = check_consistency(&client, t, &latest).await?.err();
    }
    let mut checkpoints = vec![latest.clone()];
    checkpoints.extend(trusted.clone());
    let mut v = Verifier::with_checkpoints(checkpoints);
    let mut from = 0u64;
    'pages: loop {
        let page = client
            .get_bytes(&format!("/v1/audit/entries?from={from}&limit=10000"), true)
            .await?;
        if page.is_empty() {
            break;
        }
        let mut n = 0;
        for line in page
            .strip_suffix(b"\n")
            .unwrap_or(&page)
            .split(|b| *b == b'\n')
        {
            n += 1;
            if !v.push_line(line) {
                break 'pages;
            }
        }
        from += n;
        if v.size() >= latest.size && n < 10000 {
            break;
        }
    }
    Ok(Outcome {
        report: v.finish(),
        key_note,
        problem,
        trusted,
        requests: vec![],
    })
}

fn text(bytes: Vec<u8>) -> Result<String, Failure> {
    String::from_utf8(bytes).map_err(|_| Failure::other("the gateway sent text that is not UTF-8"))
}

async fn fetch_key(client: &Client) -> Result<NoteVerifier, Failure> {
    let text = text(client.get_bytes("/v1/audit/key", false).await?)?;
    NoteVerifier::parse(&text).map_err(|e| Failure::other(format!("the gateway's key: {e}")))
}

fn hashes(list: &[String]) -> Result<Vec<merkle::Hash>, Failure> {
    list.iter()
        .map(|h| {
            BASE64
                .decode(h)
                .ok()
                .and_then(|b| <merkle::Hash>::try_from(b).ok())
                .ok_or_else(|| Failure::other("the gateway sent a proof hash that is not 32 bytes"))
        })
        .collect()
}

/// Checks with the gateway's consistency proof that `new` extends `old`. `Ok(Err(why))` when
/// it does not.
async fn check_consistency(
    client: &Client,
    old: &Checkpoint,
    new: &Checkpoint,
) -> Result<Result<(), String>, Failure> {
    if new.size < old.size {
        return Ok(Err(format!(
            "the log shrank: the latest checkpoint is at size {}, the trusted one at size {} (history rewritten or truncated)",
            new.size, old.size
        )));
    }
    if new.size == old.size {
        return Ok(match new.root == old.root {
            true => Ok(()),
            false => Err(format!(
                "two different roots signed for size {}: a split view or a rewritten history",
                new.size
            )),
        });
    }
    if old.size == 0 {
        return Ok(Ok(()));
    }
    let proof: ConsistencyProofView = serde_json::from_slice(
        &client
            .get_bytes(
                &format!("/v1/audit/consistency?from={}&to={}", old.size, new.size),
                false,
            )
            .await?,
    )
    .map_err(|e| Failure::other(format!("unexpected consistency proof: {e}")))?;
    let proof = hashes(&proof.hashes)?;
    Ok(
        merkle::verify_consistency(old.size, new.size, &proof, &old.root, &new.root).map_err(|e| {
            format!(
                "the checkpoint at size {} does not extend the one at size {} ({e}): history was rewritten",
                new.size, old.size
            )
        }),
    )
}

/// `audit export --out DIR`.
async fn export(
    g: &Global,
    out: &Path,
    database: Option<PathBuf>,
    config: Option<&Path>,
) -> Result<u8, Failure> {
    let (path, key_file) = database_and_key(database, config)?;
    let store = open_for_reading(&path).await?;
    let io = |e: std::io::Error| Failure::other(format!("cannot write {}: {e}", out.display()));
    bundle_dir(out)?;
    bundle_dir(&out.join("checkpoints"))?;
    // Entries first, then the checkpoints: every checkpoint written is then covered by the
    // entries (a commit made meanwhile adds entries, never a checkpoint beyond them).
    let mut file = std::io::BufWriter::new(new_file(&out.join("entries.jsonl"))?);
    let mut from = 0u64;
    loop {
        let page = store
            .audit_entries(from, 10_000)
            .await
            .map_err(|e| Failure::other(format!("cannot read the audit log: {e}")))?;
        use std::io::Write as _;
        for e in &page {
            file.write_all(&e.bytes).map_err(io)?;
            file.write_all(b"\n").map_err(io)?;
        }
        match page.last() {
            Some(last) => from = last.seq + 1,
            None => break,
        }
    }
    use std::io::Write as _;
    file.flush().map_err(io)?;
    let checkpoints = store
        .checkpoints(0, u32::MAX)
        .await
        .map_err(|e| Failure::other(format!("cannot read the checkpoints: {e}")))?;
    let covered: Vec<_> = checkpoints.iter().filter(|c| c.size <= from).collect();
    for c in &covered {
        write_new(
            &out.join("checkpoints").join(format!("{:020}", c.size)),
            c.note.as_bytes(),
        )?;
    }
    if let Some(latest) = covered.last() {
        write_new(&out.join("checkpoint"), latest.note.as_bytes())?;
    }
    if let Some(signer) = std::fs::read_to_string(&key_file)
        .ok()
        .and_then(|t| NoteSigner::parse(&t).ok())
    {
        write_new(
            &out.join("key"),
            format!("{}\n", signer.verifier()).as_bytes(),
        )?;
    }
    if g.json {
        println!(
            "{}",
            serde_json::json!({"entries": from, "checkpoints": covered.len(), "out": out.display().to_string()})
        );
    } else {
        println!(
            "exported {from} entries and {} signed checkpoints to {}",
            covered.len(),
            out.display()
        );
    }
    Ok(outcome::OK)
}

/// What a witness keeps between runs.
#[derive(serde::Serialize, serde::Deserialize)]
struct WitnessState {
    key: String,
    checkpoint: String,
}

/// `audit witness --url URL --state FILE`.
async fn witness(g: &Global, state_path: &Path, key: Option<&str>) -> Result<u8, Failure> {
    let client = Client::new(&g.url, None)?;
    let previous: Option<WitnessState> = match std::fs::read_to_string(state_path) {
        Ok(text) => Some(serde_json::from_str(&text).map_err(|e| {
            Failure::usage(format!(
                "{} is not a witness state file: {e}",
                state_path.display()
            ))
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(Failure::usage(format!(
                "cannot read {}: {e}",
                state_path.display()
            )));
        }
    };
    let verifier = match (&previous, key) {
        (Some(p), Some(k)) => {
            let given = parse_key(k)?;
            if given.to_string() != p.key.trim() {
                return Err(Failure::usage(format!(
                    "--key differs from the key in {} ({}); start a new state file to trust another key",
                    state_path.display(),
                    p.key
                )));
            }
            given
        }
        (Some(p), None) => NoteVerifier::parse(&p.key)
            .map_err(|e| Failure::usage(format!("{}: {e}", state_path.display())))?,
        (None, Some(k)) => parse_key(k)?,
        (None, None) => fetch_key(&client).await?,
    };
    let note = text(client.get_bytes("/v1/audit/checkpoint", false).await?)?;
    let latest = open_checkpoint(&note, &verifier, "the gateway's latest checkpoint")
        .map_err(|e| Failure::other(format!("ALERT: {e}")))?;
    if let Some(p) = &previous {
        let old = open_checkpoint(&p.checkpoint, &verifier, "the kept checkpoint")
            .map_err(Failure::other)?;
        if let Err(why) = check_consistency(&client, &old, &latest).await? {
            return Err(Failure::other(format!(
                "ALERT: {why}; keeping {}",
                state_path.display()
            )));
        }
        println!(
            "consistent: size {} -> {} (root {})",
            old.size,
            latest.size,
            latest.root_base64()
        );
    } else {
        println!(
            "first checkpoint kept: size {} (root {}), key {verifier}",
            latest.size,
            latest.root_base64()
        );
    }
    let state = WitnessState {
        key: verifier.to_string(),
        checkpoint: note,
    };
    let tmp = state_path.with_extension("tmp");
    let body = serde_json::to_vec_pretty(&state).map_err(|e| Failure::other(e.to_string()))?;
    std::fs::write(&tmp, body)
        .and_then(|()| std::fs::rename(&tmp, state_path))
        .map_err(|e| Failure::other(format!("cannot write {}: {e}", state_path.display())))?;
    Ok(outcome::OK)
}

/// `attest REQUEST_ID`: fetches the attestation, checks its DSSE signature, prints it.
pub async fn attest(g: &Global, id: &str, key: Option<String>) -> Result<u8, Failure> {
    let client = Client::new(&g.url, g.token.clone())?;
    let verifier = match key {
        Some(k) => parse_key(&k)?,
        None => fetch_key(&client).await?,
    };
    let bytes = client
        .get_bytes(&format!("/v1/requests/{id}/attestation"), true)
        .await?;
    let envelope: countersign_audit::dsse::Envelope = serde_json::from_slice(&bytes)
        .map_err(|e| Failure::other(format!("unexpected attestation: {e}")))?;
    countersign_audit::dsse::verify(&envelope, &verifier)
        .map_err(|e| Failure::other(format!("the attestation does not verify: {e}")))?;
    let pretty =
        serde_json::to_string_pretty(&envelope).map_err(|e| Failure::other(e.to_string()))?;
    println!("{pretty}");
    Ok(outcome::OK)
}

/// The database named by `path`: a SQLite file, opened read-only, or a `postgres://` URL.
/// A directory of the bundle: created if missing; refused if it is a symbolic link (or not a
/// directory), so a planted link cannot send the export somewhere else.
fn bundle_dir(dir: &Path) -> Result<(), Failure> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(Failure::usage(format!(
            "{} is a symbolic link; export into a real directory",
            dir.display()
        ))),
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Failure::usage(format!(
            "{} exists and is not a directory",
            dir.display()
        ))),
        Err(_) => std::fs::create_dir(dir)
            .map_err(|e| Failure::other(format!("cannot create {}: {e}", dir.display()))),
    }
}

/// Creates a bundle file that did not exist. `create_new` (O_CREAT|O_EXCL) never follows a
/// symbolic link and never opens an existing file, so a planted link or file is refused, not
/// written through: an export never overwrites anything.
fn new_file(path: &Path) -> Result<std::fs::File, Failure> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Failure::usage(format!(
                "{} already exists (a file or a link); export into a new or empty directory",
                path.display()
            )),
            _ => Failure::other(format!("cannot write {}: {e}", path.display())),
        })
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write as _;
    new_file(path)?
        .write_all(bytes)
        .map_err(|e| Failure::other(format!("cannot write {}: {e}", path.display())))
}

pub(crate) async fn open_for_reading(path: &Path) -> Result<std::sync::Arc<dyn Store>, Failure> {
    let name = path.to_string_lossy();
    if countersign_server::config::is_postgres_url(&name) {
        let store = countersign_store::PgStore::connect(&name)
            .await
            .map_err(|e| {
                Failure::usage(format!(
                    "cannot open {}: {e}",
                    countersign_server::config::database_display(&name)
                ))
            })?;
        return Ok(std::sync::Arc::new(store));
    }
    let store = SqliteStore::open_read_only(path)
        .await
        .map_err(|e| Failure::usage(format!("cannot open {}: {e}", path.display())))?;
    Ok(std::sync::Arc::new(store))
}

/// The database to read (`--database`, else the config's) and where its gateway keeps the audit
/// key (beside a `--database` file, else as the config says).
fn database_and_key(
    database: Option<PathBuf>,
    config: Option<&Path>,
) -> Result<(PathBuf, PathBuf), Failure> {
    Ok(match database {
        Some(d) => {
            let key_file = d
                .parent()
                .unwrap_or(Path::new(""))
                .join("countersign-audit.key");
            (d, key_file)
        }
        None => {
            let c = load_config(config)?;
            let key_file = c.audit.key_path(&c.database);
            (PathBuf::from(c.database), key_file)
        }
    })
}
