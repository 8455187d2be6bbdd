//! Provider `core.default`: registers the settings and the servers, binds them in `start`,
//! serves once every module has started, and closes them on shutdown.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use oap_kernel::{ConfigError, ModuleContext, ModuleError, ModuleProvider, TypedProviderFactory};
use oap_telemetry::MetricsCreatorRef;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tracing::{info, warn};

use crate::{
    CoreConfig, CoreConfigRef, GrpcServer, GrpcServerRef, HttpServer, HttpServerRef, MODULE_NAME, SourceDispatcher,
    SourceDispatcherRef, TimeBuckets,
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
            grpc: Arc::new(GrpcServer::new(config.max_message_size)),
            http: Arc::new(HttpServer::new(&config.rest_context_path)),
            config: Arc::new(config),
            listeners: None,
            health: None,
            shutdown: CancellationToken::new(),
            servers: Vec::new(),
        }))
    }
}

struct CoreProvider {
    config: CoreConfigRef,
    grpc: GrpcServerRef,
    http: HttpServerRef,
    /// gRPC and HTTP listeners, bound in `start` and served from `after_all_started`.
    listeners: Option<(TcpListener, TcpListener)>,
    health: Option<HealthReporter>,
    shutdown: CancellationToken,
    servers: Vec<JoinHandle<()>>,
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
        ctx.register(self.config.clone())?;
        ctx.register(self.grpc.clone())?;
        ctx.register(self.http.clone())?;
        let dispatcher: SourceDispatcherRef = Arc::new(SourceDispatcher::new());
        ctx.register(dispatcher)?;
        ctx.register(crate::naming::load(&self.config)?)?;
        ctx.register(TimeBuckets::system())
    }

    async fn start(&mut self, ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        let metrics = ctx.service::<MetricsCreatorRef>()?;
        let uptime = metrics.gauge("uptime", "oap server start up time", &[])?;
        let started = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        uptime.set(started.as_secs_f64());
        let naming = ctx.service::<oap_model::NamingControl>()?;
        self.servers.push(crate::naming::keep(naming, metrics.as_ref(), self.shutdown.clone())?);

        let grpc = bind(&self.config.grpc_host, self.config.grpc_port, "gRPC").await?;
        let http = bind(&self.config.rest_host, self.config.rest_port, "HTTP").await?;
        let grpc_addr = grpc.local_addr().map_err(|error| ModuleError::io("gRPC server", error))?;
        let http_addr = http.local_addr().map_err(|error| ModuleError::io("HTTP server", error))?;
        self.grpc.set_local_addr(grpc_addr);
        self.http.set_local_addr(http_addr);
        info!(grpc = %grpc_addr, http = %http_addr, role = %self.config.role, "core servers bound");
        self.listeners = Some((grpc, http));
        Ok(())
    }

    async fn after_all_started(&mut self, _ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        let Some((grpc_listener, http_listener)) = self.listeners.take() else {
            return Err(ModuleError::Other("the servers were not bound".to_owned()));
        };
        let (health, health_service) = tonic_health::server::health_reporter();
        self.grpc.add_service(health_service)?;
        self.health = Some(health);

        let max_streams = match self.config.max_concurrent_calls_per_connection {
            0 => None,
            limit => Some(limit),
        };
        let routes = self.grpc.take_routes();
        let shutdown = self.shutdown.clone();
        self.servers.push(tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
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
        let shutdown = self.shutdown.clone();
        self.servers.push(tokio::spawn(async move {
            if let Err(error) =
                axum::serve(http_listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await
            {
                warn!(%error, "HTTP server stopped");
            }
        }));
        Ok(())
    }

    async fn shutdown(&mut self) -> Result<(), ModuleError> {
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
}
