//! The shared HTTP server: modules add axum routes, the core provider serves them.
//!
//! Every request body is bounded:
//! - routes added with [`HttpServer::add_routes`] (GraphQL, `/status`) take bodies up to
//!   `restMaxRequestBodySize`. The body is read whole, within the limit, before the route sees
//!   it, so a route that reads the raw body itself (GraphQL) is bounded too; one over the limit
//!   is answered 413 as soon as it is seen to be — at once when its `Content-Length` says so —
//!   and is never read further;
//! - the HTTP receivers, which take what agents also send over gRPC, set their own limit
//!   (`maxMessageSize`) with [`HttpServer::add_routes_with_body_limit`]; they read bodies
//!   through axum's extractors, which stop at that limit and answer 413 through a rejection
//!   the receiver counts.

use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use oap_kernel::ModuleError;

/// The HTTP server on `restPort`, shared by the HTTP receivers, GraphQL and `/status`.
pub struct HttpServer {
    context_path: String,
    /// `restMaxRequestBodySize`: the body limit of routes that set none of their own.
    max_request_body_size: usize,
    /// Routes added so far; `None` once serving has begun.
    router: Mutex<Option<Router>>,
    local_addr: OnceLock<SocketAddr>,
}

impl HttpServer {
    pub(crate) fn new(context_path: &str, max_request_body_size: usize) -> Self {
        Self {
            context_path: context_path.to_owned(),
            max_request_body_size,
            router: Mutex::new(Some(Router::new())),
            local_addr: OnceLock::new(),
        }
    }

    /// Adds routes (paths relative to `restContextPath`) whose request bodies may be up to
    /// `restMaxRequestBodySize` bytes. Routes must be added during `prepare` or `start`; a path
    /// added twice is an error.
    pub fn add_routes(&self, routes: Router) -> Result<(), ModuleError> {
        self.merge(limit_bodies(routes, self.max_request_body_size))
    }

    /// Adds routes whose handlers read request bodies only through axum's extractors (`Bytes`,
    /// `Json`, `String`), with up to `limit` bytes instead of `restMaxRequestBodySize`: an
    /// extractor stops reading at the limit and rejects the request with 413, which the handler
    /// may count. A route that reads the raw body itself must use [`HttpServer::add_routes`].
    pub fn add_routes_with_body_limit(&self, routes: Router, limit: usize) -> Result<(), ModuleError> {
        self.merge(routes.layer(DefaultBodyLimit::max(limit)))
    }

    /// `restMaxRequestBodySize`: the body limit of [`HttpServer::add_routes`].
    pub fn max_request_body_size(&self) -> usize {
        self.max_request_body_size
    }

    fn merge(&self, routes: Router) -> Result<(), ModuleError> {
        let mut router = self.router.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(current) = router.take() else {
            return Err(ModuleError::Other(
                "cannot add HTTP routes: the server is already serving; add routes in prepare or start".to_owned(),
            ));
        };
        // axum panics on overlapping routes; turn that into an error of the module that added them.
        let merged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| current.clone().merge(routes)));
        match merged {
            Ok(merged) => {
                *router = Some(merged);
                Ok(())
            }
            Err(panic) => {
                *router = Some(current);
                let reason = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
                    .unwrap_or_else(|| "overlapping routes".to_owned());
                Err(ModuleError::Other(format!("cannot add HTTP routes: {reason}")))
            }
        }
    }

    /// The address the server is bound to, once the core module has started.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr.get().copied()
    }

    pub(crate) fn set_local_addr(&self, address: SocketAddr) {
        let _ = self.local_addr.set(address);
    }

    /// Closes the registration and returns the routes under the context path.
    pub(crate) fn take_router(&self) -> Router {
        let mut router = self.router.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let routes = router.take().unwrap_or_default();
        match self.context_path.trim_end_matches('/') {
            "" => routes,
            prefix => Router::new().nest(prefix, routes),
        }
    }
}

/// Bounds the request bodies of `routes` to `limit` bytes (see the module doc).
fn limit_bodies(routes: Router, limit: usize) -> Router {
    routes
        .layer(middleware::from_fn(move |request: Request, next: Next| read_within(request, next, limit)))
        // Extractors (`Bytes`, `Json`) read the body already read: let them take all of it
        // instead of their own 2 MB default.
        .layer(DefaultBodyLimit::max(limit))
}

/// Reads the body of `request` within `limit` bytes and hands the request on, or answers 413.
async fn read_within(request: Request, next: Next, limit: usize) -> Response {
    let too_large = || {
        (StatusCode::PAYLOAD_TOO_LARGE, format!("the request body is larger than the limit of {limit} bytes"))
            .into_response()
    };
    let declared = request.headers().get(CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return too_large();
    }
    let (parts, body) = request.into_parts();
    match Limited::new(body, limit).collect().await {
        Ok(collected) => next.run(Request::from_parts(parts, Body::from(collected.to_bytes()))).await,
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => too_large(),
        Err(error) => (StatusCode::BAD_REQUEST, format!("cannot read the request body: {error}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Bytes;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    use super::*;

    #[test]
    fn overlapping_routes_are_an_error_not_a_panic() {
        let server = HttpServer::new("/", 1024);
        server.add_routes(Router::new().route("/v3/segment", get(|| async { "a" }))).expect("first");
        let error = server.add_routes(Router::new().route("/v3/segment", get(|| async { "b" }))).expect_err("overlap");
        assert!(error.to_string().starts_with("cannot add HTTP routes"), "{error}");
        server.add_routes(Router::new().route("/v3/segments", get(|| async { "c" }))).expect("distinct path");
    }

    #[test]
    fn routes_are_closed_once_serving() {
        let server = HttpServer::new("/oap", 1024);
        let _ = server.take_router();
        assert!(server.add_routes(Router::new()).is_err());
    }

    async fn post_to(router: Router, body: Body, content_length: Option<usize>) -> (StatusCode, String) {
        let mut request = Request::post("/echo");
        if let Some(length) = content_length {
            request = request.header(CONTENT_LENGTH, length);
        }
        let response = router.oneshot(request.body(body).expect("request")).await.expect("infallible");
        let status = response.status();
        let body = response.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn echo() -> Router {
        Router::new().route("/echo", post(|body: Bytes| async move { body.len().to_string() }))
    }

    /// A route that reads the raw body itself, with no limit of its own, as GraphQL's does.
    fn raw_echo() -> Router {
        let read_all = |request: Request| async move {
            let body = request.into_body().collect().await.map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
            Ok::<_, StatusCode>(body.to_bytes().len().to_string())
        };
        Router::new().route("/echo", post(read_all))
    }

    #[tokio::test]
    async fn bodies_within_the_limit_pass_and_larger_ones_are_413() {
        let server = HttpServer::new("/", 4 << 20);
        server.add_routes(raw_echo()).expect("routes");
        let router = server.take_router();
        // Up to the limit, past the extractors' own 2 MB default.
        let (status, body) = post_to(router.clone(), Body::from(vec![b'x'; 4 << 20]), None).await;
        assert_eq!((status, body), (StatusCode::OK, (4usize << 20).to_string()));
        // A declared length over the limit is refused before any byte is read: this body
        // would never end.
        let endless = Body::from_stream(endless_body());
        let (status, body) = post_to(router.clone(), endless, Some((4 << 20) + 1)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        // Without a length, reading stops at the limit.
        let (status, _) = post_to(router, Body::from_stream(endless_body()), None).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn routes_may_set_their_own_limit() {
        let server = HttpServer::new("/", 16);
        server.add_routes_with_body_limit(echo(), 64).expect("routes");
        let router = server.take_router();
        assert_eq!(post_to(router.clone(), Body::from(vec![0; 64]), None).await.0, StatusCode::OK);
        assert_eq!(post_to(router, Body::from(vec![0; 65]), None).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    }

    /// A body that never ends, 64 KiB at a time.
    fn endless_body() -> impl tokio_stream::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        tokio_stream::iter(std::iter::repeat_with(|| Ok(Bytes::from(vec![b'y'; 64 << 10]))))
    }
}
