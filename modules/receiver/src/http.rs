//! What the HTTP/JSON receivers share: bodies read within `maxMessageSize`, JSON in the proto3
//! mapping, `Commands` replies (`{}`), and rejections as plain-text HTTP errors — 400 for a body
//! that does not parse or is invalid, 413 for one over the limit.

use axum::Json;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use oap_proto::v3::Commands;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

/// A request the receiver refused, with the reason the client reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The HTTP status.
    pub status: StatusCode,
    /// Why, in words.
    pub message: String,
}

impl Rejection {
    /// A 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: message.into() }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        (self.status, self.message).into_response()
    }
}

/// The body limit the receivers' routes apply (`maxMessageSize`, as for gRPC messages).
pub fn body_limit(max_message_size: usize) -> DefaultBodyLimit {
    DefaultBodyLimit::max(max_message_size)
}

/// The body, or why it could not be read (413 when over the limit).
pub fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Rejection> {
    body.map_err(|rejection| Rejection { status: rejection.status(), message: rejection.body_text() })
}

/// One message in the proto3 JSON mapping; `what` names it in the error.
pub fn json<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, Rejection> {
    serde_json::from_slice(body).map_err(|error| Rejection::bad_request(format!("invalid {what} JSON: {error}")))
}

/// A JSON array whose elements are parsed one by one, so one bad element spoils only itself.
pub fn json_array<'a>(body: &'a [u8], what: &str) -> Result<Vec<&'a RawValue>, Rejection> {
    serde_json::from_slice(body)
        .map_err(|error| Rejection::bad_request(format!("expected a JSON array of {what}: {error}")))
}

/// The reply to every accepted request: an empty `Commands`, which prints as `{}`.
pub fn commands() -> Response {
    Json(Commands::default()).into_response()
}

/// The reply to a batch: `{}` when every element was accepted, else a 400 that says how many
/// were rejected (and why the first was) and that the others were kept, so clients do not
/// resend them.
pub fn batch_reply(total: usize, rejected: usize, first_error: Option<String>) -> Response {
    match first_error {
        None => commands(),
        Some(error) => Rejection::bad_request(format!(
            "{rejected} of {total} {} rejected, the first because {error}; the others were accepted",
            if total == 1 { "element" } else { "elements" }
        ))
        .into_response(),
    }
}
