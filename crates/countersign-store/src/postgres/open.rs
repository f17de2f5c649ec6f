//! Opening a PostgreSQL store: connecting, the migrations, the Merkle tree nodes of a log from
//! before they were stored, and the transaction every write runs in (under the audit head lock).

use super::*;
use crate::columns::unsigned;
use sqlx::Row;

impl PgStore {
    /// Connects to `url` (`postgres://user@host/db`) and applies the migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| StoreError::NoDatabase(format!("not a PostgreSQL URL ({e})")))?;
        Self::connect_with(options).await
    }

    /// Connects with explicit options and applies the migrations.
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        let size = build_tree_if_missing(&pool).await?;
        Ok(PgStore {
            pool,
            audit_size: Arc::new(watch::Sender::new(size)),
            changes: changes::Changes::new(),
        })
    }

    pub(super) async fn begin(&self) -> Result<PgTx, StoreError> {
        PgTx::begin(&self.pool, &self.audit_size, &self.changes.replica).await
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Builds the tree over entries stored before it existed (schema version 3 or older), once:
/// under the head lock, fills in every missing `nodes` and the head's frontier. Returns the
/// number of entries.
pub(super) async fn build_tree_if_missing(pool: &PgPool) -> Result<u64, StoreError> {
    const PAGE: i64 = 10_000;
    let mut tx = pool.begin().await?;
    let (head, tree) = tx::lock_head(&mut tx).await?;
    if tree.is_some() {
        tx.rollback().await?;
        return Ok(head.next_seq);
    }
    tracing::info!(
        entries = head.next_seq,
        "building the audit log's Merkle tree (once)"
    );
    let mut tree = Frontier::new();
    loop {
        let rows = sqlx::query(
            "SELECT seq, leaf, nodes IS NULL FROM audit WHERE seq >= $1 ORDER BY seq LIMIT $2",
        )
        .bind(i64::try_from(tree.size()).unwrap_or(i64::MAX))
        .bind(PAGE)
        .fetch_all(&mut *tx)
        .await?;
        let count = rows.len();
        for row in rows {
            let seq = unsigned(row.try_get(0)?, "an audit seq")?;
            let leaf: Vec<u8> = row.try_get(1)?;
            let leaf = <Hash>::try_from(leaf.as_slice()).map_err(|_| {
                StoreError::Corrupt(format!("audit entry {seq}: the leaf is not 32 bytes"))
            })?;
            let nodes = crate::tree::grow(&mut tree, seq, &leaf)?;
            if row.try_get::<bool, _>(2)? {
                sqlx::query("UPDATE audit SET nodes = $2 WHERE seq = $1")
                    .bind(crate::columns::signed(seq, "audit seq")?)
                    .bind(nodes)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        if count < PAGE as usize {
            break;
        }
    }
    if tree.size() != head.next_seq {
        return Err(StoreError::Corrupt(format!(
            "the audit log has {} entries, its head says {}",
            tree.size(),
            head.next_seq
        )));
    }
    sqlx::query("UPDATE audit_head SET frontier = $1 WHERE id = 1")
        .bind(tree.to_bytes())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(head.next_seq)
}

/// The number of committed audit entries, as the head says.
pub(super) async fn committed_size(pool: &PgPool) -> Result<u64, StoreError> {
    let next: i64 = sqlx::query_scalar("SELECT next_seq FROM audit_head WHERE id = 1")
        .fetch_one(pool)
        .await?;
    unsigned(next, "the next audit seq")
}
