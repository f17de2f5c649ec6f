//! The `console` section: how people sign in.

use countersign_app::settings::Secret;
use serde::Deserialize;

/// The web console: how people sign in.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Sign-in with OpenID Connect.
    #[serde(default)]
    pub oidc: Option<OidcConfig>,
    /// Whether people may sign in with their own API key (the local fallback). Default: yes
    /// without `oidc`, no with it.
    #[serde(default)]
    pub key_sign_in: Option<bool>,
}

impl ConsoleConfig {
    /// `COUNTERSIGN_CONSOLE_OIDC_CLIENT_SECRET` (when `console.oidc` is configured).
    pub fn apply_env(&mut self, var: &impl Fn(&str) -> Option<String>) {
        if let Some(v) = var("COUNTERSIGN_CONSOLE_OIDC_CLIENT_SECRET")
            && let Some(oidc) = self.oidc.as_mut()
        {
            oidc.client_secret = Some(Secret::new(v));
        }
    }

    pub fn key_sign_in(&self) -> bool {
        self.key_sign_in.unwrap_or(self.oidc.is_none())
    }
}

/// An OpenID Connect provider (authorization code flow with PKCE). Its redirect URI for this
/// gateway is `<public_url>/console/oidc/callback`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The issuer URL; `<issuer>/.well-known/openid-configuration` is read at first sign-in.
    pub issuer: String,
    pub client_id: String,
    /// Or `COUNTERSIGN_CONSOLE_OIDC_CLIENT_SECRET`. Absent: a public client (PKCE only).
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// An ID-token claim whose strings are added to the person's groups.
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Scopes asked for besides `openid` and `email` (e.g. `groups`, `profile`).
    #[serde(default)]
    pub scopes: Vec<String>,
}
