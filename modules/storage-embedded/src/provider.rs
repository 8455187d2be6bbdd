//! Provider `storage.embedded` (the default, `SW_STORAGE=embedded`): opens the store in
//! `dataDir` while the modules prepare — a directory that cannot be written or read stops the
//! server with the reason, and so does a cluster coordinator other than `standalone`: the store
//! belongs to one process — and registers it; the pipeline runs on top of it.

use std::sync::Arc;

use async_trait::async_trait;
use oap_kernel::{ConfigError, ModuleContext, ModuleError, ModuleProvider, TypedProviderFactory};
use oap_storage::{MODULE_NAME, StorageRef};
use serde::Deserialize;

use crate::store::{Budget, EmbeddedStore};

/// The settings of `storage.embedded`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct EmbeddedConfig {
    /// `dataDir` (`SW_STORAGE_EMBEDDED_DATA_DIR`): where the store lives; relative paths are
    /// from the working directory.
    #[serde(rename = "dataDir")]
    pub data_dir: String,
    /// `cacheSize` (`SW_STORAGE_EMBEDDED_CACHE_SIZE`): the block cache, bytes.
    #[serde(rename = "cacheSize")]
    pub cache_size: u64,
    /// `memtableSize` (`SW_STORAGE_EMBEDDED_MEMTABLE_SIZE`): one partition's writes held in
    /// memory before they are flushed to a disk table, bytes (they are in the synced journal
    /// already).
    #[serde(rename = "memtableSize")]
    pub memtable_size: u64,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        let budget = Budget::default();
        Self { data_dir: "./data".to_owned(), cache_size: budget.cache_size, memtable_size: budget.memtable_size }
    }
}

/// Builds the `embedded` provider of `storage`.
pub struct EmbeddedProviderFactory;

impl TypedProviderFactory for EmbeddedProviderFactory {
    const MODULE: &'static str = MODULE_NAME;
    const NAME: &'static str = "embedded";
    const REQUIRES: &'static [&'static str] = &[oap_cluster::MODULE_NAME];
    type Config = EmbeddedConfig;

    fn build(&self, config: EmbeddedConfig) -> Result<Box<dyn ModuleProvider>, Vec<ConfigError>> {
        let mut errors = Vec::new();
        if config.data_dir.trim().is_empty() {
            errors.push(ConfigError::new("dataDir", "must name a directory"));
        }
        if config.memtable_size < 1 << 20 {
            errors.push(ConfigError::new("memtableSize", "must be at least 1048576 (1 MiB)"));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Box::new(EmbeddedProvider { config }))
    }
}

struct EmbeddedProvider {
    config: EmbeddedConfig,
}

#[async_trait]
impl ModuleProvider for EmbeddedProvider {
    async fn prepare(&mut self, ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        let membership = ctx.service::<oap_cluster::MembershipRef>()?;
        if !membership.is_standalone() {
            return Err(ModuleError::Config(format!(
                "storage.embedded: the embedded store belongs to one process, and cluster.{} makes this node one of \
                 several; a cluster needs shared storage (SW_STORAGE=elasticsearch), or run one node with \
                 SW_CLUSTER=standalone",
                membership.coordinator()
            )));
        }
        let budget = Budget { cache_size: self.config.cache_size, memtable_size: self.config.memtable_size };
        let path = self.config.data_dir.clone();
        let store = tokio::task::spawn_blocking(move || EmbeddedStore::open(path, budget))
            .await
            .map_err(|error| ModuleError::Other(format!("opening the embedded store failed: {error}")))?
            .map_err(|error| ModuleError::Other(error.to_string()))?;
        let store: StorageRef = Arc::new(store);
        ctx.register(store)
    }
}
