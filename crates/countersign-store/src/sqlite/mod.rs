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
mod tasks;
mod tx;
mod writer;

#[cfg(test)]
mod tests;

use crate::audit_log::{entries_or_corrupt, verify_in_pages};
use crate::parked::digest_column;
use crate::read::{Dialect, Reads};
use crate::submission::PreparedSubmission;
use crate::{
    Ceremony, CeremonyBinding, CeremonyRefusal, ChannelMessage, ConversationRef, NotifyClaim,
    RequestQuery, RunChange, Store, StoreError, StoredCheckpoint, StoredPasskey, Submit, TotpState,
    Updated,
};
use async_trait::async_trait;
use countersign_audit::merkle::{Hash, NodeId};
use countersign_audit::{AuditReport, StoredEntry};
use countersign_core::run::RunRefusal;
use countersign_core::{
    Digest, Event, PrincipalId, Refusal, Request, Run, RunGate, RunState, Timestamp, Transition,
};
use op::Op;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};
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
        let mut key = crate::writes::ParkedKey::of(parking);
        if run.is_none() {
            // As in `submit`: prepared here, in parallel with other callers; the submission
            // itself only if no earlier approval's request was built ahead (it most likely
            // covers it, and the write prepares this one only if not).
            let (prepared, submit) = if key.prebuild(now)? {
                (None, Some(submit))
            } else {
                let prepared = PreparedSubmission::new(None, RunGate::Open, now, submit)?;
                (Some(Box::new(prepared)), None)
            };
            return self
                .write(|reply| Op::SubmitParked {
                    key,
                    run: None,
                    prepared,
                    submit,
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
        change: Transition,
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
        self.read().get_run(run).await
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
        self.read().session_get(id_hash).await
    }

    async fn session_end(&self, id_hash: &str) -> Result<bool, StoreError> {
        let id_hash = id_hash.to_string();
        self.write(|reply| Op::SessionEnd { id_hash, reply }).await
    }

    async fn lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.write(|reply| Op::Lease {
            name,
            holder,
            now,
            until,
            reply,
        })
        .await
    }

    async fn first_sight(
        &self,
        key: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.write(|reply| Op::FirstSight {
            key,
            now,
            until,
            reply,
        })
        .await
    }

    async fn task_start(&self, task: &crate::StoredTask) -> Result<bool, StoreError> {
        let task = Box::new(task.clone());
        self.write(|reply| Op::TaskStart { task, reply }).await
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
        let id = id.to_owned();
        self.write(|reply| Op::TaskClaim {
            id,
            now,
            until,
            reply,
        })
        .await
    }

    async fn task_end(&self, id: &str, end: &crate::TaskEnd) -> Result<bool, StoreError> {
        let (id, end) = (id.to_owned(), Box::new(end.clone()));
        self.write(|reply| Op::TaskEnd { id, end, reply }).await
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
        self.read().totp_get(principal).await
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
        self.read().passkeys(principal).await
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
        self.read().factor_changes(principal, since).await
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
        self.read().channel_messages(request_id).await
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
        self.read().conversation(channel, conversation).await
    }

    async fn audit_size(&self) -> Result<u64, StoreError> {
        self.read().audit_size().await
    }

    async fn audit_nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, StoreError> {
        self.read().audit_nodes(ids).await
    }

    async fn save_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<(), StoreError> {
        let checkpoint = Box::new(checkpoint.clone());
        self.write(|reply| Op::SaveCheckpoint { checkpoint, reply })
            .await
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

impl SqliteStore {
    /// The reads (`crate::read`), on the read-only pool.
    fn read(&self) -> Reads<'_, Sqlite> {
        Reads(&self.reads)
    }
}

/// Where SQLite's reads differ from PostgreSQL's (see `crate::read`).
impl Dialect for Sqlite {
    /// SQLite's default collation (`BINARY`) already compares ids byte by byte.
    const REQUEST_ROWS: &'static str =
        "SELECT id, body, audit_seqs FROM requests WHERE id > $1 ORDER BY id LIMIT $2";

    /// No arrays in SQLite: one placeholder per seq.
    fn audit_nodes(seqs: Vec<i64>) -> QueryBuilder<Sqlite> {
        let mut sql = QueryBuilder::new("SELECT seq, leaf, nodes FROM audit WHERE seq IN (");
        let mut list = sql.separated(", ");
        for seq in seqs {
            list.push_bind(seq);
        }
        sql.push(")");
        sql
    }
}
