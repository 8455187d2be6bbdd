//! Provider `core.default`: registers the settings and the servers, binds them (and reads their
//! TLS files) in `start`, serves once every module has started, and closes them on shutdown.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use oap_kernel::{ConfigError, ModuleContext, ModuleError, ModuleProvider, TypedProviderFactory};
use oap_telemetry::MetricsCreatorRef;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::ServerTlsConfig;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tracing::{info, warn};

use crate::authentication::AgentToken;
use crate::tls::{HANDSHAKE_TIMEOUT, ServerIdentity, TlsListener};
use crate::{
    CatalogRef, CoreConfig, CoreConfigRef, GrpcServer, GrpcServerRef, HttpServer, HttpServerRef, MODULE_NAME,
    NodeHealthRef, SourceDispatcher, SourceDispatcherRef, TimeBuckets,
};

/// How long shutdown waits for open connections (agent streams may never end on their own)
/// before closing them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Builds the `default` provider of `core`.
pub struct CoreProviderFactory;

impl TypedProviderFactory for CoreProviderFactory {
    const MODULE: &'static str = MODULE_NAME;
    const NAME: &'static str = "default";
    const REQUIRES: &'static [&'static str] = &[oap_telemetry::MODULE_NAME];
    type Config = CoreConfig;

    fn build(&self, config: CoreConfig) -> Result<Box<dyn ModuleProvider>, Vec<ConfigError>> {
        let errors = config.validate();
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Box::new(CoreProvider {
            grpc: None,
            http: Arc::new(HttpServer::new(&config.rest_context_path, config.rest_max_request_body_size)),
            config: Arc::new(config),
            listeners: None,
            grpc_tls: None,
            rest_tls: None,
            health: None,
            node_health: NodeHealthRef::default(),
            shutdown: CancellationToken::new(),
            servers: Vec::new(),
        }))
    }
}

impl CoreProvider {
    fn grpc(&self) -> Result<GrpcServerRef, ModuleError> {
        self.grpc.clone().ok_or_else(|| ModuleError::Other("the gRPC server was not prepared".to_owned()))
    }
}

struct CoreProvider {
    config: CoreConfigRef,
    /// Made in `prepare`, where its refusal counter can be.
    grpc: Option<GrpcServerRef>,
    http: HttpServerRef,
    /// gRPC and HTTP listeners, bound in `start` and served from `after_all_started`.
    listeners: Option<(TcpListener, TcpListener)>,
    /// The gRPC port's identity, when `gRPCSslEnabled`.
    grpc_tls: Option<ServerIdentity>,
    /// The REST port's TLS, when `restSSLEnabled`.
    rest_tls: Option<tokio_rustls::TlsAcceptor>,
    health: Option<HealthReporter>,
    /// Whether the node can work now; the gRPC health service follows it.
    node_health: NodeHealthRef,
    shutdown: CancellationToken,
    servers: Vec<JoinHandle<()>>,
}

/// Reads a port's key and certificate chain; an unusable file stops the start, named with the
/// settings that point at it.
fn identity(key_path: &str, cert_chain_path: &str, settings: &str) -> Result<ServerIdentity, ModuleError> {
    ServerIdentity::load(key_path, cert_chain_path).map_err(|error| ModuleError::Config(format!("{settings}: {error}")))
}

async fn bind(host: &str, port: u16, what: &str) -> Result<TcpListener, ModuleError> {
    let address = format!("{host}:{port}");
    TcpListener::bind(&address)
        .await
        .map_err(|error| ModuleError::io(format!("cannot bind the {what} server to {address}"), error))
}

#[async_trait]
impl ModuleProvider for CoreProvider {
    async fn prepare(&mut self, ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        let metrics = ctx.service::<MetricsCreatorRef>()?;
        let refused = metrics.counter(
            "grpc_authentication_failure_count",
            "Agent gRPC calls refused for a missing or wrong authentication token",
            &[],
        )?;
        let token = &self.config.authentication;
        let token = (!token.is_empty()).then(|| Arc::new(AgentToken::new(token, refused)));
        let grpc = Arc::new(GrpcServer::new(self.config.max_message_size, token));
        self.grpc = Some(grpc.clone());
        ctx.register(self.config.clone())?;
        ctx.register(grpc)?;
        ctx.register(self.http.clone())?;
        let dispatcher: SourceDispatcherRef = Arc::new(SourceDispatcher::new());
        ctx.register(dispatcher)?;
        ctx.register(crate::naming::load(&self.config)?)?;
        ctx.register(self.node_health.clone())?;
        let catalog = crate::catalog::load_catalog(&self.config.oal_dir, &self.config.apdex_threshold_file)
            .map_err(|error| ModuleError::Config(error.to_string()))?;
        ctx.register::<CatalogRef>(Arc::new(catalog))?;
        self.http.add_routes(crate::health::routes(self.node_health.clone()))?;
        ctx.register(TimeBuckets::system())
    }

    async fn start(&mut self, ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        let metrics = ctx.service::<MetricsCreatorRef>()?;
        let uptime = metrics.gauge("uptime", "oap server start up time", &[])?;
        let started = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        uptime.set(started.as_secs_f64());
        let naming = ctx.service::<oap_model::NamingControl>()?;
        self.servers.push(crate::naming::keep(naming, metrics.as_ref(), self.shutdown.clone())?);

        let config = &self.config;
        if config.grpc_ssl_enabled {
            let settings = "gRPCSslKeyPath/gRPCSslCertChainPath";
            self.grpc_tls = Some(identity(&config.grpc_ssl_key_path, &config.grpc_ssl_cert_chain_path, settings)?);
        }
        if config.rest_ssl_enabled {
            let settings = "restSSLKeyPath/restSSLCertChainPath";
            let identity = identity(&config.rest_ssl_key_path, &config.rest_ssl_cert_chain_path, settings)?;
            // axum serves HTTP/1.1 here (its http2 feature is off).
            let acceptor = identity.acceptor(&[b"http/1.1"]).map_err(|error| ModuleError::Other(error.to_string()))?;
            self.rest_tls = Some(acceptor);
        }

        let grpc_server = self.grpc()?;
        let grpc = bind(&self.config.grpc_host, self.config.grpc_port, "gRPC").await?;
        let http = bind(&self.config.rest_host, self.config.rest_port, "HTTP").await?;
        let grpc_addr = grpc.local_addr().map_err(|error| ModuleError::io("gRPC server", error))?;
        let http_addr = http.local_addr().map_err(|error| ModuleError::io("HTTP server", error))?;
        grpc_server.set_local_addr(grpc_addr);
        self.http.set_local_addr(http_addr);
        info!(
            grpc = %grpc_addr,
            http = %http_addr,
            role = %self.config.role,
            grpc_tls = self.grpc_tls.is_some(),
            rest_tls = self.rest_tls.is_some(),
            agent_token = grpc_server.requires_agent_token(),
            "core servers bound"
        );
        self.listeners = Some((grpc, http));
        Ok(())
    }

    async fn after_all_started(&mut self, _ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        let Some((grpc_listener, http_listener)) = self.listeners.take() else {
            return Err(ModuleError::Other("the servers were not bound".to_owned()));
        };
        let grpc = self.grpc()?;
        let (health, health_service) = tonic_health::server::health_reporter();
        grpc.add_internal_service(health_service)?;
        self.servers.push(tokio::spawn(follow_node_health(
            self.node_health.clone(),
            health.clone(),
            self.shutdown.clone(),
        )));
        self.health = Some(health);

        let max_streams = match self.config.max_concurrent_calls_per_connection {
            0 => None,
            limit => Some(limit),
        };
        let routes = grpc.take_routes();
        let mut builder = tonic::transport::Server::builder();
        if let Some(identity) = &self.grpc_tls {
            let tls = ServerTlsConfig::new().identity(identity.tonic_identity()).timeout(HANDSHAKE_TIMEOUT);
            builder = builder.tls_config(tls).map_err(|error| ModuleError::Other(format!("gRPC TLS: {error}")))?;
        }
        let shutdown = self.shutdown.clone();
        self.servers.push(tokio::spawn(async move {
            let served = builder
                .tcp_nodelay(true)
                .max_concurrent_streams(max_streams)
                .add_routes(routes)
                .serve_with_incoming_shutdown(TcpListenerStream::new(grpc_listener), shutdown.cancelled_owned())
                .await;
            if let Err(error) = served {
                warn!(%error, "gRPC server stopped");
            }
        }));

        let router = self.http.take_router();
        let shutdown = self.shutdown.clone().cancelled_owned();
        self.servers.push(match self.rest_tls.take() {
            Some(acceptor) => tokio::spawn(async move {
                let listener = TlsListener::new(http_listener, acceptor);
                if let Err(error) = axum::serve(listener, router).with_graceful_shutdown(shutdown).await {
                    warn!(%error, "HTTPS server stopped");
                }
            }),
            None => tokio::spawn(async move {
                if let Err(error) = axum::serve(http_listener, router).with_graceful_shutdown(shutdown).await {
                    warn!(%error, "HTTP server stopped");
                }
            }),
        });
        Ok(())
    }

    /// Closes the doors before any module flushes: the node says it is stopping (gRPC health
    /// `NOT_SERVING`, receivers refuse data with `UNAVAILABLE`), and the servers stop — each
    /// call in progress finishes (its data settles while the streams still run), idle
    /// connections are closed after a grace period. Once this returns, nothing more comes in.
    async fn stop_intake(&mut self) -> Result<(), ModuleError> {
        self.node_health.failing("stopping", "the server is shutting down");
        if let Some(health) = &self.health {
            health.set_service_status("", ServingStatus::NotServing).await;
        }
        self.shutdown.cancel();
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        for mut server in self.servers.drain(..) {
            if tokio::time::timeout_at(deadline, &mut server).await.is_err() {
                warn!("connections still open after {SHUTDOWN_GRACE:?}; closing them");
                server.abort();
            }
        }
        Ok(())
    }

    async fn shutdown(&mut self) -> Result<(), ModuleError> {
        // After a failed boot, `stop_intake` was not called: stop what runs.
        self.shutdown.cancel();
        for server in self.servers.drain(..) {
            server.abort();
        }
        Ok(())
    }
}

/// Keeps the gRPC health service's status equal to the node's readiness, until `shutdown`.
async fn follow_node_health(node: NodeHealthRef, reporter: HealthReporter, shutdown: CancellationToken) {
    let mut changes = node.subscribe();
    loop {
        let status = if *changes.borrow_and_update() { ServingStatus::Serving } else { ServingStatus::NotServing };
        reporter.set_service_status("", status).await;
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            () = shutdown.cancelled() => return,
        }
    }
}
