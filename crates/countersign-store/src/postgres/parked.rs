//! PostgreSQL's SQL for parked tool calls (`crate::parked`), on any connection: inside a
//! submission's transaction (`PgTx`, for `Store::submit_parked`) or on the pool for the
//! `Store::{park_call, unpark_call}` methods, which run outside the audit head lock
//! (`Store::parked_call` is a shared read: `crate::read`). Parking is bookkeeping, not a decision, and records no audit entry.

use crate::StoreError;
use crate::columns::millis;
use crate::parked::forget_before;
use countersign_core::Timestamp;
use sqlx::PgConnection;

/// Names `request` for the pair (replacing what was there) and forgets pairs parked before the
/// retention. Two statements: the caller runs them in one transaction.
pub(super) async fn park(
    conn: &mut PgConnection,
    requester: &str,
    digest: &str,
    request: &str,
    at: Timestamp,
) -> Result<(), StoreError> {
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
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM parked_calls WHERE parked_at < $1 AND uses_left IS NULL")
        .bind(forget_before(at))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn get(
    conn: &mut PgConnection,
    requester: &str,
    digest: &str,
) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar(crate::read::PARKED_CALL)
        .bind(requester)
        .bind(digest)
        .fetch_optional(conn)
        .await?)
}

/// Forgets the pair if it still names `request`: one statement.
pub(super) async fn unpark(
    conn: &mut PgConnection,
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
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Parks `request` under the pair with `uses` to count (a standing approval), and forgets
/// stale pairs.
pub(super) async fn park_counted(
    conn: &mut PgConnection,
    requester: &str,
    digest: &str,
    request: &str,
    uses: u32,
    at: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(crate::read::PARK_COUNTED)
        .bind(requester)
        .bind(digest)
        .bind(request)
        .bind(millis(at))
        .bind(i64::from(uses))
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM parked_calls WHERE parked_at < $1 AND uses_left IS NULL")
        .bind(forget_before(at))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// `crate::read::TAKE_USE`.
pub(super) async fn take_use(
    conn: &mut PgConnection,
    requester: &str,
    digest: &str,
) -> Result<Option<(String, u32)>, StoreError> {
    let row: Option<(String, i64)> = sqlx::query_as(crate::read::TAKE_USE)
        .bind(requester)
        .bind(digest)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|(id, left)| (id, u32::try_from(left).unwrap_or(0))))
}

pub(super) async fn take_use_of(
    conn: &mut PgConnection,
    requester: &str,
    digest: &str,
    request: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(crate::read::TAKE_USE_OF)
        .bind(requester)
        .bind(digest)
        .bind(request)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Runs one of the pair statements that take (requester, digest[, request]).
pub(super) async fn exec_pair(
    conn: &mut PgConnection,
    sql: &'static str,
    requester: &str,
    digest: &str,
    request: Option<&str>,
) -> Result<(), StoreError> {
    let query = sqlx::query(sql).bind(requester).bind(digest);
    match request {
        Some(request) => query.bind(request).execute(conn).await?,
        None => query.execute(conn).await?,
    };
    Ok(())
}

/// `crate::read::USES_LEFT`.
pub(super) async fn uses_left(
    conn: &mut PgConnection,
    requester: &str,
    digest: &str,
    request: &str,
) -> Result<Option<u32>, StoreError> {
    let left: Option<Option<i64>> = sqlx::query_scalar(crate::read::USES_LEFT)
        .bind(requester)
        .bind(digest)
        .bind(request)
        .fetch_optional(conn)
        .await?;
    Ok(left.flatten().map(|n| u32::try_from(n).unwrap_or(0)))
}
