//! The result of an approval: permission to carry out exactly one digest, a bounded number of
//! times, before a deadline.

use crate::{Digest, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub id: String,
    pub digest: Digest,
    pub max_uses: u32,
    pub uses: u32,
    pub expires_at: Timestamp,
}

impl Grant {
    pub fn single_use(id: String, digest: Digest, now: Timestamp, ttl_seconds: u64) -> Self {
        let ttl = chrono::Duration::seconds(i64::try_from(ttl_seconds).unwrap_or(i64::MAX / 1000));
        Self {
            id,
            digest,
            max_uses: 1,
            uses: 0,
            expires_at: now + ttl,
        }
    }

    pub fn is_expired(&self, now: Timestamp) -> bool {
        now >= self.expires_at
    }

    pub fn uses_left(&self) -> u32 {
        self.max_uses.saturating_sub(self.uses)
    }
}
