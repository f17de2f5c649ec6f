//! The edge of `/mcp` in front of rmcp: a POST whose body is JSON must be one JSON-RPC
//! message. A batch (a JSON array; MCP dropped batching in its 2025-06-18 revision, empty and
//! one-element arrays and arrays of notifications included), a body that is not JSON, or JSON
//! that is no JSON-RPC message rmcp accepts is answered 400 with a JSON-RPC error object
//! (`-32600` Invalid Request, `-32700` Parse error; JSON-RPC 2.0 §5), where rmcp would answer
//! 415 with a line of text. A wrong `Content-Type` is still 415: that one is about the media
//! type. Runs after authentication, so strangers learn nothing new.
//!
//! Cost on the hot path: the body is collected once (rmcp collects it anyway) and its first
//! byte looked at; it is parsed again only when rmcp has already refused it.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The largest body `/mcp` reads (also rmcp's limit, set in `Mcp::service`).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
const INVALID_REQUEST: i64 = -32600;
const PARSE_ERROR: i64 = -32700;

/// The middleware: passes one JSON-RPC message on to rmcp, refuses anything else.
pub async fn one_message(request: Request, next: Next) -> Response {
    if request.method() != Method::POST || !is_json(request.headers()) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            Value::Null,
            INVALID_REQUEST,
            format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        );
    };
    if let Some(refusal) = refuse_batch(&bytes) {
        return refusal;
    }
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes.clone())))
        .await;
    if response.status() != StatusCode::UNSUPPORTED_MEDIA_TYPE {
        return response;
    }
    // The Content-Type was JSON, so rmcp's 415 says the body is not one message it reads.
    match serde_json::from_slice::<Value>(&bytes) {
        Err(e) => refuse(
            StatusCode::BAD_REQUEST,
            Value::Null,
            PARSE_ERROR,
            format!("the body is not JSON: {e}"),
        ),
        Ok(v) => refuse(
            StatusCode::BAD_REQUEST,
            id_of(&v),
            INVALID_REQUEST,
            "the body is not a JSON-RPC 2.0 message this server accepts (an object with \
             \"jsonrpc\": \"2.0\" and a known method, or a response)"
                .into(),
        ),
    }
}

/// A JSON array is a batch, whatever it holds.
fn refuse_batch(bytes: &Bytes) -> Option<Response> {
    let first = bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))?;
    (*first == b'[').then(|| {
        refuse(
            StatusCode::BAD_REQUEST,
            Value::Null,
            INVALID_REQUEST,
            "JSON-RPC batches are not supported (MCP removed them in 2025-06-18): send each \
             request or notification in its own POST"
                .into(),
        )
    })
}

/// The id of a message we could not read, when it has a usable one (else `null`).
fn id_of(v: &Value) -> Value {
    match v.get("id") {
        Some(id @ (Value::String(_) | Value::Number(_))) => id.clone(),
        _ => Value::Null,
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let essence = v.split_once(';').map_or(v, |(e, _)| e);
            essence.trim().eq_ignore_ascii_case("application/json")
        })
}

fn refuse(status: StatusCode, id: Value, code: i64, message: String) -> Response {
    let body = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    (status, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_array_is_a_batch_and_nothing_else_is() {
        for batch in [
            "[]",
            " \n[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]",
            "[{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}]",
            "\t[1, 2",
        ] {
            let r = refuse_batch(&Bytes::from(batch)).expect(batch);
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{batch}");
        }
        for one in [
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}",
            "",
            "  ",
            "\"[\"",
        ] {
            assert!(refuse_batch(&Bytes::from(one)).is_none(), "{one}");
        }
    }

    #[test]
    fn an_unreadable_message_keeps_a_usable_id_only() {
        assert_eq!(id_of(&json!({"id": 7})), json!(7));
        assert_eq!(id_of(&json!({"id": "a"})), json!("a"));
        assert_eq!(id_of(&json!({"id": {"x": 1}})), Value::Null);
        assert_eq!(id_of(&json!([1])), Value::Null);
    }
}
