//! What every configuration section shares: a [`Secret`] that is never printed, durations
//! written like `10m`, and how a database is named. Each section's types live beside the code
//! they configure (`audit::config` here; the channels', the console's and MCP's in their
//! crates); the binary's `config` composes them into one file.

use serde::Deserialize;

/// A secret from configuration. It is never printed: `Debug` shows `Secret(***)`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Deserializes a duration written like `10m` or `1h` (for `#[serde(deserialize_with)]`).
pub fn human_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<std::time::Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!("`{text}` is not a duration like 10m or 1h: {e}"))
    })
}

/// Whether `database` names a PostgreSQL database (a `postgres://` or `postgresql://` URL)
/// rather than a SQLite file.
pub fn is_postgres_url(database: &str) -> bool {
    database.starts_with("postgres://") || database.starts_with("postgresql://")
}
