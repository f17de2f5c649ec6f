//! Outgoing webhooks for SIEMs, per the Standard Webhooks spec (standardwebhooks.com): every
//! audit entry is POSTed as `{"type": "audit.entry", "timestamp", "data": <entry>}` with the
//! headers `webhook-id`, `webhook-timestamp` and `webhook-signature` (`v1,<base64 HMAC-SHA256>`
//! with the shared secret and/or `v1a,<base64 Ed25519>` with the audit key, over
//! `{id}.{timestamp}.{body}`).
//!
//! Delivery reads the store, never the decision path: a slow or dead receiver cannot hold up a
//! decision. Each webhook has a durable cursor (the next seq to deliver, `webhook:<url>`); an
//! entry is retried with exponential backoff until the receiver answers 2xx, so every entry is
//! delivered in order, at least once (a crash between a delivery and the cursor's next save
//! repeats a few; `webhook-id` lets the receiver drop them). With several replicas, one
//! delivers at a time: it holds the webhook's lease (`Store::lease`, named after the cursor),
//! and another takes over from the saved cursor when it stops renewing.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use countersign_app::audit::config::{WebhookConfig, decode_secret};
use countersign_audit::NoteSigner;
use countersign_audit::StoredEntry;
use countersign_store::Store;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The first retry waits this long; each next one twice as long, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How long one delivery may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Entries read from the store at a time.
const BATCH: u32 = 100;
/// The cursor is saved after this many deliveries, and whenever the webhook catches up.
const SAVE_EVERY: u64 = 50;
/// How long a replica's hold on delivering a webhook lasts without renewal.
const LEASE: Duration = Duration::from_secs(30);
/// How often the holder renews it.
const RENEW_AFTER: Duration = Duration::from_secs(10);
/// How often a replica that does not hold it asks again.
const LEASE_POLL: Duration = Duration::from_secs(2);

/// The `webhook-signature` header value for one message.
pub fn signature_header(
    id: &str,
    timestamp: i64,
    body: &[u8],
    secret: Option<&[u8]>,
    signer: Option<&NoteSigner>,
) -> String {
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    let mut parts = Vec::new();
    if let Some(secret) = secret {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(&content);
        parts.push(format!("v1,{}", BASE64.encode(mac.finalize().into_bytes())));
    }
    if let Some(signer) = signer {
        // The audit key also signs checkpoints (note texts ending in a newline) and DSSE
        // envelopes (starting `DSSEv1 `); this content is neither, so no signature can be
        // passed off as one of the others.
        parts.push(format!("v1a,{}", BASE64.encode(signer.sign_raw(&content))));
    }
    parts.join(" ")
}

/// One webhook's delivery loop.
pub struct Webhook {
    config: WebhookConfig,
    secret: Option<Vec<u8>>,
    store: Arc<dyn Store>,
    signer: NoteSigner,
    http: reqwest::Client,
    cursor: String,
    /// This replica's name on the webhook's lease.
    holder: String,
}

impl Webhook {
    pub fn new(config: WebhookConfig, store: Arc<dyn Store>, signer: NoteSigner) -> Self {
        let secret = config
            .secret
            .as_ref()
            .and_then(|s| decode_secret(s.expose()).ok());
        let cursor = format!("webhook:{}", config.url);
        Webhook {
            config,
            secret,
            store,
            signer,
            http: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .build()
                .unwrap_or_default(),
            cursor,
            holder: countersign_store::process_name().to_owned(),
        }
    }

    /// The message id of entry `seq`: stable across retries and restarts, distinct per log.
    fn message_id(&self, seq: u64) -> String {
        format!("cs_{:08x}_{seq}", self.signer.verifier().key_id())
    }

    /// Delivers every entry from the cursor on, then waits for more, while this replica holds
    /// the webhook's lease (named after its cursor: one replica delivers at a time, in order;
    /// another takes over from the saved cursor when the holder stops renewing). Runs until the
    /// gateway stops.
    pub async fn run(self) {
        let mut watch = self.store.audit_watch();
        loop {
            if !self.hold().await {
                tokio::time::sleep(LEASE_POLL).await;
                continue;
            }
            let next = loop {
                match self.store.audit_cursor(&self.cursor).await {
                    Ok(c) => break c.unwrap_or(0),
                    Err(e) => {
                        tracing::warn!(error = %e, url = %self.config.url, "webhook cursor unreadable; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            };
            self.deliver_while_held(&mut watch, next).await;
        }
    }

    /// Takes or renews the lease; false when another replica holds it (or the store failed).
    async fn hold(&self) -> bool {
        let now = chrono::Utc::now();
        let until = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
        match self
            .store
            .lease(&self.cursor, &self.holder, now, until)
            .await
        {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error = %e, url = %self.config.url, "webhook lease unavailable");
                false
            }
        }
    }

    /// Renews the lease if it is due; false once it is lost.
    async fn still_held(&self, renewed: &mut Instant) -> bool {
        if renewed.elapsed() < RENEW_AFTER {
            return true;
        }
        let held = self.hold().await;
        *renewed = Instant::now();
        held
    }

    async fn deliver_while_held(
        &self,
        watch: &mut tokio::sync::watch::Receiver<u64>,
        mut next: u64,
    ) {
        let mut saved = next;
        let mut renewed = Instant::now();
        loop {
            if !self.still_held(&mut renewed).await {
                return;
            }
            let batch = match self.store.audit_entries(next, BATCH).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook: cannot read the audit log; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if batch.is_empty() {
                if saved != next {
                    self.save(next).await;
                    saved = next;
                }
                // New entries wake us (other replicas' too, through the store's
                // notifications); the tick renews the lease and is a backstop.
                let _ = tokio::time::timeout(Duration::from_secs(5), watch.changed()).await;
                continue;
            }
            for entry in &batch {
                if !self.deliver(entry, &mut renewed).await {
                    // Lost the lease mid-batch: the next holder starts from the saved cursor.
                    self.save(next).await;
                    return;
                }
                next = entry.seq + 1;
                if next - saved >= SAVE_EVERY {
                    self.save(next).await;
                    saved = next;
                }
            }
        }
    }

    async fn save(&self, next: u64) {
        if let Err(e) = self.store.set_audit_cursor(&self.cursor, next).await {
            tracing::warn!(error = %e, "webhook: cannot save the cursor (entries may repeat)");
        }
    }

    /// POSTs one entry until the receiver accepts it (true), or the lease is lost (false).
    async fn deliver(&self, entry: &StoredEntry, renewed: &mut Instant) -> bool {
        let id = self.message_id(entry.seq);
        let data: serde_json::Value = serde_json::from_slice(&entry.bytes).unwrap_or_default();
        let mut backoff = FIRST_BACKOFF;
        loop {
            let now = chrono::Utc::now();
            let body = serde_json::to_vec(&serde_json::json!({
                "type": "audit.entry",
                "timestamp": countersign_http::wire::timestamp(&now),
                "data": data,
            }))
            .unwrap_or_default();
            let ts = now.timestamp();
            let signature = signature_header(
                &id,
                ts,
                &body,
                self.secret.as_deref(),
                self.config.ed25519.then_some(&self.signer),
            );
            let sent = self
                .http
                .post(&self.config.url)
                .header("content-type", "application/json")
                .header("webhook-id", &id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", signature)
                .body(body)
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => return true,
                Ok(r) => {
                    tracing::warn!(url = %self.config.url, status = r.status().as_u16(), seq = entry.seq, "webhook refused an entry; retrying")
                }
                Err(e) => {
                    tracing::warn!(url = %self.config.url, error = %e, seq = entry.seq, "webhook unreachable; retrying")
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            if !self.still_held(renewed).await {
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_known_answer() {
        // The example of the Standard Webhooks specification (its reference libraries' tests).
        let secret = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let header = signature_header(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
            Some(&secret),
            None,
        );
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_must_be_whsec() {
        assert!(decode_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(decode_secret("whsec_!!!").is_err());
        assert!(decode_secret("whsec_c2hvcnQ=").is_err());
    }
}
