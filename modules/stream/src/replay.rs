//! Replay at start (docs/durable-ingest.md §6): before the receivers' doors open, every entry the
//! ingest log holds from an earlier run is analysed again — by the [`Replayer`] its receiver
//! registered with the dispatcher — under the epoch it was taken in. Its sources reach every
//! consumer as they did live: the records are written again under the same ids (stored once),
//! and the metrics are merged into L1's table of that epoch. An epoch is taken out of L1 and
//! routed as replayed (each aggregator counts a contribution only where the stored row lacks
//! its epoch) as soon as an entry two epochs later appears — entries of two neighbouring epochs
//! may interleave in the log, never three, since a flush waits for its epoch's entries to be
//! durable before the next epoch but one can begin.
//!
//! The log is read entry by entry from its files; nothing but the two open epochs' aggregates is
//! held, and the record writer's queue is bounded: every [`SETTLE_EVERY`] entries the replay
//! waits until the records of the chunk before the last are stored, so analysis goes on while the
//! writer stores (and syncs) the chunk just handed to it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oap_core::{EntryKind, Replayer, SourceConsumer, SourceDispatcher};
use oap_ingest_log::IngestLog;
use oap_telemetry::{Counter, Gauge, LogLimit, MetricsCreator, TelemetryError};
use tokio::runtime::Handle;
use tracing::warn;

use crate::l1::L1;
use crate::record_stream::RecordStream;
use crate::route::Router;

/// Entries replayed between two waits for the record writer.
const SETTLE_EVERY: u64 = 2_048;

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// Entries analysed again.
    pub entries: u64,
    /// Their payloads' bytes.
    pub bytes: u64,
    /// Epochs routed.
    pub epochs: u64,
    /// Entries whose analysis refused them (counted nowhere; a live analysis had taken them, so
    /// this means the analysis changed in between).
    pub refused: u64,
    /// Entries of a kind no running receiver replays, or unreadable.
    pub skipped: u64,
    /// Metrics no aggregator took.
    pub lost_metrics: u64,
    /// How long it took.
    pub elapsed: Duration,
}

/// The counters a replay reports to.
pub struct ReplayTelemetry {
    entries: Counter,
    refused: Counter,
    seconds: Gauge,
}

impl ReplayTelemetry {
    /// The replay's series in `telemetry`.
    pub fn new(telemetry: &dyn MetricsCreator) -> Result<Self, TelemetryError> {
        Ok(Self {
            entries: telemetry.counter(
                "ingest_log_replay_entries_count",
                "Entries of the ingest log analysed again at start",
                &[],
            )?,
            refused: telemetry.counter(
                "ingest_log_replay_refused_count",
                "Entries of the ingest log that could not be analysed again at start (or read, or had no replayer)",
                &[],
            )?,
            seconds: telemetry.gauge(
                "ingest_log_replay_seconds",
                "How long the last replay of the ingest log took",
                &[],
            )?,
        })
    }
}

/// A replay of what a node's log holds, ready to run.
pub struct Replay {
    /// The log, as opened (its files of earlier runs).
    pub log: Arc<IngestLog>,
    /// The node's L1, whose current epoch is past every epoch in the log.
    pub l1: Arc<L1>,
    /// Where the replayers are registered and the sources go.
    pub dispatcher: Arc<SourceDispatcher>,
    /// Where replayed epochs are routed.
    pub router: Arc<Router>,
    /// The record writer, waited on as the replay goes.
    pub records: Arc<RecordStream>,
    /// Where it reports.
    pub telemetry: ReplayTelemetry,
}

impl Replay {
    /// Replays every entry of the log's earlier files and routes their epochs; returns once the
    /// records are stored and the metrics handed to their aggregators (which persist them on
    /// their own cycle, or when flushed).
    pub async fn run(self) -> ReplayReport {
        let handle = Handle::current();
        let telemetry_seconds = self.telemetry.seconds.clone();
        let report = tokio::task::spawn_blocking(move || self.run_blocking(&handle)).await.unwrap_or_else(|error| {
            warn!(%error, "the replay of the ingest log failed");
            ReplayReport::default()
        });
        telemetry_seconds.set(report.elapsed.as_secs_f64());
        report
    }

    fn run_blocking(self, handle: &Handle) -> ReplayReport {
        let began = Instant::now();
        let mut report = ReplayReport::default();
        // The epochs with metrics in L1, in epoch order: two at most.
        let mut open: VecDeque<u64> = VecDeque::with_capacity(2);
        let mut replayers: Vec<(EntryKind, Option<Arc<dyn Replayer>>)> = Vec::new();
        let mut since_settle = 0;
        // The record writer's answer for the chunk handed to it last.
        let mut writing: Option<oap_core::Settle> = None;
        for entry in self.log.replay() {
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    report.skipped += 1;
                    self.telemetry.refused.inc();
                    warn!(%error, "a file of the ingest log could not be read to its end; replay goes on with the next");
                    continue;
                }
            };
            if !open.contains(&entry.epoch) {
                if open.len() == 2 {
                    if open.front().is_some_and(|oldest| entry.epoch < *oldest) {
                        // A third epoch older than both: cannot happen while flushes wait for
                        // their entries; should it, the epochs held are routed first, so each
                        // reaches its aggregator whole and in order.
                        warn!(epoch = entry.epoch, "an ingest log entry older than the epochs before it");
                        while let Some(epoch) = open.pop_front() {
                            self.route(epoch, handle, &mut report);
                        }
                    } else {
                        // A third epoch: the oldest of the two is whole.
                        let oldest = open.pop_front().unwrap_or_default();
                        self.route(oldest, handle, &mut report);
                    }
                }
                // Kept in epoch order, whatever order their first entries came in (a thread's
                // entry of the newer epoch may be written before another's of the older): an
                // aggregator counts a replayed contribution only where the row's epoch is below
                // it, so the epochs must reach it oldest first.
                open.push_back(entry.epoch);
                open.make_contiguous().sort_unstable();
            }
            let replayer = match replayers.iter().find(|(kind, _)| *kind == entry.kind) {
                Some((_, replayer)) => replayer.clone(),
                None => {
                    let replayer = self.dispatcher.replayer(entry.kind);
                    if replayer.is_none() {
                        warn!(
                            kind = entry.kind.0,
                            "no receiver replays this kind of ingest log entry; they are skipped"
                        );
                    }
                    replayers.push((entry.kind, replayer.clone()));
                    replayer
                }
            };
            let Some(replayer) = replayer else {
                report.skipped += 1;
                self.telemetry.refused.inc();
                continue;
            };
            let received_ms = i64::try_from(entry.epoch).unwrap_or(i64::MAX);
            let outcome = {
                let _entry = Entry::open(&self.l1, entry.epoch);
                replayer.replay(&entry.payload, received_ms, &mut |source| self.dispatcher.dispatch(source))
            };
            match outcome {
                Ok(()) => {
                    report.entries += 1;
                    report.bytes += entry.payload.len() as u64;
                    self.telemetry.entries.inc();
                }
                Err(error) => {
                    report.refused += 1;
                    self.telemetry.refused.inc();
                    static LOG: LogLimit = LogLimit::default_budget();
                    if let Some(left_out) = LOG.admit() {
                        warn!(%error, epoch = entry.epoch, left_out, "an ingest log entry was refused by its analysis");
                    }
                }
            }
            since_settle += 1;
            if since_settle == SETTLE_EVERY {
                since_settle = 0;
                let previous = std::mem::replace(&mut writing, self.records.settle());
                Self::stored(previous, handle);
            }
        }
        while let Some(epoch) = open.pop_front() {
            self.route(epoch, handle, &mut report);
        }
        Self::stored(writing, handle);
        Self::stored(self.records.settle(), handle);
        report.elapsed = began.elapsed();
        report
    }

    /// Takes `epoch` out of L1 and routes it as replayed.
    fn route(&self, epoch: u64, handle: &Handle, report: &mut ReplayReport) {
        let mut metrics = Vec::new();
        // Only this thread holds entries of replayed epochs, and it is inside none.
        while !self.l1.take_epoch(epoch, &mut metrics) {
            std::thread::sleep(Duration::from_millis(1));
        }
        report.epochs += 1;
        report.lost_metrics += handle.block_on(self.router.route_replayed(metrics)) as u64;
    }

    /// Waits until the records queued so far are stored (so the writer's queue stays short).
    /// Waits for a record writer's answer.
    fn stored(settle: Option<oap_core::Settle>, handle: &Handle) {
        if let Some(settle) = settle
            && let Err(reason) = handle.block_on(settle)
        {
            warn!(%reason, "records replayed from the ingest log were not stored");
        }
    }
}

/// An L1 entry of a replayed epoch on this thread, closed when dropped (also on a panic).
struct Entry<'a>(&'a L1);

impl<'a> Entry<'a> {
    fn open(l1: &'a L1, epoch: u64) -> Self {
        l1.open_entry_at(epoch);
        Self(l1)
    }
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        self.0.close_entry();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use oap_core::ReplayError;
    use oap_ingest_log::LogConfig;
    use oap_model::source::Source;
    use oap_oal::MetricValue;
    use oap_oal::catalog::Metric;
    use oap_telemetry::MetricsRegistry;

    use super::*;
    use crate::l1::L1Handle;
    use crate::retry::WriteTelemetry;
    use crate::route::{Aggregator, AggregatorError, Target};
    use crate::testing::{MemoryStore, core_catalog, service};

    /// Each payload byte is one call of service "a"; a payload of 0 bytes is refused.
    struct Calls;

    impl Replayer for Calls {
        fn replay(
            &self,
            message: &[u8],
            _received_ms: i64,
            dispatch: &mut dyn FnMut(&Source<'_>),
        ) -> Result<(), ReplayError> {
            if message.is_empty() {
                return Err("empty".into());
            }
            for _ in message {
                dispatch(&Source::Service(service("a", 10, true, 202_612_070_700)));
            }
            Ok(())
        }
    }

    /// The replayed batches, in order.
    #[derive(Default)]
    struct Replayed(Mutex<Vec<Vec<Metric>>>);

    #[async_trait]
    impl Aggregator for Replayed {
        async fn take(&self, _metrics: Vec<Metric>) -> Result<(), AggregatorError> {
            panic!("replayed metrics are taken as replayed");
        }

        async fn take_replayed(&self, metrics: Vec<Metric>) -> Result<(), AggregatorError> {
            self.0.lock().expect("lock").push(metrics);
            Ok(())
        }
    }

    /// Replays a log of `entries` (epoch, calls of service "a"): the report, and each routed
    /// batch's epoch and calls, in routing order.
    async fn replay_of(name: &str, entries: &[(u64, &[u8])]) -> (ReplayReport, Vec<(u64, i64)>) {
        let dir = std::env::temp_dir().join(format!("oap-replay-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = LogConfig { dir: dir.clone(), segment_bytes: 1 << 20, max_bytes: 1 << 30 };
        {
            let (log, _) = IngestLog::open(config.clone()).expect("opens");
            for (epoch, calls) in entries {
                log.append(*epoch, EntryKind::SEGMENT, calls);
            }
            log.durable(log.ticket_now()).await.expect("durable");
            log.close();
        }
        let (log, recovered) = IngestLog::open(config).expect("opens again");
        assert_eq!(recovered.entries, entries.len() as u64);
        let catalog = core_catalog();
        let l1 = Arc::new(L1::new(catalog.clone(), 1_000));
        l1.start_after(recovered.max_epoch);
        let dispatcher = Arc::new(SourceDispatcher::new());
        dispatcher.subscribe(Arc::new(L1Handle(l1.clone()))).expect("subscribed");
        dispatcher.register_replayer(EntryKind::SEGMENT, Arc::new(Calls)).expect("registered");
        let replayed = Arc::new(Replayed::default());
        let target = Target { address: "self".to_owned(), aggregator: replayed.clone() };
        let router = Arc::new(Router::new(vec![target], Counter::new("dropped", "test").expect("counter")));
        let (records, _writer) =
            RecordStream::start(Arc::new(MemoryStore::default()), WriteTelemetry::detached(), None);
        let telemetry = ReplayTelemetry::new(&MetricsRegistry::new()).expect("telemetry");
        let replay = Replay { log: Arc::new(log), l1, dispatcher, router, records, telemetry };
        let report = replay.run().await;

        let (cpm, _) = catalog.find("service_cpm").expect("service_cpm");
        let batches = replayed.0.lock().expect("lock");
        let seen: Vec<(u64, i64)> = batches
            .iter()
            .map(|batch| {
                let epoch = batch[0].epoch;
                assert!(batch.iter().all(|metric| metric.epoch == epoch), "one epoch per batch");
                let calls = batch
                    .iter()
                    .find(|metric| metric.stream == cpm)
                    .map(|metric| match metric.value {
                        MetricValue::Cpm { total } => total,
                        _ => panic!("cpm"),
                    })
                    .expect("a service_cpm metric");
                (epoch, calls)
            })
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        (report, seen)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_epoch_is_routed_whole_once_the_next_but_one_appears() {
        // Two neighbouring epochs interleave; the third begins only once the first is whole.
        let entries: [(u64, &[u8]); 8] =
            [(10, &[1]), (11, &[1, 1]), (10, &[1, 1]), (12, &[1]), (11, &[]), (11, &[1]), (13, &[1]), (12, &[1])];
        let (report, seen) = replay_of("window", &entries).await;
        assert_eq!((report.entries, report.refused, report.epochs, report.lost_metrics), (7, 1, 4, 0));
        assert_eq!(seen, [(10, 3), (11, 3), (12, 2), (13, 1)]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn epochs_are_routed_oldest_first_whichever_entry_came_first() {
        // A thread's entry of epoch 21 was written before another thread's of epoch 20.
        let entries: [(u64, &[u8]); 4] = [(21, &[1]), (20, &[1, 1]), (21, &[1]), (22, &[1])];
        let (report, seen) = replay_of("order", &entries).await;
        assert_eq!((report.entries, report.epochs), (4, 3));
        assert_eq!(seen, [(20, 2), (21, 2), (22, 1)], "epoch 20 before 21, though 21 appeared first");
    }
}
