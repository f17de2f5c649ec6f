//! SQLite's SQL for parked tool calls (`crate::parked`): parked, unparked and read on the
//! writer's connection (the read pool's read is shared with PostgreSQL: `crate::read`).
//! Records no audit entry.

use super::op::Tx;
use crate::StoreError;
use crate::columns::millis;
use crate::parked::forget_before;
use crate::writes::WriteTx as _;
use countersign_core::Timestamp;
use rusqlite::params;

/// Names `request` for the pair (replacing what was there) and forgets pairs parked before the
/// retention: two statements, so under the op's savepoint.
pub(super) fn park(
    tx: &mut Tx<'_>,
    requester: &str,
    digest: &str,
    request: &str,
    at: Timestamp,
) -> Result<(), StoreError> {
    futures::executor::block_on(tx.savepoint())?;
    park_rows(tx, requester, digest, request, at)
}

/// [`park`]'s two statements, for a caller that opened its savepoint already.
pub(super) fn park_rows(
    tx: &Tx<'_>,
    requester: &str,
    digest: &str,
    request: &str,
    at: Timestamp,
) -> Result<(), StoreError> {
    tx.conn
        .prepare_cached(
            "INSERT INTO parked_calls (requester, digest, request_id, parked_at) \
             VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (requester, digest) DO UPDATE SET \
             request_id = excluded.request_id, parked_at = excluded.parked_at",
        )?
        .execute(params![requester, digest, request, millis(at)])?;
    tx.conn
        .prepare_cached("DELETE FROM parked_calls WHERE parked_at < ?1 AND uses_left IS NULL")?
        .execute([forget_before(at)])?;
    Ok(())
}

/// Forgets the pair if it still names `request`: one statement.
pub(super) fn unpark(
    tx: &mut Tx<'_>,
    requester: &str,
    digest: &str,
    request: &str,
) -> Result<bool, StoreError> {
    let n = tx
        .conn
        .prepare_cached(
            "DELETE FROM parked_calls \
             WHERE requester = ?1 AND digest = ?2 AND request_id = ?3",
        )?
        .execute(params![requester, digest, request])?;
    Ok(n > 0)
}

/// The request parked under the pair, read on the writer's connection (inside its transaction).
pub(super) fn get_in(
    tx: &Tx<'_>,
    requester: &str,
    digest: &str,
) -> Result<Option<String>, StoreError> {
    let mut stmt = tx.conn.prepare_cached(crate::read::PARKED_CALL)?;
    let mut rows = stmt.query(params![requester, digest])?;
    Ok(match rows.next()? {
        Some(row) => Some(row.get(0)?),
        None => None,
    })
}

/// Parks `request` under the pair with `uses` to count (a standing approval), and forgets
/// stale pairs; the caller opened the savepoint.
pub(super) fn park_counted(
    tx: &Tx<'_>,
    requester: &str,
    digest: &str,
    request: &str,
    uses: u32,
    at: Timestamp,
) -> Result<(), StoreError> {
    tx.conn
        .prepare_cached(crate::read::PARK_COUNTED)?
        .execute(params![
            requester,
            digest,
            request,
            millis(at),
            i64::from(uses)
        ])?;
    tx.conn
        .prepare_cached("DELETE FROM parked_calls WHERE parked_at < ?1 AND uses_left IS NULL")?
        .execute([forget_before(at)])?;
    Ok(())
}

/// `crate::read::TAKE_USE` on the writer's connection.
pub(super) fn take_use(
    tx: &Tx<'_>,
    requester: &str,
    digest: &str,
) -> Result<Option<(String, u32)>, StoreError> {
    let mut stmt = tx.conn.prepare_cached(crate::read::TAKE_USE)?;
    let mut rows = stmt.query(params![requester, digest])?;
    Ok(match rows.next()? {
        Some(row) => {
            let left: i64 = row.get(1)?;
            Some((row.get(0)?, u32::try_from(left).unwrap_or(0)))
        }
        None => None,
    })
}

pub(super) fn take_use_of(
    tx: &Tx<'_>,
    requester: &str,
    digest: &str,
    request: &str,
) -> Result<bool, StoreError> {
    let mut stmt = tx.conn.prepare_cached(crate::read::TAKE_USE_OF)?;
    Ok(stmt.execute(params![requester, digest, request])? == 1)
}

/// Runs one of the pair statements that take (requester, digest[, request]).
pub(super) fn exec_pair(
    tx: &Tx<'_>,
    sql: &str,
    requester: &str,
    digest: &str,
    request: Option<&str>,
) -> Result<(), StoreError> {
    let mut stmt = tx.conn.prepare_cached(sql)?;
    match request {
        Some(request) => stmt.execute(params![requester, digest, request])?,
        None => stmt.execute(params![requester, digest])?,
    };
    Ok(())
}

/// `crate::read::USES_LEFT` on the writer's connection.
pub(super) fn uses_left_in(
    tx: &Tx<'_>,
    requester: &str,
    digest: &str,
    request: &str,
) -> Result<Option<u32>, StoreError> {
    let mut stmt = tx.conn.prepare_cached(crate::read::USES_LEFT)?;
    let mut rows = stmt.query(params![requester, digest, request])?;
    Ok(match rows.next()? {
        Some(row) => {
            let left: Option<i64> = row.get(0)?;
            left.map(|n| u32::try_from(n).unwrap_or(0))
        }
        None => None,
    })
}
