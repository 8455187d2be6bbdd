//! What every storage provider runs once its store is open: the built-in models installed, the
//! record stream subscribed to the dispatcher, and the data keeper on its timer.

use std::sync::Arc;
use std::time::Duration;

use oap_core::{CoreConfigRef, SourceDispatcherRef, TimeBuckets};
use oap_kernel::{ModuleContext, ModuleError};
use oap_telemetry::MetricsCreatorRef;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::StorageRef;
use crate::builtin;
use crate::record_stream::RecordStream;
use crate::retry::WriteMetrics;
use crate::ttl::DataKeeper;

/// How long shutdown waits for queued records to be stored.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The running storage work of a provider.
pub struct StorageWork {
    records: Arc<RecordStream>,
    writer: JoinHandle<()>,
    keeper: Option<JoinHandle<()>>,
}

impl StorageWork {
    /// Installs the built-in models in `storage` and starts the record stream and the keeper;
    /// the provider must require `core` and `telemetry`.
    pub async fn start(ctx: &mut ModuleContext<'_>, storage: &StorageRef) -> Result<Self, ModuleError> {
        let models = builtin::models();
        storage
            .install(&models)
            .await
            .map_err(|error| ModuleError::Other(format!("cannot install the models: {error}")))?;
        let core = ctx.service::<CoreConfigRef>()?;
        let metrics = ctx.service::<MetricsCreatorRef>()?;
        let dispatcher = ctx.service::<SourceDispatcherRef>()?;
        let (records, writer) = RecordStream::start(storage.clone(), WriteMetrics::new(&*metrics, "record")?);
        dispatcher.subscribe(records.clone())?;
        let buckets = ctx.service::<TimeBuckets>()?;
        let keeper = core.enable_data_keeper_executor.then(|| {
            DataKeeper::new(storage.clone(), models, core.record_data_ttl, core.metrics_data_ttl, buckets)
                .start(core.data_keeper_execute_period)
        });
        Ok(Self { records, writer, keeper })
    }

    /// Stops the keeper and waits (a bounded time) until queued records are stored.
    pub async fn stop(self) {
        if let Some(keeper) = self.keeper {
            keeper.abort();
        }
        if let Some(settle) = oap_core::SourceConsumer::settle(&*self.records) {
            match tokio::time::timeout(DRAIN_TIMEOUT, settle).await {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => warn!(%reason, "queued records were not stored"),
                Err(_) => warn!("queued records were not stored within {DRAIN_TIMEOUT:?}"),
            }
        }
        drop(self.records);
        self.writer.abort();
    }
}
