//! SQLite's SQL for console sessions (`crate::sessions`): started and ended on the writer's
//! connection. Reading one is shared with PostgreSQL (`crate::read`).

use super::op::is_unique_violation;
use crate::columns::millis;
use crate::{ConsoleSession, StoreError};
use rusqlite::{Connection, params};

pub(super) fn start(conn: &Connection, s: &ConsoleSession) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM console_sessions WHERE expires_at < ?1")?
        .execute([millis(s.created_at)])?;
    conn.prepare_cached(
        "INSERT INTO console_sessions (id_hash, principal, via, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        s.id_hash,
        s.principal.as_str(),
        s.via,
        millis(s.created_at),
        millis(s.expires_at)
    ])
    .map_err(|e| match is_unique_violation(&e) {
        true => StoreError::Conflict("a console session with this id".into()),
        false => e.into(),
    })?;
    Ok(())
}

pub(super) fn end(conn: &Connection, id_hash: &str) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached("DELETE FROM console_sessions WHERE id_hash = ?1")?
        .execute([id_hash])?;
    Ok(n > 0)
}
