//! The single writer with group commit. Every write of a [`super::SqliteStore`] is an [`Op`]
//! sent to one thread that owns the only writing connection. The thread takes whatever is queued
//! (up to [`MAX_GROUP`] ops), runs them in one `BEGIN IMMEDIATE` transaction where an op that
//! fails undoes only its own writes (its savepoint, or its single statement), commits once, and
//! only then answers every op. One fsync thus acknowledges the whole group: durability without paying a
//! disk flush per request.
//!
//! The writer is a plain thread with a synchronous connection (rusqlite, on the same SQLite
//! library sqlx links): its statements run in place, with no hop to a driver thread and back,
//! so one writer keeps up with many callers. Reads stay on sqlx's async pool.
//!
//! The audit head (next sequence number, last chain hash) and the Merkle tree's frontier live
//! here in memory, so appending needs no read. The head advances with each op, is restored when
//! an op fails, and is reloaded from the database when a commit fails. The group's audit
//! entries are written together just before the commit, each with the tree nodes it completes
//! (the frontier grows then, O(log n) hashes per entry, never a rebuild). Another process may
//! write to the same file meanwhile (`countersign key create` while `serve` runs): every group
//! compares `PRAGMA data_version` right after `BEGIN IMMEDIATE`, and when another connection
//! committed since, reloads the head and the frontier before its first op.

use super::op::{Answer, Op, Tx};
use super::ops;
use crate::StoreError;
use crate::audit_log::Journal;
use countersign_audit::merkle::Frontier;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// The most ops committed together.
pub(super) const MAX_GROUP: usize = 256;

/// How many ops may wait for the writer before senders wait too (back-pressure).
const QUEUE: usize = 4 * MAX_GROUP;

/// Opens the writer's connection to the migrated database at `path` and starts the writer
/// thread. The returned receiver completes when the thread has finished and closed its
/// connection.
pub(super) async fn spawn(
    path: PathBuf,
    audit_size: Arc<watch::Sender<u64>>,
) -> Result<(mpsc::Sender<Op>, oneshot::Receiver<()>), StoreError> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let (ready_tx, ready_rx) = oneshot::channel();
    let (done_tx, done_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("countersign-sqlite-writer".into())
        .spawn(move || {
            let opened = open(&path).and_then(|conn| {
                let head = ops::load_head(&conn)?;
                let tree = ops::load_tree(&conn, head.next_seq)?;
                let seen = data_version(&conn)?;
                Ok((head, tree, seen, conn))
            });
            match opened {
                Ok((head, tree, data_version, conn)) => {
                    audit_size.send_replace(tree.size());
                    let commits = Arc::new(AtomicU64::new(0));
                    let finish = Arc::new(AtomicBool::new(false));
                    let checkpointer = Checkpointer::start(&path, commits.clone(), finish.clone());
                    if checkpointer.is_some() {
                        // The checkpointer does it; SQLite's own checkpoint after a commit
                        // would stall the group (see `Checkpointer`).
                        if let Err(e) = conn.pragma_update(None, "wal_autocheckpoint", 0) {
                            tracing::warn!(error = %e, "could not hand checkpoints to the checkpointer");
                        }
                    }
                    let _ = ready_tx.send(Ok(()));
                    Writer {
                        conn,
                        journal: Journal::new(head),
                        tree,
                        audit_size,
                        rx,
                        stopped: None,
                        commits,
                        finish,
                        data_version,
                    }
                    .run();
                    if let Some(c) = checkpointer {
                        c.stop();
                    }
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
            let _ = done_tx.send(());
        })
        .map_err(|e| StoreError::Unavailable(format!("could not start the writer thread: {e}")))?;
    ready_rx
        .await
        .map_err(|_| StoreError::Unavailable("the writer thread died while opening".into()))??;
    Ok((tx, done_rx))
}

/// The writer's connection: WAL, and `synchronous=FULL` so a commit is fsync'd before any op
/// of its group is answered.
pub(super) fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NoDatabase(format!(
            "{} could not be switched to WAL mode (it is in {mode} mode)",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

struct Writer {
    conn: Connection,
    journal: Journal,
    /// The Merkle tree's frontier after the last committed entry.
    tree: Frontier,
    /// Told the number of committed entries after each commit.
    audit_size: Arc<watch::Sender<u64>>,
    rx: mpsc::Receiver<Op>,
    /// Set when the writer can no longer append safely; every later op gets this error.
    stopped: Option<StoreError>,
    /// Commits so far, for the checkpointer.
    commits: Arc<AtomicU64>,
    /// Set by the checkpointer when the writer should finish a checkpoint between two groups.
    finish: Arc<AtomicBool>,
    /// `PRAGMA data_version` when the head was last loaded: it changes only when another
    /// connection commits, i.e. when the head and frontier in memory may be stale.
    data_version: i64,
}

/// This connection's view of how often other connections changed the file.
fn data_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("PRAGMA data_version")?
        .query_row([], |row| row.get(0))?)
}

/// How often the checkpointer folds new commits into the database file. Rarer checkpoints
/// write hot pages (index and table tails) once instead of many times, and disturb commits
/// less often; the price is WAL length under load. At 64 clients (≈ 20k submissions/s, ≈ 110
/// MB/s of WAL) alternated runs gave p99 5.7–8.4 ms every 4 s and 5.4–11.3 ms every 2 s; the
/// WAL file then peaked at ≈ 660 MB, which the first idle interval gives back.
const CHECKPOINT_EVERY: Duration = if cfg!(test) {
    Duration::from_millis(100)
} else {
    Duration::from_secs(4)
};

/// Passes after the first that [`settle`] runs at most, and the pass length it aims for.
const SETTLE_PASSES: usize = 4;
const SHORT_PASS: Duration = Duration::from_millis(2);

/// WAL length (frames of ~4 KiB, so ~128 MiB) past which the checkpointer asks the writer to
/// finish its checkpoint, so that the next write starts the WAL over from its beginning.
const RESTART_AFTER_FRAMES: i64 = if cfg!(test) { 256 } else { 32_768 };

/// Runs SQLite's checkpoints on a thread of its own, so that a commit does not wait for them:
/// with `synchronous=FULL` a checkpoint copies pages back into the database file and fsyncs
/// it, which inside the writer stalled every op of the group behind it (the p99 of
/// submissions). `PASSIVE` checkpoints never block the writer or readers; they copy what they
/// can.
///
/// Copying is not enough: SQLite starts the WAL over from its beginning only when a write
/// transaction begins while every frame is already in the database file, and under steady load
/// the writer always adds frames while the checkpointer copies. Left alone, the WAL then grows
/// without end, or (with `wal_autocheckpoint`) the writer checkpoints at every commit past the
/// limit: measured at 64 clients, that gave p99 24–31 ms where this gives 6–10 ms. So once the WAL is
/// long ([`RESTART_AFTER_FRAMES`]) and a pass has copied it, the checkpointer sets `finish`,
/// and the writer, between two groups, copies the few frames written since (and fsyncs the
/// database file, which the pass has mostly flushed already); its next `BEGIN IMMEDIATE` then
/// starts the WAL over.
struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Checkpointer {
    fn start(
        path: &Path,
        commits: Arc<AtomicU64>,
        finish: Arc<AtomicBool>,
    ) -> Option<Checkpointer> {
        // No busy wait: `PASSIVE` never waits anyway, and the idle `TRUNCATE` holds the write
        // lock while it waits for readers, so waiting for a long read (an export) would hold
        // up every write behind it. It gives up at once instead and tries again later.
        let conn = match open(path).and_then(|conn| {
            conn.busy_timeout(Duration::ZERO)?;
            Ok(conn)
        }) {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "no checkpointer connection; the writer checkpoints");
                return None;
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("countersign-sqlite-checkpoint".into())
            .spawn(move || {
                let mut seen = 0;
                let mut truncated = true;
                while !flag.load(Ordering::Relaxed) {
                    std::thread::park_timeout(CHECKPOINT_EVERY);
                    let now = commits.load(Ordering::Relaxed);
                    if now == seen {
                        if !truncated {
                            // Idle for a whole interval: give the WAL file's space back. This
                            // mode makes a writer that comes meanwhile wait, so it waits for
                            // quiet; truncating while busy would cost commits (an ftruncate and
                            // the blocks it frees) at every start-over. Busy (a write or a read
                            // in progress) means: try again after the next idle interval.
                            truncated = conn
                                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                                    row.get::<_, i64>(0)
                                })
                                .is_ok_and(|busy| busy == 0);
                        }
                        continue;
                    }
                    seen = now;
                    truncated = false;
                    match settle(&conn) {
                        Ok(pass) if pass.worth_starting_over() => {
                            finish.store(true, Ordering::Relaxed)
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::debug!(error = %e, "background checkpoint failed; will retry")
                        }
                    }
                }
            })
            .ok()?;
        Some(Checkpointer { stop, thread })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.thread().unpark();
        let _ = self.thread.join();
    }
}

/// What one `PRAGMA wal_checkpoint(PASSIVE)` reported.
struct Pass {
    /// Another checkpoint held the lock, so this one did nothing.
    busy: bool,
    /// Frames in the WAL.
    frames: i64,
    /// Frames now in the database file too.
    copied: i64,
}

impl Pass {
    /// True when the WAL is long enough to be worth starting over and this pass copied it.
    fn worth_starting_over(&self) -> bool {
        !self.busy && self.frames >= RESTART_AFTER_FRAMES && self.copied == self.frames
    }
}

/// Checkpoints until a pass finds little to copy, so that what the writer has left to copy
/// when it finishes is only what it wrote during that last, short pass.
fn settle(conn: &Connection) -> Result<Pass, StoreError> {
    let mut pass = checkpoint(conn)?;
    for _ in 0..SETTLE_PASSES {
        if !pass.worth_starting_over() {
            break;
        }
        let started = std::time::Instant::now();
        pass = checkpoint(conn)?;
        if started.elapsed() < SHORT_PASS {
            break;
        }
    }
    Ok(pass)
}

fn checkpoint(conn: &Connection) -> Result<Pass, StoreError> {
    Ok(conn
        .prepare_cached("PRAGMA wal_checkpoint(PASSIVE)")?
        .query_row([], |row| {
            Ok(Pass {
                busy: row.get::<_, i64>(0)? != 0,
                frames: row.get(1)?,
                copied: row.get(2)?,
            })
        })?)
}

impl Writer {
    fn run(mut self) {
        let mut group = Vec::with_capacity(MAX_GROUP);
        while let Some(op) = self.rx.blocking_recv() {
            group.push(op);
            while group.len() < MAX_GROUP {
                match self.rx.try_recv() {
                    Ok(op) => group.push(op),
                    Err(_) => break,
                }
            }
            self.commit_group(&mut group);
            if self.finish.swap(false, Ordering::Relaxed) {
                // After the group is answered; the next one waits for it (usually 1-3 ms, more
                // when the disk stalls: see `Checkpointer`).
                if let Err(e) = checkpoint(&self.conn) {
                    tracing::debug!(error = %e, "finishing a checkpoint failed; will retry");
                }
            }
        }
        if let Err((_, e)) = self.conn.close() {
            tracing::warn!(error = %e, "closing the SQLite writer connection failed");
        }
    }

    fn commit_group(&mut self, group: &mut Vec<Op>) {
        if let Some(e) = &self.stopped {
            group.drain(..).for_each(|op| op.reject(e.clone()));
            return;
        }
        if let Err(e) = self.exec("BEGIN IMMEDIATE") {
            tracing::error!(error = %e, ops = group.len(), "could not begin a write transaction");
            group.drain(..).for_each(|op| op.reject(e.clone()));
            return;
        }
        // Inside the write lock nobody else can commit, so what this reads stays true until
        // our commit.
        match data_version(&self.conn) {
            Ok(v) if v == self.data_version => {}
            Ok(_) => {
                tracing::info!("another connection wrote the database; reloading the audit head");
                self.reload_head();
                if let Some(e) = &self.stopped {
                    let _ = self.exec("ROLLBACK");
                    group.drain(..).for_each(|op| op.reject(e.clone()));
                    return;
                }
                self.audit_size.send_replace(self.tree.size());
            }
            Err(e) => {
                tracing::error!(error = %e, "could not read the data version");
                let _ = self.exec("ROLLBACK");
                group.drain(..).for_each(|op| op.reject(e.clone()));
                return;
            }
        }
        let mut answers = Vec::with_capacity(group.len());
        let mut broken = None;
        for op in group.drain(..) {
            if let Some(e) = &broken {
                op.reject(StoreError::clone(e));
                continue;
            }
            let (answer, error) = self.run_op(op);
            answers.push(answer);
            broken = error;
        }
        let outcome = match broken {
            Some(e) => Err(e),
            None => self.finish(),
        };
        match outcome {
            Ok(()) => {
                if !self.journal.staged().is_empty() {
                    self.audit_size.send_replace(self.tree.size());
                }
                self.journal.committed();
                self.commits.fetch_add(1, Ordering::Relaxed);
                answers.into_iter().for_each(|answer| answer(None));
            }
            Err(e) => {
                tracing::error!(error = %e, ops = answers.len(), "a write group failed to commit");
                if let Err(rollback) = self.exec("ROLLBACK") {
                    tracing::error!(error = %rollback, "rolling back the failed group failed");
                }
                self.reload_head();
                answers.into_iter().for_each(|answer| answer(Some(&e)));
            }
        }
    }

    /// Writes the group's audit entries (with their tree nodes) and commits.
    fn finish(&mut self) -> Result<(), StoreError> {
        ops::write_audit(&self.conn, self.journal.staged(), &mut self.tree)?;
        self.exec("COMMIT")
    }

    /// Runs one op. Returns its held answer, and an error when undoing a failed op failed and
    /// the group must be abandoned.
    fn run_op(&mut self, op: Op) -> (Answer, Option<StoreError>) {
        let mark = self.journal.mark();
        let mut tx = Tx {
            conn: &self.conn,
            journal: &mut self.journal,
            savepoint: false,
            broken: None,
        };
        let (answer, ok) = ops::execute(op, &mut tx);
        let savepoint = tx.savepoint;
        if let Some(broken) = tx.broken {
            return (answer, Some(broken));
        }
        if !ok {
            self.journal.roll_back_to(mark);
        }
        let end = match (savepoint, ok) {
            (false, _) => Ok(()),
            (true, true) => self.exec("RELEASE op"),
            (true, false) => self
                .exec("ROLLBACK TO op")
                .and_then(|()| self.exec("RELEASE op")),
        };
        (answer, end.err())
    }

    fn exec(&self, sql: &'static str) -> Result<(), StoreError> {
        self.conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    }

    /// After a failed commit the database holds the last committed head and tree; so must we.
    /// The version is read first: a commit by someone else in between makes the next group
    /// reload again, never miss it.
    fn reload_head(&mut self) {
        let loaded = data_version(&self.conn).and_then(|version| {
            let head = ops::load_head(&self.conn)?;
            Ok((version, head, ops::load_tree(&self.conn, head.next_seq)?))
        });
        match loaded {
            Ok((version, head, tree)) => {
                self.data_version = version;
                self.journal.reset(head);
                self.tree = tree;
            }
            Err(e) => {
                // Without a trustworthy head every later append would break the chain; stop
                // accepting writes rather than record a log that does not verify.
                tracing::error!(error = %e, "could not reload the audit head; the writer stops");
                self.stopped = Some(StoreError::Unavailable(format!(
                    "the writer stopped after a failed commit: {e}"
                )));
            }
        }
    }
}
