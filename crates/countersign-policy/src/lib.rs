//! Countersign's policy: the YAML rule file, parsed and checked at load (unknown keys, names,
//! globs, durations, CEL conditions), and the pure function that maps a principal and an action
//! to a decision — allow, deny with a reason, or review with requirements — naming the rule that
//! decided and the policy's content hash. Also `explain` (why, rule by rule) and offline policy
//! tests (`cases`).
//!
//! The file (see `sample-policy.yaml`): `version: 1`; `default` (allow | deny | review, the
//! effect when no rule matches); `defaults.review` (approvers, mfa, timeout, on_timeout,
//! pause_run, grant_ttl, inherited field by field by every review); `rules`, tried in order, each
//! with a unique `name`, optional `match` globs over `kind`, `resource` and `principal` (a string
//! or a list; `*` crosses `/` and `.`), an optional CEL `when` over `principal`, `action`,
//! `params`, `sql` (what the SQL of an `exec.sql.<name>` action does: module `sql`; `null` for
//! other actions) and `now`, an `effect`, an optional `reason`, a `review` block (review rules
//! only) and `grant_ttl` (allow rules only). Durations are written `90s`, `15m`, `2h30m`, `1d`.
//!
//! Architecture invariant: this crate does no I/O except `Policy::load` reading the policy file,
//! never reads the clock (time is a parameter), and fails closed: a condition that errors denies
//! the action, naming the rule; it is never taken as `false`. A condition that may cost more than
//! linear time (comprehensions, run-time `matches` patterns) is marked at load and runs only
//! where the caller can bound it (`evaluate_inline` defers it; `budget`).
#![forbid(unsafe_code)]

mod budget;
mod cancellation;
pub mod cases;
mod condition;
mod document;
mod duration;
mod error;
mod evaluate;
mod glob;
mod location;
mod policy;
mod regex_literals;
pub mod replay;
mod requirements;
pub mod sql;

pub use budget::{BUDGET_EXCEEDED, Budget, Deferred};
pub use duration::format_seconds;
pub use error::PolicyError;
pub use evaluate::{Explanation, RuleOutcome, RuleTrace};
pub use policy::{Policy, yaml_line};
pub use requirements::BUILT_IN_REVIEW_TIMEOUT_SECONDS;

/// The built-in sample policy, used when the server starts with no policy configured.
pub const SAMPLE_POLICY: &str = include_str!("../sample-policy.yaml");
