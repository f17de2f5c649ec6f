//! SQLite's SQL for the writer: the dispatch of each [`Op`] to its write (the [`WriteTx`]
//! primitives that `crate::writes` runs are in `tx`), and writing out the group's audit
//! entries. The steps of each write are in `crate::writes`, not here.

use super::notify;
use super::op::{Answer, Op, Tx, hold, is_unique_violation};
use crate::StoreError;
use crate::audit_log::AuditHead;
use crate::columns::{millis, signed};
use crate::writes;
use countersign_audit::StoredEntry;
use countersign_audit::merkle::Frontier;
use countersign_core::{PrincipalId, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};

type Conn = Connection;

/// Runs `op` and holds its answer until the group commits.
pub(super) fn execute(op: Op, tx: &mut Tx<'_>) -> (Answer, bool) {
    use futures::executor::block_on;
    match op {
        Op::Submit {
            run,
            now,
            submit,
            reply,
        } => hold(
            reply,
            block_on(writes::submit_request(
                tx,
                run.as_ref().map(|(run, requester)| crate::RunOf {
                    run: run.as_str(),
                    requester,
                }),
                now,
                submit,
            )),
        ),
        Op::SubmitParked {
            key,
            run,
            prepared,
            submit,
            now,
            reply,
        } => {
            let pending = match (prepared, &run, submit) {
                (Some(prepared), _, _) => Ok(writes::Pending::Prepared(prepared)),
                (None, Some((run, requester)), Some(submit)) => Ok(writes::Pending::Gated {
                    run: crate::RunOf {
                        run: run.as_str(),
                        requester,
                    },
                    submit,
                }),
                (None, None, Some(submit)) => Ok(writes::Pending::Unprepared(submit)),
                _ => Err(StoreError::Invalid(
                    "a parked submission with neither a prepared request nor a run".into(),
                )),
            };
            let result = match pending {
                Ok(pending) => block_on(writes::submit_parked(tx, key, now, pending)),
                Err(e) => Err(e),
            };
            hold(reply, result)
        }
        Op::Insert { prepared, reply } => {
            hold(reply, block_on(writes::insert_prepared(tx, *prepared)))
        }
        Op::Update {
            id,
            actor,
            now,
            change,
            reply,
        } => hold(
            reply,
            block_on(writes::update_request(tx, &id, &actor, now, change)),
        ),
        Op::SetRun {
            run,
            target,
            actor,
            now,
            reply,
        } => hold(
            reply,
            block_on(writes::set_run_state(tx, run, target, &actor, now)),
        ),
        Op::CreateKey {
            key_hash,
            principal,
            now,
            reply,
        } => hold(
            reply,
            block_on(writes::create_key(tx, &key_hash, principal, now)),
        ),
        Op::RevokeKeys {
            principal,
            actor,
            now,
            reply,
        } => hold(
            reply,
            block_on(writes::revoke_keys(tx, principal, &actor, now)),
        ),
        Op::SessionStart { session, reply } => {
            hold(reply, super::sessions::start(tx.conn, &session))
        }
        Op::SessionEnd { id_hash, reply } => hold(reply, super::sessions::end(tx.conn, &id_hash)),
        Op::FirstSight {
            key,
            now,
            until,
            reply,
        } => hold(
            reply,
            super::tasks::first_sight(tx.conn, &key, millis(now), millis(until)),
        ),
        Op::Lease {
            name,
            holder,
            now,
            until,
            reply,
        } => hold(
            reply,
            super::tasks::lease(tx.conn, &name, &holder, millis(now), millis(until)),
        ),
        Op::TaskStart { task, reply } => hold(reply, super::tasks::start(tx.conn, &task)),
        Op::TaskClaim {
            id,
            now,
            until,
            reply,
        } => hold(
            reply,
            super::tasks::claim(tx.conn, &id, millis(now), millis(until)),
        ),
        Op::TaskEnd { id, end, reply } => hold(reply, super::tasks::end(tx.conn, &id, &end)),
        Op::Park {
            requester,
            digest,
            request,
            at,
            reply,
        } => hold(
            reply,
            super::parked::park(tx, &requester, &digest, &request, at),
        ),
        Op::Unpark {
            requester,
            digest,
            request,
            reply,
        } => hold(
            reply,
            super::parked::unpark(tx, &requester, &digest, &request),
        ),
        Op::TotpEnroll {
            principal,
            secret,
            proof,
            now,
            reply,
        } => hold(
            reply,
            block_on(writes::totp_enroll(tx, principal, &secret, proof, now)),
        ),
        Op::MfaReset {
            principal,
            actor,
            now,
            reply,
        } => hold(
            reply,
            block_on(writes::mfa_reset(tx, principal, &actor, now)),
        ),
        Op::TotpUseStep {
            principal,
            step,
            reply,
        } => hold(reply, totp_use_step(tx, &principal, step)),
        Op::Append {
            actor,
            event,
            policy,
            now,
            reply,
        } => {
            let seq = writes::append_event(tx.journal, &actor, &event, policy.as_deref(), now);
            hold(reply, Ok(seq))
        }
        Op::ClaimNotifications {
            now,
            lease_until,
            limit,
            reply,
        } => hold(reply, notify::claim(tx, now, lease_until, limit)),
        Op::FinishNotification {
            request_id,
            generation,
            next,
            now,
            reply,
        } => hold(
            reply,
            notify::finish(tx, &request_id, generation, next, now),
        ),
        Op::SaveChannelMessage { message, reply } => {
            hold(reply, notify::save_message(tx, &message))
        }
        Op::SaveConversation { reference, reply } => {
            hold(reply, notify::save_conversation(tx, &reference))
        }
        Op::PasskeyEnroll {
            passkey,
            proof,
            reply,
        } => hold(reply, block_on(writes::passkey_enroll(tx, &passkey, proof))),
        Op::PasskeyUsed {
            principal,
            credential_id,
            passkey,
            now,
            reply,
        } => hold(
            reply,
            passkey_used(tx.conn, &principal, &credential_id, &passkey, now),
        ),
        Op::CeremonyBegin { ceremony, reply } => hold(reply, ceremony_begin(tx.conn, &ceremony)),
        Op::CeremonyTake {
            id,
            binding,
            now,
            reply,
        } => hold(reply, ceremony_take(tx.conn, &id, &binding, now)),
        Op::SaveCheckpoint { checkpoint, reply } => {
            hold(reply, save_checkpoint(tx.conn, &checkpoint))
        }
        Op::SetCursor {
            name,
            next_seq,
            reply,
        } => hold(reply, set_cursor(tx.conn, &name, next_seq)),
    }
}

fn save_checkpoint(conn: &Conn, c: &crate::StoredCheckpoint) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO audit_checkpoints (size, root, note, signed_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (size) DO NOTHING",
    )?
    .execute(params![
        signed(c.size, "checkpoint size")?,
        c.root.as_slice(),
        c.note,
        millis(c.signed_at)
    ])?;
    Ok(())
}

fn set_cursor(conn: &Conn, name: &str, next_seq: u64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO audit_cursors (name, next_seq) VALUES (?1, ?2) \
         ON CONFLICT (name) DO UPDATE SET next_seq = excluded.next_seq",
    )?
    .execute(params![name, signed(next_seq, "cursor")?])?;
    Ok(())
}

/// The tree's frontier after the last stored entry (`size` entries): one read of at most 64
/// rows. Entries stored before the tree existed (schema version 3 or older) get their nodes
/// first, once, in pages.
pub(super) fn load_tree(conn: &Conn, size: u64) -> Result<Frontier, StoreError> {
    let untreed: Option<i64> = conn
        .prepare_cached("SELECT MIN(seq) FROM audit WHERE nodes IS NULL")?
        .query_row([], |row| row.get(0))?;
    if untreed.is_some() {
        return backfill_tree(conn, size);
    }
    let ids = Frontier::subtrees(size);
    let mut rows = Vec::with_capacity(ids.len());
    let mut stmt = conn.prepare_cached("SELECT leaf, nodes FROM audit WHERE seq = ?1")?;
    for id in &ids {
        let seq = crate::tree::row_of(*id);
        let (leaf, nodes) = stmt
            .query_row([signed(seq, "audit seq")?], |row| {
                Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Option<Vec<u8>>>(1)?))
            })
            .optional()?
            .ok_or_else(|| StoreError::Corrupt(format!("audit entry {seq} is missing")))?;
        rows.push((seq, leaf, nodes));
    }
    let hashes = crate::tree::hashes_from_rows(&ids, rows)?;
    Frontier::from_parts(size, hashes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Computes the tree over every stored entry and fills in the `nodes` still missing, in one
/// transaction, a page of rows at a time.
fn backfill_tree(conn: &Conn, size: u64) -> Result<Frontier, StoreError> {
    const PAGE: i64 = 10_000;
    tracing::info!(
        entries = size,
        "building the audit log's Merkle tree (once)"
    );
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        let mut tree = Frontier::new();
        let mut read = conn.prepare(
            "SELECT seq, leaf, nodes IS NULL FROM audit WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
        )?;
        let mut write = conn.prepare("UPDATE audit SET nodes = ?2 WHERE seq = ?1")?;
        loop {
            let from = i64::try_from(tree.size()).unwrap_or(i64::MAX);
            let rows = read
                .query_map(params![from, PAGE], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, Vec<u8>>(1)?,
                        row.get::<_, bool>(2)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let count = rows.len();
            for (seq, leaf, missing) in rows {
                let leaf = <[u8; 32]>::try_from(leaf.as_slice()).map_err(|_| {
                    StoreError::Corrupt(format!("audit entry {seq}: the leaf is not 32 bytes"))
                })?;
                let seq = crate::columns::unsigned(seq, "audit seq")?;
                let nodes = crate::tree::grow(&mut tree, seq, &leaf)?;
                if missing {
                    write.execute(params![signed(seq, "audit seq")?, nodes])?;
                }
            }
            if count < PAGE as usize {
                break;
            }
        }
        if tree.size() != size {
            return Err(StoreError::Corrupt(format!(
                "the audit log has {} entries, its head says {size}",
                tree.size()
            )));
        }
        Ok(tree)
    })();
    match result {
        Ok(tree) => {
            conn.execute_batch("COMMIT")?;
            Ok(tree)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// The head after the last stored audit entry.
pub(super) fn load_head(conn: &Conn) -> Result<AuditHead, StoreError> {
    let last = conn
        .prepare_cached("SELECT seq, chain FROM audit ORDER BY seq DESC LIMIT 1")?
        .query_row([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
        })
        .optional()?;
    match last {
        None => Ok(AuditHead::empty()),
        Some((seq, chain)) => AuditHead::after_row(seq, &chain).map_err(StoreError::Corrupt),
    }
}

/// Replaces a passkey's JSON after a verified assertion: one statement.
fn passkey_used(
    conn: &Conn,
    principal: &PrincipalId,
    credential_id: &str,
    passkey: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE webauthn_credentials SET passkey = ?3, last_used_at = ?4 \
             WHERE principal = ?1 AND credential_id = ?2",
        )?
        .execute(params![
            principal.as_str(),
            credential_id,
            passkey,
            millis(now)
        ])?;
    match n {
        1 => Ok(()),
        _ => Err(StoreError::NotFound),
    }
}

fn ceremony_begin(conn: &Conn, c: &crate::Ceremony) -> Result<(), StoreError> {
    let b = &c.binding;
    conn.prepare_cached("DELETE FROM webauthn_ceremonies WHERE expires_at < ?1")?
        .execute([millis(c.expires_at) - crate::CEREMONY_RETENTION_MS])?;
    conn.prepare_cached(
        "INSERT INTO webauthn_ceremonies \
         (id, principal, kind, request_id, digest, decision, state, expires_at, used) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0)",
    )?
    .execute(params![
        c.id,
        b.principal.as_str(),
        b.kind.as_str(),
        b.request_id,
        b.digest,
        b.decision,
        c.state,
        millis(c.expires_at)
    ])
    .map_err(|e| match is_unique_violation(&e) {
        true => StoreError::Conflict("a ceremony with this id".into()),
        false => e.into(),
    })?;
    Ok(())
}

/// Takes a ceremony in one conditional statement; classifies a refusal afterwards.
fn ceremony_take(
    conn: &Conn,
    id: &str,
    b: &crate::CeremonyBinding,
    now: Timestamp,
) -> Result<Result<String, crate::CeremonyRefusal>, StoreError> {
    let now_ms = millis(now);
    let taken: Option<String> = conn
        .prepare_cached(
            "UPDATE webauthn_ceremonies SET used = 1 \
             WHERE id = ?1 AND used = 0 AND principal = ?2 AND kind = ?3 \
             AND request_id IS ?4 AND digest IS ?5 AND decision IS ?6 AND expires_at > ?7 \
             RETURNING state",
        )?
        .query_row(
            params![
                id,
                b.principal.as_str(),
                b.kind.as_str(),
                b.request_id,
                b.digest,
                b.decision,
                now_ms
            ],
            |row| row.get(0),
        )
        .optional()?;
    if let Some(state) = taken {
        return Ok(Ok(state));
    }
    let row = conn
        .prepare_cached(
            "SELECT principal, kind, request_id, digest, decision, expires_at, used \
             FROM webauthn_ceremonies WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get::<_, i64>(6)? != 0,
            ))
        })
        .optional()?;
    Ok(Err(crate::webauthn::refusal(row, b, now_ms)))
}

/// Answers whether `principal` may use TOTP step `step`, consuming it: one statement.
fn totp_use_step(tx: &mut Tx<'_>, principal: &PrincipalId, step: u64) -> Result<bool, StoreError> {
    let step = signed(step, "TOTP step")?;
    let used = tx
        .conn
        .prepare_cached(
            "UPDATE totp SET last_step = ?2 WHERE principal = ?1 \
             AND (last_step IS NULL OR last_step < ?2)",
        )?
        .execute(params![principal.as_str(), step])?;
    if used == 1 {
        return Ok(true);
    }
    let enrolled = tx
        .conn
        .prepare_cached("SELECT 1 FROM totp WHERE principal = ?1")?
        .query_row([principal.as_str()], |row| row.get::<_, i64>(0))
        .optional()?;
    match enrolled {
        Some(_) => Ok(false),
        None => Err(StoreError::NotFound),
    }
}

/// Writes the staged audit entries, in order, each with the tree nodes it completes, growing
/// `tree` as it goes (the caller reloads it should the commit fail).
pub(super) fn write_audit(
    conn: &Conn,
    entries: &[StoredEntry],
    tree: &mut Frontier,
) -> Result<(), StoreError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO audit (seq, bytes, leaf, chain, nodes) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut nodes = Vec::with_capacity(64 * 32);
    for e in entries {
        crate::tree::grow_into(tree, e.seq, &e.leaf, &mut nodes)?;
        insert.execute(params![
            signed(e.seq, "audit seq")?,
            e.bytes,
            e.leaf.as_slice(),
            e.chain.as_slice(),
            nodes.as_slice()
        ])?;
    }
    Ok(())
}
