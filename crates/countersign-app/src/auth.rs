//! Authentication: an API key in `Authorization: Bearer <key>` names a principal. Keys are
//! random, shown once at creation, and stored only as their SHA-256 hash; lookups go by hash,
//! so the server never compares a secret byte by byte and never holds one after the request.
//! A key found is remembered for [`KEY_CACHE_TTL`] only, so a key revoked (`countersign key
//! revoke`, possibly from another process) stops working on every replica within that time,
//! while the agent API path still reads the store at most once per key per interval.

use crate::directory::Directory;
use base64::Engine as _;
use countersign_core::{Principal, PrincipalId};
use countersign_store::Store;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long a key found in the store is trusted without asking the store again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(10);

/// Prefix that makes a leaked key easy to recognise (and to scan for).
pub const KEY_PREFIX: &str = "cs_";

/// A fresh API key: the prefix and 32 random bytes, base64url.
pub fn new_key() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The stored form of a key: hex SHA-256. Keys carry 256 bits of entropy, so a fast hash is
/// enough (no password-hashing function is needed to resist guessing).
pub fn key_hash(key: &str) -> String {
    countersign_core::digest::hex32_string(&Sha256::digest(key.as_bytes()).into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("send your API key as `Authorization: Bearer <key>`")]
    Missing,
    #[error("the API key is not valid")]
    Invalid,
    #[error("the API key belongs to a principal that is no longer configured")]
    UnknownPrincipal,
}

pub struct Authenticator {
    store: Arc<dyn Store>,
    directory: Arc<Directory>,
    /// key hash → principal id and when it was read; entries older than [`KEY_CACHE_TTL`]
    /// are read again.
    cache: RwLock<HashMap<String, (PrincipalId, Instant)>>,
}

impl Authenticator {
    pub fn new(store: Arc<dyn Store>, directory: Arc<Directory>) -> Self {
        Self {
            store,
            directory,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// The principal behind an `Authorization` header value.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        self.authenticate_with(header, true).await
    }

    /// As [`Authenticator::authenticate`], always asking the store: for signing in to the
    /// console, where a key revoked a moment ago must not start a session.
    pub async fn authenticate_fresh(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        self.authenticate_with(header, false).await
    }

    async fn authenticate_with(
        &self,
        header: Option<&str>,
        use_cache: bool,
    ) -> Result<Principal, AuthError> {
        let key = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or(AuthError::Missing)?;
        if !key.starts_with(KEY_PREFIX) || key.len() > 128 {
            return Err(AuthError::Invalid);
        }
        let hash = key_hash(key);
        let cached = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&hash)
            .filter(|(_, read)| use_cache && read.elapsed() < KEY_CACHE_TTL)
            .map(|(id, _)| id.clone());
        let id = match cached {
            Some(id) => id,
            None => {
                let id = self
                    .store
                    .principal_for_key(&hash)
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, "key lookup failed");
                        AuthError::Invalid
                    })?
                    .ok_or_else(|| {
                        // Revoked (or never valid): forget it here at once.
                        self.cache
                            .write()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&hash);
                        AuthError::Invalid
                    })?;
                self.cache
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(hash, (id.clone(), Instant::now()));
                id
            }
        };
        self.directory
            .get(&id)
            .cloned()
            .ok_or(AuthError::UnknownPrincipal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_prefixed() {
        let (a, b) = (new_key(), new_key());
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX) && a.len() == KEY_PREFIX.len() + 43);
        assert_eq!(key_hash(&a).len(), 64);
    }
}
