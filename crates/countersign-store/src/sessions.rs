//! Console sessions as the store keeps them, so that signing out and revoking a person's keys
//! end a session on every replica: a row per signed-in browser, keyed by the SHA-256 of the
//! random session id its cookie carries (the id itself is never stored, so a copy of the
//! database signs no one in). The console reads the row on every request and refuses a cookie
//! whose row is gone or expired.

use countersign_core::{PrincipalId, Timestamp};

/// One signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// Hex SHA-256 of the session id in the cookie.
    pub id_hash: String,
    pub principal: PrincipalId,
    /// How the person signed in: `key` or `oidc`.
    pub via: String,
    /// Stored to the millisecond.
    pub created_at: Timestamp,
    /// Stored to the millisecond.
    pub expires_at: Timestamp,
}

impl ConsoleSession {
    /// A session read back from its columns (times in milliseconds).
    pub(crate) fn from_columns(
        id_hash: String,
        principal: String,
        via: String,
        created_at: i64,
        expires_at: i64,
    ) -> Result<Self, crate::StoreError> {
        Ok(ConsoleSession {
            id_hash,
            principal: crate::columns::principal_from_column(principal)?,
            via,
            created_at: crate::columns::from_millis(created_at)?,
            expires_at: crate::columns::from_millis(expires_at)?,
        })
    }
}
