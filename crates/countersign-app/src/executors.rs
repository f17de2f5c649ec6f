//! The port to the executors: the actions the gateway carries out itself, with credentials the
//! agent never holds (`exec.http.<name>`, `exec.command.<name>`, `exec.sql.<name>`). The
//! `countersign-exec` crate implements it; the Gateway checks an action with it before the
//! policy sees it (bad input records nothing) and runs the recorded action with it.

use countersign_core::{Action, Outcome};
use futures::future::BoxFuture;
use std::time::Duration;

/// What an executor's check found in an action it accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// The executor's name.
    pub executor: String,
    /// The longest the executor may run; the execution's deadline adds a margin to it.
    pub timeout: Duration,
    /// What the policy may read of the action beyond its fields, by variable name (`sql`: the
    /// statement kinds, tables and whether it writes).
    pub facts: Vec<(&'static str, serde_json::Value)>,
}

/// Why an action for an executor was refused; each is a 400 with its machine code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecRefusal {
    #[error("{0}")]
    UnknownExecutor(String),
    #[error("parameter `{param}`: {message}")]
    InvalidParams { param: String, message: String },
    #[error("{0}")]
    InvalidSql(String),
}

impl ExecRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            ExecRefusal::UnknownExecutor(_) => "unknown_executor",
            ExecRefusal::InvalidParams { .. } => "invalid_params",
            ExecRefusal::InvalidSql(_) => "invalid_sql",
        }
    }
}

/// The kinds of action that name an executor start with this.
pub const EXEC_PREFIX: &str = "exec.";

/// One configured executor, as tools and listings show it (never a secret).
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorInfo {
    pub name: String,
    /// The action kind that names it (`exec.http.github`).
    pub kind: String,
    /// A sentence for people and agents.
    pub description: String,
    /// The JSON Schema of the action's `params`.
    pub params_schema: serde_json::Value,
    /// The resource its actions must name (`command://rollback`), or the base URL an HTTP
    /// executor's resources start with.
    pub resource: String,
}

impl ExecutorInfo {
    /// The resource an action of this executor with `params` must name: for an HTTP executor
    /// the base URL and the path (`params.path`, empty when absent: the check then names the
    /// missing parameter), for the others the executor's one resource.
    pub fn resource_for(&self, params: &serde_json::Value) -> String {
        if self.kind.starts_with("exec.http.") {
            let path = params.get("path").and_then(|p| p.as_str()).unwrap_or("");
            format!("{}{path}", self.resource)
        } else {
            self.resource.clone()
        }
    }

    /// The action that asks this executor to run with `params`.
    pub fn action(&self, params: serde_json::Value, justification: Option<String>) -> Action {
        Action {
            kind: self.kind.clone(),
            resource: self.resource_for(&params),
            params,
            justification,
            run: None,
            labels: Default::default(),
        }
    }
}

/// The executors the gateway holds.
pub trait Executors: Send + Sync + 'static {
    /// `Ok(None)`: `action` is for no executor (its kind does not start with `exec.`).
    /// Otherwise the action is checked whole: the executor exists, its resource is the one it
    /// must be, every parameter is valid.
    fn check(&self, action: &Action) -> Result<Option<Checked>, ExecRefusal>;

    /// Carries out `action`, which [`Executors::check`] accepted, and says how it went. It never
    /// panics, stops at the executor's timeout, and no secret value appears in what it returns.
    fn run<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Outcome>;

    /// Every executor, by name.
    fn list(&self) -> Vec<ExecutorInfo>;
}

/// No executors configured: every `exec.` kind is unknown.
pub struct NoExecutors;

impl Executors for NoExecutors {
    fn check(&self, action: &Action) -> Result<Option<Checked>, ExecRefusal> {
        match action.kind.strip_prefix(EXEC_PREFIX) {
            None => Ok(None),
            Some(_) => Err(ExecRefusal::UnknownExecutor(format!(
                "no executor named by `{}`: this gateway has no executors configured",
                action.kind
            ))),
        }
    }

    fn run<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Outcome> {
        let error = format!("no executor for `{}`", action.kind);
        Box::pin(async move { Outcome::with_error(countersign_core::ExecStatus::Failed, error) })
    }

    fn list(&self) -> Vec<ExecutorInfo> {
        vec![]
    }
}
