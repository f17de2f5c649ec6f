//! Countersign's audit record: what one entry says, the exact bytes it is hashed over, its leaf
//! hash (RFC 9162), the hash chain that links each entry to all before it, the Merkle tree over
//! the leaves (RFC 9162 §2.1) with inclusion and consistency proofs, signed checkpoints (C2SP
//! tlog-checkpoint in a C2SP signed note, Ed25519), DSSE-signed in-toto attestations, and the
//! offline check that recomputes all of it and names the first entry that does not add up.
//!
//! Architecture invariant: this crate does no I/O and knows no database. Storage hands it
//! [`StoredEntry`] values (or an export's lines) and gets an [`AuditReport`] back, and fetches
//! the subtree hashes a proof plan names; so `countersign audit verify` trusts nothing but
//! these few modules.
#![forbid(unsafe_code)]

pub mod attestation;
pub mod checkpoint;
pub mod dsse;
mod entry;
pub mod merkle;
pub mod note;
mod verify;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use entry::{AuditEntry, LEAF_PREFIX, StoredEntry, UnsequencedEntry, chain_hash, format_at};
pub use merkle::{Frontier, Hash, NodeId, TreeError};
pub use note::{NoteError, NoteSigner, NoteVerifier};
pub use verify::{AuditFault, AuditReport, Verifier, verify};
