//! Why what an agent sent is not acknowledged, classified once by what the agent should do about
//! it, and turned into a gRPC status and an HTTP status here and nowhere else (Quickwit's
//! `ServiceErrorCode` is the model):
//!
//! | kind | the agent should | gRPC | HTTP |
//! |---|---|---|---|
//! | `Invalid` | not send it again: it will never be taken | `INVALID_ARGUMENT` | 400 |
//! | `Busy` | send less, or later: the server is behind (back-pressure) | `RESOURCE_EXHAUSTED` | 429 |
//! | `TooLarge` | send it in smaller messages: this one is over `maxMessageSize` | `RESOURCE_EXHAUSTED` | 413 |
//! | `Unavailable` | send it later: the server cannot store now (its store fails, or it stops) | `UNAVAILABLE` | 503 |
//! | `Unauthenticated` | carry the right token | `UNAUTHENTICATED` | 401 |

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tonic::{Code, Status};

/// What the agent should do about a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The data can never be taken.
    Invalid,
    /// The server is behind: back-pressure.
    Busy,
    /// The message is larger than the server takes.
    TooLarge,
    /// The server cannot store now.
    Unavailable,
    /// The call lacks the right credentials.
    Unauthenticated,
}

/// Why data was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// What the agent should do.
    pub kind: RefusalKind,
    /// Why, for the agent's log and ours.
    pub message: String,
}

impl Refusal {
    /// The data can never be taken.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self { kind: RefusalKind::Invalid, message: message.into() }
    }

    /// The server is behind.
    pub fn busy(message: impl Into<String>) -> Self {
        Self { kind: RefusalKind::Busy, message: message.into() }
    }

    /// The message is larger than the server takes.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self { kind: RefusalKind::TooLarge, message: message.into() }
    }

    /// The server cannot store now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self { kind: RefusalKind::Unavailable, message: message.into() }
    }

    /// The gRPC status code of the kind.
    pub fn grpc_code(&self) -> Code {
        match self.kind {
            RefusalKind::Invalid => Code::InvalidArgument,
            RefusalKind::Busy | RefusalKind::TooLarge => Code::ResourceExhausted,
            RefusalKind::Unavailable => Code::Unavailable,
            RefusalKind::Unauthenticated => Code::Unauthenticated,
        }
    }

    /// The HTTP status of the kind.
    pub fn http_status(&self) -> StatusCode {
        match self.kind {
            RefusalKind::Invalid => StatusCode::BAD_REQUEST,
            RefusalKind::Busy => StatusCode::TOO_MANY_REQUESTS,
            RefusalKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            RefusalKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            RefusalKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        }
    }
}

impl From<Refusal> for Status {
    fn from(refusal: Refusal) -> Self {
        Status::new(refusal.grpc_code(), refusal.message)
    }
}

/// A plain-text HTTP error: the kind's status, the message as the body.
impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.http_status(), self.message).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_one_status_on_each_wire() {
        for (refusal, grpc, http) in [
            (Refusal::invalid("x"), Code::InvalidArgument, 400),
            (Refusal::busy("x"), Code::ResourceExhausted, 429),
            (Refusal::too_large("x"), Code::ResourceExhausted, 413),
            (Refusal::unavailable("x"), Code::Unavailable, 503),
            (Refusal { kind: RefusalKind::Unauthenticated, message: "x".into() }, Code::Unauthenticated, 401),
        ] {
            assert_eq!(refusal.http_status().as_u16(), http);
            assert_eq!(Status::from(refusal).code(), grpc);
        }
    }
}
