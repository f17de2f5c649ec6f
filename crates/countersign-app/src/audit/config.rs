//! The `audit` section: the signing key, checkpoints and webhooks.

use crate::settings::{Secret, human_duration, is_postgres_url};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Where the gateway keeps its audit signing key and how often it signs checkpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The Ed25519 signing key (a signed-note private key), created on first start with mode
    /// 0600. Default: `countersign-audit.key` beside the database file (for a PostgreSQL
    /// database, beside the config file, else in the working directory).
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// The log's name in checkpoints (a schema-less URL, e.g. `example.com/countersign`).
    /// Default: the key's name, which is this when the key is created, else
    /// `<public_url host>/countersign`.
    #[serde(default)]
    pub origin: Option<String>,
    /// Sign a checkpoint once this many new entries are in the log...
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    /// ...or when this long has passed since the last one and there are new entries.
    #[serde(
        default = "default_checkpoint_interval",
        deserialize_with = "human_duration"
    )]
    pub checkpoint_interval: std::time::Duration,
    /// Receivers of every audit entry, per the Standard Webhooks spec.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            key: None,
            origin: None,
            checkpoint_every: default_checkpoint_every(),
            checkpoint_interval: default_checkpoint_interval(),
            webhooks: vec![],
        }
    }
}

pub fn default_checkpoint_every() -> u64 {
    1000
}

pub fn default_checkpoint_interval() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}

/// One outgoing webhook: every audit entry is POSTed to `url`, signed, retried with backoff
/// until it answers 2xx, in order, at least once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// `whsec_<base64>`: the shared secret of the `v1` (HMAC-SHA256) signature. Without it
    /// only the `v1a` (Ed25519, the audit key) signature is sent.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Also sign with the audit key (`v1a`); on by default.
    #[serde(default = "default_true")]
    pub ed25519: bool,
}

pub fn default_true() -> bool {
    true
}

impl AuditConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.checkpoint_every == 0 {
            return Err("`checkpoint_every` must be at least 1".into());
        }
        if self.checkpoint_interval < std::time::Duration::from_millis(100) {
            return Err("`checkpoint_interval` must be at least 100ms".into());
        }
        if let Some(origin) = &self.origin
            && (origin.is_empty()
                || origin.contains('+')
                || origin.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(format!(
                "`origin: {origin}` must be non-empty, without spaces or `+` (e.g. example.com/countersign)"
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for w in &self.webhooks {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return Err(format!("webhook `{}`: the url must be http(s)", w.url));
            }
            if !seen.insert(w.url.as_str()) {
                return Err(format!("webhook `{}` is listed twice", w.url));
            }
            if let Some(secret) = &w.secret {
                decode_secret(secret.expose())
                    .map_err(|e| format!("webhook `{}`: `secret` {e}", w.url))?;
            } else if !w.ed25519 {
                return Err(format!(
                    "webhook `{}`: give a `secret` or leave `ed25519` on, or it is unsigned",
                    w.url
                ));
            }
        }
        Ok(())
    }

    /// The key file: as configured, else `countersign-audit.key` beside `database`.
    pub fn key_path(&self, database: &str) -> PathBuf {
        match &self.key {
            Some(k) => k.clone(),
            // A PostgreSQL database has no folder of its own: the working directory (a config
            // file sets the key beside itself when it loads).
            None if is_postgres_url(database) => PathBuf::from("countersign-audit.key"),
            None => Path::new(database)
                .parent()
                .unwrap_or(Path::new(""))
                .join("countersign-audit.key"),
        }
    }
}

/// The secret of a `whsec_<base64>` string.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret
        .strip_prefix("whsec_")
        .ok_or("must look like whsec_<base64>")?;
    let bytes = BASE64
        .decode(b64)
        .map_err(|_| "must look like whsec_<base64> (the base64 does not decode)")?;
    if bytes.len() < 16 {
        return Err("must hold at least 16 bytes".into());
    }
    Ok(bytes)
}
