//! PostgreSQL's SQL for parked tool calls (`crate::parked`). These run on the pool outside the
//! audit head lock: parking is bookkeeping, not a decision, and records no audit entry.

use crate::StoreError;
use crate::columns::millis;
use crate::parked::forget_before;
use countersign_core::Timestamp;
use sqlx::PgPool;

/// Names `request` for the pair (replacing what was there) and forgets pairs parked before the
/// retention, in one transaction.
pub(super) async fn park(
    pool: &PgPool,
    requester: &str,
    digest: &str,
    request: &str,
    at: Timestamp,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO parked_calls (requester, digest, request_id, parked_at) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (requester, digest) DO UPDATE SET \
         request_id = excluded.request_id, parked_at = excluded.parked_at",
    )
    .bind(requester)
    .bind(digest)
    .bind(request)
    .bind(millis(at))
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM parked_calls WHERE parked_at < $1")
        .bind(forget_before(at))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn get(
    pool: &PgPool,
    requester: &str,
    digest: &str,
) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT request_id FROM parked_calls WHERE requester = $1 AND digest = $2",
    )
    .bind(requester)
    .bind(digest)
    .fetch_optional(pool)
    .await?)
}

/// Forgets the pair if it still names `request`: one statement.
pub(super) async fn unpark(
    pool: &PgPool,
    requester: &str,
    digest: &str,
    request: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "DELETE FROM parked_calls WHERE requester = $1 AND digest = $2 AND request_id = $3",
    )
    .bind(requester)
    .bind(digest)
    .bind(request)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}
