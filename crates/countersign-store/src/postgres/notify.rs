//! PostgreSQL's SQL for the channels: claiming and finishing queued notification work, and
//! storing where a request was posted and how a conversation is reached (reading those is
//! shared with SQLite: `crate::read`). Several replicas share the queue: a claim
//! skips rows another replica has locked and leases what it takes. Marking a request due is not
//! here: it is part of the request writes, a `WriteTx` primitive in `tx`.
//!
//! These run on the pool outside the audit head lock: each is one statement, or statements of
//! which at most one changes a row, and none records an audit entry.

use crate::columns::millis;
use crate::{ChannelMessage, ConversationRef, NotifyClaim, StoreError};
use countersign_core::Timestamp;
use sqlx::{PgPool, Row};

/// Leases up to `limit` due rows until `lease_until` and returns them: one statement. The
/// `ARRAY(...)` subquery runs exactly once, and `SKIP LOCKED` passes over rows that another
/// replica is claiming or a request write is marking.
pub(super) async fn claim(
    pool: &PgPool,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
) -> Result<Vec<NotifyClaim>, StoreError> {
    let rows = sqlx::query(
        "UPDATE notify_queue SET due_at = $2 WHERE request_id = ANY(ARRAY( \
         SELECT request_id FROM notify_queue WHERE due_at <= $1 \
         ORDER BY due_at, request_id LIMIT $3 FOR UPDATE SKIP LOCKED)) \
         RETURNING request_id, generation",
    )
    .bind(millis(now))
    .bind(millis(lease_until))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(NotifyClaim {
                request_id: row.try_get(0)?,
                generation: row.try_get(1)?,
            })
        })
        .collect()
}

/// Ends a claim: the claimed generation is removed or rescheduled; a newer one is due `now`.
/// The two conditions exclude each other, so a write racing between the statements cannot
/// make both apply.
pub(super) async fn finish(
    pool: &PgPool,
    request_id: &str,
    generation: i64,
    next: Option<Timestamp>,
    now: Timestamp,
) -> Result<(), StoreError> {
    let done = match next {
        None => sqlx::query("DELETE FROM notify_queue WHERE request_id = $1 AND generation = $2")
            .bind(request_id)
            .bind(generation)
            .execute(pool)
            .await?
            .rows_affected(),
        Some(next) => sqlx::query(
            "UPDATE notify_queue SET due_at = $3 WHERE request_id = $1 AND generation = $2",
        )
        .bind(request_id)
        .bind(generation)
        .bind(millis(next))
        .execute(pool)
        .await?
        .rows_affected(),
    };
    if done == 0 {
        sqlx::query(
            "UPDATE notify_queue SET due_at = $3 WHERE request_id = $1 AND generation <> $2",
        )
        .bind(request_id)
        .bind(generation)
        .bind(millis(now))
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// Stores a message reference: one statement. An unknown request is [`StoreError::NotFound`].
pub(super) async fn save_message(pool: &PgPool, m: &ChannelMessage) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO channel_messages \
         (request_id, target, conversation, ts, rendered, reminded_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (request_id, target) DO UPDATE SET \
         conversation = excluded.conversation, ts = excluded.ts, \
         rendered = excluded.rendered, reminded_at = excluded.reminded_at",
    )
    .bind(m.request_id.as_str())
    .bind(m.target.as_str())
    .bind(m.conversation.as_str())
    .bind(m.ts.as_str())
    .bind(m.rendered.as_str())
    .bind(m.reminded_at.map(millis))
    .execute(pool)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound,
        _ => e.into(),
    })?;
    Ok(())
}

/// Stores a conversation reference: one statement.
pub(super) async fn save_conversation(
    pool: &PgPool,
    r: &ConversationRef,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO channel_conversations \
         (channel, conversation, service_url, tenant, updated_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (channel, conversation) DO UPDATE SET \
         service_url = excluded.service_url, tenant = excluded.tenant, \
         updated_at = excluded.updated_at",
    )
    .bind(r.channel.as_str())
    .bind(r.conversation.as_str())
    .bind(r.service_url.as_str())
    .bind(r.tenant.as_str())
    .bind(millis(r.updated_at))
    .execute(pool)
    .await?;
    Ok(())
}
