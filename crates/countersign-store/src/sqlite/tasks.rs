//! SQLite's SQL for MCP tasks (`crate::tasks`): begun and ended on the writer's connection
//! (reading one is shared with PostgreSQL: `crate::read`); and for leases (`Store::lease`) and
//! replay keys (`Store::first_sight`).

use crate::columns::millis;
use crate::{StoreError, StoredTask, TASK_RETENTION_MS, TaskEnd, UNENDED_TASK_RETENTION_MS};
use rusqlite::{Connection, params};

pub(super) fn start(conn: &Connection, t: &StoredTask) -> Result<bool, StoreError> {
    let now = millis(t.created_at);
    conn.prepare_cached("DELETE FROM mcp_tasks WHERE finished_at < ?1 OR created_at < ?2")?
        .execute([now - TASK_RETENTION_MS, now - UNENDED_TASK_RETENTION_MS])?;
    let n = conn
        .prepare_cached(
            "INSERT INTO mcp_tasks (request_id, owner, carrier, parked, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (request_id) DO NOTHING",
        )?
        .execute(params![
            t.request_id,
            t.owner.as_str(),
            t.carrier,
            t.parked,
            now
        ])?;
    Ok(n > 0)
}

pub(super) fn end(conn: &Connection, id: &str, end: &TaskEnd) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE mcp_tasks SET status = ?1, result = ?2, finished_at = ?3 \
             WHERE request_id = ?4 AND status IS NULL",
        )?
        .execute(params![end.status, end.result, millis(end.at), id])?;
    Ok(n > 0)
}

pub(super) fn claim(conn: &Connection, id: &str, now: i64, until: i64) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE mcp_tasks SET lease_until = ?1 WHERE request_id = ?2 AND status IS NULL \
             AND (lease_until IS NULL OR lease_until <= ?3)",
        )?
        .execute(params![until, id, now])?;
    Ok(n > 0)
}

pub(super) fn lease(
    conn: &Connection,
    name: &str,
    holder: &str,
    now: i64,
    until: i64,
) -> Result<bool, StoreError> {
    conn.prepare_cached("DELETE FROM leases WHERE until < ?1")?
        .execute([now - crate::LEASE_RETENTION_MS])?;
    let n = conn
        .prepare_cached(
            "INSERT INTO leases (name, holder, until) VALUES (?1, ?2, ?4) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
             WHERE leases.holder = excluded.holder OR leases.until <= ?3",
        )?
        .execute(params![name, holder, now, until])?;
    Ok(n > 0)
}

pub(super) fn first_sight(
    conn: &Connection,
    key: &str,
    now: i64,
    until: i64,
) -> Result<bool, StoreError> {
    conn.prepare_cached("DELETE FROM replay_keys WHERE until <= ?1")?
        .execute([now])?;
    let n = conn
        .prepare_cached(
            "INSERT INTO replay_keys (key, until) VALUES (?1, ?3) ON CONFLICT (key) \
             DO UPDATE SET until = excluded.until WHERE replay_keys.until <= ?2",
        )?
        .execute(params![key, now, until])?;
    Ok(n > 0)
}
