//! The one error type of the store. Refusals of the domain (a self-approval, a stopped run) are
//! not errors here: they come back as `Ok(Err(refusal))` because nothing went wrong with storage.
//!
//! Errors are `Clone` because one failed commit answers every operation of its group.

use std::sync::Arc;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The request, principal or cursor named does not exist.
    #[error("not found")]
    NotFound,
    /// Something with the same identity is already stored (a request id, an API key hash).
    #[error("already exists: {0}")]
    Conflict(String),
    /// The database failed (I/O, a full disk, a lock held too long, a constraint).
    #[error("database error: {0}")]
    Database(#[source] Arc<dyn std::error::Error + Send + Sync + 'static>),
    /// The database holds something this version cannot read: it was edited, or damaged.
    #[error("corrupt data in the database: {0}")]
    Corrupt(String),
    /// A stored request is not what its audit log recorded (invariant 10): its row was edited
    /// outside the gateway. Nothing was acted on.
    #[error("integrity check failed: {0}")]
    Integrity(String),
    /// There is no usable Countersign database where one was expected.
    #[error("{0}")]
    NoDatabase(String),
    /// The schema migrations could not be applied.
    #[error("could not migrate the database: {0}")]
    Migration(String),
    /// The store was opened read-only.
    #[error("the database was opened read-only")]
    ReadOnly,
    /// The store's writer has stopped (the store is shutting down, or a bug killed it).
    #[error("the store is not available: {0}")]
    Unavailable(String),
    /// The caller broke the store's contract (a submit closure or a transition panicked,
    /// a submission's run does not match its action). A bug, never user input.
    #[error("invalid use of the store: {0}")]
    Invalid(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(Arc::new(e))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(Arc::new(e))
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migration(e.to_string())
    }
}
