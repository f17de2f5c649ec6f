//! The PostgreSQL store, for deployments that already run PostgreSQL or run several gateway
//! replicas. Each write is its own transaction that first locks the audit head row (see `tx`),
//! runs the same steps as SQLite's writer (`crate::writes`), and commits; PostgreSQL's own
//! group commit makes concurrent commits share a flush. PostgreSQL-only SQL stays in this
//! module.

mod changes;
mod notify;
mod open;
mod parked;
mod tx;

#[cfg(test)]
mod tests;

use crate::audit_log::{entries_or_corrupt, verify_in_pages};
use crate::columns::millis;
use crate::parked::digest_column;
use crate::read::{Dialect, Reads};
use crate::submission::PreparedSubmission;
use crate::writes::WriteTx as _;
use crate::{
    Ceremony, CeremonyBinding, CeremonyRefusal, ChannelMessage, ConversationRef, NotifyClaim,
    RequestQuery, RunChange, RunRefusal, Store, StoreError, StoredCheckpoint, StoredPasskey,
    Submit, TotpState, Updated, writes,
};
use async_trait::async_trait;
use countersign_audit::merkle::{Frontier, Hash, NodeId};
use countersign_audit::{AuditReport, StoredEntry};
use countersign_core::{
    Digest, Event, PrincipalId, Refusal, Request, Run, RunGate, RunState, Timestamp, Transition,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder, Row};
use std::sync::Arc;
use tokio::sync::watch;
use tx::PgTx;

/// The schema migrations, embedded at compile time.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A Countersign database in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The number of committed audit entries, told after each commit made through this store
    /// (and, once someone follows [`Store::changes`], after each commit by another replica).
    audit_size: Arc<watch::Sender<u64>>,
    /// This replica's notifications to the others, and its listener (`changes`).
    changes: Arc<changes::Changes>,
}

#[async_trait]
impl Store for PgStore {
    async fn submit(
        &self,
        run: Option<crate::RunOf<'_>>,
        now: Timestamp,
        submit: Submit,
    ) -> Result<Request, StoreError> {
        if run.is_none() {
            // No run, so the gate is open: prepare before taking the audit head lock.
            let prepared = PreparedSubmission::new(None, RunGate::Open, now, submit)?;
            let mut tx = self.begin().await?;
            let result = writes::insert_prepared(&mut tx, prepared).await;
            return tx.finish(result).await;
        }
        let mut tx = self.begin().await?;
        let result = writes::submit_request(&mut tx, run, now, submit).await;
        tx.finish(result).await
    }

    async fn submit_parked(
        &self,
        run: Option<crate::RunOf<'_>>,
        parking: crate::Parking<'_>,
        now: Timestamp,
        submit: Submit,
    ) -> Result<crate::Submission, StoreError> {
        let mut key = writes::ParkedKey::of(parking);
        let pending = match run {
            // An earlier approval's request built ahead most likely covers it: this one is
            // prepared in the transaction only if not.
            None if key.prebuild(now)? => writes::Pending::Unprepared(submit),
            // As in `submit`: prepared before taking the audit head lock.
            None => writes::Pending::Prepared(Box::new(PreparedSubmission::new(
                None,
                RunGate::Open,
                now,
                submit,
            )?)),
            Some(run) => writes::Pending::Gated { run, submit },
        };
        let mut tx = self.begin().await?;
        let result = writes::submit_parked(&mut tx, key, now, pending).await;
        tx.finish(result).await
    }

    async fn update_request(
        &self,
        id: &str,
        actor: &str,
        now: Timestamp,
        change: Transition,
    ) -> Result<Result<Updated, Refusal>, StoreError> {
        let mut tx = self.begin().await?;
        let result = writes::update_request(&mut tx, id, actor, now, change).await;
        tx.finish(result).await
    }

    async fn get_request(&self, id: &str) -> Result<Option<Request>, StoreError> {
        self.read().get_request(id).await
    }

    async fn list_requests(&self, q: &RequestQuery) -> Result<Vec<Request>, StoreError> {
        self.read().list_requests(q).await
    }

    async fn due_requests(&self, now: Timestamp, limit: u32) -> Result<Vec<String>, StoreError> {
        self.read().due_requests(now, limit).await
    }

    async fn interrupted_executions(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        self.read().interrupted_executions(now, limit).await
    }

    async fn set_run_state(
        &self,
        run: &str,
        target: RunState,
        actor: &PrincipalId,
        now: Timestamp,
    ) -> Result<Result<RunChange, RunRefusal>, StoreError> {
        let mut tx = self.begin().await?;
        let result = writes::set_run_state(&mut tx, run.to_owned(), target, actor, now).await;
        tx.finish(result).await
    }

    async fn get_run(&self, run: &str) -> Result<Option<Run>, StoreError> {
        self.read().get_run(run).await
    }

    async fn create_key(
        &self,
        key_hash: &str,
        principal: &PrincipalId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let result = writes::create_key(&mut tx, key_hash, principal.clone(), now).await;
        tx.finish(result).await
    }

    async fn principal_for_key(&self, key_hash: &str) -> Result<Option<PrincipalId>, StoreError> {
        self.read().principal_for_key(key_hash).await
    }

    async fn count_keys(&self) -> Result<u64, StoreError> {
        self.read().count_keys().await
    }

    async fn revoke_keys(
        &self,
        principal: &PrincipalId,
        actor: &str,
        now: Timestamp,
    ) -> Result<(u64, u64), StoreError> {
        let mut tx = self.begin().await?;
        let result = writes::revoke_keys(&mut tx, principal.clone(), actor, now).await;
        tx.finish(result).await
    }

    async fn session_start(&self, s: &crate::ConsoleSession) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM console_sessions WHERE expires_at < $1")
            .bind(millis(s.created_at))
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, principal, via, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&s.id_hash)
        .bind(s.principal.as_str())
        .bind(&s.via)
        .bind(millis(s.created_at))
        .bind(millis(s.expires_at))
        .execute(&self.pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                StoreError::Conflict("a console session with this id".into())
            }
            _ => e.into(),
        })?;
        Ok(())
    }

    async fn session_get(
        &self,
        id_hash: &str,
    ) -> Result<Option<crate::ConsoleSession>, StoreError> {
        self.read().session_get(id_hash).await
    }

    async fn session_end(&self, id_hash: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM leases WHERE until < $1")
            .bind(millis(now) - crate::LEASE_RETENTION_MS)
            .execute(&self.pool)
            .await?;
        let done = sqlx::query(
            "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $4) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
             WHERE leases.holder = excluded.holder OR leases.until <= $3",
        )
        .bind(name)
        .bind(holder)
        .bind(millis(now))
        .bind(millis(until))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn first_sight(
        &self,
        key: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM replay_keys WHERE until <= $1")
            .bind(millis(now))
            .execute(&self.pool)
            .await?;
        let done = sqlx::query(
            "INSERT INTO replay_keys (key, until) VALUES ($1, $3) ON CONFLICT (key) \
             DO UPDATE SET until = excluded.until WHERE replay_keys.until <= $2",
        )
        .bind(key)
        .bind(millis(now))
        .bind(millis(until))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn task_start(&self, t: &crate::StoredTask) -> Result<bool, StoreError> {
        let now = millis(t.created_at);
        sqlx::query("DELETE FROM mcp_tasks WHERE finished_at < $1 OR created_at < $2")
            .bind(now - crate::TASK_RETENTION_MS)
            .bind(now - crate::UNENDED_TASK_RETENTION_MS)
            .execute(&self.pool)
            .await?;
        let done = sqlx::query(
            "INSERT INTO mcp_tasks (request_id, owner, carrier, parked, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (request_id) DO NOTHING",
        )
        .bind(&t.request_id)
        .bind(t.owner.as_str())
        .bind(&t.carrier)
        .bind(&t.parked)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn task_get(
        &self,
        id: &str,
        owner: &PrincipalId,
    ) -> Result<Option<crate::StoredTask>, StoreError> {
        self.read().task_get(id, owner.as_str()).await
    }

    async fn task_claim(
        &self,
        id: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE mcp_tasks SET lease_until = $1 WHERE request_id = $2 AND status IS NULL \
             AND (lease_until IS NULL OR lease_until <= $3)",
        )
        .bind(millis(until))
        .bind(id)
        .bind(millis(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn task_end(&self, id: &str, end: &crate::TaskEnd) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE mcp_tasks SET status = $1, result = $2, finished_at = $3 \
             WHERE request_id = $4 AND status IS NULL",
        )
        .bind(&end.status)
        .bind(&end.result)
        .bind(millis(end.at))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn park_call(
        &self,
        requester: &PrincipalId,
        digest: &Digest,
        request: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let digest = digest_column(digest);
        let mut tx = self.pool.begin().await?;
        parked::park(&mut tx, requester.as_str(), &digest, request, at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn standing_uses_left(
        &self,
        requester: &PrincipalId,
        key: &Digest,
        request: &str,
    ) -> Result<Option<u32>, StoreError> {
        self.read()
            .uses_left(requester.as_str(), &digest_column(key), request)
            .await
    }

    async fn parked_call(
        &self,
        requester: &PrincipalId,
        digest: &Digest,
    ) -> Result<Option<String>, StoreError> {
        self.read()
            .parked_call(requester.as_str(), &digest_column(digest))
            .await
    }

    async fn unpark_call(
        &self,
        requester: &PrincipalId,
        digest: &Digest,
        request: &str,
    ) -> Result<bool, StoreError> {
        let digest = digest_column(digest);
        let mut conn = self.pool.acquire().await?;
        parked::unpark(&mut conn, requester.as_str(), &digest, request).await
    }

    async fn totp_get(&self, principal: &PrincipalId) -> Result<Option<TotpState>, StoreError> {
        self.read().totp_get(principal).await
    }

    async fn totp_enroll(
        &self,
        principal: &PrincipalId,
        secret: &[u8],
        proof: crate::FactorProof,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let result = writes::totp_enroll(&mut tx, principal.clone(), secret, proof, now).await;
        tx.finish(result).await
    }

    async fn totp_use_step(&self, principal: &PrincipalId, step: u64) -> Result<bool, StoreError> {
        // One statement, atomic on its own; it records nothing, so it needs no head lock.
        let step = crate::columns::signed(step, "TOTP step")?;
        let used = sqlx::query(
            "UPDATE totp SET last_step = $2 WHERE principal = $1 \
             AND (last_step IS NULL OR last_step < $2)",
        )
        .bind(principal.as_str())
        .bind(step)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if used == 1 {
            return Ok(true);
        }
        let enrolled: Option<i32> = sqlx::query_scalar("SELECT 1 FROM totp WHERE principal = $1")
            .bind(principal.as_str())
            .fetch_optional(&self.pool)
            .await?;
        match enrolled {
            Some(_) => Ok(false),
            None => Err(StoreError::NotFound),
        }
    }

    async fn passkeys(&self, principal: &PrincipalId) -> Result<Vec<StoredPasskey>, StoreError> {
        self.read().passkeys(principal).await
    }

    async fn passkey_enroll(
        &self,
        passkey: &StoredPasskey,
        proof: crate::FactorProof,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let result = writes::passkey_enroll(&mut tx, passkey, proof).await;
        tx.finish(result).await
    }

    async fn mfa_reset(
        &self,
        principal: &PrincipalId,
        actor: &str,
        now: Timestamp,
    ) -> Result<crate::FactorsRemoved, StoreError> {
        let mut tx = self.begin().await?;
        let result = writes::mfa_reset(&mut tx, principal.clone(), actor, now).await;
        tx.finish(result).await
    }

    async fn factor_changes(
        &self,
        principal: &PrincipalId,
        since: Timestamp,
    ) -> Result<Vec<crate::FactorChange>, StoreError> {
        self.read().factor_changes(principal, since).await
    }

    async fn passkey_used(
        &self,
        principal: &PrincipalId,
        credential_id: &str,
        passkey: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        // One statement, atomic on its own; it records nothing, so it needs no head lock.
        let n = sqlx::query(
            "UPDATE webauthn_credentials SET passkey = $3, last_used_at = $4 \
             WHERE principal = $1 AND credential_id = $2",
        )
        .bind(principal.as_str())
        .bind(credential_id)
        .bind(passkey)
        .bind(millis(now))
        .execute(&self.pool)
        .await?
        .rows_affected();
        match n {
            1 => Ok(()),
            _ => Err(StoreError::NotFound),
        }
    }

    async fn ceremony_begin(&self, c: &Ceremony) -> Result<(), StoreError> {
        let b = &c.binding;
        sqlx::query("DELETE FROM webauthn_ceremonies WHERE expires_at < $1")
            .bind(millis(c.expires_at) - crate::CEREMONY_RETENTION_MS)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO webauthn_ceremonies \
             (id, principal, kind, request_id, digest, decision, state, expires_at, used) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, FALSE)",
        )
        .bind(&c.id)
        .bind(b.principal.as_str())
        .bind(b.kind.as_str())
        .bind(&b.request_id)
        .bind(&b.digest)
        .bind(&b.decision)
        .bind(&c.state)
        .bind(millis(c.expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn ceremony_take(
        &self,
        id: &str,
        b: &CeremonyBinding,
        now: Timestamp,
    ) -> Result<Result<String, CeremonyRefusal>, StoreError> {
        // One conditional statement takes it: two finishers racing cannot both succeed.
        let now_ms = millis(now);
        let taken: Option<String> = sqlx::query_scalar(
            "UPDATE webauthn_ceremonies SET used = TRUE \
             WHERE id = $1 AND NOT used AND principal = $2 AND kind = $3 \
             AND request_id IS NOT DISTINCT FROM $4 AND digest IS NOT DISTINCT FROM $5 \
             AND decision IS NOT DISTINCT FROM $6 AND expires_at > $7 RETURNING state",
        )
        .bind(id)
        .bind(b.principal.as_str())
        .bind(b.kind.as_str())
        .bind(&b.request_id)
        .bind(&b.digest)
        .bind(&b.decision)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(state) = taken {
            return Ok(Ok(state));
        }
        let row = sqlx::query(
            "SELECT principal, kind, request_id, digest, decision, expires_at, used \
             FROM webauthn_ceremonies WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| -> Result<_, sqlx::Error> {
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
                r.try_get(5)?,
                r.try_get(6)?,
            ))
        })
        .transpose()?;
        Ok(Err(crate::webauthn::refusal(row, b, now_ms)))
    }

    async fn append_event(
        &self,
        actor: &str,
        event: Event,
        policy: Option<&str>,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let seq = writes::append_event(tx.journal(), actor, &event, policy, now);
        tx.finish(Ok(seq)).await
    }

    async fn audit_entries(&self, from: u64, limit: u32) -> Result<Vec<StoredEntry>, StoreError> {
        entries_or_corrupt(self.read().audit_rows(from, limit).await?)
    }

    async fn verify_audit_against(
        &self,
        checkpoints: Vec<countersign_audit::Checkpoint>,
    ) -> Result<AuditReport, StoreError> {
        let verifier = countersign_audit::Verifier::with_checkpoints(checkpoints);
        let read = self.read();
        verify_in_pages(verifier, |from, limit| read.audit_rows(from, limit)).await
    }

    async fn claim_notifications(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<NotifyClaim>, StoreError> {
        notify::claim(&self.pool, now, lease_until, limit).await
    }

    async fn finish_notification(
        &self,
        request_id: &str,
        generation: i64,
        next: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        notify::finish(&self.pool, request_id, generation, next, now).await
    }

    async fn channel_messages(&self, request_id: &str) -> Result<Vec<ChannelMessage>, StoreError> {
        self.read().channel_messages(request_id).await
    }

    async fn save_channel_message(&self, message: &ChannelMessage) -> Result<(), StoreError> {
        notify::save_message(&self.pool, message).await
    }

    async fn save_conversation(&self, reference: &ConversationRef) -> Result<(), StoreError> {
        notify::save_conversation(&self.pool, reference).await
    }

    async fn conversation(
        &self,
        channel: &str,
        conversation: &str,
    ) -> Result<Option<ConversationRef>, StoreError> {
        self.read().conversation(channel, conversation).await
    }

    async fn audit_size(&self) -> Result<u64, StoreError> {
        self.read().audit_size().await
    }

    async fn audit_nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, StoreError> {
        self.read().audit_nodes(ids).await
    }

    async fn save_checkpoint(&self, c: &StoredCheckpoint) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_checkpoints (size, root, note, signed_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (size) DO NOTHING",
        )
        .bind(crate::columns::signed(c.size, "checkpoint size")?)
        .bind(c.root.as_slice())
        .bind(c.note.as_str())
        .bind(millis(c.signed_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.read().latest_checkpoint().await
    }

    async fn checkpoints(
        &self,
        after: u64,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.read().checkpoints(after, limit).await
    }

    async fn request_audit_seqs(&self, id: &str) -> Result<Option<Vec<u64>>, StoreError> {
        self.read().request_audit_seqs(id).await
    }

    async fn request_rows(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<crate::RequestRow>, StoreError> {
        self.read().request_rows(after, limit).await
    }

    async fn audit_cursor(&self, name: &str) -> Result<Option<u64>, StoreError> {
        self.read().audit_cursor(name).await
    }

    async fn set_audit_cursor(&self, name: &str, next_seq: u64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_cursors (name, next_seq) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET next_seq = excluded.next_seq",
        )
        .bind(name)
        .bind(crate::columns::signed(next_seq, "cursor")?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    fn audit_watch(&self) -> watch::Receiver<u64> {
        self.audit_size.subscribe()
    }

    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<crate::StoreChange>> {
        Some(self.changes.subscribe(&self.pool, &self.audit_size))
    }
}

impl PgStore {
    /// The reads (`crate::read`), on the pool.
    fn read(&self) -> Reads<'_, Postgres> {
        Reads(&self.pool)
    }
}

/// Where PostgreSQL's reads differ from SQLite's (see `crate::read`).
impl Dialect for Postgres {
    /// Byte order, whatever the database's collation, so pages neither skip nor repeat.
    const REQUEST_ROWS: &'static str = "SELECT id, body, audit_seqs FROM requests \
         WHERE id > $1 COLLATE \"C\" ORDER BY id COLLATE \"C\" LIMIT $2";

    /// The seqs as one array: one statement whatever their number.
    fn audit_nodes(seqs: Vec<i64>) -> QueryBuilder<Postgres> {
        let mut sql = QueryBuilder::new("SELECT seq, leaf, nodes FROM audit WHERE seq = ANY(");
        sql.push_bind(seqs).push(")");
        sql
    }
}
