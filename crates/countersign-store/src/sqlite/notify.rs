//! SQLite's SQL for the channels: claiming and finishing queued notification work, storing
//! where a request was posted and how a conversation is reached, run by the writer thread like
//! every write (reading those references is shared with PostgreSQL: `crate::read`). Marking a
//! request due is not here: it is part of the request writes, a `WriteTx` primitive in `ops`.
//!
//! Each write here is one statement, or statements of which at most one changes a row, so none
//! needs a savepoint. None records an audit entry: this is delivery bookkeeping, not a decision.

use super::op::Tx;
use crate::columns::millis;
use crate::{ChannelMessage, ConversationRef, NotifyClaim, StoreError};
use countersign_core::Timestamp;
use rusqlite::params;

/// Leases up to `limit` due rows until `lease_until` and returns them: one statement.
pub(super) fn claim(
    tx: &mut Tx<'_>,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
) -> Result<Vec<NotifyClaim>, StoreError> {
    let mut stmt = tx.conn.prepare_cached(
        "UPDATE notify_queue SET due_at = ?2 WHERE request_id IN \
         (SELECT request_id FROM notify_queue WHERE due_at <= ?1 \
          ORDER BY due_at, request_id LIMIT ?3) \
         RETURNING request_id, generation",
    )?;
    let rows = stmt.query_map(
        params![millis(now), millis(lease_until), i64::from(limit)],
        |row| {
            Ok(NotifyClaim {
                request_id: row.get(0)?,
                generation: row.get(1)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Ends a claim: the claimed generation is removed or rescheduled; a newer one is due `now`.
/// The first statement changes one row or none; only when it changed none does the second run.
pub(super) fn finish(
    tx: &mut Tx<'_>,
    request_id: &str,
    generation: i64,
    next: Option<Timestamp>,
    now: Timestamp,
) -> Result<(), StoreError> {
    let done = match next {
        None => tx
            .conn
            .prepare_cached("DELETE FROM notify_queue WHERE request_id = ?1 AND generation = ?2")?
            .execute(params![request_id, generation])?,
        Some(next) => tx
            .conn
            .prepare_cached(
                "UPDATE notify_queue SET due_at = ?3 WHERE request_id = ?1 AND generation = ?2",
            )?
            .execute(params![request_id, generation, millis(next)])?,
    };
    if done == 0 {
        tx.conn
            .prepare_cached(
                "UPDATE notify_queue SET due_at = ?3 WHERE request_id = ?1 AND generation <> ?2",
            )?
            .execute(params![request_id, generation, millis(now)])?;
    }
    Ok(())
}

/// Stores a message reference: one statement. An unknown request is [`StoreError::NotFound`].
pub(super) fn save_message(tx: &mut Tx<'_>, m: &ChannelMessage) -> Result<(), StoreError> {
    tx.conn
        .prepare_cached(
            "INSERT INTO channel_messages \
             (request_id, target, conversation, ts, rendered, reminded_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (request_id, target) DO UPDATE SET \
             conversation = excluded.conversation, ts = excluded.ts, \
             rendered = excluded.rendered, reminded_at = excluded.reminded_at",
        )?
        .execute(params![
            m.request_id,
            m.target,
            m.conversation,
            m.ts,
            m.rendered,
            m.reminded_at.map(millis)
        ])
        .map_err(|e| match is_foreign_key_violation(&e) {
            true => StoreError::NotFound,
            false => e.into(),
        })?;
    Ok(())
}

/// Stores a conversation reference: one statement.
pub(super) fn save_conversation(tx: &mut Tx<'_>, r: &ConversationRef) -> Result<(), StoreError> {
    tx.conn
        .prepare_cached(
            "INSERT INTO channel_conversations \
             (channel, conversation, service_url, tenant, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (channel, conversation) DO UPDATE SET \
             service_url = excluded.service_url, tenant = excluded.tenant, \
             updated_at = excluded.updated_at",
        )?
        .execute(params![
            r.channel,
            r.conversation,
            r.service_url,
            r.tenant,
            millis(r.updated_at)
        ])?;
    Ok(())
}

/// True when SQLite refused a write because a referenced row does not exist.
fn is_foreign_key_violation(e: &rusqlite::Error) -> bool {
    e.sqlite_error().map(|f| f.extended_code) == Some(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY)
}
