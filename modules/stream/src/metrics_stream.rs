//! The metrics stream of a node: L1 subscribed to the source dispatcher, a flusher that every
//! `l1FlushPeriod` drains L1 into the router, and the local L2 the router sends to on a Mixed
//! node. Each completed flush is counted (`metrics_l1_flush_count`): two completed flushes after
//! a source was settled mean it has been handed to its aggregator.
//!
//! A flush closes L1's epoch (docs/durable-ingest.md): it takes the closed epoch whole from every
//! shard, waits until the ingest log holds every entry appended so far (so no metric is stored
//! for a message the log lacks), and routes the epoch, telling each aggregator when it is done.

use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicU64, Ordering};

use oap_core::SourceConsumer;
use oap_ingest_log::IngestLog;
use oap_telemetry::Counter;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::l1::{L1, L1Handle};
use crate::l2::L2;
use crate::route::Router;

/// A running metrics stream.
pub struct MetricsStream {
    l1: Arc<L1>,
    router: Arc<Router>,
    l2: Option<Arc<L2>>,
    stop: CancellationToken,
    flusher: JoinHandle<()>,
    routed: Arc<AtomicU64>,
}

/// What a flush needs besides L1 and the router.
pub struct FlushContext {
    /// How often.
    pub period: Duration,
    /// Counts completed flushes.
    pub flushes: Counter,
    /// The log whose entries must be durable before their epoch is routed, if the node keeps one.
    pub log: Option<Arc<IngestLog>>,
}

impl MetricsStream {
    /// Starts flushing `l1` into `router` as `context` says; `l2` is this node's own L2, if it
    /// aggregates.
    pub fn start(l1: Arc<L1>, router: Arc<Router>, l2: Option<Arc<L2>>, context: FlushContext) -> Self {
        let stop = CancellationToken::new();
        let routed = Arc::new(AtomicU64::new(0));
        let flusher = tokio::spawn(flush_every(l1.clone(), router.clone(), context, stop.clone(), routed.clone()));
        Self { l1, router, l2, stop, flusher, routed }
    }

    /// The last epoch routed whole, as it moves.
    pub fn routed(&self) -> Arc<AtomicU64> {
        self.routed.clone()
    }

    /// What the dispatcher feeds.
    pub fn consumer(&self) -> Arc<dyn SourceConsumer> {
        Arc::new(L1Handle(self.l1.clone()))
    }

    /// Stops the flusher, hands L1's last metrics on — the open epoch whole, as a flush would,
    /// then anything merged after it — and stops L2 once it persisted them.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.flusher.await;
        let epoch = flush_epoch(&self.l1, &self.router, None).await;
        self.routed.store(epoch, Ordering::Release);
        self.router.route(self.l1.drain()).await;
        if let Some(l2) = &self.l2 {
            l2.stop().await;
        }
    }
}

async fn flush_every(
    l1: Arc<L1>,
    router: Arc<Router>,
    context: FlushContext,
    stop: CancellationToken,
    routed: Arc<AtomicU64>,
) {
    let period = context.period;
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {
                let epoch = flush_epoch(&l1, &router, context.log.as_deref()).await;
                routed.store(epoch, Ordering::Release);
                context.flushes.inc();
            }
        }
    }
}

/// Closes L1's epoch and routes it whole; returns the epoch.
async fn flush_epoch(l1: &L1, router: &Router, log: Option<&IngestLog>) -> u64 {
    let epoch = l1.close_epoch(u64::try_from(oap_model::now_ms()).unwrap_or_default());
    let mut metrics = Vec::new();
    // A thread inside an entry of the epoch finishes it within microseconds.
    while !l1.take_epoch(epoch, &mut metrics) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    if let Some(log) = log
        && let Err(error) = log.durable(log.ticket_now()).await
    {
        // The entries' calls hear the failure; their metrics are routed all the same (they
        // were counted), as a store outage would delay, not drop, them.
        tracing::warn!(%error, epoch, "the ingest log did not confirm an epoch's entries");
    }
    if !metrics.is_empty() {
        crate::crash_point::reached("l1-flush");
    }
    router.route_epoch(metrics, epoch).await;
    epoch
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use oap_model::source::Source;
    use oap_oal::catalog::Metric;
    use oap_telemetry::Counter;
    use tokio::time::Instant;

    use super::*;
    use crate::route::{Aggregator, AggregatorError, Target};
    use crate::testing::{core_catalog, service};

    /// When batches arrived, and how large they were.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<(Instant, usize)>>);

    #[async_trait]
    impl Aggregator for Recorder {
        async fn take(&self, metrics: Vec<Metric>) -> Result<(), AggregatorError> {
            self.0.lock().expect("lock").push((Instant::now(), metrics.len()));
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn l1_is_flushed_every_period_and_never_sooner() {
        let l1 = Arc::new(L1::new(core_catalog(), 1000));
        let recorder = Arc::new(Recorder::default());
        let target = Target { address: "self".to_owned(), aggregator: recorder.clone() };
        let router = Arc::new(Router::new(vec![target], Counter::new("dropped", "test").expect("counter")));
        let begin = Instant::now();
        let flushes = Counter::new("flushes", "test").expect("counter");
        let context = FlushContext { period: Duration::from_millis(500), flushes: flushes.clone(), log: None };
        let stream = MetricsStream::start(l1.clone(), router, None, context);
        l1.accept(&Source::Service(service("a", 10, true, 202_611_211_230)));
        tokio::time::sleep(Duration::from_millis(499)).await;
        assert!(recorder.0.lock().expect("lock").is_empty(), "not before 500 ms");
        tokio::time::sleep(Duration::from_millis(2)).await;
        l1.accept(&Source::Service(service("b", 10, true, 202_611_211_230)));
        tokio::time::sleep(Duration::from_millis(2_000)).await;
        let batches = recorder.0.lock().expect("lock").clone();
        // 6 rows per service and minute; the second service's at the next tick; then nothing.
        assert_eq!(batches, [(begin + Duration::from_millis(500), 6), (begin + Duration::from_millis(1_000), 6)]);
        assert_eq!(flushes.get(), 5, "2,501 ms: every tick is a flush, with rows or without");
        l1.accept(&Source::Service(service("c", 10, true, 202_611_211_230)));
        stream.stop().await;
        assert_eq!(recorder.0.lock().expect("lock").len(), 3, "stopping hands L1's last rows on");
    }
}
