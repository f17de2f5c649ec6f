//! The one place where failures become HTTP: a status, a stable machine code and a sentence a
//! person can act on, as `{"error": {"code", "message"}}`. Storage failures are logged with
//! detail and answered with a generic 500/503 so internals never leak.

use crate::wire::{ErrorBody, ErrorDetail};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use countersign_app::auth::AuthError;
use countersign_app::gateway::passkeys::PasskeyFailure;
use countersign_app::gateway::{GatewayError, MfaFailure};
use countersign_core::Refusal;
use countersign_store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The recorded outcome, on a refused second execution.
    pub outcome: Option<Box<countersign_core::Outcome>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            outcome: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
            outcome: self.outcome.map(|o| *o),
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// A JSON body whose numbers or keys would mean two things (invariant 9).
impl From<countersign_core::JsonTextError> for ApiError {
    fn from(e: countersign_core::JsonTextError) -> Self {
        ApiError::bad_request(e.code(), e.to_string())
    }
}

fn refusal_status(r: &Refusal) -> StatusCode {
    match r {
        Refusal::SelfApproval
        | Refusal::AgentCannotVote
        | Refusal::NotAnApprover { .. }
        | Refusal::MfaRequired
        | Refusal::NotRequester
        | Refusal::NotGrantHolder => StatusCode::FORBIDDEN,
        Refusal::DigestMismatch { .. }
        | Refusal::AlreadyVoted
        | Refusal::RequestClosed(_)
        | Refusal::RequestExpired
        | Refusal::GrantUsed
        | Refusal::NoGrant(_)
        | Refusal::OutcomeRecorded
        | Refusal::NotRedeemed(_) => StatusCode::CONFLICT,
        Refusal::TooFast { .. } => StatusCode::CONFLICT,
        Refusal::CommentRequired | Refusal::StandingNotAllowed(_) => StatusCode::BAD_REQUEST,
        Refusal::StandingInactive(_) | Refusal::PlanNotRedeemable | Refusal::PlanInactive(_) => {
            StatusCode::CONFLICT
        }
        Refusal::AmendNotAllowed => StatusCode::FORBIDDEN,
        Refusal::AmendUnchanged => StatusCode::BAD_REQUEST,
        Refusal::GrantExpired => StatusCode::GONE,
    }
}

fn passkey_status(p: PasskeyFailure) -> StatusCode {
    match p {
        PasskeyFailure::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        PasskeyFailure::NotEnrolled => StatusCode::BAD_REQUEST,
        PasskeyFailure::Invalid | PasskeyFailure::Mismatch => StatusCode::FORBIDDEN,
        PasskeyFailure::Replayed | PasskeyFailure::Duplicate => StatusCode::CONFLICT,
        PasskeyFailure::Expired => StatusCode::GONE,
    }
}

/// The one place a [`GatewayError`] becomes an HTTP answer: its status here, its machine code
/// the Gateway's own (`GatewayError::code`), its message for a person.
impl From<GatewayError> for ApiError {
    fn from(e: GatewayError) -> Self {
        let code = e.code();
        let status = match &e {
            GatewayError::Refused(r) => refusal_status(r),
            GatewayError::InvalidAction(_) | GatewayError::BadInput(..) => StatusCode::BAD_REQUEST,
            GatewayError::NotFound(_) | GatewayError::Store(StoreError::NotFound) => {
                StatusCode::NOT_FOUND
            }
            GatewayError::Forbidden(..) => StatusCode::FORBIDDEN,
            GatewayError::Run(_) => StatusCode::CONFLICT,
            GatewayError::Mfa(m) => match m {
                MfaFailure::NotEnrolled => StatusCode::BAD_REQUEST,
                MfaFailure::Invalid | MfaFailure::Reused => StatusCode::FORBIDDEN,
                MfaFailure::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            },
            GatewayError::Passkey(p) => passkey_status(*p),
            GatewayError::Exec(_) => StatusCode::BAD_REQUEST,
            GatewayError::ExecutionLost => StatusCode::INTERNAL_SERVER_ERROR,
            GatewayError::IdempotencyMismatch(_) => StatusCode::UNPROCESSABLE_ENTITY,
            GatewayError::TooMany(..) => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::Store(StoreError::Integrity(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            GatewayError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let message = match e {
            GatewayError::NotFound(what) => format!("no such {what} (or you may not see it)"),
            GatewayError::Store(StoreError::NotFound) => "no such request".to_string(),
            // The store has already logged it as an error; the caller learns only that the
            // gateway refused, and which request to ask an operator about.
            GatewayError::Store(StoreError::Integrity(why)) => format!(
                "the gateway refused to act: {why}, so its stored state does not match \
                 its audit log; nothing was changed, ask an operator to run \
                 `countersign audit verify`"
            ),
            GatewayError::Store(e) => {
                tracing::error!(error = %e, "storage failure");
                "the gateway could not reach its database; nothing was changed, try again"
                    .to_string()
            }
            GatewayError::BadInput(_, message) | GatewayError::Forbidden(_, message) => message,
            e => e.to_string(),
        };
        ApiError::new(status, code, message)
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let code = match e {
            AuthError::Missing => "unauthenticated",
            AuthError::Invalid => "invalid_key",
            AuthError::UnknownPrincipal => "unknown_principal",
        };
        ApiError::new(StatusCode::UNAUTHORIZED, code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use countersign_app::gateway::passkeys::PasskeyFailure;

    /// Each edge answers a Gateway failure with the Gateway's own machine code; this mapping
    /// adds only the status (and a person's sentence where the Gateway's would leak internals).
    #[test]
    fn a_gateway_failure_keeps_its_machine_code_and_gets_one_status() {
        let cases: Vec<(GatewayError, StatusCode, &str)> = vec![
            (
                Refusal::SelfApproval.into(),
                StatusCode::FORBIDDEN,
                "self_approval",
            ),
            (
                Refusal::AlreadyVoted.into(),
                StatusCode::CONFLICT,
                "already_voted",
            ),
            (
                Refusal::GrantExpired.into(),
                StatusCode::GONE,
                "grant_expired",
            ),
            (
                GatewayError::BadInput("invalid_digest", "x".into()),
                StatusCode::BAD_REQUEST,
                "invalid_digest",
            ),
            (
                GatewayError::Forbidden("requester_not_allowed", "x".into()),
                StatusCode::FORBIDDEN,
                "requester_not_allowed",
            ),
            (
                GatewayError::NotFound("request"),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                GatewayError::Mfa(MfaFailure::RateLimited),
                StatusCode::TOO_MANY_REQUESTS,
                "mfa_rate_limited",
            ),
            (
                GatewayError::Passkey(PasskeyFailure::Expired),
                StatusCode::GONE,
                "webauthn_expired",
            ),
            (
                GatewayError::Store(StoreError::Integrity("row changed".into())),
                StatusCode::INTERNAL_SERVER_ERROR,
                "integrity_error",
            ),
            (
                GatewayError::Store(StoreError::Corrupt("down".into())),
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
            ),
        ];
        for (e, status, code) in cases {
            assert_eq!(e.code(), code, "{e:?}");
            let api = ApiError::from(e);
            assert_eq!((api.status, api.code), (status, code));
            assert!(!api.message.contains("down"), "{}", api.message);
        }
    }
}
