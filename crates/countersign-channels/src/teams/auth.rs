//! Authenticating what the Bot Connector sends us, as its protocol requires, before anything is
//! acted on: a Bearer JWT signed RS256 with a key published at the OpenID metadata's
//! `jwks_uri`, issued by `https://api.botframework.com` for our app id, valid now (5 minutes of
//! clock skew allowed), by a key whose `endorsements` include the activity's `channelId`, for
//! the activity's `serviceUrl` (the `serviceurl` claim). Our own rule comes on top: the
//! activity's tenant must be one we allow.
//!
//! Keys are cached (refreshed daily) and fetched again when a token names a key we do not know
//! (keys roll over), at most once a second, so unknown keys cannot make us hammer the metadata
//! endpoint. Signature checks are `jsonwebtoken`'s (aws-lc-rs); the claims rules are here
//! because the protocol's endorsements and `serviceurl` are not standard JWT checks.
//!
//! This module never reads an activity's content beyond the three fields the checks compare
//! (`channelId`, `serviceUrl`, the tenant), and never logs a token.

use countersign_core::Timestamp;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The only issuer of tokens the Bot Connector sends to bots.
pub const ISSUER: &str = "https://api.botframework.com";
/// Clock skew allowed on `nbf` and `exp`.
pub const SKEW_SECONDS: i64 = 5 * 60;
/// The claim naming the service the token was issued for (lowercase in the Bot Framework SDKs;
/// compared case-insensitively).
const SERVICE_URL_CLAIM: &str = "serviceurl";
/// How long fetched keys are trusted before they are fetched again.
const KEYS_TTL: Duration = Duration::from_secs(24 * 3600);
/// The shortest time between two fetches caused by unknown key ids.
const FORCED_REFRESH_EVERY: Duration = Duration::from_secs(1);
/// How long after a failed fetch the next is tried (requests meanwhile use the cached keys).
const FAILED_FETCH_PAUSE: Duration = Duration::from_secs(5);
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an inbound activity was refused. Every refusal is answered 401 or 403 and audited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization: Bearer …` header.
    MissingToken,
    /// Not a JWT we can read, not RS256, no `kid`, or required claims missing.
    MalformedToken(String),
    /// The token names a key the Bot Connector does not publish (even after a refresh).
    UnknownKey,
    /// The signature does not verify with the published key.
    BadSignature,
    WrongIssuer,
    WrongAudience,
    Expired,
    NotYetValid,
    /// The key that signed the token is not endorsed for the activity's channel.
    MissingEndorsement,
    /// The token was issued for another service URL than the activity names (or for none).
    ServiceUrlMismatch,
    /// The activity comes from a tenant that is not in `tenant_ids` (or names none).
    TenantNotAllowed(Option<String>),
    /// The activity comes from a channel other than Teams.
    UnsupportedChannel(String),
    /// The OpenID metadata or keys could not be fetched: nothing can be verified.
    KeysUnavailable(String),
}

impl AuthFailure {
    pub fn code(&self) -> &'static str {
        match self {
            AuthFailure::MissingToken => "missing_token",
            AuthFailure::MalformedToken(_) => "invalid_token",
            AuthFailure::UnknownKey => "unknown_key",
            AuthFailure::BadSignature => "invalid_signature",
            AuthFailure::WrongIssuer => "wrong_issuer",
            AuthFailure::WrongAudience => "wrong_audience",
            AuthFailure::Expired => "token_expired",
            AuthFailure::NotYetValid => "token_not_yet_valid",
            AuthFailure::MissingEndorsement => "missing_endorsement",
            AuthFailure::ServiceUrlMismatch => "service_url_mismatch",
            AuthFailure::TenantNotAllowed(_) => "tenant_not_allowed",
            AuthFailure::UnsupportedChannel(_) => "unsupported_channel",
            AuthFailure::KeysUnavailable(_) => "keys_unavailable",
        }
    }

    pub fn message(&self) -> String {
        match self {
            AuthFailure::MissingToken => {
                "the Bot Connector's token is required (Authorization: Bearer …)".into()
            }
            AuthFailure::MalformedToken(why) => format!("the token cannot be used: {why}"),
            AuthFailure::UnknownKey => {
                "the token is signed with a key the Bot Connector does not publish".into()
            }
            AuthFailure::BadSignature => "the token's signature does not verify".into(),
            AuthFailure::WrongIssuer => format!("the token was not issued by {ISSUER}"),
            AuthFailure::WrongAudience => "the token was issued for another bot".into(),
            AuthFailure::Expired => "the token has expired".into(),
            AuthFailure::NotYetValid => "the token is not valid yet".into(),
            AuthFailure::MissingEndorsement => {
                "the signing key is not endorsed for this activity's channel".into()
            }
            AuthFailure::ServiceUrlMismatch => {
                "the token was issued for another serviceUrl than the activity's".into()
            }
            AuthFailure::TenantNotAllowed(_) => {
                "this tenant may not use this gateway (channels.teams.tenant_ids)".into()
            }
            AuthFailure::UnsupportedChannel(c) => {
                format!("this bot serves Microsoft Teams (channelId msteams), not `{c}`")
            }
            AuthFailure::KeysUnavailable(_) => {
                "the Bot Connector's signing keys could not be fetched; try again".into()
            }
        }
    }

    /// 403 for an authenticated caller we do not serve; 503 when we could not check; else 401.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            AuthFailure::TenantNotAllowed(_) | AuthFailure::UnsupportedChannel(_) => {
                StatusCode::FORBIDDEN
            }
            AuthFailure::KeysUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

/// A token that verified: who may be talked to on its strength.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The `serviceurl` claims (normally one).
    pub service_urls: Vec<String>,
    /// The channels the signing key is endorsed for.
    pub endorsements: Vec<String>,
}

impl Verified {
    /// The checks that compare the token with the activity. `tenant` is the activity's.
    pub fn admits(
        &self,
        channel_id: Option<&str>,
        service_url: Option<&str>,
        tenant: Option<&str>,
        allowed: &[String],
    ) -> Result<(), AuthFailure> {
        let channel_id = channel_id.unwrap_or_default();
        if channel_id.is_empty() || !self.endorsements.iter().any(|e| e == channel_id) {
            return Err(AuthFailure::MissingEndorsement);
        }
        let service_url = service_url.unwrap_or_default();
        if service_url.is_empty()
            || self.service_urls.is_empty()
            || self.service_urls.iter().any(|s| s != service_url)
        {
            return Err(AuthFailure::ServiceUrlMismatch);
        }
        if channel_id != "msteams" {
            return Err(AuthFailure::UnsupportedChannel(channel_id.to_string()));
        }
        match tenant {
            Some(t) if allowed.iter().any(|a| a.eq_ignore_ascii_case(t)) => Ok(()),
            t => Err(AuthFailure::TenantNotAllowed(t.map(str::to_string))),
        }
    }
}

#[derive(Deserialize)]
struct Metadata {
    jwks_uri: String,
}

#[derive(Deserialize)]
struct KeySet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    #[serde(default)]
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    endorsements: Vec<String>,
}

struct Key {
    decoding: DecodingKey,
    endorsements: Vec<String>,
}

#[derive(Default)]
struct Cache {
    keys: HashMap<String, std::sync::Arc<Key>>,
    /// Until when the keys are trusted without fetching them again.
    fresh_until: Option<Instant>,
    /// No fetch before this: a second after a fetch for an unknown key, a few seconds after a
    /// failed fetch.
    no_fetch_before: Option<Instant>,
}

/// Verifies inbound tokens for one bot (`app_id`).
pub struct Verifier {
    http: reqwest::Client,
    metadata_url: String,
    app_id: String,
    cache: tokio::sync::Mutex<Cache>,
}

impl Verifier {
    pub fn new(metadata_url: &str, app_id: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Verifier {
            http,
            metadata_url: metadata_url.to_string(),
            app_id: app_id.to_string(),
            cache: tokio::sync::Mutex::new(Cache::default()),
        }
    }

    /// Verifies the token's signature, issuer, audience and validity at `now`.
    pub async fn verify(&self, token: &str, now: Timestamp) -> Result<Verified, AuthFailure> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthFailure::MalformedToken(format!("not a JWT ({e})")))?;
        if header.alg != Algorithm::RS256 {
            return Err(AuthFailure::MalformedToken(format!(
                "signed with {:?}; the Bot Connector signs with RS256",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| AuthFailure::MalformedToken("no key id (kid)".into()))?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[&self.app_id]);
        // Validity is checked below against our clock, with the protocol's skew.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::InvalidSignature => AuthFailure::BadSignature,
                    ErrorKind::InvalidIssuer => AuthFailure::WrongIssuer,
                    ErrorKind::InvalidAudience => AuthFailure::WrongAudience,
                    ErrorKind::MissingRequiredClaim(c) => {
                        AuthFailure::MalformedToken(format!("no `{c}` claim"))
                    }
                    other => AuthFailure::MalformedToken(format!("{other:?}")),
                }
            })?;
        let claims = data.claims;
        let now = now.timestamp();
        let time = |name: &str| claims.get(name).and_then(Value::as_i64);
        let exp = time("exp").ok_or_else(|| AuthFailure::MalformedToken("bad `exp`".into()))?;
        valid_at(now, exp, time("nbf"))?;
        let service_urls = claims
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(SERVICE_URL_CLAIM))
            .filter_map(|(_, v)| v.as_str().map(str::to_string))
            .collect();
        Ok(Verified {
            service_urls,
            endorsements: key.endorsements.clone(),
        })
    }

    /// The key `kid`, from the cache or, when unknown or stale, from a fresh fetch.
    async fn key(&self, kid: &str) -> Result<std::sync::Arc<Key>, AuthFailure> {
        // One lock for lookups and fetches: concurrent misses wait for the one fetch.
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        let stale = cache.fresh_until.is_none_or(|t| now >= t);
        if !stale && let Some(k) = cache.keys.get(kid) {
            return Ok(k.clone());
        }
        let mut failure = None;
        if cache.no_fetch_before.is_none_or(|t| now >= t) {
            match self.fetch().await {
                Ok(keys) => {
                    cache.keys = keys;
                    cache.fresh_until = Some(now + KEYS_TTL);
                    // Fetched for a key id we did not know: unknown ids cannot make us fetch
                    // more than once a second.
                    cache.no_fetch_before = (!stale).then(|| now + FORCED_REFRESH_EVERY);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not fetch the Bot Connector's keys");
                    cache.no_fetch_before = Some(now + FAILED_FETCH_PAUSE);
                    failure = Some(e);
                }
            }
        }
        // Stale keys still verify until fresh ones arrive; without any, nothing does.
        if cache.keys.is_empty() {
            return Err(AuthFailure::KeysUnavailable(
                failure.unwrap_or_else(|| "no keys fetched yet".into()),
            ));
        }
        cache.keys.get(kid).cloned().ok_or(AuthFailure::UnknownKey)
    }

    async fn fetch(&self) -> Result<HashMap<String, std::sync::Arc<Key>>, String> {
        let metadata: Metadata = self.get_json(&self.metadata_url).await?;
        if self.metadata_url.starts_with("https://") && !metadata.jwks_uri.starts_with("https://") {
            return Err(format!("jwks_uri {} is not https", metadata.jwks_uri));
        }
        let set: KeySet = self.get_json(&metadata.jwks_uri).await?;
        let mut keys = HashMap::new();
        for k in set.keys {
            let (Some(kid), Some(n), Some(e)) = (k.kid, k.n, k.e) else {
                continue;
            };
            if k.kty != "RSA" {
                continue;
            }
            match DecodingKey::from_rsa_components(&n, &e) {
                Ok(decoding) => {
                    keys.insert(
                        kid,
                        std::sync::Arc::new(Key {
                            decoding,
                            endorsements: k.endorsements,
                        }),
                    );
                }
                Err(err) => tracing::warn!(kid, error = %err, "skipped an unreadable key"),
            }
        }
        Ok(keys)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("{url}: {}", e.without_url()))?;
        if !resp.status().is_success() {
            return Err(format!("{url}: HTTP {}", resp.status()));
        }
        resp.json()
            .await
            .map_err(|e| format!("{url}: {}", e.without_url()))
    }
}

/// Whether a token valid from `nbf` to `exp` (Unix seconds) is valid at `now`, with the
/// protocol's skew. Claims are any i64 (signed, but not ours to trust with arithmetic): nothing
/// here overflows.
fn valid_at(now: i64, exp: i64, nbf: Option<i64>) -> Result<(), AuthFailure> {
    if now > exp.saturating_add(SKEW_SECONDS) {
        return Err(AuthFailure::Expired);
    }
    if let Some(nbf) = nbf
        && now.saturating_add(SKEW_SECONDS) < nbf
    {
        return Err(AuthFailure::NotYetValid);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified() -> Verified {
        Verified {
            service_urls: vec!["https://smba.trafficmanager.net/emea/".into()],
            endorsements: vec!["msteams".into(), "webchat".into()],
        }
    }

    const SVC: Option<&str> = Some("https://smba.trafficmanager.net/emea/");

    #[test]
    fn validity_times_at_the_ends_of_the_integers_do_not_overflow() {
        let now = 1_800_000_000;
        assert_eq!(valid_at(now, i64::MAX, None), Ok(()));
        assert_eq!(valid_at(now, i64::MAX, Some(i64::MIN)), Ok(()));
        assert_eq!(valid_at(now, i64::MIN, None), Err(AuthFailure::Expired));
        assert_eq!(
            valid_at(now, i64::MAX, Some(i64::MAX)),
            Err(AuthFailure::NotYetValid)
        );
        assert_eq!(valid_at(i64::MAX, i64::MAX, None), Ok(()));
        assert_eq!(valid_at(i64::MIN, 0, Some(i64::MIN)), Ok(()));
        assert_eq!(valid_at(now, now - 300, None), Ok(()));
        assert_eq!(valid_at(now, now - 301, None), Err(AuthFailure::Expired));
    }

    #[test]
    fn an_activity_matching_its_token_and_tenant_is_admitted() {
        let allowed = vec!["Contoso-Tenant".to_string()];
        assert_eq!(
            verified().admits(Some("msteams"), SVC, Some("contoso-tenant"), &allowed),
            Ok(())
        );
    }

    #[test]
    fn endorsement_service_url_channel_and_tenant_are_each_enforced() {
        let allowed = vec!["t1".to_string()];
        let v = verified();
        assert_eq!(
            v.admits(Some("skype"), SVC, Some("t1"), &allowed),
            Err(AuthFailure::MissingEndorsement)
        );
        assert_eq!(
            v.admits(None, SVC, Some("t1"), &allowed),
            Err(AuthFailure::MissingEndorsement)
        );
        assert_eq!(
            v.admits(
                Some("msteams"),
                Some("https://evil.example/"),
                Some("t1"),
                &allowed
            ),
            Err(AuthFailure::ServiceUrlMismatch)
        );
        assert_eq!(
            v.admits(Some("msteams"), None, Some("t1"), &allowed),
            Err(AuthFailure::ServiceUrlMismatch)
        );
        let no_claim = Verified {
            service_urls: vec![],
            ..verified()
        };
        assert_eq!(
            no_claim.admits(Some("msteams"), SVC, Some("t1"), &allowed),
            Err(AuthFailure::ServiceUrlMismatch)
        );
        assert_eq!(
            v.admits(Some("webchat"), SVC, Some("t1"), &allowed),
            Err(AuthFailure::UnsupportedChannel("webchat".into()))
        );
        assert_eq!(
            v.admits(Some("msteams"), SVC, Some("t2"), &allowed),
            Err(AuthFailure::TenantNotAllowed(Some("t2".into())))
        );
        assert_eq!(
            v.admits(Some("msteams"), SVC, None, &allowed),
            Err(AuthFailure::TenantNotAllowed(None))
        );
    }

    #[test]
    fn refusals_are_401_except_tenant_and_channel_403() {
        use axum::http::StatusCode;
        assert_eq!(AuthFailure::Expired.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            AuthFailure::TenantNotAllowed(None).status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            AuthFailure::KeysUnavailable("x".into()).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
