//! Routing L1's metrics to the aggregators (docs/reference/pipeline-and-storage.md §4): each metric
//! goes to the aggregator at `abs(hash % n)` over the aggregators sorted by address, where the hash
//! is SkyWalking's `31 * 17 + javaStringHash(entity_id)` — the time bucket is left out, so every
//! minute, hour and day row of an entity lands on one node and its hour and day merging stays
//! local.
//!
//! An aggregator is anything that takes a batch of metrics: the local L2 on a Mixed node; a
//! remote node's client (`remote::RemotePeer`) in a cluster. The target list is replaced while
//! running as the cluster's node list changes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use oap_oal::catalog::Metric;
use oap_telemetry::Counter;
use tokio::sync::watch;
use tracing::warn;

/// How long metrics wait for an aggregator when there is none (a Receiver before any
/// Aggregator has registered), holding L1's flush back, before they are dropped and counted.
const NO_TARGET_PATIENCE: Duration = Duration::from_secs(10);

/// Something metrics can be routed to.
#[async_trait]
pub trait Aggregator: Send + Sync {
    /// Takes a batch; waits while the aggregator is full (never refuses for being busy). The
    /// error says why it could not.
    async fn take(&self, metrics: Vec<Metric>) -> Result<(), AggregatorError>;

    /// Says that every metric of `epoch` meant for it has been handed over (by `take` calls
    /// before this one). An aggregator that does not track epochs ignores it.
    async fn epoch_done(&self, _epoch: u64) -> Result<(), AggregatorError> {
        Ok(())
    }

    /// Takes metrics replayed from a sender's ingest log at its start (docs/durable-ingest.md
    /// §6): each counts only where the stored row lacks its epoch. An aggregator that cannot tell
    /// refuses them rather than count them twice.
    async fn take_replayed(&self, _metrics: Vec<Metric>) -> Result<(), AggregatorError> {
        Err(AggregatorError::NoReplay)
    }

    /// Takes metrics routed again because the aggregator they were meant for left the cluster:
    /// they belong to no epoch of this node's any more.
    async fn take_rerouted(&self, metrics: Vec<Metric>) -> Result<(), AggregatorError> {
        self.take(metrics).await
    }

    /// What this node handed the aggregator and has not heard it keep yet; `None` for one that
    /// keeps nothing apart from this node (the local L2, whose persisting is tracked on its own).
    fn pending(&self) -> Option<Arc<Pending>> {
        None
    }
}

/// What an aggregator on another node was handed and has not confirmed keeping (in its own
/// ingest log), by epoch: the sender's log must keep those epochs (docs/durable-ingest.md §8).
#[derive(Debug, Default)]
pub struct Pending(Mutex<PendingState>);

#[derive(Debug, Default)]
struct PendingState {
    /// The last epoch all of whose batches have been handed over.
    marked: u64,
    /// Batches handed over and not answered yet (nor routed elsewhere), per epoch; 0 is a batch
    /// of no epoch (routed again), which holds every epoch back while it is pending.
    batches: BTreeMap<u64, usize>,
    /// The sender has ended: nothing handed to it is pending any more.
    finished: bool,
}

impl Pending {
    fn state(&self) -> std::sync::MutexGuard<'_, PendingState> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A batch of `epoch` is handed over.
    pub fn handed(&self, epoch: u64) {
        *self.state().batches.entry(epoch).or_default() += 1;
    }

    /// A batch of `epoch` was answered (or went elsewhere, or is lost for good and counted).
    pub fn settled(&self, epoch: u64) {
        let mut state = self.state();
        if let Some(count) = state.batches.get_mut(&epoch) {
            *count -= 1;
            if *count == 0 {
                state.batches.remove(&epoch);
            }
        }
    }

    /// Every batch of `epoch` has been handed over.
    pub fn mark(&self, epoch: u64) {
        let mut state = self.state();
        state.marked = state.marked.max(epoch);
    }

    /// The sender has ended.
    pub fn finish(&self) {
        self.state().finished = true;
    }

    fn finished(&self) -> bool {
        self.state().finished
    }

    /// The last epoch all of whose batches were handed over and answered.
    pub fn delivered(&self) -> u64 {
        let state = self.state();
        let unanswered = state.batches.keys().next().map_or(u64::MAX, |epoch| epoch.saturating_sub(1));
        state.marked.min(unanswered)
    }
}

/// How a batch is handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handing {
    Live,
    Replayed,
    Rerouted,
}

/// Why an aggregator could not take a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AggregatorError {
    /// It has stopped (a node shutting down, a peer that left): nothing will take the batch.
    #[error("{0} has stopped")]
    Stopped(&'static str),
    /// It cannot tell which replayed contributions its rows already hold.
    #[error("the aggregator cannot take replayed metrics")]
    NoReplay,
}

impl From<AggregatorError> for oap_core::Refusal {
    fn from(error: AggregatorError) -> Self {
        match error {
            AggregatorError::Stopped(_) | AggregatorError::NoReplay => Self::unavailable(error.to_string()),
        }
    }
}

/// One aggregator and the address it is sorted by.
#[derive(Clone)]
pub struct Target {
    /// `host_port` (the local node's own address on a Mixed node).
    pub address: String,
    /// Where its metrics go.
    pub aggregator: Arc<dyn Aggregator>,
}

/// Routes batches to the aggregators.
pub struct Router {
    targets: RwLock<Arc<[Target]>>,
    /// What aggregators that left the targets still have pending (their batches are being routed
    /// again), until their senders end.
    departed: Mutex<Vec<Arc<Pending>>>,
    /// Bumped whenever the targets change, for a route waiting for one.
    changed: watch::Sender<u64>,
    dropped: Counter,
}

impl Router {
    /// A router over `targets`; `dropped` counts metrics that had nowhere to go.
    pub fn new(targets: Vec<Target>, dropped: Counter) -> Self {
        let router = Self {
            targets: RwLock::new(Arc::from(Vec::new())),
            departed: Mutex::new(Vec::new()),
            changed: watch::Sender::new(0),
            dropped,
        };
        router.set_targets(targets);
        router
    }

    /// Replaces the aggregators (sorted by address, duplicates removed).
    pub fn set_targets(&self, mut targets: Vec<Target>) {
        targets.sort_by(|a, b| a.address.cmp(&b.address));
        targets.dedup_by(|a, b| a.address == b.address);
        let targets: Arc<[Target]> = Arc::from(targets);
        let before = std::mem::replace(
            &mut *self.targets.write().unwrap_or_else(|poisoned| poisoned.into_inner()),
            targets.clone(),
        );
        let mut departed = self.departed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for gone in before.iter() {
            let Some(pending) = gone.aggregator.pending() else { continue };
            if !targets
                .iter()
                .any(|target| target.aggregator.pending().is_some_and(|kept| Arc::ptr_eq(&kept, &pending)))
            {
                departed.push(pending);
            }
        }
        drop(departed);
        self.changed.send_modify(|version| *version += 1);
    }

    fn current(&self) -> Arc<[Target]> {
        self.targets.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The targets, waiting up to `NO_TARGET_PATIENCE` for some if there are none.
    async fn some_targets(&self) -> Arc<[Target]> {
        let targets = self.current();
        if !targets.is_empty() {
            return targets;
        }
        // Subscribed before looking again, so that a change in between is not missed.
        let mut changes = self.changed.subscribe();
        if !self.current().is_empty() {
            return self.current();
        }
        let _ = tokio::time::timeout(NO_TARGET_PATIENCE, async {
            while changes.changed().await.is_ok() {
                if !self.current().is_empty() {
                    return;
                }
            }
        })
        .await;
        self.current()
    }

    /// Whether an aggregator of this address is among the targets.
    pub fn has_target(&self, address: &str) -> bool {
        self.current().iter().any(|target| target.address == address)
    }

    /// Routes the metrics of closed epoch `epoch`, then tells every aggregator the epoch is done;
    /// returns how many could not be delivered, as [`Router::route`].
    pub async fn route_epoch(&self, metrics: Vec<Metric>, epoch: u64) -> usize {
        let lost = self.route(metrics).await;
        for target in self.current().iter() {
            if let Err(reason) = target.aggregator.epoch_done(epoch).await {
                warn!(aggregator = %target.address, epoch, %reason, "the end of an epoch could not be routed");
            }
        }
        lost
    }

    /// Sends every metric to its aggregator; returns how many could not be delivered (they are
    /// counted and logged). With no aggregator at all, waits up to `NO_TARGET_PATIENCE` for one.
    pub async fn route(&self, metrics: Vec<Metric>) -> usize {
        self.route_as(metrics, Handing::Live).await
    }

    /// Routes the metrics an aggregator that left held queued over the ones that remain, as
    /// [`Router::route`].
    pub async fn route_rerouted(&self, metrics: Vec<Metric>) -> usize {
        self.route_as(metrics, Handing::Rerouted).await
    }

    /// The last epoch every aggregator — current, or departed with batches still pending —
    /// confirmed keeping (see [`Aggregator::pending`]).
    pub fn delivered(&self) -> u64 {
        let mut departed = self.departed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        departed.retain(|pending| !pending.finished());
        let gone = departed.iter().map(|pending| pending.delivered()).min().unwrap_or(u64::MAX);
        drop(departed);
        let current = self.current();
        let current =
            current.iter().filter_map(|target| target.aggregator.pending()).map(|pending| pending.delivered());
        current.min().unwrap_or(u64::MAX).min(gone)
    }

    /// Waits until every aggregator confirmed keeping `epoch`, or `patience` has passed; true if
    /// they did.
    pub async fn wait_delivered(&self, epoch: u64, patience: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + patience;
        while self.delivered() < epoch {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Sends metrics replayed from the ingest log to their aggregators (see
    /// [`Aggregator::take_replayed`]); returns how many could not be delivered, as
    /// [`Router::route`].
    pub async fn route_replayed(&self, metrics: Vec<Metric>) -> usize {
        self.route_as(metrics, Handing::Replayed).await
    }

    async fn route_as(&self, metrics: Vec<Metric>, handing: Handing) -> usize {
        if metrics.is_empty() {
            return 0;
        }
        let targets = self.some_targets().await;
        if targets.is_empty() {
            self.dropped.inc_by(metrics.len() as u64);
            warn!(metrics = metrics.len(), "no aggregator to route metrics to; they are dropped");
            return metrics.len();
        }
        let batches: Vec<Vec<Metric>> = if targets.len() == 1 {
            vec![metrics]
        } else {
            let mut batches: Vec<Vec<Metric>> = targets.iter().map(|_| Vec::new()).collect();
            for metric in metrics {
                batches[target_index(&metric.entity_id, targets.len())].push(metric);
            }
            batches
        };
        let mut lost = 0;
        for (target, batch) in targets.iter().zip(batches) {
            if batch.is_empty() {
                continue;
            }
            let count = batch.len();
            let taken = match handing {
                Handing::Live => target.aggregator.take(batch).await,
                Handing::Replayed => target.aggregator.take_replayed(batch).await,
                Handing::Rerouted => target.aggregator.take_rerouted(batch).await,
            };
            if let Err(reason) = taken {
                lost += count;
                self.dropped.inc_by(count as u64);
                warn!(aggregator = %target.address, metrics = count, %reason, "metrics could not be routed");
            }
        }
        lost
    }
}

/// Java's `String.hashCode`: `h = 31 * h + c` over UTF-16 units, wrapping.
pub fn java_string_hash(text: &str) -> i32 {
    let step = |hash: i32, unit: i32| hash.wrapping_mul(31).wrapping_add(unit);
    // Ids are ASCII (base64 and dots) but for names that are not: a byte is then its UTF-16 unit.
    if text.is_ascii() {
        text.bytes().fold(0, |hash, byte| step(hash, i32::from(byte)))
    } else {
        text.encode_utf16().fold(0, |hash, unit| step(hash, i32::from(unit)))
    }
}

/// The routing hash of an entity: `31 * 17 + javaStringHash(entity_id)`.
pub fn remote_hash(entity_id: &str) -> i32 {
    (31i32 * 17).wrapping_add(java_string_hash(entity_id))
}

/// The aggregator an entity goes to among `count`: `abs(hash % count)`.
pub fn target_index(entity_id: &str, count: usize) -> usize {
    let count = i64::try_from(count.max(1)).unwrap_or(i64::MAX);
    usize::try_from((i64::from(remote_hash(entity_id)) % count).unsigned_abs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Keeps what it takes.
    #[derive(Default)]
    struct Keep(Mutex<usize>);

    #[async_trait]
    impl Aggregator for Keep {
        async fn take(&self, metrics: Vec<Metric>) -> Result<(), AggregatorError> {
            *self.0.lock().expect("lock") += metrics.len();
            Ok(())
        }
    }

    fn metric() -> Metric {
        crate::testing::one_call(0)
    }

    #[tokio::test(start_paused = true)]
    async fn with_no_aggregator_metrics_wait_for_one_then_are_dropped_and_counted() {
        let dropped = Counter::new("dropped", "test").expect("counter");
        let router = Arc::new(Router::new(Vec::new(), dropped.clone()));
        let keep = Arc::new(Keep::default());
        let routing = tokio::spawn({
            let router = router.clone();
            async move { router.route(vec![metric(), metric()]).await }
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        router.set_targets(vec![Target { address: "a_1".to_owned(), aggregator: keep.clone() }]);
        assert_eq!(routing.await.expect("routed"), 0, "an aggregator came within the patience");
        assert_eq!(*keep.0.lock().expect("lock"), 2);

        router.set_targets(Vec::new());
        let started = tokio::time::Instant::now();
        assert_eq!(router.route(vec![metric()]).await, 1);
        assert_eq!(started.elapsed(), NO_TARGET_PATIENCE, "dropped after the patience, not before");
        assert_eq!(dropped.get(), 1);
    }

    #[test]
    fn an_epoch_is_delivered_once_marked_and_every_batch_of_it_and_before_is_answered() {
        let pending = Pending::default();
        assert_eq!(pending.delivered(), 0);
        pending.handed(10);
        pending.mark(10);
        assert_eq!(pending.delivered(), 9, "10 is marked but its batch is unanswered");
        pending.handed(11);
        pending.mark(11);
        pending.settled(10);
        assert_eq!(pending.delivered(), 10);
        // A replayed older epoch handed after later ones were marked holds them back.
        pending.handed(4);
        assert_eq!(pending.delivered(), 3);
        pending.settled(4);
        pending.settled(11);
        assert_eq!(pending.delivered(), 11);
        // A batch routed again (no epoch) holds every epoch back until answered.
        pending.handed(0);
        pending.mark(12);
        assert_eq!(pending.delivered(), 0);
        pending.settled(0);
        assert_eq!(pending.delivered(), 12);
    }

    /// Takes nothing; its pending batches are what a test says.
    struct Peer(Arc<Pending>);

    #[async_trait]
    impl Aggregator for Peer {
        async fn take(&self, _metrics: Vec<Metric>) -> Result<(), AggregatorError> {
            Ok(())
        }

        fn pending(&self) -> Option<Arc<Pending>> {
            Some(self.0.clone())
        }
    }

    #[test]
    fn a_departed_peer_holds_delivery_back_until_its_sender_ends() {
        let (a, b) = (Arc::new(Pending::default()), Arc::new(Pending::default()));
        a.mark(20);
        b.mark(20);
        let target = |address: &str, pending: &Arc<Pending>| Target {
            address: address.to_owned(),
            aggregator: Arc::new(Peer(pending.clone())),
        };
        let router =
            Router::new(vec![target("a", &a), target("b", &b)], Counter::new("dropped", "test").expect("counter"));
        assert_eq!(router.delivered(), 20);
        b.handed(15);
        router.set_targets(vec![target("a", &a)]);
        assert_eq!(router.delivered(), 14, "b left with a batch of 15 unanswered");
        b.settled(15);
        assert_eq!(router.delivered(), 20);
        b.handed(21);
        b.finish();
        assert_eq!(router.delivered(), 20, "once b's sender ended, it counts no more");
    }

    #[test]
    fn hashes_are_javas() {
        // "abc".hashCode() = 96354; "" = 0; a 32-bit wrap happens by 7 characters.
        assert_eq!(java_string_hash("abc"), 96_354);
        assert_eq!(java_string_hash(""), 0);
        // "cHktYmFja2VuZA==.1": computed by hand with wrapping i32 arithmetic below.
        let by_hand = "cHktYmFja2VuZA==.1".bytes().fold(0i32, |h, b| h.wrapping_mul(31).wrapping_add(i32::from(b)));
        assert_eq!(java_string_hash("cHktYmFja2VuZA==.1"), by_hand);
        assert_eq!(remote_hash("abc"), 527 + 96_354);
        // Past ASCII the units are UTF-16's: "é".hashCode() = 233; "测试" = 0x6D4B * 31 + 0x8BD5;
        // "😀" is two units, 0xD83D * 31 + 0xDE00.
        assert_eq!(java_string_hash("é"), 233);
        assert_eq!(java_string_hash("测试"), 0x6D4B * 31 + 0x8BD5);
        assert_eq!(java_string_hash("😀"), 0xD83D * 31 + 0xDE00);
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
    }

    #[test]
    fn the_index_ignores_nothing_but_the_bucket_and_stays_in_range() {
        // 96881 % 3 = 2 (96881 = 3 * 32293 + 2).
        assert_eq!(target_index("abc", 3), 2);
        for entity in ["a", "zz", "cHktYmFja2VuZA==.1", "ü-ß"] {
            for count in 1..6 {
                assert!(target_index(entity, count) < count);
            }
        }
        // A negative hash: "polygenelubricants".hashCode() is i32::MIN; + 527 stays negative.
        let index = target_index("polygenelubricants", 7);
        assert_eq!(index, usize::try_from((i64::from(i32::MIN + 527) % 7).unsigned_abs()).expect("small"));
    }
}
