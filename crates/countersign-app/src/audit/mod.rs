//! The gateway's side of the tamper-evident audit log: its Ed25519 signing key (a file created
//! on first start, mode 0600), the checkpoint signer (every N entries or T seconds), receipts
//! (entry indexes, a signed checkpoint and inclusion proofs) for vote and decision responses,
//! DSSE-signed attestations of requests, and the `audit` configuration section (`config`; the
//! outgoing webhooks are delivered by `countersign-channels`).
//!
//! It signs only what the store's tree says: roots come from `Store::audit_root`, never from
//! anything a caller sends.

pub mod config;

pub use config::{AuditConfig, WebhookConfig};

use countersign_audit::attestation::{self, AuditEvidence, EntryProof};
use countersign_audit::dsse::Envelope;
use countersign_audit::{Checkpoint, NoteSigner, NoteVerifier};
use countersign_core::{Request, Timestamp};
use countersign_store::{Store, StoreError, StoredCheckpoint};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Why the audit key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("audit key {path}: {message}")]
    File { path: String, message: String },
}

/// Reads the signing key at `path`, or creates it (named `name`) if there is no file yet.
pub fn load_or_create_key(path: &Path, name: &str) -> Result<NoteSigner, KeyError> {
    let err = |message: String| KeyError::File {
        path: path.display().to_string(),
        message,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(path)
                .map_err(|e| err(e.to_string()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(err(format!(
                    "is readable by others (mode {:o}); run `chmod 600 {}`",
                    mode & 0o777,
                    path.display()
                )));
            }
            NoteSigner::parse(&text).map_err(|e| err(e.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let signer = NoteSigner::generate(name).map_err(|e| err(e.to_string()))?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
            }
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| err(format!("cannot create it: {e}")))?;
            file.write_all(format!("{}\n", signer.to_private_string()).as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| err(format!("cannot write it: {e}")))?;
            tracing::info!(key = %signer.verifier(), path = %path.display(), "created the audit signing key");
            Ok(signer)
        }
        Err(e) => Err(err(e.to_string())),
    }
}

/// The default key name: `<host[:port] of public_url>/countersign`.
pub fn default_name(public_url: &str) -> String {
    let host = public_url
        .split_once("://")
        .map_or(public_url, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or("localhost");
    let host: String = host
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '+')
        .collect();
    format!(
        "{}/countersign",
        if host.is_empty() { "localhost" } else { &host }
    )
}

/// The audit side of a running gateway.
pub struct Audit {
    store: Arc<dyn Store>,
    signer: NoteSigner,
    pub origin: String,
    every: u64,
    interval: Duration,
    /// Serializes signing, so two callers never race to store the same size.
    signing: tokio::sync::Mutex<()>,
}

impl Audit {
    pub fn new(
        store: Arc<dyn Store>,
        signer: NoteSigner,
        origin: Option<String>,
        every: u64,
        interval: Duration,
    ) -> Self {
        let origin = origin.unwrap_or_else(|| signer.name().to_owned());
        Audit {
            store,
            signer,
            origin,
            every,
            interval,
            signing: tokio::sync::Mutex::new(()),
        }
    }

    /// The audit entries that record request `id`'s changes (`None`: no such request).
    pub async fn request_entries(&self, id: &str) -> Result<Option<Vec<u64>>, StoreError> {
        self.store.request_audit_seqs(id).await
    }

    /// Up to `limit` entries from seq `from` on, in order.
    pub async fn entries(
        &self,
        from: u64,
        limit: u32,
    ) -> Result<Vec<countersign_audit::StoredEntry>, StoreError> {
        self.store.audit_entries(from, limit).await
    }

    /// The latest checkpoint signed so far, without signing one.
    pub async fn latest_signed(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.store.latest_checkpoint().await
    }

    /// Checks the whole log (hash chain and tree) and every request row against its entries
    /// (invariant 10).
    pub async fn verify(
        &self,
    ) -> Result<
        (
            countersign_audit::AuditReport,
            Vec<countersign_store::RequestMismatch>,
        ),
        StoreError,
    > {
        Ok((
            self.store.verify_audit().await?,
            self.store.verify_requests().await?,
        ))
    }

    /// The leaf hash of entry `index` and its inclusion proof in the tree of `size` entries.
    pub async fn inclusion(
        &self,
        index: u64,
        size: u64,
    ) -> Result<(countersign_audit::Hash, Vec<countersign_audit::Hash>), StoreError> {
        let leaf = self
            .store
            .audit_nodes(&[countersign_audit::NodeId::new(0, index)])
            .await?;
        let hashes = self.store.inclusion_proof(index, size).await?;
        let leaf = leaf.into_iter().next().ok_or(StoreError::NotFound)?;
        Ok((leaf, hashes))
    }

    /// The proof that the tree of `from` entries is a prefix of the tree of `to` entries.
    pub async fn consistency(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<countersign_audit::Hash>, StoreError> {
        self.store.consistency_proof(from, to).await
    }

    /// How many entries the log holds.
    pub async fn size(&self) -> Result<u64, StoreError> {
        self.store.audit_size().await
    }

    /// Changes whenever an entry is appended (live pages listen to it).
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.store.audit_watch()
    }

    pub fn verifier(&self) -> NoteVerifier {
        self.signer.verifier()
    }

    pub fn signer(&self) -> &NoteSigner {
        &self.signer
    }

    /// Signs a checkpoint of the whole committed log and stores it (unless one of that size
    /// is stored already, which then stands). Returns the stored checkpoint.
    pub async fn sign_now(&self, now: Timestamp) -> Result<StoredCheckpoint, StoreError> {
        let _one_at_a_time = self.signing.lock().await;
        let size = self.store.audit_size().await?;
        if let Some(latest) = self.store.latest_checkpoint().await?
            && latest.size == size
        {
            return Ok(latest);
        }
        let root = self.store.audit_root(size).await?;
        let checkpoint = Checkpoint {
            origin: self.origin.clone(),
            size,
            root,
            extensions: vec![],
        };
        let note = checkpoint
            .sign(&self.signer)
            .map_err(|e| StoreError::Invalid(format!("signing a checkpoint: {e}")))?;
        let stored = StoredCheckpoint {
            size,
            root,
            note,
            signed_at: now,
        };
        self.store.save_checkpoint(&stored).await?;
        tracing::debug!(size, "checkpoint signed");
        Ok(stored)
    }

    /// The latest stored checkpoint, signing one first if there is none yet.
    pub async fn latest(&self, now: Timestamp) -> Result<StoredCheckpoint, StoreError> {
        match self.store.latest_checkpoint().await? {
            Some(c) => Ok(c),
            None => self.sign_now(now).await,
        }
    }

    /// Entries `seqs` with inclusion proofs against a checkpoint that covers them all.
    pub async fn evidence(
        &self,
        seqs: &[u64],
        now: Timestamp,
    ) -> Result<AuditEvidence, StoreError> {
        let latest = self.store.latest_checkpoint().await?;
        let covering = match (latest, seqs.iter().max()) {
            (Some(c), Some(max)) if c.size > *max => c,
            (Some(c), None) => c,
            _ => self.sign_now(now).await?,
        };
        let size = covering.size;
        let ids: Vec<_> = seqs
            .iter()
            .map(|s| countersign_audit::NodeId::new(0, *s))
            .collect();
        let leaves = self.store.audit_nodes(&ids).await?;
        let mut entries = Vec::with_capacity(seqs.len());
        for (seq, leaf) in seqs.iter().zip(leaves) {
            let proof = self.store.inclusion_proof(*seq, size).await?;
            entries.push(EntryProof {
                index: *seq,
                leaf_hash: BASE64.encode(leaf),
                inclusion_proof: proof.iter().map(|h| BASE64.encode(h)).collect(),
            });
        }
        Ok(AuditEvidence {
            checkpoint: covering.note,
            tree_size: size,
            entries,
        })
    }

    /// The DSSE-signed in-toto statement about `request`, with every audit entry about it.
    pub async fn attestation(
        &self,
        request: &Request,
        now: Timestamp,
    ) -> Result<Envelope, StoreError> {
        let seqs = self
            .store
            .request_audit_seqs(request.id())
            .await?
            .ok_or(StoreError::NotFound)?;
        let evidence = self.evidence(&seqs, now).await?;
        Ok(attestation::attest(&self.signer, request, &evidence))
    }

    /// Signs a checkpoint whenever `every` entries have been added since the last one, or
    /// `interval` has passed and there are new entries. Runs until the gateway stops.
    pub async fn run_signer(self: Arc<Self>, clock: Arc<dyn crate::gateway::Clock>) {
        let mut watch = self.store.audit_watch();
        let mut last = match self.sign_now(clock.now()).await {
            Ok(c) => c.size,
            Err(e) => {
                tracing::warn!(error = %e, "could not sign the first checkpoint; will retry");
                0
            }
        };
        let mut deadline = tokio::time::Instant::now() + self.interval;
        loop {
            tokio::select! {
                changed = watch.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let size = *watch.borrow_and_update();
                    if size < last + self.every {
                        continue;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {}
            }
            deadline = tokio::time::Instant::now() + self.interval;
            match self.sign_now(clock.now()).await {
                Ok(c) => last = c.size,
                Err(e) => tracing::warn!(error = %e, "could not sign a checkpoint; will retry"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_file_is_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/audit.key");
        let made = load_or_create_key(&path, "example.com/cs").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = load_or_create_key(&path, "ignored.example/other").unwrap();
        assert_eq!(again.verifier(), made.verifier());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_or_create_key(&path, "x").unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
    }

    #[test]
    fn default_names_come_from_the_public_url() {
        assert_eq!(
            default_name("https://gw.example.com/base"),
            "gw.example.com/countersign"
        );
        assert_eq!(
            default_name("http://127.0.0.1:8750"),
            "127.0.0.1:8750/countersign"
        );
    }
}
