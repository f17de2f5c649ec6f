//! The shared suite against PostgreSQL, each test in a fresh schema of the database named by
//! `COUNTERSIGN_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`). Without
//! that variable the tests print a note and pass without running.

use super::PgStore;
use crate::Store;
use crate::suite::Backend;
use async_trait::async_trait;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

const URL_VAR: &str = "COUNTERSIGN_TEST_POSTGRES_URL";

struct PgBackend {
    options: PgConnectOptions,
    schema: String,
}

impl PgBackend {
    /// A backend on a new, empty schema; `None` (with a note) when no database is configured.
    async fn new() -> Option<Self> {
        let Ok(url) = std::env::var(URL_VAR) else {
            eprintln!("note: {URL_VAR} is not set; skipping this PostgreSQL store test");
            return None;
        };
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let schema = format!(
            "cs_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            chrono::Utc::now().timestamp_millis()
        );
        let base: PgConnectOptions = url.parse().expect("a PostgreSQL URL");
        let mut conn = base.connect().await.expect("connect to the test database");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await
            .expect("create the test schema");
        conn.close().await.ok();
        let options = base.options([("search_path", schema.as_str())]);
        Some(PgBackend { options, schema })
    }

    async fn tamper(&self, sql: &'static str, seq: u64, bytes: Option<Vec<u8>>) {
        let mut conn = self
            .options
            .connect()
            .await
            .expect("a tampering connection");
        sqlx::query("DROP TRIGGER IF EXISTS audit_no_change ON audit")
            .execute(&mut conn)
            .await
            .expect("drop trigger");
        let mut query = sqlx::query(sql);
        if let Some(bytes) = bytes {
            query = query.bind(bytes);
        }
        let done = query
            .bind(i64::try_from(seq).expect("small seq"))
            .execute(&mut conn)
            .await
            .expect("tamper");
        assert_eq!(done.rows_affected(), 1);
    }
}

#[async_trait]
impl Backend for PgBackend {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(
            PgStore::connect_with(self.options.clone())
                .await
                .expect("connect"),
        )
    }

    async fn overwrite_audit_bytes(&self, seq: u64, bytes: Vec<u8>) {
        self.tamper(
            "UPDATE audit SET bytes = $1 WHERE seq = $2",
            seq,
            Some(bytes),
        )
        .await;
    }

    async fn overwrite_request(&self, id: &str, body: &str, state: &str) {
        let mut conn: PgConnection = self.options.connect().await.expect("connect");
        let done = sqlx::query("UPDATE requests SET body = $1, state = $2 WHERE id = $3")
            .bind(body)
            .bind(state)
            .bind(id)
            .execute(&mut conn)
            .await
            .expect("tamper");
        assert_eq!(done.rows_affected(), 1);
    }

    async fn delete_audit_entry(&self, seq: u64) {
        self.tamper("DELETE FROM audit WHERE seq = $1", seq, None)
            .await;
    }

    async fn forget_tree(&self) {
        let mut conn: PgConnection = self.options.connect().await.expect("connect");
        for sql in [
            "DROP TRIGGER IF EXISTS audit_no_change ON audit",
            "UPDATE audit SET nodes = NULL",
            "UPDATE audit_head SET frontier = NULL",
        ] {
            sqlx::query(sql).execute(&mut conn).await.expect(sql);
        }
    }

    async fn cleanup(&self) {
        let mut conn: PgConnection = self.options.connect().await.expect("connect");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.schema
        )))
        .execute(&mut conn)
        .await
        .expect("drop the test schema");
    }
}

crate::store_suite!(PgBackend::new());
