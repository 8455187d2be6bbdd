//! Keeps the ingest log within what is still needed: every `persistentPeriod` it deletes the
//! log files whose entries are all of epochs the stores hold — persisted by every L2 partition at
//! every level on a node that aggregates, or routed to the aggregators on one that does not — and
//! reports the log's size (docs/durable-ingest.md §7).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use oap_ingest_log::IngestLog;
use oap_telemetry::{Counter, Gauge, MetricsCreator, TelemetryError};
use tokio::task::JoinHandle;
use tracing::warn;

use crate::l2::L2;

/// What the keeper cuts and counts.
pub struct LogKeeper {
    log: Arc<IngestLog>,
    l2: Option<Arc<L2>>,
    bytes: Gauge,
    files: Gauge,
    entries: Counter,
    truncated: Counter,
}

impl LogKeeper {
    /// A keeper of `log`, cutting by what `l2` (this node's, if it aggregates) has persisted.
    pub fn new(
        log: Arc<IngestLog>,
        l2: Option<Arc<L2>>,
        telemetry: &dyn MetricsCreator,
    ) -> Result<Self, TelemetryError> {
        Ok(Self {
            log,
            l2,
            bytes: telemetry.gauge("ingest_log_bytes", "Bytes the ingest log's files hold", &[])?,
            files: telemetry.gauge("ingest_log_files", "Files of the ingest log", &[])?,
            entries: telemetry.counter("ingest_log_entries_count", "Entries written to the ingest log", &[])?,
            truncated: telemetry.counter(
                "ingest_log_truncated_bytes_count",
                "Bytes of ingest log files deleted once their entries were stored",
                &[],
            )?,
        })
    }

    /// Cuts and reports every `period`; `routed` is the last epoch the flusher routed.
    pub fn start(self, period: Duration, routed: Arc<AtomicU64>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut written = 0;
            let mut ticks = tokio::time::interval(period);
            loop {
                ticks.tick().await;
                let through = match &self.l2 {
                    Some(l2) => l2.persisted_epoch(),
                    None => routed.load(Ordering::Acquire),
                };
                let log = self.log.clone();
                match tokio::task::spawn_blocking(move || log.truncate_through(through)).await {
                    Ok(Ok(freed)) => self.truncated.inc_by(freed),
                    Ok(Err(error)) => warn!(%error, "ingest log files could not be deleted"),
                    Err(error) => warn!(%error, "the ingest log keeper failed"),
                }
                let now = self.log.entries_written();
                self.entries.inc_by(now - written);
                written = now;
                self.bytes.set(self.log.bytes() as f64);
                self.files.set(self.log.files() as f64);
            }
        })
    }
}
