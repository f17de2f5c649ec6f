//! Parked tool calls, backend-neutral: which request a retry of a held MCP tool call attaches
//! to. The gateway answers a call that waited `hold_for` with "approval pending"; a retry by the
//! same requester of the action with the same digest must find that request again, on any
//! replica and after a restart, so the pair (requester, digest) is kept in `parked_calls`.
//!
//! Must not: decide anything about the request it names (the gateway reads the request and its
//! state), or record audit entries (parking is bookkeeping, not a decision).

use crate::columns::millis;
use countersign_core::digest::hex32_string;
use countersign_core::{Digest, Timestamp};

/// How long a parked call is kept: a park forgets pairs parked more than this before it.
pub const PARKED_RETENTION_MS: i64 = 7 * 24 * 3_600_000;

/// The digest as stored: lower-case hex, without the `sha256:` prefix its `Display` adds.
pub(crate) fn digest_column(digest: &Digest) -> String {
    hex32_string(digest.as_bytes())
}

/// Pairs parked before this (in milliseconds) are forgotten by a park at `at`.
pub(crate) fn forget_before(at: Timestamp) -> i64 {
    millis(at).saturating_sub(PARKED_RETENTION_MS)
}
