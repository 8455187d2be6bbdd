//! The shared gRPC server: modules add tonic services, the core provider serves them.
//!
//! Services agents call are added with [`GrpcServer::add_service`] and, when the agent token is
//! set, checked for it ([`crate::authentication`]); the few that agents do not call (health,
//! node-to-node) are added with [`GrpcServer::add_internal_service`] and never checked.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use oap_kernel::ModuleError;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http::Request;
use tonic::server::NamedService;
use tonic::service::{Routes, RoutesBuilder};

use crate::authentication::{AgentToken, Authenticated};

/// The gRPC server on `gRPCPort`, shared by every module that serves gRPC.
pub struct GrpcServer {
    max_message_size: usize,
    /// The token agent services require, when `authentication` is set.
    agent_token: Option<Arc<AgentToken>>,
    /// Services added so far; `None` once serving has begun and no more can be added.
    routes: Mutex<Option<RoutesBuilder>>,
    local_addr: OnceLock<SocketAddr>,
}

impl GrpcServer {
    pub(crate) fn new(max_message_size: usize, agent_token: Option<Arc<AgentToken>>) -> Self {
        Self {
            max_message_size,
            agent_token,
            routes: Mutex::new(Some(RoutesBuilder::default())),
            local_addr: OnceLock::new(),
        }
    }

    /// Adds a tonic service agents call (e.g. `TraceSegmentReportServiceServer::new(handler)`);
    /// when the agent token is set, a call without it is refused before it reaches the service.
    /// Services must be added during `prepare` or `start`; the server begins serving after every
    /// module started.
    pub fn add_service<S>(&self, service: S) -> Result<(), ModuleError>
    where
        S: Service<Request<Body>, Error = Infallible> + NamedService + Clone + Send + Sync + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        match &self.agent_token {
            Some(token) => self.add_internal_service(Authenticated::new(service, token.clone())),
            None => self.add_internal_service(service),
        }
    }

    /// Adds a tonic service that agents do not call — the health service, the node-to-node
    /// remote service — which the agent token does not apply to.
    pub fn add_internal_service<S>(&self, service: S) -> Result<(), ModuleError>
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

    /// Whether agent services require the agent token (`authentication` is set).
    pub fn requires_agent_token(&self) -> bool {
        self.agent_token.is_some()
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
