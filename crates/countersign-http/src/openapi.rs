//! The OpenAPI 3.1 document of the gateway's HTTP API, generated: each handler's
//! `#[utoipa::path]` and the wire types' `ToSchema` derives are its only source, and
//! `utoipa_axum::routes!` registers a handler's route and its path item in one call, so the
//! document cannot name a route the router does not serve or miss one it does (issue 21). The
//! roles above this crate (chat channels, MCP) add their own paths the same way; the binary's
//! router merges them (`countersign_server::router`) and serves the result at
//! `/v1/openapi.json`.

use crate::wire::ErrorBody;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use std::sync::{Arc, OnceLock};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// The served document, as JSON text: set once by the binary's router after every role's
/// paths are merged (the document does not depend on configuration).
#[derive(Clone, Default)]
pub struct Document(Arc<OnceLock<axum::body::Bytes>>);

impl Document {
    /// Records the merged document; a second call keeps the first (it is the same document).
    pub fn set(&self, doc: &utoipa::openapi::OpenApi) {
        let text = doc.to_json().unwrap_or_else(|e| {
            tracing::error!(error = %e, "the OpenAPI document could not be written");
            String::from("{}")
        });
        let _ = self.0.set(text.into());
    }

    /// The document's text (a shared buffer: serving it copies nothing).
    pub fn get(&self) -> axum::body::Bytes {
        self.0.get().cloned().unwrap_or_else(|| "{}".into())
    }
}

/// What the document says before any path: its title, version and the API key scheme.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Countersign API",
        version = "1",
        description = "Human countersignature for the privileged actions of AI agents."
    ),
    modifiers(&BearerKey),
    components(schemas(ErrorBody))
)]
pub struct Base;

/// The security scheme every authenticated operation names: a Countersign API key.
pub struct BearerKey;

/// The scheme's name in `security(("bearer" = []))`.
pub const BEARER: &str = "bearer";

impl utoipa::Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A Countersign API key (`countersign key create`)"))
                    .build(),
            ),
        );
    }
}

/// The document with only this crate's base: title, version, key scheme.
pub fn base() -> utoipa::openapi::OpenApi {
    <Base as utoipa::OpenApi>::openapi()
}

/// Every refusal a Gateway call can end in (`error::From<GatewayError>`), and the edge's own:
/// each is `{"error": {"code", "message"}}`; the code says which.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only its responses are read.
pub enum Refused {
    /// Malformed input: the body, a query or a path parameter (`invalid_body`,
    /// `invalid_json`, `invalid_query`, `invalid_action`, …).
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No key, or one the gateway does not know.
    #[response(status = 401)]
    Unauthenticated(ErrorBody),
    /// The caller may not do this (`self_approval`, `not_an_approver`, `mfa_required`, …).
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No such object, or one the caller may not see.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The object's state forbids it now (`digest_mismatch`, `already_voted`,
    /// `request_closed`, `grant_used`, …).
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// It was possible once and no longer is (`grant_expired`).
    #[response(status = 410)]
    Gone(ErrorBody),
    /// An `Idempotency-Key` reused for a different body (`idempotency_mismatch`).
    #[response(status = 422)]
    Unprocessable(ErrorBody),
    /// Too many at once (`too_many_waits`, `too_many_streams`, `mfa_rate_limited`).
    #[response(status = 429)]
    TooMany(ErrorBody),
}

/// What an operation that takes a body can also be refused with.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only its responses are read.
pub enum TooLarge {
    /// The body is larger than the gateway accepts (`max_body_bytes`; `body_too_large`).
    #[response(status = 413)]
    TooLarge(ErrorBody),
}

/// What a call that only authenticates can be refused with.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only its responses are read.
pub enum Unauthenticated {
    /// No key, or one the gateway does not know.
    #[response(status = 401)]
    Unauthenticated(ErrorBody),
}

/// What a public read with a query can be refused with.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only its responses are read.
pub enum BadQuery {
    /// A query parameter out of shape or range.
    #[response(status = 400)]
    BadRequest(ErrorBody),
}

/// The document (OpenAPI 3.1, JSON). It is generated from the code that serves the API.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    operation_id = "openapi",
    responses((status = 200, description = "This document", content_type = "application/json", body = Object))
)]
pub async fn serve(State(state): State<crate::ApiState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi.get(),
    )
}
