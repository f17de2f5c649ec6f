//! The executors: actions the gateway carries out itself, with credentials the agent never
//! holds. Three kinds, each in its module: `http` (`exec.http.<name>`), `command`
//! (`exec.command.<name>`) and `sql` (`exec.sql.<name>`, PostgreSQL).
//!
//! Secrets are references in the configuration (`${env:NAME}`, `${file:/path}`), resolved once
//! at start (`secret`). **Invariant (secrets stay in):** every outcome leaves this crate through
//! [`Executors::run`], which passes it through the one [`secret::Redactor`], so no resolved
//! secret value is recorded, logged or shown, whatever the upstream echoes back.

use countersign_app::executors::{Checked, EXEC_PREFIX, ExecRefusal, ExecutorInfo};
use countersign_core::{Action, Outcome};
use futures::future::BoxFuture;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

pub mod command;
pub mod http;
pub mod output;
pub mod secret;
pub mod sql;

pub use secret::{Redactor, Resolver};

/// One entry of `executors:` in the config file: a name and exactly one kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorConfig {
    pub name: String,
    #[serde(default)]
    pub http: Option<http::HttpConfig>,
    #[serde(default)]
    pub command: Option<command::CommandConfig>,
    #[serde(default)]
    pub postgres: Option<sql::PostgresConfig>,
}

/// A configured executor, its secrets resolved.
enum Executor {
    Http(http::HttpExecutor),
    Command(command::CommandExecutor),
    Sql(sql::SqlExecutor),
}

impl Executor {
    fn family(&self) -> &'static str {
        match self {
            Executor::Http(_) => "http",
            Executor::Command(_) => "command",
            Executor::Sql(_) => "sql",
        }
    }
}

/// Every configured executor, by name, and the redactor of their secrets.
pub struct Executors {
    by_name: BTreeMap<String, Executor>,
    redactor: Redactor,
}

/// Whether `name` is an executor name: `[a-z0-9-]+`, at most 63 characters.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Executors {
    /// Builds the executors of `configs`, resolving their secrets with `resolver`. Errors name
    /// the executor and the key, never a secret's value.
    pub fn build(configs: &[ExecutorConfig], mut resolver: Resolver) -> Result<Self, String> {
        let mut by_name = BTreeMap::new();
        for (i, c) in configs.iter().enumerate() {
            let at = format!("executors[{i}] ({})", c.name);
            if !valid_name(&c.name) {
                return Err(format!("{at}: `name` must be 1-63 of a-z, 0-9 and `-`"));
            }
            if by_name.contains_key(&c.name) {
                return Err(format!("{at}: another executor is named `{}`", c.name));
            }
            let executor = match (&c.http, &c.command, &c.postgres) {
                (Some(h), None, None) => Executor::Http(
                    http::HttpExecutor::build(&c.name, h, &mut resolver)
                        .map_err(|e| format!("{at}.http: {e}"))?,
                ),
                (None, Some(cmd), None) => Executor::Command(
                    command::CommandExecutor::build(&c.name, cmd, &mut resolver)
                        .map_err(|e| format!("{at}.command: {e}"))?,
                ),
                (None, None, Some(pg)) => Executor::Sql(
                    sql::SqlExecutor::build(&c.name, pg, &mut resolver)
                        .map_err(|e| format!("{at}.postgres: {e}"))?,
                ),
                _ => {
                    return Err(format!(
                        "{at}: give exactly one of `http`, `command` or `postgres`"
                    ));
                }
            };
            by_name.insert(c.name.clone(), executor);
        }
        Ok(Executors {
            by_name,
            redactor: resolver.into_redactor(),
        })
    }

    /// The executor an action's kind names, or why none.
    fn named(&self, kind: &str) -> Result<Option<&Executor>, ExecRefusal> {
        let Some(rest) = kind.strip_prefix(EXEC_PREFIX) else {
            return Ok(None);
        };
        let unknown = |why: String| Err(ExecRefusal::UnknownExecutor(why));
        let Some((family, name)) = rest.split_once('.') else {
            return unknown(format!(
                "`{kind}` names no executor: kinds are exec.http.<name>, exec.command.<name> \
                 or exec.sql.<name>"
            ));
        };
        match self.by_name.get(name) {
            Some(e) if e.family() == family => Ok(Some(e)),
            Some(e) => unknown(format!(
                "executor `{name}` is a {} executor: use kind exec.{}.{name}",
                e.family(),
                e.family()
            )),
            None => unknown(format!("no executor is named `{name}` (kind `{kind}`)")),
        }
    }

    /// How long `action`'s executor may run at most (`None`: no executor).
    pub fn timeout(&self, action: &Action) -> Option<Duration> {
        match self.named(&action.kind).ok()?? {
            Executor::Http(e) => Some(e.timeout()),
            Executor::Command(e) => Some(e.timeout()),
            Executor::Sql(e) => Some(e.timeout()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

impl countersign_app::executors::Executors for Executors {
    fn check(&self, action: &Action) -> Result<Option<Checked>, ExecRefusal> {
        match self.named(&action.kind)? {
            None => Ok(None),
            Some(Executor::Http(e)) => e.check(action).map(Some),
            Some(Executor::Command(e)) => e.check(action).map(Some),
            Some(Executor::Sql(e)) => e.check(action).map(Some),
        }
    }

    fn run<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let outcome = match self.named(&action.kind) {
                Ok(Some(Executor::Http(e))) => e.run(action).await,
                Ok(Some(Executor::Command(e))) => e.run(action).await,
                Ok(Some(Executor::Sql(e))) => e.run(action).await,
                Ok(None) => Outcome::with_error(
                    countersign_core::ExecStatus::Failed,
                    format!("`{}` is for no executor", action.kind),
                ),
                Err(e) => Outcome::with_error(countersign_core::ExecStatus::Failed, e.to_string()),
            };
            self.redactor.outcome(outcome)
        })
    }

    fn list(&self) -> Vec<ExecutorInfo> {
        self.by_name
            .values()
            .map(|e| match e {
                Executor::Http(e) => e.info(),
                Executor::Command(e) => e.info(),
                Executor::Sql(e) => e.info(),
            })
            .collect()
    }
}

/// Deserializes a duration written like `30s` or `5m`.
pub(crate) fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    countersign_app::settings::human_duration(d)
}

/// Deserializes a size written like `10MiB` or `1MB` (or a bare number of bytes).
pub(crate) fn size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Size::deserialize(d)? {
        Size::Bytes(n) => Ok(n),
        Size::Text(t) => t
            .parse::<bytesize::ByteSize>()
            .map(|b| b.as_u64())
            .map_err(|e| serde::de::Error::custom(format!("`{t}` is not a size like 10MiB: {e}"))),
    }
}

/// A parameter refusal.
pub(crate) fn invalid(param: &str, message: impl Into<String>) -> ExecRefusal {
    ExecRefusal::InvalidParams {
        param: param.to_owned(),
        message: message.into(),
    }
}
