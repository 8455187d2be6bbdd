//! Keeps the ingest log within what is still needed: every `persistentPeriod` it deletes the
//! log files whose entries are all of epochs the stores hold — persisted by every L2 partition at
//! every level on a node that aggregates (routed, on one that does not), and taken into their
//! own logs by the other nodes they were routed to (docs/durable-ingest.md §8) — and reports the
//! log's size and the age of its oldest epoch not yet stored. Before a cut, the snapshot of which
//! batches other nodes sent here is written, so the cut entries' part of it survives. While the
//! log cannot write, the node is not ready (its part `ingest-log` in `NodeHealth`), so the
//! receivers' doors close instead of taking data the log cannot keep.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use oap_core::NodeHealthRef;
use oap_ingest_log::{IngestLog, state};
use oap_telemetry::{Counter, Gauge, MetricsCreator, TelemetryError};
use tokio::task::JoinHandle;
use tracing::warn;

use crate::l2::L2;
use crate::remote_intake::RemoteIntake;
use crate::route::Router;

/// The part of the node's health the log reports on, and how often.
const HEALTH_PART: &str = "ingest-log";
const HEALTH_CHECK: Duration = Duration::from_millis(500);

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the keeper cuts and counts.
pub struct LogKeeper {
    log: Arc<IngestLog>,
    l2: Option<Arc<L2>>,
    router: Arc<Router>,
    intake: Option<Arc<RemoteIntake>>,
    bytes: Gauge,
    files: Gauge,
    oldest_unstored: Gauge,
    entries: Counter,
    truncated: Counter,
}

impl LogKeeper {
    /// A keeper of `log`, cutting by what `l2` (this node's, if it aggregates) has persisted and
    /// the other aggregators of `router` have taken; `intake`'s snapshot is written before a cut.
    pub fn new(
        log: Arc<IngestLog>,
        l2: Option<Arc<L2>>,
        router: Arc<Router>,
        intake: Option<Arc<RemoteIntake>>,
        telemetry: &dyn MetricsCreator,
    ) -> Result<Self, TelemetryError> {
        Ok(Self {
            log,
            l2,
            router,
            intake,
            bytes: telemetry.gauge("ingest_log_bytes", "Bytes the ingest log's files hold", &[])?,
            files: telemetry.gauge("ingest_log_files", "Files of the ingest log", &[])?,
            oldest_unstored: telemetry.gauge(
                "ingest_log_oldest_unstored_age_seconds",
                "How long ago the oldest epoch of the ingest log not yet stored everywhere began",
                &[],
            )?,
            entries: telemetry.counter("ingest_log_entries_count", "Entries written to the ingest log", &[])?,
            truncated: telemetry.counter(
                "ingest_log_truncated_bytes_count",
                "Bytes of ingest log files deleted once their entries were stored",
                &[],
            )?,
        })
    }

    /// Cuts and reports every `period`, and tells `health` whether the log writes (twice a
    /// second); `routed` is the last epoch the flusher routed.
    pub fn start(self, period: Duration, routed: Arc<AtomicU64>, health: NodeHealthRef) -> JoinHandle<()> {
        let log = self.log.clone();
        let watcher = tokio::spawn(async move {
            let mut checks = tokio::time::interval(HEALTH_CHECK);
            loop {
                checks.tick().await;
                match log.failure() {
                    Some(failure) => health.failing(HEALTH_PART, failure),
                    None => health.working(HEALTH_PART),
                }
            }
        });
        tokio::spawn(async move {
            // The watcher ends with the keeper.
            let _watcher = AbortOnDrop(watcher);
            let mut written = 0;
            let mut cut_through = 0;
            // Before any epoch is stored, the oldest unstored one is as old as this keeper.
            let started = u64::try_from(oap_model::now_ms()).unwrap_or_default();
            let mut ticks = tokio::time::interval(period);
            loop {
                ticks.tick().await;
                let local = match &self.l2 {
                    Some(l2) => l2.persisted_epoch(),
                    None => routed.load(Ordering::Acquire),
                };
                let through = local.min(self.router.delivered());
                if through > cut_through {
                    let checkpointed = match &self.intake {
                        Some(intake) => intake.checkpoint().await,
                        None => Ok(()),
                    };
                    let log = self.log.clone();
                    let cut = match checkpointed {
                        Ok(()) => tokio::task::spawn_blocking(move || {
                            // Epochs of a later run must stay above every epoch cut, even if the
                            // clock steps back: other nodes know this one's epochs.
                            state::save(log.dir(), state::EPOCH_FILE, through.to_string().as_bytes())?;
                            log.truncate_through(through)
                        })
                        .await
                        .unwrap_or_else(|error| Err(std::io::Error::other(error))),
                        Err(error) => Err(error),
                    };
                    match cut {
                        Ok(freed) => {
                            cut_through = through;
                            self.truncated.inc_by(freed);
                        }
                        Err(error) => warn!(%error, "the ingest log could not be cut"),
                    }
                }
                let now = self.log.entries_written();
                self.entries.inc_by(now - written);
                written = now;
                self.bytes.set(self.log.bytes() as f64);
                self.files.set(self.log.files() as f64);
                // Epochs are numbered by their start's clock time: everything after `through` is
                // not stored yet, and began at about `through`.
                let now = u64::try_from(oap_model::now_ms()).unwrap_or_default();
                self.oldest_unstored.set(now.saturating_sub(through.max(started)) as f64 / 1_000.0);
            }
        })
    }
}
