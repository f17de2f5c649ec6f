//! The shared suite against a SQLite file in a temporary directory, plus what only SQLite has:
//! WAL mode on disk and the read-only opening used by `countersign audit verify --database`.

use super::SqliteStore;
use crate::suite::{self, Backend};
use crate::{Store, StoreError};
use async_trait::async_trait;
use sqlx::ConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use std::path::PathBuf;
use std::sync::Arc;

struct SqliteBackend {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl SqliteBackend {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("countersign.db");
        SqliteBackend { _dir: dir, path }
    }

    /// A connection of its own, as someone editing the file with `sqlite3` would have. The
    /// append-only triggers are what such a person would drop first.
    async fn tamper(&self, sql: &'static str, seq: u64, bytes: Option<Vec<u8>>) {
        let mut conn = SqliteConnectOptions::new()
            .filename(&self.path)
            .connect()
            .await
            .expect("a tampering connection");
        for drop in [
            "DROP TRIGGER IF EXISTS audit_no_update",
            "DROP TRIGGER IF EXISTS audit_no_delete",
        ] {
            sqlx::query(drop)
                .execute(&mut conn)
                .await
                .expect("drop trigger");
        }
        let mut query = sqlx::query(sql);
        if let Some(bytes) = bytes {
            query = query.bind(bytes);
        }
        let done = query
            .bind(i64::try_from(seq).expect("small seq"))
            .execute(&mut conn)
            .await
            .expect("tamper");
        assert_eq!(done.rows_affected(), 1);
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(&self.path).await.expect("open"))
    }

    async fn overwrite_audit_bytes(&self, seq: u64, bytes: Vec<u8>) {
        self.tamper(
            "UPDATE audit SET bytes = ?1 WHERE seq = ?2",
            seq,
            Some(bytes),
        )
        .await;
    }

    async fn overwrite_request(&self, id: &str, body: &str, state: &str) {
        let mut conn = SqliteConnectOptions::new()
            .filename(&self.path)
            .connect()
            .await
            .expect("a tampering connection");
        let done = sqlx::query("UPDATE requests SET body = ?1, state = ?2 WHERE id = ?3")
            .bind(body)
            .bind(state)
            .bind(id)
            .execute(&mut conn)
            .await
            .expect("tamper");
        assert_eq!(done.rows_affected(), 1);
    }

    async fn delete_audit_entry(&self, seq: u64) {
        self.tamper("DELETE FROM audit WHERE seq = ?1", seq, None)
            .await;
    }

    async fn forget_tree(&self) {
        let mut conn = SqliteConnectOptions::new()
            .filename(&self.path)
            .connect()
            .await
            .expect("a connection");
        for sql in [
            "DROP TRIGGER IF EXISTS audit_no_update",
            "UPDATE audit SET nodes = NULL",
        ] {
            sqlx::query(sql).execute(&mut conn).await.expect(sql);
        }
    }
}

crate::store_suite!(async { Some(SqliteBackend::new()) });

#[tokio::test]
async fn the_file_is_in_wal_mode() {
    let b = SqliteBackend::new();
    let store = b.open().await;
    suite::submit(&*store, "req_1", None, suite::allow(), suite::at(0)).await;
    let mut conn = SqliteConnectOptions::new()
        .filename(&b.path)
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn the_audit_log_refuses_updates_from_sql() {
    let b = SqliteBackend::new();
    let store = b.open().await;
    suite::submit(&*store, "req_1", None, suite::allow(), suite::at(0)).await;
    let mut conn = SqliteConnectOptions::new()
        .filename(&b.path)
        .connect()
        .await
        .unwrap();
    let err = sqlx::query("DELETE FROM audit WHERE seq = 0")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
}

#[tokio::test]
async fn read_only_opening_verifies_without_writing() {
    let b = SqliteBackend::new();
    let store = SqliteStore::open(&b.path).await.unwrap();
    suite::submit(&store, "req_1", None, suite::allow(), suite::at(0)).await;
    store.close().await;
    let wal = b.path.with_extension("db-wal");
    assert!(
        !wal.exists(),
        "a clean close folds the WAL back into the file"
    );
    let ro = SqliteStore::open_read_only(&b.path).await.unwrap();
    let report = ro.verify_audit().await.unwrap();
    assert!(report.is_intact());
    assert_eq!(report.entries, 2);
    assert!(ro.get_request("req_1").await.unwrap().is_some());
    let write = ro
        .append_event(
            "system",
            countersign_core::Event::RequestExpired,
            None,
            suite::at(1),
        )
        .await;
    assert!(matches!(write, Err(StoreError::ReadOnly)), "{write:?}");

    // And while a writer is running, a reader sees what it acknowledged.
    let store = SqliteStore::open(&b.path).await.unwrap();
    suite::submit(&store, "req_2", None, suite::allow(), suite::at(2)).await;
    assert_eq!(ro.verify_audit().await.unwrap().entries, 4);
}

#[tokio::test]
async fn read_only_opening_of_a_missing_file_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nothing-here.db");
    let err = SqliteStore::open_read_only(&path).await.unwrap_err();
    assert!(matches!(err, StoreError::NoDatabase(_)));
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!path.exists(), "nothing was created");
}

#[tokio::test]
async fn read_only_opening_of_another_database_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let mut conn = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    sqlx::query("CREATE TABLE t (x INTEGER)")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let err = SqliteStore::open_read_only(&path).await.unwrap_err();
    assert!(
        err.to_string().contains("not a Countersign database"),
        "{err}"
    );
}

#[tokio::test]
async fn parked_calls_are_stored_as_hex_and_a_read_only_store_refuses_to_park() {
    let b = SqliteBackend::new();
    let store = SqliteStore::open(&b.path).await.unwrap();
    let bot = suite::principal_id("agent:deploy-bot");
    let digest = countersign_core::Digest::of_bytes(b"db.export customers");
    store
        .park_call(&bot, &digest, "req_1", suite::at(0))
        .await
        .unwrap();
    store.close().await;

    let mut conn = SqliteConnectOptions::new()
        .filename(&b.path)
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let stored: String = sqlx::query_scalar("SELECT digest FROM parked_calls")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let hex = countersign_core::digest::hex32_string(digest.as_bytes());
    assert_eq!(stored, hex, "lower-case hex, without the sha256: prefix");

    let ro = SqliteStore::open_read_only(&b.path).await.unwrap();
    assert_eq!(
        ro.parked_call(&bot, &digest).await.unwrap().as_deref(),
        Some("req_1")
    );
    let park = ro.park_call(&bot, &digest, "req_2", suite::at(1)).await;
    assert!(matches!(park, Err(StoreError::ReadOnly)), "{park:?}");
    let unpark = ro.unpark_call(&bot, &digest, "req_1").await;
    assert!(matches!(unpark, Err(StoreError::ReadOnly)), "{unpark:?}");
    assert_eq!(
        ro.parked_call(&bot, &digest).await.unwrap().as_deref(),
        Some("req_1")
    );
}

#[tokio::test]
async fn the_writer_connection_is_durable() {
    // "Acknowledged" means fsync'd: the writer commits with synchronous=FULL in WAL mode.
    let b = SqliteBackend::new();
    let store = SqliteStore::open(&b.path).await.unwrap();
    let conn = super::writer::open(&b.path).unwrap();
    let synchronous: i64 = conn
        .query_row("PRAGMA synchronous", [], |row| row.get(0))
        .unwrap();
    assert_eq!(synchronous, 2, "FULL");
    let foreign_keys: i64 = conn
        .query_row("PRAGMA foreign_keys", [], |row| row.get(0))
        .unwrap();
    assert_eq!(foreign_keys, 1);
    drop(conn);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_writes_than_one_group_holds_all_land_in_order() {
    let b = SqliteBackend::new();
    let store = b.open().await;
    let tasks: Vec<_> = (0..700)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let id = format!("req_{i:04}");
                let run = (i % 3 == 0).then(|| format!("run-{}", i % 7));
                let action = suite::action(run.as_deref());
                let submit = suite::submission(&id, action, suite::allow(), suite::at(i));
                let requester = suite::agent().id;
                let run_of = run.as_deref().map(|run| crate::RunOf {
                    run,
                    requester: &requester,
                });
                store.submit(run_of, suite::at(i), submit).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let report = store.verify_audit().await.unwrap();
    assert!(report.is_intact(), "{:?}", report.first_bad);
    assert_eq!(report.entries, 1400);
}

#[tokio::test]
async fn a_queued_marker_survives_close_and_reopen() {
    // The marker is committed with the request, in the same fsync'd group: a clean close and
    // reopen (as after a deploy) finds it, with no gateway left to remember it.
    let b = SqliteBackend::new();
    let store = SqliteStore::open(&b.path).await.unwrap();
    suite::submit(&store, "req_1", None, suite::review(1, false), suite::at(0)).await;
    store.close().await;
    let store = SqliteStore::open(&b.path).await.unwrap();
    let claims = store
        .claim_notifications(suite::at(0), suite::at(60), 10)
        .await
        .unwrap();
    assert_eq!(
        claims,
        [crate::NotifyClaim {
            request_id: "req_1".into(),
            generation: 1
        }]
    );
    store.close().await;
}

#[tokio::test]
async fn a_second_writer_on_the_same_file_keeps_the_log_whole() {
    // `countersign key create` while `serve` runs: two processes, each with its own writer,
    // append to one file. Each must see the other's entries before appending its own.
    let b = SqliteBackend::new();
    let serve = SqliteStore::open(&b.path).await.unwrap();
    suite::submit(&serve, "req_1", None, suite::allow(), suite::at(0)).await;
    let other = SqliteStore::open(&b.path).await.unwrap();
    suite::submit(&other, "req_2", None, suite::allow(), suite::at(1)).await;
    suite::submit(&serve, "req_3", None, suite::allow(), suite::at(2)).await;
    suite::submit(&other, "req_4", None, suite::allow(), suite::at(3)).await;
    suite::submit(&serve, "req_5", None, suite::allow(), suite::at(4)).await;
    assert_eq!(*serve.audit_watch().borrow(), 10);
    other.close().await;
    let report = serve.verify_audit().await.unwrap();
    assert!(report.is_intact(), "{:?}", report.first_bad);
    assert_eq!(report.entries, 10);
    // The tree nodes each writer stored hash the entries actually there.
    let mut tree = countersign_audit::merkle::Frontier::new();
    for e in serve.audit_entries(0, 10).await.unwrap() {
        tree.push(countersign_audit::merkle::leaf_hash(&e.bytes), |_| {});
    }
    assert_eq!(serve.audit_root(10).await.unwrap(), tree.root());
    serve.close().await;
}

fn wal_path(db: &std::path::Path) -> PathBuf {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// The WAL header's checkpoint sequence number: SQLite adds one each time the WAL starts over
/// from its beginning (https://www.sqlite.org/fileformat.html#wal_file_format).
fn wal_restarts(db: &std::path::Path) -> Option<u32> {
    let bytes = std::fs::read(wal_path(db)).ok()?;
    Some(u32::from_be_bytes(bytes.get(12..16)?.try_into().ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_starts_over_under_steady_writes() {
    // Under steady writes SQLite seldom finds every frame copied when a write begins, so the
    // WAL grows (the writer does not checkpoint after its commits). The checkpointer has the
    // writer finish a checkpoint between two groups instead: the WAL starts over, again and
    // again, while the writes go on, and its file stays small.
    let b = SqliteBackend::new();
    let store = Arc::new(SqliteStore::open(&b.path).await.unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..32)
        .map(|t| {
            let store = Arc::clone(&store);
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let id = format!("req_{t:02}_{i:06}");
                    let submit =
                        suite::submission(&id, suite::action(None), suite::allow(), suite::at(i));
                    store.submit(None, suite::at(i), submit).await.unwrap();
                    i += 1;
                }
                i
            })
        })
        .collect();
    let first = loop {
        if let Some(n) = wal_restarts(&b.path) {
            break n;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut restarts = 0;
    let mut longest = 0;
    while restarts < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        restarts = wal_restarts(&b.path).unwrap_or(first).wrapping_sub(first);
        longest = longest.max(std::fs::metadata(wal_path(&b.path)).map_or(0, |m| m.len()));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut written: u64 = 0;
    for w in writers {
        written += u64::try_from(w.await.unwrap()).unwrap();
    }
    assert!(
        restarts >= 3,
        "the WAL started over {restarts} times in 60 s"
    );
    // With the test's thresholds (256 frames, a pass every 100 ms) the file stays near 8 MiB;
    // without the writer finishing checkpoints it reached 300-400 MiB on the same machine.
    assert!(longest < 64 << 20, "the WAL file grew to {longest} bytes");
    let report = store.verify_audit().await.unwrap();
    assert!(report.is_intact(), "{:?}", report.first_bad);
    assert_eq!(report.entries, 2 * written);
    let Ok(store) = Arc::try_unwrap(store) else {
        panic!("the writers still hold the store");
    };
    store.close().await;
}

/// Migration 0006: ids stored before in another case are rewritten to the canonical form, so
/// keys, factors and passkeys are still found by the person's one id; of two TOTP enrolments of
/// one person, the canonical one is kept.
#[tokio::test]
async fn person_ids_are_canonical_in_rows_stored_before() {
    let b = SqliteBackend::new();
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(&b.path)
                .create_if_missing(true),
        )
        .await
        .unwrap();
    super::MIGRATOR.run_to(5, &pool).await.unwrap();
    for sql in [
        "INSERT INTO api_keys VALUES ('h1', 'user:Bob@Example.com', 0)",
        "INSERT INTO api_keys VALUES ('h2', 'Agent:Deploy-Bot', 0)",
        "INSERT INTO totp VALUES ('user:Bob@example.com', x'01', NULL, 0)",
        "INSERT INTO totp VALUES ('user:bob@example.com', x'02', NULL, 0)",
        "INSERT INTO totp VALUES ('user:CAROL@example.com', x'03', NULL, 0)",
        "INSERT INTO totp VALUES ('user:Carol@example.com', x'04', NULL, 0)",
        "INSERT INTO webauthn_credentials VALUES ('c1', 'user:Bob@Example.com', '{}', 0, NULL)",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;
    let store = SqliteStore::open(&b.path).await.unwrap();
    let id = |s: &str| countersign_core::PrincipalId::parse(s).unwrap();
    assert_eq!(
        store.principal_for_key("h1").await.unwrap(),
        Some(id("user:bob@example.com"))
    );
    assert_eq!(
        store
            .principal_for_key("h2")
            .await
            .unwrap()
            .unwrap()
            .as_str(),
        "agent:deploy-bot"
    );
    let bob = store.totp_get(&id("user:bob@example.com")).await.unwrap();
    assert_eq!(bob.unwrap().secret, [2], "the canonical enrolment is kept");
    let carol = store.totp_get(&id("user:carol@example.com")).await.unwrap();
    assert_eq!(
        carol.unwrap().secret,
        [3],
        "one enrolment of the spellings is kept"
    );
    let passkeys = store.passkeys(&id("user:bob@example.com")).await.unwrap();
    assert_eq!(passkeys.len(), 1);
    let (keys, _) = store
        .revoke_keys(&id("USER:BOB@example.com"), "system", chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(
        keys, 1,
        "revoking finds the key stored under another spelling"
    );
    store.close().await;
}
