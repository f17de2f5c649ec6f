//! The pure domain of Countersign: principals, actions and their digests, the request state
//! machine, votes and quorum, grants, runs and TOTP verification.
//!
//! Architecture invariant: this crate knows nothing of HTTP, SQL, Slack or the clock. Time is a
//! parameter (`now`) of every transition, and identifiers are handed in by the caller, so every
//! rule here is a pure function that property tests can drive.
#![forbid(unsafe_code)]

pub mod action;
pub mod canonical;
pub mod decision;
pub mod digest;
pub mod event;
pub mod execution;
pub mod grant;
pub mod json_text;
pub mod mfa;
pub mod plan;
pub mod principal;
pub mod quorum;
pub mod replay;
pub mod request;
pub mod run;
pub mod standing;
pub mod text;
pub mod trace;

pub use action::{Action, ActionError};
pub use decision::{Clause, Decision, Effect, Escalation, OnTimeout, Requirements, check_target};
pub use digest::Digest;
pub use event::Event;
pub use execution::{ExecStatus, Execution, HttpOutcome, Outcome};
pub use grant::Grant;
pub use json_text::JsonTextError;
pub use principal::{Principal, PrincipalId, PrincipalKind};
pub use request::{
    Ballot, Cancellation, Channel, MfaMethod, Refusal, Request, RunGate, State, Transition, Vote,
    VoteDecision, grant_id_for, request_id_for_grant,
};
pub use run::{Run, RunState};

/// Timestamps everywhere in the domain: UTC, millisecond precision is what storage keeps.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
