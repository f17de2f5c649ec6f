//! SQLite's [`WriteTx`] primitives: the statements `crate::writes` runs inside the writer's
//! open transaction (request rows, runs, keys, factors, parked calls). The steps of each
//! write are in `crate::writes`, not here.

use super::op::Tx;
use super::op::is_unique_violation;
use crate::StoreError;
use crate::audit_log::Journal;
use crate::columns::{RequestColumns, millis, parse_run_state, run_state_str, signed};
use crate::writes::{StoredRow, WriteTx};
use countersign_core::{PrincipalId, Run, RunState, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};

type Conn = Connection;

/// SQLite's primitives are synchronous: these futures never wait, and the writer thread drives
/// them with `block_on`.
impl WriteTx for Tx<'_> {
    fn journal(&mut self) -> &mut Journal {
        self.journal
    }

    async fn savepoint(&mut self) -> Result<(), StoreError> {
        if !self.savepoint {
            self.conn.prepare_cached("SAVEPOINT op")?.execute([])?;
            self.savepoint = true;
        }
        Ok(())
    }

    async fn run_facts(
        &mut self,
        run: &str,
        requester: Option<&str>,
    ) -> Result<(Option<RunState>, bool), StoreError> {
        run_facts(self.conn, run, requester)
    }

    async fn load_row(&mut self, id: &str) -> Result<Option<StoredRow>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT body, audit_seqs FROM requests WHERE id = ?1")?
            .query_row([id], stored_row)
            .optional()?)
    }

    async fn held_requests(&mut self, run: &str) -> Result<Vec<StoredRow>, StoreError> {
        load_rows(
            self.conn,
            "SELECT body, audit_seqs FROM requests \
             WHERE run = ?1 AND state = 'pending' AND held = 1 ORDER BY created_at, id",
            run,
        )
    }

    async fn pending_requests(&mut self, run: &str) -> Result<Vec<StoredRow>, StoreError> {
        load_rows(
            self.conn,
            "SELECT body, audit_seqs FROM requests WHERE run = ?1 AND state = 'pending' \
             ORDER BY created_at, id",
            run,
        )
    }

    async fn audit_entry(&mut self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT bytes FROM audit WHERE seq = ?1")?
            .query_row([signed(seq, "audit seq")?], |row| row.get(0))
            .optional()?)
    }

    async fn insert_request(&mut self, row: &RequestColumns) -> Result<(), StoreError> {
        insert_request(self.conn, row)
    }

    async fn save_request(
        &mut self,
        row: &RequestColumns,
        audit_seqs: &str,
    ) -> Result<(), StoreError> {
        save_request(self.conn, row, audit_seqs)
    }

    async fn mark_notify(&mut self, request: &str, now: Timestamp) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO notify_queue (request_id, due_at, generation) VALUES (?1, ?2, 1) \
                 ON CONFLICT (request_id) DO UPDATE SET due_at = excluded.due_at, \
                 generation = notify_queue.generation + 1",
            )?
            .execute(params![request, millis(now)])?;
        Ok(())
    }

    async fn upsert_run(&mut self, run: &Run) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO runs (id, state, updated_by, updated_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (id) DO UPDATE SET state = excluded.state, \
                 updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            )?
            .execute(params![
                run.id,
                run_state_str(run.state),
                run.updated_by.as_str(),
                millis(run.updated_at)
            ])?;
        Ok(())
    }

    async fn insert_key(
        &mut self,
        key_hash: &str,
        principal: &PrincipalId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO api_keys (key_hash, principal, created_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![key_hash, principal.as_str(), millis(now)])
            .map_err(|e| match is_unique_violation(&e) {
                true => StoreError::Conflict("an API key with this hash".into()),
                false => e.into(),
            })?;
        Ok(())
    }

    async fn delete_keys(&mut self, principal: &PrincipalId) -> Result<u64, StoreError> {
        let n = self
            .conn
            .prepare_cached("DELETE FROM api_keys WHERE principal = ?1")?
            .execute([principal.as_str()])?;
        Ok(n as u64)
    }

    async fn delete_sessions(&mut self, principal: &PrincipalId) -> Result<u64, StoreError> {
        let n = self
            .conn
            .prepare_cached("DELETE FROM console_sessions WHERE principal = ?1")?
            .execute([principal.as_str()])?;
        Ok(n as u64)
    }

    async fn insert_passkey(&mut self, p: &crate::StoredPasskey) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO webauthn_credentials \
                 (credential_id, principal, passkey, created_at, last_used_at) \
                 VALUES (?1, ?2, ?3, ?4, NULL)",
            )?
            .execute(params![
                p.credential_id,
                p.principal.as_str(),
                p.passkey,
                millis(p.created_at)
            ])
            .map_err(|e| match is_unique_violation(&e) {
                true => StoreError::Conflict("a passkey with this credential id".into()),
                false => e.into(),
            })?;
        Ok(())
    }

    async fn insert_factor_change(&mut self, c: &crate::FactorChange) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO factor_changes (principal, at, change, proof, actor) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                c.principal.as_str(),
                millis(c.at),
                c.change.as_str(),
                c.proof.as_str(),
                c.actor
            ])?;
        Ok(())
    }

    async fn delete_factors(
        &mut self,
        principal: &PrincipalId,
    ) -> Result<crate::FactorsRemoved, StoreError> {
        let p = principal.as_str();
        let totp = self
            .conn
            .prepare_cached("DELETE FROM totp WHERE principal = ?1")?
            .execute([p])?;
        let passkeys = self
            .conn
            .prepare_cached("DELETE FROM webauthn_credentials WHERE principal = ?1")?
            .execute([p])?;
        self.conn
            .prepare_cached("DELETE FROM webauthn_ceremonies WHERE principal = ?1")?
            .execute([p])?;
        Ok(crate::FactorsRemoved {
            totp: totp > 0,
            passkeys: passkeys as u64,
        })
    }

    async fn upsert_totp(
        &mut self,
        principal: &PrincipalId,
        secret: &[u8],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO totp (principal, secret, last_step, enrolled_at) \
                 VALUES (?1, ?2, NULL, ?3) \
                 ON CONFLICT (principal) DO UPDATE SET secret = excluded.secret, \
                 last_step = NULL, enrolled_at = excluded.enrolled_at",
            )?
            .execute(params![principal.as_str(), secret, millis(now)])?;
        Ok(())
    }
    async fn parked_call(
        &mut self,
        requester: &str,
        digest: &str,
    ) -> Result<Option<String>, StoreError> {
        super::parked::get_in(self, requester, digest)
    }

    async fn park_call(
        &mut self,
        requester: &str,
        digest: &str,
        request: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        // `submit_parked` opened the savepoint before its first statement.
        super::parked::park_rows(self, requester, digest, request, at)
    }

    async fn unpark_call(
        &mut self,
        requester: &str,
        digest: &str,
        request: &str,
    ) -> Result<(), StoreError> {
        super::parked::unpark(self, requester, digest, request).map(drop)
    }

    async fn park_counted(
        &mut self,
        requester: &str,
        digest: &str,
        request: &str,
        uses: u32,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        super::parked::park_counted(self, requester, digest, request, uses, at)
    }

    async fn take_use(
        &mut self,
        requester: &str,
        digest: &str,
    ) -> Result<Option<(String, u32)>, StoreError> {
        super::parked::take_use(self, requester, digest)
    }

    async fn take_use_of(
        &mut self,
        requester: &str,
        digest: &str,
        request: &str,
    ) -> Result<bool, StoreError> {
        super::parked::take_use_of(self, requester, digest, request)
    }

    fn abandon(&mut self, error: StoreError) {
        self.broken.get_or_insert(error);
    }

    async fn give_back_use(&mut self, requester: &str, digest: &str) -> Result<(), StoreError> {
        super::parked::exec_pair(self, crate::read::GIVE_BACK_USE, requester, digest, None)
    }

    async fn uses_left(
        &mut self,
        requester: &str,
        digest: &str,
        request: &str,
    ) -> Result<Option<u32>, StoreError> {
        super::parked::uses_left_in(self, requester, digest, request)
    }

    async fn end_uses(
        &mut self,
        requester: &str,
        digest: &str,
        request: &str,
    ) -> Result<(), StoreError> {
        super::parked::exec_pair(
            self,
            crate::read::END_USES,
            requester,
            digest,
            Some(request),
        )
    }
}

fn run_facts(
    conn: &Conn,
    run: &str,
    requester: Option<&str>,
) -> Result<(Option<RunState>, bool), StoreError> {
    let (state, paused_by_request) = conn
        .prepare_cached(
            "SELECT (SELECT state FROM runs WHERE id = ?1), \
             EXISTS (SELECT 1 FROM requests WHERE run = ?1 AND pauses_run = 1 \
             AND (?2 IS NULL OR requester = ?2))",
        )?
        .query_row(params![run, requester], |row| {
            Ok((row.get::<_, Option<String>>(0)?, row.get::<_, bool>(1)?))
        })?;
    Ok((
        state.as_deref().map(parse_run_state).transpose()?,
        paused_by_request,
    ))
}

fn stored_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRow> {
    Ok(StoredRow {
        body: row.get(0)?,
        audit_seqs: row.get(1)?,
    })
}

/// The rows a one-parameter query selects (`body, audit_seqs`).
fn load_rows(conn: &Conn, sql: &'static str, param: &str) -> Result<Vec<StoredRow>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map([param], stored_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

fn insert_request(conn: &Conn, c: &RequestColumns) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO requests \
         (id, state, run, requester, created_at, expires_at, held, pauses_run, body, \
         audit_seqs, exec_deadline) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        c.id,
        c.state,
        c.run,
        c.requester,
        c.created_at,
        c.expires_at,
        c.held,
        c.pauses_run,
        c.body,
        c.audit_seqs,
        c.exec_deadline
    ])
    .map_err(|e| match is_unique_violation(&e) {
        true => StoreError::Conflict(format!("request {}", c.id)),
        false => e.into(),
    })?;
    Ok(())
}

fn save_request(conn: &Conn, c: &RequestColumns, audit_seqs: &str) -> Result<(), StoreError> {
    let updated = conn
        .prepare_cached(
            "UPDATE requests SET state = ?2, run = ?3, requester = ?4, created_at = ?5, \
             expires_at = ?6, held = ?7, pauses_run = ?8, body = ?9, \
             audit_seqs = audit_seqs || ?10, exec_deadline = ?11 WHERE id = ?1",
        )?
        .execute(params![
            c.id,
            c.state,
            c.run,
            c.requester,
            c.created_at,
            c.expires_at,
            c.held,
            c.pauses_run,
            c.body,
            audit_seqs,
            c.exec_deadline
        ])?;
    match updated {
        1 => Ok(()),
        _ => Err(StoreError::NotFound),
    }
}
