//! The default store: one SQLite file in WAL mode, with `synchronous=FULL` so that a change is
//! on disk (fsync'd) before it is acknowledged.
//!
//! All writes go through one writer thread (see `writer`) that commits whatever is queued as one
//! group; reads use a separate pool of read-only connections, which WAL lets run alongside the
//! writer. SQLite-only SQL stays inside this module.

mod notify;
mod op;
mod open;
mod ops;
mod parked;
mod sessions;
mod tx;
mod writer;

#[cfg(test)]
mod tests;

use crate::audit_log::{AuditRow, entries_or_corrupt, verify_in_pages};
use crate::columns::{
    from_millis, principal_from_column, request_from_body, run_from_row, unsigned,
};
use crate::parked::digest_column;
use crate::submission::PreparedSubmission;
use crate::{
    Ceremony, CeremonyBinding, CeremonyRefusal, ChannelMessage, ConversationRef, NotifyClaim,
    RequestChange, RequestQuery, RunChange, Store, StoreError, StoredCheckpoint, StoredPasskey,
    Submit, TotpState, Updated,
};
use async_trait::async_trait;
use countersign_audit::merkle::{Hash, NodeId};
use countersign_audit::{AuditReport, StoredEntry};
use countersign_core::run::RunRefusal;
use countersign_core::{
    Digest, Event, PrincipalId, Refusal, Request, Run, RunGate, RunState, Timestamp,
};
use op::Op;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::sync::{mpsc, oneshot};

/// Read connections. Two cores serve many readers; SQLite reads are short.
const READERS: u32 = 4;

/// The schema migrations, embedded at compile time.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A Countersign database in one SQLite file.
pub struct SqliteStore {
    path: PathBuf,
    reads: SqlitePool,
    /// `None` when opened read-only.
    writer: Option<mpsc::Sender<Op>>,
    /// Completes when the writer thread has finished; awaited by [`SqliteStore::close`].
    writer_done: Option<oneshot::Receiver<()>>,
    /// The number of committed audit entries, told by the writer after each commit.
    audit_size: Arc<watch::Sender<u64>>,
}

#[async_trait]
impl Store for SqliteStore {
    async fn submit(
        &self,
        run: Option<crate::RunOf<'_>>,
        now: Timestamp,
        submit: Submit,
    ) -> Result<Request, StoreError> {
        if run.is_none() {
            // No run, so the gate is open: build and prepare it here, in parallel with other
            // callers, and leave the writer only the insert.
            let prepared = Box::new(PreparedSubmission::new(None, RunGate::Open, now, submit)?);
            return self.write(|reply| Op::Insert { prepared, reply }).await;
        }
        let run = run.map(|of| (of.run.to_owned(), of.requester.clone()));
        self.write(|reply| Op::Submit {
            run,
            now,
            submit,
            reply,
        })
        .await
    }

    async fn submit_parked(
        &self,
        run: Option<crate::RunOf<'_>>,
        parking: crate::Parking<'_>,
        now: Timestamp,
        submit: Submit,
    ) -> Result<crate::Submission, StoreError> {
        let key = crate::writes::ParkedKey::of(&parking);
        if run.is_none() {
            // As in `submit`: prepared here, in parallel with other callers.
            let prepared = Box::new(PreparedSubmission::new(None, RunGate::Open, now, submit)?);
            return self
                .write(|reply| Op::SubmitParked {
                    key,
                    run: None,
                    prepared: Some(prepared),
                    submit: None,
                    now,
                    reply,
                })
                .await;
        }
        let run = run.map(|of| (of.run.to_owned(), of.requester.clone()));
        self.write(|reply| Op::SubmitParked {
            key,
            run,
            prepared: None,
            submit: Some(submit),
            now,
            reply,
        })
        .await
    }

    async fn update_request(
        &self,
        id: &str,
        actor: &str,
        now: Timestamp,
        change: RequestChange,
    ) -> Result<Result<Updated, Refusal>, StoreError> {
        let (id, actor) = (id.to_owned(), actor.to_owned());
        self.write(|reply| Op::Update {
            id,
            actor,
            now,
            change,
            reply,
        })
        .await
    }

    async fn get_request(&self, id: &str) -> Result<Option<Request>, StoreError> {
        let body: Option<String> = sqlx::query_scalar("SELECT body FROM requests WHERE id = ?1")
            .bind(id)
            .fetch_optional(&self.reads)
            .await?;
        body.as_deref().map(request_from_body).transpose()
    }

    async fn list_requests(&self, q: &RequestQuery) -> Result<Vec<Request>, StoreError> {
        let mut sql = QueryBuilder::<Sqlite>::new("SELECT body FROM requests WHERE 1 = 1");
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
            let created: i64 = sqlx::query_scalar("SELECT created_at FROM requests WHERE id = ?1")
                .bind(before)
                .fetch_optional(&self.reads)
                .await?
                .ok_or(StoreError::NotFound)?;
            sql.push(" AND (created_at < ")
                .push_bind(created)
                .push(" OR (created_at = ")
                .push_bind(created)
                .push(" AND id < ")
                .push_bind(before.clone())
                .push("))");
        }
        sql.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(q.page_size()));
        let rows = sql.build().fetch_all(&self.reads).await?;
        rows.iter()
            .map(|row| request_from_body(row.try_get::<&str, _>(0)?))
            .collect()
    }

    async fn due_requests(&self, now: Timestamp, limit: u32) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM requests WHERE state = 'pending' AND expires_at <= ?1 \
             ORDER BY expires_at, id LIMIT ?2",
        )
        .bind(crate::columns::millis(now))
        .bind(i64::from(limit))
        .fetch_all(&self.reads)
        .await?)
    }

    async fn set_run_state(
        &self,
        run: &str,
        target: RunState,
        actor: &PrincipalId,
        now: Timestamp,
    ) -> Result<Result<RunChange, RunRefusal>, StoreError> {
        let (run, actor) = (run.to_owned(), actor.clone());
        self.write(|reply| Op::SetRun {
            run,
            target,
            actor,
            now,
            reply,
        })
        .await
    }

    async fn get_run(&self, run: &str) -> Result<Option<Run>, StoreError> {
        let row = sqlx::query("SELECT id, state, updated_by, updated_at FROM runs WHERE id = ?1")
            .bind(run)
            .fetch_optional(&self.reads)
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

    async fn create_key(
        &self,
        key_hash: &str,
        principal: &PrincipalId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (key_hash, principal) = (key_hash.to_owned(), principal.clone());
        self.write(|reply| Op::CreateKey {
            key_hash,
            principal,
            now,
            reply,
        })
        .await
    }

    async fn principal_for_key(&self, key_hash: &str) -> Result<Option<PrincipalId>, StoreError> {
        let principal: Option<String> =
            sqlx::query_scalar("SELECT principal FROM api_keys WHERE key_hash = ?1")
                .bind(key_hash)
                .fetch_optional(&self.reads)
                .await?;
        principal.map(principal_from_column).transpose()
    }

    async fn count_keys(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys")
            .fetch_one(&self.reads)
            .await?;
        unsigned(n, "the number of keys")
    }

    async fn revoke_keys(
        &self,
        principal: &PrincipalId,
        actor: &str,
        now: Timestamp,
    ) -> Result<(u64, u64), StoreError> {
        let (principal, actor) = (principal.clone(), actor.to_string());
        self.write(|reply| Op::RevokeKeys {
            principal,
            actor,
            now,
            reply,
        })
        .await
    }

    async fn session_start(&self, session: &crate::ConsoleSession) -> Result<(), StoreError> {
        let session = Box::new(session.clone());
        self.write(|reply| Op::SessionStart { session, reply })
            .await
    }

    async fn session_get(
        &self,
        id_hash: &str,
    ) -> Result<Option<crate::ConsoleSession>, StoreError> {
        sessions::get(&self.reads, id_hash).await
    }

    async fn session_end(&self, id_hash: &str) -> Result<bool, StoreError> {
        let id_hash = id_hash.to_string();
        self.write(|reply| Op::SessionEnd { id_hash, reply }).await
    }

    async fn park_call(
        &self,
        requester: &PrincipalId,
        digest: &Digest,
        request: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let (requester, digest) = (requester.as_str().to_owned(), digest_column(digest));
        let request = request.to_owned();
        self.write(|reply| Op::Park {
            requester,
            digest,
            request,
            at,
            reply,
        })
        .await
    }

    async fn parked_call(
        &self,
        requester: &PrincipalId,
        digest: &Digest,
    ) -> Result<Option<String>, StoreError> {
        parked::get(&self.reads, requester.as_str(), &digest_column(digest)).await
    }

    async fn unpark_call(
        &self,
        requester: &PrincipalId,
        digest: &Digest,
        request: &str,
    ) -> Result<bool, StoreError> {
        let (requester, digest) = (requester.as_str().to_owned(), digest_column(digest));
        let request = request.to_owned();
        self.write(|reply| Op::Unpark {
            requester,
            digest,
            request,
            reply,
        })
        .await
    }

    async fn totp_get(&self, principal: &PrincipalId) -> Result<Option<TotpState>, StoreError> {
        let row = sqlx::query("SELECT secret, last_step FROM totp WHERE principal = ?1")
            .bind(principal.as_str())
            .fetch_optional(&self.reads)
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

    async fn totp_enroll(
        &self,
        principal: &PrincipalId,
        secret: &[u8],
        proof: crate::FactorProof,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (principal, secret) = (principal.clone(), secret.to_vec());
        self.write(|reply| Op::TotpEnroll {
            principal,
            secret,
            proof,
            now,
            reply,
        })
        .await
    }

    async fn totp_use_step(&self, principal: &PrincipalId, step: u64) -> Result<bool, StoreError> {
        let principal = principal.clone();
        self.write(|reply| Op::TotpUseStep {
            principal,
            step,
            reply,
        })
        .await
    }

    async fn passkeys(&self, principal: &PrincipalId) -> Result<Vec<StoredPasskey>, StoreError> {
        let rows = sqlx::query(
            "SELECT credential_id, principal, passkey, created_at, last_used_at \
             FROM webauthn_credentials WHERE principal = ?1 ORDER BY created_at, credential_id",
        )
        .bind(principal.as_str())
        .fetch_all(&self.reads)
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

    async fn passkey_enroll(
        &self,
        passkey: &StoredPasskey,
        proof: crate::FactorProof,
    ) -> Result<(), StoreError> {
        let passkey = Box::new(passkey.clone());
        self.write(|reply| Op::PasskeyEnroll {
            passkey,
            proof,
            reply,
        })
        .await
    }

    async fn mfa_reset(
        &self,
        principal: &PrincipalId,
        actor: &str,
        now: Timestamp,
    ) -> Result<crate::FactorsRemoved, StoreError> {
        let (principal, actor) = (principal.clone(), actor.to_string());
        self.write(|reply| Op::MfaReset {
            principal,
            actor,
            now,
            reply,
        })
        .await
    }

    async fn factor_changes(
        &self,
        principal: &PrincipalId,
        since: Timestamp,
    ) -> Result<Vec<crate::FactorChange>, StoreError> {
        let rows = sqlx::query(
            "SELECT principal, at, change, proof, actor FROM factor_changes \
             WHERE principal = ?1 AND at >= ?2 ORDER BY at LIMIT 20",
        )
        .bind(principal.as_str())
        .bind(crate::columns::millis(since))
        .fetch_all(&self.reads)
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

    async fn passkey_used(
        &self,
        principal: &PrincipalId,
        credential_id: &str,
        passkey: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (principal, credential_id, passkey) = (
            principal.clone(),
            credential_id.to_string(),
            passkey.to_string(),
        );
        self.write(|reply| Op::PasskeyUsed {
            principal,
            credential_id,
            passkey,
            now,
            reply,
        })
        .await
    }

    async fn ceremony_begin(&self, ceremony: &Ceremony) -> Result<(), StoreError> {
        let ceremony = Box::new(ceremony.clone());
        self.write(|reply| Op::CeremonyBegin { ceremony, reply })
            .await
    }

    async fn ceremony_take(
        &self,
        id: &str,
        binding: &CeremonyBinding,
        now: Timestamp,
    ) -> Result<Result<String, CeremonyRefusal>, StoreError> {
        let (id, binding) = (id.to_string(), Box::new(binding.clone()));
        self.write(|reply| Op::CeremonyTake {
            id,
            binding,
            now,
            reply,
        })
        .await
    }

    async fn append_event(
        &self,
        actor: &str,
        event: Event,
        policy: Option<&str>,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let (actor, policy) = (actor.to_owned(), policy.map(str::to_owned));
        self.write(|reply| Op::Append {
            actor,
            event,
            policy,
            now,
            reply,
        })
        .await
    }

    async fn audit_entries(&self, from: u64, limit: u32) -> Result<Vec<StoredEntry>, StoreError> {
        entries_or_corrupt(self.audit_rows(from, limit).await?)
    }

    async fn verify_audit_against(
        &self,
        checkpoints: Vec<countersign_audit::Checkpoint>,
    ) -> Result<AuditReport, StoreError> {
        let verifier = countersign_audit::Verifier::with_checkpoints(checkpoints);
        verify_in_pages(verifier, |from, limit| self.audit_rows(from, limit)).await
    }

    async fn claim_notifications(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<NotifyClaim>, StoreError> {
        self.write(|reply| Op::ClaimNotifications {
            now,
            lease_until,
            limit,
            reply,
        })
        .await
    }

    async fn finish_notification(
        &self,
        request_id: &str,
        generation: i64,
        next: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let request_id = request_id.to_owned();
        self.write(|reply| Op::FinishNotification {
            request_id,
            generation,
            next,
            now,
            reply,
        })
        .await
    }

    async fn channel_messages(&self, request_id: &str) -> Result<Vec<ChannelMessage>, StoreError> {
        notify::messages(&self.reads, request_id).await
    }

    async fn save_channel_message(&self, message: &ChannelMessage) -> Result<(), StoreError> {
        let message = Box::new(message.clone());
        self.write(|reply| Op::SaveChannelMessage { message, reply })
            .await
    }

    async fn save_conversation(&self, reference: &ConversationRef) -> Result<(), StoreError> {
        let reference = Box::new(reference.clone());
        self.write(|reply| Op::SaveConversation { reference, reply })
            .await
    }

    async fn conversation(
        &self,
        channel: &str,
        conversation: &str,
    ) -> Result<Option<ConversationRef>, StoreError> {
        notify::conversation(&self.reads, channel, conversation).await
    }

    async fn audit_size(&self) -> Result<u64, StoreError> {
        let last: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM audit")
            .fetch_one(&self.reads)
            .await?;
        match last {
            None => Ok(0),
            Some(seq) => Ok(unsigned(seq, "an audit seq")? + 1),
        }
    }

    async fn audit_nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, StoreError> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let mut sql =
            QueryBuilder::<Sqlite>::new("SELECT seq, leaf, nodes FROM audit WHERE seq IN (");
        let mut list = sql.separated(", ");
        for id in ids {
            list.push_bind(i64::try_from(crate::tree::row_of(*id)).unwrap_or(i64::MAX));
        }
        sql.push(")");
        let rows = sql.build().fetch_all(&self.reads).await?;
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

    async fn save_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<(), StoreError> {
        let checkpoint = Box::new(checkpoint.clone());
        self.write(|reply| Op::SaveCheckpoint { checkpoint, reply })
            .await
    }

    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let row = sqlx::query(
            "SELECT size, root, note, signed_at FROM audit_checkpoints ORDER BY size DESC LIMIT 1",
        )
        .fetch_optional(&self.reads)
        .await?;
        row.map(|r| checkpoint_from_row(&r)).transpose()
    }

    async fn checkpoints(
        &self,
        after: u64,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let rows = sqlx::query(
            "SELECT size, root, note, signed_at FROM audit_checkpoints WHERE size > ?1 \
             ORDER BY size LIMIT ?2",
        )
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.reads)
        .await?;
        rows.iter().map(checkpoint_from_row).collect()
    }

    async fn request_audit_seqs(&self, id: &str) -> Result<Option<Vec<u64>>, StoreError> {
        let seqs: Option<String> =
            sqlx::query_scalar("SELECT audit_seqs FROM requests WHERE id = ?1")
                .bind(id)
                .fetch_optional(&self.reads)
                .await?;
        seqs.as_deref().map(crate::tree::parse_seq_list).transpose()
    }

    async fn request_rows(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<crate::RequestRow>, StoreError> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT id, body, audit_seqs FROM requests WHERE id > ?1 ORDER BY id LIMIT ?2",
        )
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.reads)
        .await?;
        Ok(rows.into_iter().map(crate::RequestRow::from).collect())
    }

    async fn audit_cursor(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let next: Option<i64> =
            sqlx::query_scalar("SELECT next_seq FROM audit_cursors WHERE name = ?1")
                .bind(name)
                .fetch_optional(&self.reads)
                .await?;
        next.map(|n| unsigned(n, "a cursor")).transpose()
    }

    async fn set_audit_cursor(&self, name: &str, next_seq: u64) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.write(|reply| Op::SetCursor {
            name,
            next_seq,
            reply,
        })
        .await
    }

    fn audit_watch(&self) -> watch::Receiver<u64> {
        self.audit_size.subscribe()
    }
}

/// A row of `audit_checkpoints` (size, root, note, signed_at).
fn checkpoint_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<StoredCheckpoint, StoreError> {
    let root: Vec<u8> = row.try_get(1)?;
    Ok(StoredCheckpoint {
        size: unsigned(row.try_get(0)?, "a checkpoint size")?,
        root: <Hash>::try_from(root.as_slice())
            .map_err(|_| StoreError::Corrupt("a checkpoint root is not 32 bytes".into()))?,
        note: row.try_get(2)?,
        signed_at: crate::columns::from_millis(row.try_get(3)?)?,
    })
}

impl SqliteStore {
    /// Raw audit rows from `from` on, each as an entry or as why it is not one.
    async fn audit_rows(&self, from: u64, limit: u32) -> Result<Vec<AuditRow>, StoreError> {
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        let rows = sqlx::query(
            "SELECT seq, bytes, leaf, chain FROM audit WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
        )
        .bind(from)
        .bind(i64::from(limit))
        .fetch_all(&self.reads)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(crate::audit_log::entry_from_row(
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                ))
            })
            .collect()
    }
}
