//! The store's read side, written once for both backends: each read is one SQL text and one
//! decoding of its rows, run through sqlx on the backend's read pool (SQLite's read-only pool,
//! PostgreSQL's pool). Both `impl Store` blocks call [`Reads`] for every read.
//!
//! Why this shape: the reads are the same queries on the same columns (the schemas store the
//! same values: `TEXT`; `INTEGER`/`BIGINT` as `i64`; `BLOB`/`BYTEA` as bytes; no casts), and
//! SQLite accepts PostgreSQL's `$N` placeholders (sqlx binds SQLite's `$N` by its number), so
//! one text serves both. The code is generic over [`sqlx::Database`] in one `impl` block,
//! whose `where` clause says once which Rust types the reads bind and decode; each backend
//! instantiates it with its own pool, so a read costs what it cost before (the same statement,
//! the same round-trip, no `sqlx::Any`). Row decoding stays next to its query, so a column
//! list and the code that reads it by position cannot drift apart.
//!
//! Where the dialects truly differ, [`Dialect`] says so, and each backend implements it beside
//! its other dialect-only SQL: the byte-order comparison of request ids (`COLLATE "C"` in
//! PostgreSQL, SQLite's default already) and how a list of seqs is bound (`= ANY($1)` with one
//! array in PostgreSQL, `IN (?, …)` in SQLite, which has no arrays).
//!
//! The writes are elsewhere: the steps of each write in `crate::writes`, their SQL in each
//! backend (SQLite's writer thread uses rusqlite, not sqlx).

use crate::audit_log::{AuditRow, entry_from_row};
use crate::columns::{
    channel_message_from_row, conversation_from_row, from_millis, millis, principal_from_column,
    request_from_body, run_from_row, unsigned,
};
use crate::{
    ChannelMessage, ConsoleSession, ConversationRef, RequestQuery, RequestRow, StoreError,
    StoredCheckpoint, StoredPasskey, TotpState,
};
use countersign_audit::merkle::{Hash, NodeId};
use countersign_core::{PrincipalId, Request, Run, Timestamp};
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, QueryBuilder, Row, Type,
};

/// The request parked under (requester `$1`, digest `$2`). Also read inside a write's
/// transaction (PostgreSQL's `PgTx`, SQLite's writer), so it is public to the crate; rusqlite
/// binds SQLite's `$N` by order of first use, so its placeholders must stay in order.
pub(crate) const PARKED_CALL: &str =
    "SELECT request_id FROM parked_calls WHERE requester = $1 AND digest = $2";

/// How many uses the standing approval held by request `$3` under (requester `$1`, key `$2`)
/// has left (NULL or no row: none is counted there).
pub(crate) const USES_LEFT: &str =
    "SELECT uses_left FROM parked_calls WHERE requester = $1 AND digest = $2 AND request_id = $3";

/// Takes one use of the standing approval under (requester `$1`, key `$2`) if one is left,
/// returning its holder and the uses left after it.
pub(crate) const TAKE_USE: &str = "UPDATE parked_calls SET uses_left = uses_left - 1 \
     WHERE requester = $1 AND digest = $2 AND uses_left > 0 RETURNING request_id, uses_left";

/// [`TAKE_USE`] only while the pair names request `$3` (the holder a covered request was built
/// from ahead of the write): the uses left, or no row (nothing changed).
/// No `RETURNING`: the count left is not needed here, and SQLite answers a `RETURNING` through
/// an ephemeral table.
pub(crate) const TAKE_USE_OF: &str = "UPDATE parked_calls SET uses_left = uses_left - 1 \
     WHERE requester = $1 AND digest = $2 AND request_id = $3 AND uses_left > 0";

/// Gives back the use [`TAKE_USE`] took (the holder did not cover the submission after all).
pub(crate) const GIVE_BACK_USE: &str = "UPDATE parked_calls SET uses_left = uses_left + 1 \
     WHERE requester = $1 AND digest = $2 AND uses_left IS NOT NULL";

/// Ends the count of the standing approval held by `$3` (revoked: none left).
pub(crate) const END_USES: &str = "UPDATE parked_calls SET uses_left = 0 \
     WHERE requester = $1 AND digest = $2 AND request_id = $3 AND uses_left IS NOT NULL";

/// Names request `$3` for (requester `$1`, key `$2`) with `$5` uses left, parked at `$4`.
pub(crate) const PARK_COUNTED: &str = "INSERT INTO parked_calls \
     (requester, digest, request_id, parked_at, uses_left) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (requester, digest) DO UPDATE SET request_id = excluded.request_id, \
     parked_at = excluded.parked_at, uses_left = excluded.uses_left";

/// What the two SQL dialects do differently in the reads.
pub(crate) trait Dialect: Database {
    /// `id, body, audit_seqs` of the requests with `id > $1`, by id, at most `$2`; ids are
    /// compared byte by byte, whatever the database's collation, so pages neither skip nor
    /// repeat.
    const REQUEST_ROWS: &'static str;

    /// `seq, leaf, nodes` of the audit rows whose seq is one of `seqs` (not empty).
    fn audit_nodes(seqs: Vec<i64>) -> QueryBuilder<Self>;
}

/// A backend's read pool, for the reads.
pub(crate) struct Reads<'p, DB: Database>(pub &'p Pool<DB>);

impl<DB> Reads<'_, DB>
where
    DB: Dialect,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    usize: ColumnIndex<DB::Row>,
    for<'a> &'a str: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> &'a [u8]: Decode<'a, DB> + Type<DB>,
    for<'a> String: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> Vec<u8>: Decode<'a, DB> + Type<DB>,
{
    pub async fn get_request(&self, id: &str) -> Result<Option<Request>, StoreError> {
        let row = sqlx::query("SELECT body FROM requests WHERE id = $1")
            .bind(id)
            .fetch_optional(self.0)
            .await?;
        row.map(|row| request_from_body(row.try_get(0)?))
            .transpose()
    }

    pub async fn list_requests(&self, q: &RequestQuery) -> Result<Vec<Request>, StoreError> {
        let mut sql = QueryBuilder::<DB>::new("SELECT body FROM requests WHERE TRUE");
        if let Some(state) = q.state {
            sql.push(" AND state = ").push_bind(state.as_str());
        }
        if let Some(run) = &q.run {
            sql.push(" AND run = ").push_bind(run.clone());
        }
        if let Some(requester) = &q.requester {
            sql.push(" AND requester = ").push_bind(requester.clone());
        }
        if let Some(before) = &q.before {
            let created: i64 = sqlx::query("SELECT created_at FROM requests WHERE id = $1")
                .bind(before)
                .fetch_optional(self.0)
                .await?
                .ok_or(StoreError::NotFound)?
                .try_get(0)?;
            // A row value: both dialects seek the `(…, created_at, id)` index with it (SQLite
            // used to spell it `created_at < ? OR (created_at = ? AND id < ?)`, which it only
            // filters by: same rows, same index).
            sql.push(" AND (created_at, id) < (")
                .push_bind(created)
                .push(", ")
                .push_bind(before.clone())
                .push(")");
        }
        sql.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(q.page_size()));
        let rows = sql.build().fetch_all(self.0).await?;
        rows.iter()
            .map(|row| request_from_body(row.try_get(0)?))
            .collect()
    }

    /// Requests whose execution still runs past its deadline (the gateway running it died),
    /// earliest deadline first.
    pub async fn interrupted_executions(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        self.ids_due(
            "SELECT id FROM requests WHERE exec_deadline IS NOT NULL AND exec_deadline <= $1 \
             ORDER BY exec_deadline, id LIMIT $2",
            now,
            limit,
        )
        .await
    }

    pub async fn due_requests(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        self.ids_due(
            "SELECT id FROM requests WHERE state = 'pending' AND expires_at <= $1 \
             ORDER BY expires_at, id LIMIT $2",
            now,
            limit,
        )
        .await
    }

    /// The request ids `sql` selects with `$1` = `now` in milliseconds and `$2` = `limit`.
    async fn ids_due(
        &self,
        sql: &'static str,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(sql)
            .bind(millis(now))
            .bind(i64::from(limit))
            .fetch_all(self.0)
            .await?;
        Ok(rows
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?)
    }

    pub async fn get_run(&self, run: &str) -> Result<Option<Run>, StoreError> {
        let row = sqlx::query("SELECT id, state, updated_by, updated_at FROM runs WHERE id = $1")
            .bind(run)
            .fetch_optional(self.0)
            .await?;
        row.map(|row| {
            run_from_row(
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
            )
        })
        .transpose()
    }

    pub async fn principal_for_key(
        &self,
        key_hash: &str,
    ) -> Result<Option<PrincipalId>, StoreError> {
        let row = sqlx::query("SELECT principal FROM api_keys WHERE key_hash = $1")
            .bind(key_hash)
            .fetch_optional(self.0)
            .await?;
        row.map(|row| principal_from_column(row.try_get(0)?))
            .transpose()
    }

    pub async fn count_keys(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM api_keys")
            .fetch_one(self.0)
            .await?;
        unsigned(row.try_get(0)?, "the number of keys")
    }

    pub async fn session_get(&self, id_hash: &str) -> Result<Option<ConsoleSession>, StoreError> {
        let row = sqlx::query(
            "SELECT id_hash, principal, via, created_at, expires_at FROM console_sessions \
             WHERE id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(self.0)
        .await?;
        row.map(|r| {
            ConsoleSession::from_columns(
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
            )
        })
        .transpose()
    }

    pub async fn task_get(
        &self,
        id: &str,
        owner: &str,
    ) -> Result<Option<crate::StoredTask>, StoreError> {
        let row = sqlx::query(
            "SELECT request_id, owner, carrier, parked, created_at, status, result, finished_at \
             FROM mcp_tasks WHERE request_id = $1 AND owner = $2",
        )
        .bind(id)
        .bind(owner)
        .fetch_optional(self.0)
        .await?;
        row.map(|r| {
            crate::StoredTask::from_columns(
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
                r.try_get(5)?,
                r.try_get(6)?,
                r.try_get(7)?,
            )
        })
        .transpose()
    }

    pub async fn parked_call(
        &self,
        requester: &str,
        digest: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(PARKED_CALL)
            .bind(requester)
            .bind(digest)
            .fetch_optional(self.0)
            .await?;
        Ok(row.map(|row| row.try_get(0)).transpose()?)
    }

    pub async fn uses_left(
        &self,
        requester: &str,
        digest: &str,
        request: &str,
    ) -> Result<Option<u32>, StoreError> {
        let row = sqlx::query(USES_LEFT)
            .bind(requester)
            .bind(digest)
            .bind(request)
            .fetch_optional(self.0)
            .await?;
        let left: Option<Option<i64>> = row.map(|row| row.try_get(0)).transpose()?;
        Ok(left.flatten().map(|n| u32::try_from(n).unwrap_or(0)))
    }

    pub async fn totp_get(&self, principal: &PrincipalId) -> Result<Option<TotpState>, StoreError> {
        let row = sqlx::query("SELECT secret, last_step FROM totp WHERE principal = $1")
            .bind(principal.as_str())
            .fetch_optional(self.0)
            .await?;
        row.map(|row| {
            let last_step: Option<i64> = row.try_get(1)?;
            Ok(TotpState {
                secret: row.try_get(0)?,
                last_step: last_step.map(|s| unsigned(s, "a TOTP step")).transpose()?,
            })
        })
        .transpose()
    }

    pub async fn passkeys(
        &self,
        principal: &PrincipalId,
    ) -> Result<Vec<StoredPasskey>, StoreError> {
        let rows = sqlx::query(
            "SELECT credential_id, principal, passkey, created_at, last_used_at \
             FROM webauthn_credentials WHERE principal = $1 ORDER BY created_at, credential_id",
        )
        .bind(principal.as_str())
        .fetch_all(self.0)
        .await?;
        rows.into_iter()
            .map(|row| {
                let last: Option<i64> = row.try_get(4)?;
                Ok(StoredPasskey {
                    credential_id: row.try_get(0)?,
                    principal: principal_from_column(row.try_get(1)?)?,
                    passkey: row.try_get(2)?,
                    created_at: from_millis(row.try_get(3)?)?,
                    last_used_at: last.map(from_millis).transpose()?,
                })
            })
            .collect()
    }

    pub async fn factor_changes(
        &self,
        principal: &PrincipalId,
        since: Timestamp,
    ) -> Result<Vec<crate::FactorChange>, StoreError> {
        let rows = sqlx::query(
            "SELECT principal, at, change, proof, actor FROM factor_changes \
             WHERE principal = $1 AND at >= $2 ORDER BY at LIMIT 20",
        )
        .bind(principal.as_str())
        .bind(millis(since))
        .fetch_all(self.0)
        .await?;
        rows.into_iter()
            .map(|row| {
                let principal: String = row.try_get(0)?;
                let change: String = row.try_get(2)?;
                let proof: String = row.try_get(3)?;
                crate::factors::change_from_row(
                    &principal,
                    row.try_get(1)?,
                    &change,
                    &proof,
                    row.try_get(4)?,
                )
            })
            .collect()
    }

    /// The message references of `request_id`, by target.
    pub async fn channel_messages(
        &self,
        request_id: &str,
    ) -> Result<Vec<ChannelMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT request_id, target, conversation, ts, rendered, reminded_at \
             FROM channel_messages WHERE request_id = $1 ORDER BY target",
        )
        .bind(request_id)
        .fetch_all(self.0)
        .await?;
        rows.iter()
            .map(|row| {
                channel_message_from_row(
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                    row.try_get(4)?,
                    row.try_get(5)?,
                )
            })
            .collect()
    }

    /// The reference of `conversation` in `channel`.
    pub async fn conversation(
        &self,
        channel: &str,
        conversation: &str,
    ) -> Result<Option<ConversationRef>, StoreError> {
        let row = sqlx::query(
            "SELECT channel, conversation, service_url, tenant, updated_at \
             FROM channel_conversations WHERE channel = $1 AND conversation = $2",
        )
        .bind(channel)
        .bind(conversation)
        .fetch_optional(self.0)
        .await?;
        row.map(|row| {
            conversation_from_row(
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
            )
        })
        .transpose()
    }

    /// Raw audit rows from `from` on, each as an entry or as why it is not one.
    pub async fn audit_rows(&self, from: u64, limit: u32) -> Result<Vec<AuditRow>, StoreError> {
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        let rows = sqlx::query(
            "SELECT seq, bytes, leaf, chain FROM audit WHERE seq >= $1 ORDER BY seq LIMIT $2",
        )
        .bind(from)
        .bind(i64::from(limit))
        .fetch_all(self.0)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(entry_from_row(
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                ))
            })
            .collect()
    }

    pub async fn audit_size(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT MAX(seq) FROM audit")
            .fetch_one(self.0)
            .await?;
        match row.try_get::<Option<i64>, _>(0)? {
            None => Ok(0),
            Some(seq) => Ok(unsigned(seq, "an audit seq")? + 1),
        }
    }

    pub async fn audit_nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, StoreError> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let seqs = ids
            .iter()
            .map(|id| i64::try_from(crate::tree::row_of(*id)).unwrap_or(i64::MAX))
            .collect();
        let mut sql = DB::audit_nodes(seqs);
        let rows = sql.build().fetch_all(self.0).await?;
        let rows = rows
            .iter()
            .map(|row| {
                Ok((
                    unsigned(row.try_get(0)?, "an audit seq")?,
                    row.try_get::<Vec<u8>, _>(1)?,
                    row.try_get::<Option<Vec<u8>>, _>(2)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        crate::tree::hashes_from_rows(ids, rows)
    }

    pub async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let row = sqlx::query(
            "SELECT size, root, note, signed_at FROM audit_checkpoints ORDER BY size DESC LIMIT 1",
        )
        .fetch_optional(self.0)
        .await?;
        row.map(|r| Self::checkpoint(&r)).transpose()
    }

    pub async fn checkpoints(
        &self,
        after: u64,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let rows = sqlx::query(
            "SELECT size, root, note, signed_at FROM audit_checkpoints WHERE size > $1 \
             ORDER BY size LIMIT $2",
        )
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(self.0)
        .await?;
        rows.iter().map(Self::checkpoint).collect()
    }

    /// A row of `audit_checkpoints` (size, root, note, signed_at).
    fn checkpoint(row: &DB::Row) -> Result<StoredCheckpoint, StoreError> {
        let root: Vec<u8> = row.try_get(1)?;
        Ok(StoredCheckpoint {
            size: unsigned(row.try_get(0)?, "a checkpoint size")?,
            root: <Hash>::try_from(root.as_slice())
                .map_err(|_| StoreError::Corrupt("a checkpoint root is not 32 bytes".into()))?,
            note: row.try_get(2)?,
            signed_at: from_millis(row.try_get(3)?)?,
        })
    }

    pub async fn request_audit_seqs(&self, id: &str) -> Result<Option<Vec<u64>>, StoreError> {
        let row = sqlx::query("SELECT audit_seqs FROM requests WHERE id = $1")
            .bind(id)
            .fetch_optional(self.0)
            .await?;
        row.map(|row| crate::tree::parse_seq_list(row.try_get(0)?))
            .transpose()
    }

    pub async fn request_rows(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RequestRow>, StoreError> {
        let rows = sqlx::query(DB::REQUEST_ROWS)
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(self.0)
            .await?;
        rows.iter()
            .map(|row| {
                let columns: (String, String, String) =
                    (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
                Ok(RequestRow::from(columns))
            })
            .collect()
    }

    pub async fn audit_cursor(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let row = sqlx::query("SELECT next_seq FROM audit_cursors WHERE name = $1")
            .bind(name)
            .fetch_optional(self.0)
            .await?;
        row.map(|row| unsigned(row.try_get(0)?, "a cursor"))
            .transpose()
    }
}
