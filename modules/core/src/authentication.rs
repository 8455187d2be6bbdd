//! The agent token: with `authentication` (`SW_AUTHENTICATION`) set, every agent call on the
//! gRPC port must carry the metadata `authentication` with exactly that value, as SkyWalking's
//! `AuthenticationInterceptor` requires (agents send it from `agent.authentication`, or
//! `SW_AGENT_AUTHENTICATION`).
//!
//! - A call without it, or with another value, is refused before any of its messages are read,
//!   with `UNAUTHENTICATED` (SkyWalking answers `PERMISSION_DENIED`; both are a failed send to
//!   an agent, which drops the data and tries again later). Each refusal is counted in
//!   `grpc_authentication_failure_count`; the log gets a few lines per minute at most.
//! - Not checked: the `grpc.health.v1` health service and the node-to-node remote service, which
//!   are added with [`GrpcServer::add_internal_service`](crate::GrpcServer::add_internal_service),
//!   as SkyWalking registers them outside its receivers' interceptor.
//! - Not checked either, as in SkyWalking: the HTTP receivers on the REST port.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use oap_telemetry::{Counter, LogLimit};

use crate::refusal::{self, RefusalKind};
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http::{HeaderMap, Request};
use tonic::server::NamedService;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tracing::warn;

/// The metadata key agents put the token in (gRPC metadata keys are lowercase on the wire;
/// the Java agent's `Authentication` arrives as this).
pub const METADATA_KEY: &str = "authentication";

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Missing,
    Wrong,
}

/// The token every agent call must carry, and the count of those refused.
pub(crate) struct AgentToken {
    token: Box<[u8]>,
    refused: Counter,
    log: LogLimit,
}

impl AgentToken {
    /// Requires `token` (not empty), counting refusals in `refused`.
    pub(crate) fn new(token: &str, refused: Counter) -> Self {
        debug_assert!(!token.is_empty(), "an empty token means no check");
        Self { token: token.as_bytes().into(), refused, log: LogLimit::new(3, Duration::from_secs(60)) }
    }

    fn verdict(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(sent) = headers.get(METADATA_KEY) else {
            return Err(Refusal::Missing);
        };
        if equal_in_constant_time(sent.as_bytes(), &self.token) { Ok(()) } else { Err(Refusal::Wrong) }
    }

    /// Lets a call to `service` through, or counts and refuses it.
    fn check(&self, request: &Request<Body>, service: &'static str) -> Result<(), Status> {
        let refusal = match self.verdict(request.headers()) {
            Ok(()) => return Ok(()),
            Err(refusal) => refusal,
        };
        self.refused.inc();
        let message = match refusal {
            Refusal::Missing => "the call carries no authentication token (metadata `authentication`)",
            Refusal::Wrong => "the call's authentication token is not the one this server requires",
        };
        if let Some(held_back) = self.log.admit() {
            let peer = peer_address(request).map(|address| address.to_string()).unwrap_or_default();
            warn!(service, peer, held_back, "agent call refused: {message}");
        }
        Err(refusal::Refusal { kind: RefusalKind::Unauthenticated, message: message.to_owned() }.into())
    }
}

/// The client's address, from what tonic's server puts in each request.
fn peer_address(request: &Request<Body>) -> Option<std::net::SocketAddr> {
    let extensions = request.extensions();
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| extensions.get::<TlsConnectInfo<TcpConnectInfo>>().and_then(|info| info.get_ref().remote_addr()))
}

/// Compares without returning early, so the time taken does not tell how much of a guess was
/// right.
pub(crate) fn equal_in_constant_time(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    left.iter().zip(right).fold(0u8, |difference, (a, b)| difference | (a ^ b)) == 0
}

/// A service whose calls must carry the agent token.
#[derive(Clone)]
pub(crate) struct Authenticated<S> {
    inner: S,
    token: Arc<AgentToken>,
}

impl<S> Authenticated<S> {
    pub(crate) fn new(inner: S, token: Arc<AgentToken>) -> Self {
        Self { inner, token }
    }
}

impl<S: NamedService> NamedService for Authenticated<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<Request<Body>> for Authenticated<S>
where
    S: Service<Request<Body>, Error = Infallible> + NamedService,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if let Err(status) = self.token.check(&request, S::NAME) {
            return Box::pin(std::future::ready(Ok(status.into_http::<axum::body::Body>())));
        }
        let call = self.inner.call(request);
        Box::pin(async move { call.await.map(IntoResponse::into_response) })
    }
}

#[cfg(test)]
mod tests {
    use oap_telemetry::{MetricsCreator, MetricsRegistry};
    use tonic::codegen::http::HeaderValue;

    use super::*;

    fn token(metrics: &MetricsRegistry) -> AgentToken {
        let refused = metrics.counter("grpc_authentication_failure_count", "refused", &[]).expect("counter");
        AgentToken::new("s3cret", refused)
    }

    fn request(token: Option<&'static str>) -> Request<Body> {
        let mut request = Request::new(Body::empty());
        if let Some(token) = token {
            request.headers_mut().insert(METADATA_KEY, HeaderValue::from_static(token));
        }
        request
    }

    #[test]
    fn only_the_exact_token_passes_and_each_refusal_is_counted() {
        let metrics = MetricsRegistry::new();
        let token = token(&metrics);
        assert!(token.check(&request(Some("s3cret")), "svc").is_ok());
        for sent in [None, Some("s3cre"), Some("s3cret "), Some("S3CRET"), Some("")] {
            let status = token.check(&request(sent), "svc").expect_err("refused");
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{sent:?}");
        }
        assert!(metrics.render().contains("grpc_authentication_failure_count 5"), "{}", metrics.render());
    }

    #[test]
    fn the_refusal_says_whether_the_token_was_missing_or_wrong() {
        let token = token(&MetricsRegistry::new());
        assert_eq!(token.verdict(request(None).headers()), Err(Refusal::Missing));
        assert_eq!(token.verdict(request(Some("nope")).headers()), Err(Refusal::Wrong));
    }

    #[test]
    fn constant_time_equality_is_equality() {
        assert!(equal_in_constant_time(b"", b""));
        assert!(equal_in_constant_time(b"abc", b"abc"));
        assert!(!equal_in_constant_time(b"abc", b"abd"));
        assert!(!equal_in_constant_time(b"abc", b"ab"));
    }
}
