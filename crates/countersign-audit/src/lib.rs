//! Countersign's audit record: what one entry says, the exact bytes it is hashed over, its leaf
//! hash (RFC 9162), the hash chain that links each entry to all before it, and the offline check
//! that recomputes all of it and names the first entry that does not add up.
//!
//! Architecture invariant: this crate does no I/O and knows no database. Storage hands it
//! [`StoredEntry`] values and gets an [`AuditReport`] back, so `countersign audit verify` trusts
//! nothing but these few functions. (A later issue adds the Merkle tree and signed checkpoints
//! here, over the same leaf hashes.)
#![forbid(unsafe_code)]

mod entry;
mod verify;

pub use entry::{AuditEntry, LEAF_PREFIX, StoredEntry, UnsequencedEntry, chain_hash, format_at};
pub use verify::{AuditFault, AuditReport, Verifier, verify};
