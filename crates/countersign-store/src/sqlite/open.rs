//! Opening a SQLite store: the file made private, WAL and `synchronous=FULL`, the migrations,
//! the read pool and the writer thread (or a read-only store without one), and how a write
//! reaches the writer. Holds no SQL of the data itself.

use super::*;

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("read_only", &self.writer.is_none())
            .finish()
    }
}

/// The database holds every request, vote and key hash: only the gateway's user may read it.
/// Creates the file 0600 (whatever the umask) before SQLite opens it, so it never exists with
/// wider rights; SQLite then gives the `-wal` and `-shm` files the database file's mode. Files
/// left readable by others (by an older version) are narrowed to the owner, with a warning.
pub(super) fn private_files(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let io = |what: &Path, e: std::io::Error| {
        StoreError::NoDatabase(format!("cannot create {}: {e}", what.display()))
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(file) => {
            // `mode` is filtered by the umask; set it exactly.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| io(path, e))?;
            return Ok(());
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(path, e)),
    }
    let mut name = path.as_os_str().to_owned();
    let base = name.clone();
    for suffix in ["", "-wal", "-shm"] {
        name.clone_from(&base);
        name.push(suffix);
        let file = Path::new(&name);
        let Ok(meta) = std::fs::metadata(file) else {
            continue;
        };
        let mode = meta.permissions().mode();
        if meta.is_file() && mode & 0o077 != 0 {
            tracing::warn!(
                file = %file.display(),
                "the database file was readable by other users; narrowing it to its owner (0600)"
            );
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode & 0o700))
                .map_err(|e| io(file, e))?;
        }
    }
    Ok(())
}

pub(super) fn base_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
}

impl SqliteStore {
    /// Opens (creating it if needed) the database at `path`, switches it to WAL, applies the
    /// migrations and starts the writer. Must be called inside a Tokio runtime.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        private_files(path)?;
        let options = base_options(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        // Through a pool: `Migrator::run` on a bare connection makes the future not `Send`.
        let setup = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&setup).await?;
        setup.close().await;
        let audit_size = Arc::new(watch::Sender::new(0));
        let (writer, done) = writer::spawn(path.to_owned(), audit_size.clone()).await?;
        let reads = Self::read_pool(path).await?;
        Ok(SqliteStore {
            path: path.to_owned(),
            reads,
            writer: Some(writer),
            writer_done: Some(done),
            audit_size,
        })
    }

    /// Opens an existing database for reading only (`countersign audit verify --database`).
    /// Neither creates nor migrates anything; every write returns [`StoreError::ReadOnly`].
    pub async fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        if !path.is_file() {
            return Err(StoreError::NoDatabase(format!(
                "no database at {}: the file does not exist",
                path.display()
            )));
        }
        let reads = Self::read_pool(path).await?;
        let has_audit: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit'",
        )
        .fetch_optional(&reads)
        .await?;
        if has_audit.is_none() {
            return Err(StoreError::NoDatabase(format!(
                "{} is not a Countersign database: it has no audit log",
                path.display()
            )));
        }
        Ok(SqliteStore {
            path: path.to_owned(),
            reads,
            writer: None,
            writer_done: None,
            audit_size: Arc::new(watch::Sender::new(0)),
        })
    }

    /// Shuts down cleanly: the writer finishes what is queued, then every connection closes
    /// (and SQLite folds the WAL back into the file). Dropping the store also stops the writer,
    /// without waiting for it.
    pub async fn close(mut self) {
        self.writer = None;
        if let Some(done) = self.writer_done.take() {
            // An error here means the thread ended without saying so: it is gone either way.
            let _ = done.await;
        }
        self.reads.close().await;
    }

    /// The file this store keeps its data in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(super) async fn read_pool(path: &Path) -> Result<SqlitePool, StoreError> {
        let options = base_options(path).read_only(true);
        Ok(SqlitePoolOptions::new()
            .max_connections(READERS)
            .min_connections(0)
            .connect_with(options)
            .await?)
    }

    /// Queues `op` for the writer and waits for its answer, which comes after the commit.
    pub(super) async fn write<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Op,
    ) -> Result<T, StoreError> {
        let writer = self.writer.as_ref().ok_or(StoreError::ReadOnly)?;
        let (tx, rx) = oneshot::channel();
        writer
            .send(make(tx))
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the writer stopped before answering".into()))?
    }
}
