//! Provider `storage.elasticsearch` (`SW_STORAGE=elasticsearch`): connects to the configured
//! nodes while the modules prepare — waiting, with a log line now and then, until one answers —
//! and registers the store; the pipeline installs the templates and runs on top of it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use elasticsearch::Elasticsearch;
use oap_core::CoreConfigRef;
use oap_kernel::{ConfigError, ModuleContext, ModuleError, ModuleProvider, TypedProviderFactory};
use oap_storage::{MODULE_NAME, StorageRef};
use oap_telemetry::MetricsCreatorRef;
use tracing::{info, warn};

use crate::bulk::{BulkLimits, BulkTelemetry, BulkWriter};
use crate::config::ElasticsearchConfig;
use crate::mapping::IndexSettings;
use crate::store::{ElasticsearchStore, TableSettings};

/// How long the provider waits at start for a node to answer.
const CONNECT_PATIENCE: Duration = Duration::from_secs(60);

/// Builds the `elasticsearch` provider of `storage`.
pub struct ElasticsearchProviderFactory;

impl TypedProviderFactory for ElasticsearchProviderFactory {
    const MODULE: &'static str = MODULE_NAME;
    const NAME: &'static str = "elasticsearch";
    const REQUIRES: &'static [&'static str] = &[oap_core::MODULE_NAME, oap_telemetry::MODULE_NAME];
    type Config = ElasticsearchConfig;

    fn build(&self, config: ElasticsearchConfig) -> Result<Box<dyn ModuleProvider>, Vec<ConfigError>> {
        let client = crate::client::connect(&config)?;
        Ok(Box::new(ElasticsearchProvider { config, client }))
    }
}

struct ElasticsearchProvider {
    config: ElasticsearchConfig,
    client: Elasticsearch,
}

/// The store `config` describes, on `client`; `persistent_period` sets the indices' refresh.
pub fn open_store(
    config: &ElasticsearchConfig,
    client: Elasticsearch,
    persistent_period: Duration,
    metrics: BulkTelemetry,
) -> Result<ElasticsearchStore, Vec<ConfigError>> {
    config.validate()?;
    let refresh = config.refresh().ok_or_else(|| vec![ConfigError::new("bulkRefresh", "unknown value")])?;
    let refresh_seconds = persistent_period.as_secs() + 5;
    let settings = TableSettings {
        regular: IndexSettings {
            shards: config.index_shards_number,
            replicas: config.index_replicas_number,
            refresh_seconds,
        },
        super_dataset: IndexSettings {
            shards: config.index_shards_number.saturating_mul(config.super_dataset_index_shards_factor),
            replicas: config.super_dataset_index_replicas_number,
            refresh_seconds,
        },
        template_priority: config.index_template_order,
        page_size: config.scrolling_batch_size,
    };
    let limits = BulkLimits {
        actions: config.bulk_actions,
        bytes: config.batch_of_bytes,
        concurrent_requests: config.concurrent_requests,
        refresh,
    };
    let bulk = BulkWriter::start(client.clone(), limits, metrics);
    Ok(ElasticsearchStore::new(client, config.layout(), settings, bulk))
}

/// Waits until a node answers, or `CONNECT_PATIENCE` has passed.
async fn wait_for_a_node(client: &Elasticsearch, nodes: &str) -> Result<(), ModuleError> {
    let started = Instant::now();
    let mut last_log = None::<Instant>;
    loop {
        let failure = match client.info().send().await {
            Ok(response) if response.status_code().is_success() => return Ok(()),
            Ok(response) => format!("answered {}", response.status_code()),
            Err(error) => error.to_string(),
        };
        if started.elapsed() > CONNECT_PATIENCE {
            return Err(ModuleError::Other(format!(
                "elasticsearch at {nodes} did not answer within {CONNECT_PATIENCE:?}: {failure}"
            )));
        }
        if last_log.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
            warn!(%nodes, %failure, "waiting for elasticsearch");
            last_log = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[async_trait]
impl ModuleProvider for ElasticsearchProvider {
    async fn prepare(&mut self, ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        let core = ctx.service::<CoreConfigRef>()?;
        let telemetry = ctx.service::<MetricsCreatorRef>()?;
        let metrics = BulkTelemetry::new(&*telemetry).map_err(|error| ModuleError::Other(error.to_string()))?;
        wait_for_a_node(&self.client, &self.config.cluster_nodes).await?;
        info!(nodes = %self.config.cluster_nodes, "elasticsearch answers");
        let store =
            open_store(&self.config, self.client.clone(), core.persistent_period, metrics).map_err(|errors| {
                ModuleError::Config(errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
            })?;
        let store: StorageRef = Arc::new(store);
        ctx.register(store)
    }
}
