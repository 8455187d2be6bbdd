//! Provider `prometheus`: serves every metric at `GET /metrics` on its own port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::routing::get;
use oap_kernel::config::de;
use oap_kernel::{ConfigError, ModuleContext, ModuleError, ModuleProvider, TypedProviderFactory};
use serde::Deserialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{MODULE_NAME, MetricsCreator, MetricsCreatorRef, MetricsRegistry};

/// How long shutdown waits for scrapes in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Settings of `telemetry.prometheus`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PrometheusConfig {
    /// Address to listen on (`SW_TELEMETRY_PROMETHEUS_HOST`).
    #[serde(deserialize_with = "de::scalar_string")]
    pub host: String,
    /// Port to listen on (`SW_TELEMETRY_PROMETHEUS_PORT`); 0 picks a free port.
    pub port: u16,
    /// TLS for the endpoint (`SW_TELEMETRY_PROMETHEUS_SSL_ENABLED`); not supported yet, so only
    /// `false` is accepted.
    #[serde(rename = "sslEnabled")]
    pub ssl_enabled: bool,
    /// Private key for TLS (`SW_TELEMETRY_PROMETHEUS_SSL_KEY_PATH`); unused while TLS is off.
    #[serde(rename = "sslKeyPath", deserialize_with = "de::scalar_string")]
    pub ssl_key_path: String,
    /// Certificate chain for TLS (`SW_TELEMETRY_PROMETHEUS_SSL_CERT_CHAIN_PATH`); unused while TLS is off.
    #[serde(rename = "sslCertChainPath", deserialize_with = "de::scalar_string")]
    pub ssl_cert_chain_path: String,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".to_owned(),
            port: 1234,
            ssl_enabled: false,
            ssl_key_path: String::new(),
            ssl_cert_chain_path: String::new(),
        }
    }
}

/// Builds the `prometheus` provider.
pub struct PrometheusProviderFactory;

impl TypedProviderFactory for PrometheusProviderFactory {
    const MODULE: &'static str = MODULE_NAME;
    const NAME: &'static str = "prometheus";
    type Config = PrometheusConfig;

    fn build(&self, config: PrometheusConfig) -> Result<Box<dyn ModuleProvider>, Vec<ConfigError>> {
        if config.ssl_enabled {
            return Err(vec![ConfigError::new(
                "sslEnabled",
                "TLS for the telemetry endpoint is not supported yet; set it to false and terminate TLS in front of it",
            )]);
        }
        Ok(Box::new(PrometheusProvider {
            config,
            registry: Arc::new(MetricsRegistry::new()),
            shutdown: CancellationToken::new(),
            server: None,
        }))
    }
}

struct PrometheusProvider {
    config: PrometheusConfig,
    registry: Arc<MetricsRegistry>,
    shutdown: CancellationToken,
    server: Option<JoinHandle<()>>,
}

#[async_trait]
impl ModuleProvider for PrometheusProvider {
    async fn prepare(&mut self, ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        let creator: MetricsCreatorRef = self.registry.clone();
        ctx.register(creator)
    }

    async fn start(&mut self, _ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        let address = format!("{}:{}", self.config.host, self.config.port);
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .map_err(|error| ModuleError::io(format!("cannot bind the telemetry endpoint to {address}"), error))?;
        let local: SocketAddr = listener.local_addr().map_err(|error| ModuleError::io("telemetry endpoint", error))?;
        self.registry.set_endpoint(local);
        let registry = self.registry.clone();
        let router = Router::new().route("/metrics", get(move || async move { registry.render() }));
        let shutdown = self.shutdown.clone();
        self.server = Some(tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await {
                warn!(%error, "telemetry endpoint stopped");
            }
        }));
        info!(address = %local, "telemetry endpoint listening at /metrics");
        Ok(())
    }

    async fn shutdown(&mut self) -> Result<(), ModuleError> {
        self.shutdown.cancel();
        if let Some(mut server) = self.server.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await.is_err()
        {
            server.abort();
        }
        Ok(())
    }
}
