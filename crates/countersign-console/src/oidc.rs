//! Sign-in with OpenID Connect: the authorization code flow with PKCE (S256), `state` and
//! `nonce`, through the `openidconnect` crate over our own reqwest client (no redirects
//! followed). The flow's secrets (state, nonce, PKCE verifier) travel in a sealed, HttpOnly
//! cookie that the callback consumes. The ID token's email, when `email_verified` is exactly
//! true and the address is plain ASCII, becomes the canonical `user:<email>`
//! (`PrincipalId::person_from_email`); groups are the directory's plus, when `groups_claim` is
//! set, the token's claim.
//!
//! Must not: accept an ID token whose signature, issuer, audience, expiry or nonce does not
//! verify, an email the provider does not say is verified (absent counts as unverified), or
//! one outside ASCII (never Unicode-folded); follow a redirect from the provider;
//! log a code or a token.

use super::session::{self, OIDC_COOKIE};
use super::{ConsoleError, safe_next};
use crate::ConsoleState;
use crate::config::OidcConfig;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, HttpRequest, HttpResponse, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse as _,
};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio::sync::RwLock;

/// How long a sign-in at the provider may take.
const FLOW_TTL_SECONDS: i64 = 600;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OidcHttpError(String);

/// The identity provider: its configuration and, once discovered, its metadata.
pub struct Oidc {
    config: OidcConfig,
    redirect_url: String,
    http: reqwest::Client,
    metadata: RwLock<Option<CoreProviderMetadata>>,
}

/// A client built from discovered metadata: authorization endpoint set, token and user-info
/// endpoints as the provider says.
type ProviderClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What the callback needs from the start of the flow.
#[derive(Serialize, Deserialize)]
struct Flow {
    state: String,
    nonce: String,
    verifier: String,
    next: String,
    exp: i64,
}

async fn send(client: reqwest::Client, req: HttpRequest) -> Result<HttpResponse, OidcHttpError> {
    let (parts, body) = req.into_parts();
    let resp = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| OidcHttpError(e.to_string()))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| OidcHttpError(e.to_string()))?;
    let mut out = HttpResponse::new(bytes.to_vec());
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}

impl Oidc {
    pub fn new(config: OidcConfig, public_url: &str) -> Oidc {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Oidc {
            config,
            redirect_url: format!("{public_url}/console/oidc/callback"),
            http,
            metadata: RwLock::new(None),
        }
    }

    /// The provider's name for the sign-in button.
    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// The HTTP client `openidconnect` calls. Each call runs as its own task, so the future it
    /// awaits is a join handle (the crate asks for `Send + Sync` futures).
    fn client_fn(
        &self,
    ) -> impl Fn(
        HttpRequest,
    ) -> std::pin::Pin<
        Box<dyn Future<Output = Result<HttpResponse, OidcHttpError>> + Send + Sync>,
    > {
        let client = self.http.clone();
        move |req| {
            let task = tokio::spawn(send(client.clone(), req));
            Box::pin(async move { task.await.map_err(|e| OidcHttpError(e.to_string()))? })
        }
    }

    /// The client for this provider: its discovered endpoints, our id, secret and callback.
    async fn client(&self) -> Result<ProviderClient, ConsoleError> {
        let metadata = self.metadata().await?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            self.config
                .client_secret
                .as_ref()
                .map(|s| ClientSecret::new(s.expose().to_string())),
        )
        .set_redirect_uri(
            RedirectUrl::new(self.redirect_url.clone()).map_err(|e| unavailable(e.to_string()))?,
        ))
    }

    /// The provider metadata, discovered once (and again after a failure).
    async fn metadata(&self) -> Result<CoreProviderMetadata, ConsoleError> {
        if let Some(m) = self.metadata.read().await.as_ref() {
            return Ok(m.clone());
        }
        let issuer =
            IssuerUrl::new(self.config.issuer.clone()).map_err(|e| unavailable(e.to_string()))?;
        let http = self.client_fn();
        let m = CoreProviderMetadata::discover_async(issuer, &http)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        *self.metadata.write().await = Some(m.clone());
        Ok(m)
    }
}

fn unavailable(detail: String) -> ConsoleError {
    tracing::warn!(error = %detail, "identity provider unavailable");
    ConsoleError::new(
        StatusCode::BAD_GATEWAY,
        "idp_unavailable",
        "The identity provider could not be reached or answered something unexpected; try again in a moment.",
    )
}

fn refused(code: &'static str, message: &str) -> ConsoleError {
    ConsoleError::new(StatusCode::UNAUTHORIZED, code, message)
}

fn oidc(state: &ConsoleState) -> Result<&Oidc, ConsoleError> {
    state.console.oidc.as_ref().ok_or_else(|| {
        ConsoleError::new(
            StatusCode::NOT_FOUND,
            "not_configured",
            "No identity provider is configured on this gateway (console.oidc).",
        )
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StartQuery {
    next: Option<String>,
}

/// `GET /console/oidc/start`: off to the provider, with state, nonce and a PKCE challenge.
pub async fn start(
    State(state): State<ConsoleState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ConsoleError> {
    let o = oidc(&state)?;
    let q: StartQuery = super::parse_query(raw.as_deref())?;
    let next = safe_next(q.next.as_deref())?;
    let client = o.client().await?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge);
    for s in &o.config.scopes {
        request = request.add_scope(Scope::new(s.clone()));
    }
    let (url, csrf, nonce) = request.url();
    let flow = Flow {
        state: csrf.secret().clone(),
        nonce: nonce.secret().clone(),
        verifier: verifier.secret().clone(),
        next,
        exp: state.now_unix() + FLOW_TTL_SECONDS,
    };
    let sealed = state.console.keys.seal("oidc", &flow);
    let mut r = Redirect::to(url.as_str()).into_response();
    if let Ok(v) =
        session::set_cookie(OIDC_COOKIE, &sealed, FLOW_TTL_SECONDS, state.console.secure).parse()
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

#[derive(Deserialize, Default)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    /// RFC 9207: the issuer that answered, when the provider says so.
    iss: Option<String>,
}

/// `GET /console/oidc/callback`: checks `state`, trades the code (with the PKCE verifier) for
/// tokens, verifies the ID token (signature, issuer, audience, expiry, nonce), and signs in.
pub async fn callback(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ConsoleError> {
    let o = oidc(&state)?;
    let q: CallbackQuery = raw
        .as_deref()
        .map(serde_urlencoded::from_str)
        .transpose()
        .map_err(|e| {
            ConsoleError::bad_request(
                "invalid_query",
                format!("The provider's answer is not readable: {e}."),
            )
        })?
        .unwrap_or_default();
    let flow: Flow = session::cookie(&headers, OIDC_COOKIE)
        .and_then(|c| state.console.keys.open::<Flow>("oidc", c))
        .filter(|f| f.exp > state.now_unix())
        .ok_or_else(|| {
            refused(
                "oidc_state_missing",
                "This sign-in was not started from this browser, or it took too long. Start again.",
            )
        })?;
    let clear = session::set_cookie(OIDC_COOKIE, "", 0, state.console.secure);
    let result = finish(&state, o, &flow, q).await;
    let mut r = match result {
        Ok((sub, groups)) => super::signin::start_session(&state, &sub, groups, "oidc", &flow.next)
            .await
            .unwrap_or_else(IntoResponse::into_response),
        Err(e) => e.into_response(),
    };
    if let Ok(v) = clear.parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

async fn finish(
    state: &ConsoleState,
    o: &Oidc,
    flow: &Flow,
    q: CallbackQuery,
) -> Result<(String, Vec<String>), ConsoleError> {
    if let Some(e) = q.error {
        let detail = q.error_description.unwrap_or_default();
        tracing::info!(error = %e, detail = %detail, "identity provider refused the sign-in");
        return Err(refused(
            "oidc_refused",
            &format!("The identity provider did not sign you in ({e}). {detail}"),
        ));
    }
    if q.iss
        .as_deref()
        .is_some_and(|iss| iss.trim_end_matches('/') != o.config.issuer.trim_end_matches('/'))
    {
        return Err(refused(
            "oidc_wrong_issuer",
            "The sign-in answer came from another identity provider. Start again.",
        ));
    }
    let given = q.state.unwrap_or_default();
    if !bool::from(given.as_bytes().ct_eq(flow.state.as_bytes())) {
        state.gateway.metrics.refusal("oidc_state_mismatch");
        return Err(refused(
            "oidc_state_mismatch",
            "The sign-in answer does not belong to this sign-in (state mismatch). Start again.",
        ));
    }
    let code = q.code.filter(|c| !c.is_empty()).ok_or_else(|| {
        refused(
            "oidc_refused",
            "The identity provider sent no authorization code.",
        )
    })?;
    let client = o.client().await?;
    let http = o.client_fn();
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| unavailable(e.to_string()))?
        .set_pkce_verifier(PkceCodeVerifier::new(flow.verifier.clone()))
        .request_async(&http)
        .await
        .map_err(|e| {
            tracing::info!(error = %e, "code exchange failed");
            refused(
                "oidc_refused",
                "The identity provider did not accept the sign-in code. Start again.",
            )
        })?;
    let id_token = tokens
        .id_token()
        .ok_or_else(|| refused("oidc_refused", "The identity provider sent no ID token."))?;
    let verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&verifier, &Nonce::new(flow.nonce.clone()))
        .map_err(|e| {
            state.gateway.metrics.refusal("oidc_invalid_token");
            tracing::warn!(error = %e, "ID token refused");
            refused(
                "oidc_invalid_token",
                "The identity provider's ID token did not verify.",
            )
        })?;
    // Only an address the provider vouches for names a person: absent counts as unverified.
    if claims.email_verified() != Some(true) {
        state.gateway.metrics.refusal("oidc_email_unverified");
        return Err(refused(
            "oidc_email_unverified",
            "Your identity provider has not verified your email address (`email_verified` is \
             not true), so it cannot name you here. Nothing was set; verify your address with \
             the provider and sign in again.",
        ));
    }
    let email = claims
        .email()
        .map(|e| e.as_str().trim().to_string())
        .filter(|e| !e.is_empty())
        .ok_or_else(|| {
            refused(
                "oidc_no_email",
                "The ID token carries no email address (ask for the `email` scope).",
            )
        })?;
    // The one mapping from an address to a person (`PrincipalId::person_from_email`): plain
    // ASCII only, then the canonical form. Unicode case folding is never applied, so a
    // look-alike address (a Kelvin sign for a `K`) cannot become someone else's id.
    if !email.is_ascii() {
        state.gateway.metrics.refusal("oidc_email_not_ascii");
        return Err(refused(
            "oidc_email_not_ascii",
            "Your email address contains characters outside plain ASCII, which this gateway \
             does not accept as a person's id. Nothing was set; ask an administrator.",
        ));
    }
    let sub = countersign_core::PrincipalId::person_from_email(&email)
        .map_err(|_| {
            refused(
                "oidc_no_email",
                "The ID token's email is not a usable address.",
            )
        })?
        .to_string();
    let groups = match &o.config.groups_claim {
        Some(name) => groups_claim(&id_token.to_string(), name),
        None => vec![],
    };
    Ok((sub, groups))
}

/// The string (or list of strings) claim `name` of a compact JWT whose signature has already
/// been verified.
fn groups_claim(jwt: &str, name: &str) -> Vec<String> {
    let payload = jwt
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .unwrap_or_default();
    match &payload[name] {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .filter(|g| !g.is_empty() && g.len() <= 200)
            .take(100)
            .collect(),
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_groups_claim_is_read_as_a_list_or_a_string() {
        let enc = |v: serde_json::Value| {
            format!(
                "h.{}.s",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
            )
        };
        assert_eq!(
            groups_claim(
                &enc(serde_json::json!({"groups": ["sre", 5, "ops"]})),
                "groups"
            ),
            ["sre", "ops"]
        );
        assert_eq!(
            groups_claim(&enc(serde_json::json!({"roles": "security"})), "roles"),
            ["security"]
        );
        assert!(groups_claim(&enc(serde_json::json!({})), "groups").is_empty());
        assert!(groups_claim("garbage", "groups").is_empty());
    }
}
