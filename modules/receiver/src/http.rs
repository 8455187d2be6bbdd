//! What the HTTP/JSON receivers share: bodies read within `maxMessageSize` (the limit their
//! routes are added with, `HttpServer::add_routes_with_body_limit`), JSON in the proto3
//! mapping, `Commands` replies (`{}`), and rejections as [`Refusal`]s, which answer as plain-text
//! HTTP errors — `Invalid` (400) for a body that does not parse or is invalid, `TooLarge` (413)
//! for one over the limit.
//!
//! As in SkyWalking, the agent token (`authentication`) is not asked of HTTP requests: it is a
//! gRPC check only.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use oap_core::Refusal;
use oap_proto::v3::Commands;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::batch::Batch;

/// A request the receiver refused, with the reason the client reads.
pub type Rejection = Refusal;

/// The reply once the request's data is settled: `reply`, or the refusal when it may not be kept.
pub fn settled(settle: Result<(), Refusal>, reply: Response) -> Response {
    match settle {
        Ok(()) => reply,
        Err(refusal) => refusal.into_response(),
    }
}

/// The body, or why it could not be read (`TooLarge` when over the limit).
pub fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Rejection> {
    body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Refusal::too_large(rejection.body_text()),
        _ => Refusal::invalid(rejection.body_text()),
    })
}

/// One message in the proto3 JSON mapping; `what` names it in the error.
pub fn json<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, Rejection> {
    serde_json::from_slice(body).map_err(|error| Refusal::invalid(format!("invalid {what} JSON: {error}")))
}

/// A JSON array whose elements are parsed one by one, so one bad element spoils only itself.
pub fn json_array<'a>(body: &'a [u8], what: &str) -> Result<Vec<&'a RawValue>, Rejection> {
    serde_json::from_slice(body).map_err(|error| Refusal::invalid(format!("expected a JSON array of {what}: {error}")))
}

/// The reply to every accepted request: an empty `Commands`, which prints as `{}`.
pub fn commands() -> Response {
    Json(Commands::default()).into_response()
}

/// Replies to a request of one message: reads the body (counting it with `unreadable` when it
/// cannot be read), hands it to `handle` — which counts and logs its own rejections — and
/// answers `{}`, or a 400 with the reason.
pub fn reply_one<E: std::fmt::Display>(
    body: Result<Bytes, BytesRejection>,
    unreadable: impl FnOnce(),
    handle: impl FnOnce(&[u8]) -> Result<(), E>,
) -> Response {
    let body = match self::body(body) {
        Ok(body) => body,
        Err(rejection) => {
            unreadable();
            return rejection.into_response();
        }
    };
    match handle(&body) {
        Ok(()) => commands(),
        Err(error) => Refusal::invalid(error.to_string()).into_response(),
    }
}

/// Replies to a JSON array of `what`: each element goes to `handle` alone and the reply tallies
/// the rejected ones (`Batch`); a body that cannot be read or is no array is counted with
/// `unreadable` and refused.
pub fn reply_array<E: std::fmt::Display>(
    body: Result<Bytes, BytesRejection>,
    what: &str,
    unreadable: impl FnOnce(),
    mut handle: impl FnMut(&str) -> Result<(), E>,
) -> Response {
    let batch = self::body(body).and_then(|body| {
        let elements = json_array(&body, what)?;
        Ok(Batch::of(elements.iter().map(|element| handle(element.get()))))
    });
    match batch {
        Ok(batch) => batch.into_response(),
        Err(rejection) => {
            unreadable();
            rejection.into_response()
        }
    }
}
