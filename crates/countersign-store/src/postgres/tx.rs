//! One PostgreSQL write transaction: it locks the audit head row first (so appends from every
//! connection and replica are serialised and numbered without gaps), offers the [`WriteTx`]
//! primitives to `crate::writes`, and on success writes the staged audit entries and the new
//! head before committing. A failed write is rolled back whole: each write has its own
//! transaction here, so no savepoint is needed.

use crate::StoreError;
use crate::audit_log::{AuditHead, Journal};
use crate::columns::{RequestColumns, millis, parse_run_state, run_state_str};
use crate::writes::{StoredRow, WriteTx};
use countersign_audit::merkle::Frontier;
use countersign_core::{PrincipalId, Run, RunState, Timestamp};
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::sync::Arc;
use tokio::sync::watch;

pub(super) struct PgTx {
    tx: Transaction<'static, Postgres>,
    journal: Journal,
    /// The tree's frontier at the head, read with the head lock.
    tree: Frontier,
    audit_size: Arc<watch::Sender<u64>>,
    /// This replica's id, in the notification that tells the others what this write changed.
    replica: Arc<str>,
    /// True once this write changed a row that no audit entry records (a parked pair: an
    /// idempotency key naming the request a submission attached to), so it commits even
    /// without entries.
    unrecorded: bool,
}

/// The audit head row, locked: where the next entry goes and the tree's frontier (`None` while
/// entries from before the tree existed still lack their nodes).
pub(super) async fn lock_head(
    tx: &mut Transaction<'static, Postgres>,
) -> Result<(AuditHead, Option<Frontier>), StoreError> {
    let row =
        sqlx::query("SELECT next_seq, chain, frontier FROM audit_head WHERE id = 1 FOR UPDATE")
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::Corrupt("the audit head row is missing".into()))?;
    let next_seq: i64 = row.try_get(0)?;
    let chain: Vec<u8> = row.try_get(1)?;
    let frontier: Option<Vec<u8>> = row.try_get(2)?;
    let head = AuditHead {
        next_seq: crate::columns::unsigned(next_seq, "the next audit seq")?,
        prev: <[u8; 32]>::try_from(chain.as_slice()).map_err(|_| {
            StoreError::Corrupt(format!("the audit head chain is {} bytes", chain.len()))
        })?,
    };
    let tree = frontier
        .map(|f| Frontier::from_bytes(head.next_seq, &f))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("the audit head's frontier: {e}")))?;
    Ok((head, tree))
}

impl PgTx {
    /// Begins a write and takes the audit head lock.
    pub async fn begin(
        pool: &PgPool,
        audit_size: &Arc<watch::Sender<u64>>,
        replica: &str,
    ) -> Result<Self, StoreError> {
        let mut tx = pool.begin().await?;
        let (head, tree) = lock_head(&mut tx).await?;
        let tree = tree.ok_or_else(|| {
            StoreError::Corrupt(
                "the audit log's tree was never built (reconnect to build it)".into(),
            )
        })?;
        Ok(PgTx {
            tx,
            journal: Journal::tracking_requests(head),
            tree,
            audit_size: audit_size.clone(),
            replica: Arc::from(replica),
            unrecorded: false,
        })
    }

    /// Commits `result`'s writes (with their audit entries and the new head), or rolls back
    /// when it is an error. Returns `result`, or the commit's error.
    pub async fn finish<R>(mut self, result: Result<R, StoreError>) -> Result<R, StoreError> {
        let value = match result {
            Ok(value) => value,
            Err(e) => {
                self.tx.rollback().await?;
                return Err(e);
            }
        };
        let staged = self.journal.staged();
        if staged.is_empty() {
            if self.unrecorded {
                self.tx.commit().await?;
            } else {
                // Nothing was recorded, so nothing changed: release the lock cheaply.
                self.tx.rollback().await?;
            }
            return Ok(value);
        }
        let seqs = staged
            .iter()
            .map(|e| crate::columns::signed(e.seq, "audit seq"))
            .collect::<Result<Vec<i64>, _>>()?;
        let bytes: Vec<&[u8]> = staged.iter().map(|e| e.bytes.as_slice()).collect();
        let leaves: Vec<&[u8]> = staged.iter().map(|e| e.leaf.as_slice()).collect();
        let chains: Vec<&[u8]> = staged.iter().map(|e| e.chain.as_slice()).collect();
        let nodes = staged
            .iter()
            .map(|e| crate::tree::grow(&mut self.tree, e.seq, &e.leaf))
            .collect::<Result<Vec<Vec<u8>>, _>>()?;
        sqlx::query(
            "INSERT INTO audit (seq, bytes, leaf, chain, nodes) \
             SELECT * FROM UNNEST($1::int8[], $2::bytea[], $3::bytea[], $4::bytea[], $5::bytea[])",
        )
        .bind(seqs)
        .bind(bytes)
        .bind(leaves)
        .bind(chains)
        .bind(nodes)
        .execute(&mut *self.tx)
        .await?;
        let head = self.journal.head();
        // The other replicas hear of it once it commits (`changes`), in the same statement.
        let notice =
            super::changes::payload(&self.replica, head.next_seq, &self.journal.requests());
        sqlx::query(
            "UPDATE audit_head SET next_seq = $1, chain = $2, frontier = $3 WHERE id = 1 \
             RETURNING pg_notify($4, $5)",
        )
        .bind(crate::columns::signed(head.next_seq, "the next audit seq")?)
        .bind(head.prev.as_slice())
        .bind(self.tree.to_bytes())
        .bind(super::changes::CHANNEL)
        .bind(notice)
        .execute(&mut *self.tx)
        .await?;
        self.tx.commit().await?;
        self.audit_size.send_replace(head.next_seq);
        Ok(value)
    }

    async fn rows(&mut self, sql: &'static str, run: &str) -> Result<Vec<StoredRow>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(sql)
            .bind(run)
            .fetch_all(&mut *self.tx)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(body, audit_seqs)| StoredRow { body, audit_seqs })
            .collect())
    }
}

fn unique_violation(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what()),
        _ => e.into(),
    }
}

impl WriteTx for PgTx {
    fn journal(&mut self) -> &mut Journal {
        &mut self.journal
    }

    async fn savepoint(&mut self) -> Result<(), StoreError> {
        // The whole transaction is this one write.
        Ok(())
    }

    async fn run_facts(
        &mut self,
        run: &str,
        requester: Option<&str>,
    ) -> Result<(Option<RunState>, bool), StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT state FROM runs WHERE id = $1), \
             EXISTS (SELECT 1 FROM requests WHERE run = $1 AND pauses_run \
             AND ($2::text IS NULL OR requester = $2))",
        )
        .bind(run)
        .bind(requester)
        .fetch_one(&mut *self.tx)
        .await?;
        let state: Option<String> = row.try_get(0)?;
        Ok((
            state.as_deref().map(parse_run_state).transpose()?,
            row.try_get(1)?,
        ))
    }

    async fn load_row(&mut self, id: &str) -> Result<Option<StoredRow>, StoreError> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT body, audit_seqs FROM requests WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *self.tx)
                .await?;
        Ok(row.map(|(body, audit_seqs)| StoredRow { body, audit_seqs }))
    }

    async fn held_requests(&mut self, run: &str) -> Result<Vec<StoredRow>, StoreError> {
        self.rows(
            "SELECT body, audit_seqs FROM requests WHERE run = $1 AND state = 'pending' \
             AND held ORDER BY created_at, id",
            run,
        )
        .await
    }

    async fn pending_requests(&mut self, run: &str) -> Result<Vec<StoredRow>, StoreError> {
        self.rows(
            "SELECT body, audit_seqs FROM requests WHERE run = $1 AND state = 'pending' \
             ORDER BY created_at, id",
            run,
        )
        .await
    }

    async fn audit_entry(&mut self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let seq = crate::columns::signed(seq, "audit seq")?;
        Ok(sqlx::query_scalar("SELECT bytes FROM audit WHERE seq = $1")
            .bind(seq)
            .fetch_optional(&mut *self.tx)
            .await?)
    }

    async fn insert_request(&mut self, c: &RequestColumns) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO requests \
             (id, state, run, requester, created_at, expires_at, held, pauses_run, body, \
             audit_seqs, exec_deadline) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(c.id.as_str())
        .bind(c.state)
        .bind(c.run.as_deref())
        .bind(c.requester.as_str())
        .bind(c.created_at)
        .bind(c.expires_at)
        .bind(c.held)
        .bind(c.pauses_run)
        .bind(c.body.as_str())
        .bind(c.audit_seqs.as_str())
        .bind(c.exec_deadline)
        .execute(&mut *self.tx)
        .await
        .map_err(|e| unique_violation(e, || format!("request {}", c.id)))?;
        Ok(())
    }

    async fn save_request(
        &mut self,
        c: &RequestColumns,
        audit_seqs: &str,
    ) -> Result<(), StoreError> {
        let updated = sqlx::query(
            "UPDATE requests SET state = $2, run = $3, requester = $4, created_at = $5, \
             expires_at = $6, held = $7, pauses_run = $8, body = $9, \
             audit_seqs = audit_seqs || $10, exec_deadline = $11 WHERE id = $1",
        )
        .bind(c.id.as_str())
        .bind(c.state)
        .bind(c.run.as_deref())
        .bind(c.requester.as_str())
        .bind(c.created_at)
        .bind(c.expires_at)
        .bind(c.held)
        .bind(c.pauses_run)
        .bind(c.body.as_str())
        .bind(audit_seqs)
        .bind(c.exec_deadline)
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        match updated {
            1 => Ok(()),
            _ => Err(StoreError::NotFound),
        }
    }

    async fn mark_notify(&mut self, request: &str, now: Timestamp) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO notify_queue (request_id, due_at, generation) VALUES ($1, $2, 1) \
             ON CONFLICT (request_id) DO UPDATE SET due_at = excluded.due_at, \
             generation = notify_queue.generation + 1",
        )
        .bind(request)
        .bind(millis(now))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn upsert_run(&mut self, run: &Run) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO runs (id, state, updated_by, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET state = excluded.state, \
             updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        )
        .bind(run.id.as_str())
        .bind(run_state_str(run.state))
        .bind(run.updated_by.as_str())
        .bind(millis(run.updated_at))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn insert_key(
        &mut self,
        key_hash: &str,
        principal: &PrincipalId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO api_keys (key_hash, principal, created_at) VALUES ($1, $2, $3)")
            .bind(key_hash)
            .bind(principal.as_str())
            .bind(millis(now))
            .execute(&mut *self.tx)
            .await
            .map_err(|e| unique_violation(e, || "an API key with this hash".into()))?;
        Ok(())
    }

    async fn delete_keys(&mut self, principal: &PrincipalId) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM api_keys WHERE principal = $1")
            .bind(principal.as_str())
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected())
    }

    async fn delete_sessions(&mut self, principal: &PrincipalId) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM console_sessions WHERE principal = $1")
            .bind(principal.as_str())
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected())
    }

    async fn insert_passkey(&mut self, p: &crate::StoredPasskey) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO webauthn_credentials \
             (credential_id, principal, passkey, created_at, last_used_at) \
             VALUES ($1, $2, $3, $4, NULL)",
        )
        .bind(&p.credential_id)
        .bind(p.principal.as_str())
        .bind(&p.passkey)
        .bind(millis(p.created_at))
        .execute(&mut *self.tx)
        .await
        .map_err(|e| unique_violation(e, || "a passkey with this credential id".into()))?;
        Ok(())
    }

    async fn insert_factor_change(&mut self, c: &crate::FactorChange) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO factor_changes (principal, at, change, proof, actor) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(c.principal.as_str())
        .bind(millis(c.at))
        .bind(c.change.as_str())
        .bind(c.proof.as_str())
        .bind(&c.actor)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn delete_factors(
        &mut self,
        principal: &PrincipalId,
    ) -> Result<crate::FactorsRemoved, StoreError> {
        let p = principal.as_str();
        let totp = sqlx::query("DELETE FROM totp WHERE principal = $1")
            .bind(p)
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        let passkeys = sqlx::query("DELETE FROM webauthn_credentials WHERE principal = $1")
            .bind(p)
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM webauthn_ceremonies WHERE principal = $1")
            .bind(p)
            .execute(&mut *self.tx)
            .await?;
        Ok(crate::FactorsRemoved {
            totp: totp > 0,
            passkeys,
        })
    }

    async fn upsert_totp(
        &mut self,
        principal: &PrincipalId,
        secret: &[u8],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO totp (principal, secret, last_step, enrolled_at) \
             VALUES ($1, $2, NULL, $3) \
             ON CONFLICT (principal) DO UPDATE SET secret = excluded.secret, \
             last_step = NULL, enrolled_at = excluded.enrolled_at",
        )
        .bind(principal.as_str())
        .bind(secret)
        .bind(millis(now))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn parked_call(
        &mut self,
        requester: &str,
        digest: &str,
    ) -> Result<Option<String>, StoreError> {
        super::parked::get(&mut self.tx, requester, digest).await
    }

    async fn park_call(
        &mut self,
        requester: &str,
        digest: &str,
        request: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.unrecorded = true;
        super::parked::park(&mut self.tx, requester, digest, request, at).await
    }

    async fn unpark_call(
        &mut self,
        requester: &str,
        digest: &str,
        request: &str,
    ) -> Result<(), StoreError> {
        self.unrecorded = true;
        super::parked::unpark(&mut self.tx, requester, digest, request)
            .await
            .map(drop)
    }

    async fn park_counted(
        &mut self,
        requester: &str,
        digest: &str,
        request: &str,
        uses: u32,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.unrecorded = true;
        super::parked::park_counted(&mut self.tx, requester, digest, request, uses, at).await
    }

    async fn take_use(
        &mut self,
        requester: &str,
        digest: &str,
    ) -> Result<Option<(String, u32)>, StoreError> {
        self.unrecorded = true;
        super::parked::take_use(&mut self.tx, requester, digest).await
    }

    async fn take_use_of(
        &mut self,
        requester: &str,
        digest: &str,
        request: &str,
    ) -> Result<bool, StoreError> {
        self.unrecorded = true;
        super::parked::take_use_of(&mut self.tx, requester, digest, request).await
    }

    fn abandon(&mut self, _error: StoreError) {
        // The transaction is this one write: the error its caller returns rolls it back.
    }

    async fn give_back_use(&mut self, requester: &str, digest: &str) -> Result<(), StoreError> {
        let sql = crate::read::GIVE_BACK_USE;
        super::parked::exec_pair(&mut self.tx, sql, requester, digest, None).await
    }

    async fn uses_left(
        &mut self,
        requester: &str,
        digest: &str,
        request: &str,
    ) -> Result<Option<u32>, StoreError> {
        super::parked::uses_left(&mut self.tx, requester, digest, request).await
    }

    async fn end_uses(
        &mut self,
        requester: &str,
        digest: &str,
        request: &str,
    ) -> Result<(), StoreError> {
        self.unrecorded = true;
        let sql = crate::read::END_USES;
        super::parked::exec_pair(&mut self.tx, sql, requester, digest, Some(request)).await
    }
}
