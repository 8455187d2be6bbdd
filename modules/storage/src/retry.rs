//! Writing a batch until it is stored: a retryable failure (the store unavailable) is counted
//! and the same batch written again after a growing pause, for as long as it takes — pressure
//! reaches the senders through their settles instead of data being dropped. A failure that
//! retrying cannot mend is counted, logged and returned to the caller.

use std::time::Duration;

use oap_kernel::ModuleError;
use oap_telemetry::{Counter, MetricsCreator};
use tracing::{error, warn};

use crate::error::StorageError;
use crate::storage::{Storage, Write};

/// The first pause after a failed write.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
/// The longest pause between attempts.
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

/// The counters of one writer, labelled with its `stream`.
#[derive(Clone)]
pub struct WriteMetrics {
    rows: Counter,
    retries: Counter,
    errors: Counter,
}

impl WriteMetrics {
    /// Creates (or finds) `storage_write_row_count`, `storage_write_retry_count` and
    /// `storage_write_error_count` for `stream`.
    pub fn new(metrics: &dyn MetricsCreator, stream: &str) -> Result<Self, ModuleError> {
        let labels = [("stream", stream)];
        let counter = |name: &str, help: &str| metrics.counter(name, help, &labels);
        Ok(Self {
            rows: counter("storage_write_row_count", "Rows the store acknowledged as durable")?,
            retries: counter("storage_write_retry_count", "Batch writes that failed and were retried")?,
            errors: counter("storage_write_error_count", "Batch writes that failed for good")?,
        })
    }

    /// Metrics in a registry of their own, for tests and tools.
    pub fn detached() -> Self {
        let counter = || Counter::new("detached", "counts nowhere").unwrap_or_else(|_| unreachable!("a valid name"));
        Self { rows: counter(), retries: counter(), errors: counter() }
    }

    /// Rows acknowledged so far.
    pub fn rows(&self) -> u64 {
        self.rows.get()
    }

    /// Retries so far.
    pub fn retries(&self) -> u64 {
        self.retries.get()
    }

    /// Failures for good so far.
    pub fn errors(&self) -> u64 {
        self.errors.get()
    }
}

/// Writes `batch` until the store takes it, or fails in a way retrying cannot mend.
pub async fn write_until_stored(
    storage: &(impl Storage + ?Sized),
    batch: &[Write],
    metrics: &WriteMetrics,
) -> Result<(), StorageError> {
    let mut pause = FIRST_PAUSE;
    loop {
        match storage.write(batch).await {
            Ok(()) => {
                metrics.rows.inc_by(batch.len() as u64);
                return Ok(());
            }
            Err(failure) if failure.is_retryable() => {
                metrics.retries.inc();
                warn!(%failure, rows = batch.len(), retry_in = ?pause, "storage write failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
            Err(failure) => {
                metrics.errors.inc();
                error!(%failure, rows = batch.len(), "storage write failed and cannot be retried; the rows are not stored");
                return Err(failure);
            }
        }
    }
}
