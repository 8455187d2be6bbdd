//! The shared gRPC server: modules add tonic services, the core provider serves them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};

use oap_kernel::ModuleError;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http::Request;
use tonic::server::NamedService;
use tonic::service::{Routes, RoutesBuilder};

/// The gRPC server on `gRPCPort`, shared by every module that serves gRPC.
pub struct GrpcServer {
    max_message_size: usize,
    /// Services added so far; `None` once serving has begun and no more can be added.
    routes: Mutex<Option<RoutesBuilder>>,
    local_addr: OnceLock<SocketAddr>,
}

impl GrpcServer {
    pub(crate) fn new(max_message_size: usize) -> Self {
        Self { max_message_size, routes: Mutex::new(Some(RoutesBuilder::default())), local_addr: OnceLock::new() }
    }

    /// Adds a tonic service (e.g. `TraceSegmentReportServiceServer::new(handler)`). Services must
    /// be added during `prepare` or `start`; the server begins serving after every module started.
    pub fn add_service<S>(&self, service: S) -> Result<(), ModuleError>
    where
        S: Service<Request<Body>, Error = Infallible> + NamedService + Clone + Send + Sync + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        let mut routes = self.routes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match routes.as_mut() {
            Some(builder) => {
                builder.add_service(service);
                Ok(())
            }
            None => Err(ModuleError::Other(format!(
                "cannot add gRPC service `{}`: the server is already serving; add services in prepare or start",
                S::NAME
            ))),
        }
    }

    /// The largest inbound message a service should accept (`maxMessageSize`); services apply it
    /// with `max_decoding_message_size`.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// The address the server is bound to, once the core module has started.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr.get().copied()
    }

    pub(crate) fn set_local_addr(&self, address: SocketAddr) {
        let _ = self.local_addr.set(address);
    }

    /// Closes the registration and returns every service added.
    pub(crate) fn take_routes(&self) -> Routes {
        let mut routes = self.routes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        routes.take().unwrap_or_default().routes()
    }
}
