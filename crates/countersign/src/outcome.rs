//! How a command ends: its exit code and the sentence it prints. The codes are a promise to
//! scripts (see `countersign --help`).

use countersign_core::State;

pub const OK: u8 = 0;
pub const FAILURE: u8 = 1;
pub const USAGE: u8 = 2;
pub const DENIED: u8 = 3;
pub const EXPIRED_OR_CANCELLED: u8 = 4;
pub const STILL_PENDING: u8 = 5;
/// `invoke`: the action ran and failed (its outcome is `failed` or `unknown`).
pub const ACTION_FAILED: u8 = 6;

/// A command that did not succeed: what to print on stderr and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub exit: u8,
    /// The server's machine code, when it refused.
    pub code: Option<String>,
    pub message: String,
}

impl Failure {
    pub fn other(message: impl Into<String>) -> Self {
        Self {
            exit: FAILURE,
            code: None,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            exit: USAGE,
            code: None,
            message: message.into(),
        }
    }

    pub fn refused(code: String, message: String) -> Self {
        Self {
            exit: USAGE,
            code: Some(code),
            message,
        }
    }
}

/// The exit code that reports a request's state.
pub fn exit_for_state(state: State) -> u8 {
    match state {
        State::Approved | State::Executed => OK,
        State::Denied | State::Failed => DENIED,
        State::Expired | State::Cancelled => EXPIRED_OR_CANCELLED,
        State::Pending => STILL_PENDING,
    }
}
