//! Writing a batch until it is stored: a retryable failure (the store unavailable) is counted
//! and the same batch written again after a growing pause, for as long as it takes — pressure
//! reaches the senders through their settles instead of data being dropped. A failure that
//! retrying cannot mend is counted, logged and returned to the caller.
//!
//! While a batch waits, its rows are counted in `storage_write_waiting_rows`, and the failure is
//! logged when it begins, then at most once every `LOG_EVERY`, and once more when the batch is
//! stored — an outage of the store gives a handful of lines, not one per attempt.
//!
//! A batch refused for good is written again row by row, so that one row no store can hold
//! (which the receivers' checks should make impossible) fails alone and the rest are stored.

use std::time::{Duration, Instant};

use oap_core::NodeHealthRef;
use oap_kernel::ModuleError;
use oap_telemetry::{Counter, Gauge, MetricsCreator};
use tracing::{error, info, warn};

use oap_storage::{Storage, StorageError, Write, Written};

/// The first pause after a failed write.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
/// The longest pause between attempts.
const LONGEST_PAUSE: Duration = Duration::from_secs(5);
/// The part of the node's health writes report on.
const HEALTH_PART: &str = "storage";

/// How often a write that keeps failing is logged.
const LOG_EVERY: Duration = Duration::from_secs(30);

/// The counters of one writer, labelled with its `stream`.
#[derive(Clone)]
pub struct WriteTelemetry {
    rows: Counter,
    retries: Counter,
    errors: Counter,
    waiting: Gauge,
    /// Told when writes begin to fail and when they pass again.
    health: Option<NodeHealthRef>,
}

impl WriteTelemetry {
    /// Creates (or finds) `storage_write_row_count`, `storage_write_retry_count` and
    /// `storage_write_error_count` for `stream`.
    pub fn new(metrics: &dyn MetricsCreator, stream: &str) -> Result<Self, ModuleError> {
        let labels = [("stream", stream)];
        let counter = |name: &str, help: &str| metrics.counter(name, help, &labels);
        Ok(Self {
            rows: counter("storage_write_row_count", "Rows the store acknowledged as durable")?,
            retries: counter("storage_write_retry_count", "Batch writes that failed and were retried")?,
            errors: counter("storage_write_error_count", "Batch writes that failed for good")?,
            waiting: metrics.gauge(
                "storage_write_waiting_rows",
                "Rows of batches whose write failed and waits to be retried",
                &labels,
            )?,
            health: None,
        })
    }

    /// The same counters, also telling `health` when writes fail and when they pass again: a
    /// node whose store cannot write is not ready.
    pub fn reporting_to(self, health: NodeHealthRef) -> Self {
        Self { health: Some(health), ..self }
    }

    /// Metrics in a registry of their own, for tests and tools.
    pub fn detached() -> Self {
        let counter = || Counter::new("detached", "counts nowhere").unwrap_or_else(|_| unreachable!("a valid name"));
        let waiting = Gauge::new("detached", "counts nowhere").unwrap_or_else(|_| unreachable!("a valid name"));
        Self { rows: counter(), retries: counter(), errors: counter(), waiting, health: None }
    }

    /// Rows waiting for a retry now.
    pub fn waiting(&self) -> f64 {
        self.waiting.get()
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

/// Rows of a batch the store refused for good; the others are stored.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{rows} row(s) refused, the first at {first}: {failure}")]
pub struct Refused {
    /// The index of the first refused row in the batch.
    pub first: usize,
    /// How many rows were refused.
    pub rows: usize,
    /// Why the first was.
    pub failure: StorageError,
}

/// Writes `batch` until the store takes it. Should the store refuse it in a way retrying cannot
/// mend, its rows are written one by one, and the error names the rows that were refused.
pub async fn write_until_stored(
    storage: &(impl Storage + ?Sized),
    batch: &[Write],
    metrics: &WriteTelemetry,
) -> Result<(), Refused> {
    let failure = match write_whole_until_stored(storage, batch, metrics).await {
        Ok(()) => return Ok(()),
        Err(failure) if batch.len() == 1 => return Err(Refused { first: 0, rows: 1, failure }),
        Err(failure) => failure,
    };
    warn!(%failure, rows = batch.len(), "a batch was refused; storing its rows one by one");
    let mut refused: Option<Refused> = None;
    for (index, write) in batch.iter().enumerate() {
        if let Err(failure) = write_whole_until_stored(storage, std::slice::from_ref(write), metrics).await {
            match &mut refused {
                Some(refused) => refused.rows += 1,
                None => refused = Some(Refused { first: index, rows: 1, failure }),
            }
        }
    }
    refused.map_or(Ok(()), Err)
}

/// Writes `batch` with [`Storage::write_checked`] until every write is stored or in conflict
/// ([`oap_storage::Written`], in order). Should the store refuse it in a way retrying cannot
/// mend, its rows are written one by one: the error then tells what became of each (`None`:
/// refused) and names the rows refused.
pub async fn write_checked_until_stored(
    storage: &(impl Storage + ?Sized),
    batch: &[Write],
    metrics: &WriteTelemetry,
) -> Result<Vec<Written>, (Vec<Option<Written>>, Refused)> {
    let failure = match until_stored(batch.len(), metrics, || storage.write_checked(batch)).await {
        Ok(written) => return Ok(written),
        Err(failure) if batch.len() == 1 => return Err((vec![None], Refused { first: 0, rows: 1, failure })),
        Err(failure) => failure,
    };
    warn!(%failure, rows = batch.len(), "a batch was refused; storing its rows one by one");
    let mut refused: Option<Refused> = None;
    let mut written = Vec::with_capacity(batch.len());
    for (index, write) in batch.iter().enumerate() {
        let write = std::slice::from_ref(write);
        match until_stored(1, metrics, || storage.write_checked(write)).await {
            Ok(one) => written.push(one.first().copied()),
            Err(failure) => {
                written.push(None);
                match &mut refused {
                    Some(refused) => refused.rows += 1,
                    None => refused = Some(Refused { first: index, rows: 1, failure }),
                }
            }
        }
    }
    match refused {
        Some(refused) => Err((written, refused)),
        None => Ok(written.into_iter().map(|one| one.unwrap_or(Written::Stored(None))).collect()),
    }
}

/// Writes `batch` until the store takes it, or fails in a way retrying cannot mend.
async fn write_whole_until_stored(
    storage: &(impl Storage + ?Sized),
    batch: &[Write],
    metrics: &WriteTelemetry,
) -> Result<(), StorageError> {
    until_stored(batch.len(), metrics, || storage.write(batch)).await
}

/// Calls `write` (of `rows` rows) until it succeeds, or fails in a way retrying cannot mend.
async fn until_stored<T, F>(
    rows: usize,
    metrics: &WriteTelemetry,
    mut write: impl FnMut() -> F,
) -> Result<T, StorageError>
where
    F: std::future::Future<Output = Result<T, StorageError>>,
{
    let mut outage = Outage::default();
    let outcome = loop {
        match write().await {
            Ok(written) => {
                metrics.rows.inc_by(rows as u64);
                if let Some(health) = &metrics.health {
                    health.working(HEALTH_PART);
                }
                if let Some((attempts, waited)) = outage.ended() {
                    info!(rows, failed_attempts = attempts, ?waited, "storage write stored after retries");
                }
                break Ok(written);
            }
            Err(failure) if failure.is_retryable() => {
                metrics.retries.inc();
                match outage.failed() {
                    Some(OutageLog::Began) => {
                        metrics.waiting.add(rows as f64);
                        if let Some(health) = &metrics.health {
                            health.failing(HEALTH_PART, format!("writes fail: {failure}"));
                        }
                        warn!(%failure, rows, "storage write failed; retrying until stored");
                    }
                    Some(OutageLog::Lasts { attempts, failing_for }) => {
                        warn!(%failure, rows, failed_attempts = attempts, ?failing_for, "storage write still failing; retrying");
                    }
                    None => {}
                }
                outage.pause().await;
            }
            Err(failure) => {
                metrics.errors.inc();
                error!(%failure, rows, "storage write failed and cannot be retried; the rows are not stored");
                break Err(failure);
            }
        }
    };
    if outage.began() {
        metrics.waiting.sub(rows as f64);
    }
    outcome
}

/// The failures of one call retried until it passes: the pause before the next attempt, from
/// `FIRST_PAUSE` doubling up to `LONGEST_PAUSE`; and what to log, sparingly — when they begin,
/// at most once every `LOG_EVERY` while they last, and when they end.
#[derive(Debug)]
pub struct Outage {
    /// When the first failure happened, how many there were, when the last log line was.
    state: Option<(Instant, u64, Instant)>,
    /// The next pause.
    pause: Duration,
}

impl Default for Outage {
    fn default() -> Self {
        Self { state: None, pause: FIRST_PAUSE }
    }
}

/// What to log after a failure.
#[derive(Debug, PartialEq, Eq)]
pub enum OutageLog {
    /// The first failure.
    Began,
    /// Failures go on; the last line is `LOG_EVERY` old.
    Lasts {
        /// Failed attempts so far.
        attempts: u64,
        /// Since the first.
        failing_for: Duration,
    },
}

impl Outage {
    /// Records a failure; says what to log, if anything.
    pub fn failed(&mut self) -> Option<OutageLog> {
        let now = Instant::now();
        match &mut self.state {
            None => {
                self.state = Some((now, 1, now));
                Some(OutageLog::Began)
            }
            Some((since, attempts, logged)) => {
                *attempts += 1;
                (now.duration_since(*logged) >= LOG_EVERY).then(|| {
                    *logged = now;
                    OutageLog::Lasts { attempts: *attempts, failing_for: now.duration_since(*since) }
                })
            }
        }
    }

    /// Waits before the next attempt, each time twice as long, up to `LONGEST_PAUSE`.
    pub async fn pause(&mut self) {
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(LONGEST_PAUSE);
    }

    /// Whether any failure happened.
    pub fn began(&self) -> bool {
        self.state.is_some()
    }

    /// The failed attempts and how long they lasted, if any failed.
    pub fn ended(&self) -> Option<(u64, Duration)> {
        self.state.map(|(since, attempts, _)| (attempts, since.elapsed()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_logged_when_it_begins_then_sparingly() {
        let mut outage = Outage::default();
        assert!(!outage.began() && outage.ended().is_none());
        assert_eq!(outage.failed(), Some(OutageLog::Began));
        for _ in 0..100 {
            assert_eq!(outage.failed(), None, "within LOG_EVERY of the first line");
        }
        assert_eq!(outage.ended().map(|(attempts, _)| attempts), Some(101));
    }

    #[tokio::test(start_paused = true)]
    async fn pauses_double_from_50_ms_up_to_5_s() {
        let mut outage = Outage::default();
        let mut waited = Vec::new();
        for _ in 0..9 {
            let before = tokio::time::Instant::now();
            outage.pause().await;
            waited.push(before.elapsed().as_millis());
        }
        assert_eq!(waited, [50, 100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000]);
    }
}
