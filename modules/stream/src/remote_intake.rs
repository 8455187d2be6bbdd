//! The aggregating side of the node-to-node path (docs/durable-ingest.md §8): a batch another node
//! routed here is an entry of this node's ingest log, like an agent's segment. It is appended
//! under L1's current epoch and its metrics go into L1's table of that epoch as they are (the
//! sender aggregated them), so they reach L2 with this node's epoch — the one L2's rows and the
//! log's truncation are about — and a crash replays them like any entry. The sender hears its
//! answer once the entry is durable, and then may cut its own log.
//!
//! Each batch names its sending node (an identity kept with that node's log) and the epoch of the
//! sender it is of. The last epoch taken from each node is kept, so a batch sent again — after
//! the sender restarted and replayed its log, or after this node restarted before answering — is
//! recognised and taken once. That map is rebuilt at start from the log's entries and from a
//! snapshot written before files are cut (`remote-senders` in the log's directory), so what the
//! cut entries said is not forgotten.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use oap_core::{Refusal, ReplayError, Replayer};
use oap_ingest_log::{EntryKind, IngestLog, state};
use oap_model::source::Source;
use oap_oal::catalog::Metric;
use oap_proto::oap::remote::v1::MetricBatch;
use prost::Message;
use tracing::warn;

use crate::l1::L1;

/// The snapshot of the last epoch taken from each node.
const SNAPSHOT: &str = "remote-senders";

/// Whether a batch was taken now or had been before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Appended to the log and merged into L1 now.
    Now,
    /// Its (node, epoch) was taken before: nothing done.
    Already,
}

/// Where other nodes' batches enter this node.
pub struct RemoteIntake {
    l1: Arc<L1>,
    log: Arc<IngestLog>,
    /// The catalog digest batches must carry.
    catalog: u64,
    /// The last epoch taken from each sending node.
    taken: Mutex<HashMap<u64, u64>>,
    /// Batches are refused (UNAVAILABLE: sent again) until the log of an earlier run has been
    /// replayed, so that the map above is whole before it decides anything.
    open: AtomicBool,
}

impl RemoteIntake {
    /// The intake of `l1` and `log`, knowing what the snapshot beside the log says.
    pub fn new(l1: Arc<L1>, log: Arc<IngestLog>, catalog: u64) -> std::io::Result<Self> {
        let taken = match state::load(log.dir(), SNAPSHOT)? {
            Some(bytes) => parse(&bytes).ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{SNAPSHOT}: not a snapshot"))
            })?,
            None => HashMap::new(),
        };
        Ok(Self { l1, log, catalog, taken: Mutex::new(taken), open: AtomicBool::new(false) })
    }

    /// Takes batches from now on (the replay is done).
    pub fn open(&self) {
        self.open.store(true, Ordering::Release);
    }

    /// Appends `batch` to the log and its `metrics` to L1 under the current epoch, unless its
    /// (node, epoch) was taken before. The batch is durable once [`RemoteIntake::durable`]
    /// returns. It never waits for L1's room: L1 is drained by this node's flusher, which may be
    /// waiting on the very node that sends this batch (a Mixed cluster), so waiting here could
    /// close a cycle; what arrives is bounded by the senders' queues instead (and counts against
    /// L1's capacity, so this node's own agents wait).
    pub async fn take(&self, batch: &MetricBatch, metrics: Vec<Metric>) -> Result<Taken, Refusal> {
        if !self.open.load(Ordering::Acquire) {
            return Err(Refusal::unavailable("this node is replaying its ingest log".to_owned()));
        }
        if self.log.is_full() {
            return Err(Refusal::busy("the ingest log is full (logMaxSize): the stores are behind".to_owned()));
        }
        let payload = batch.encode_to_vec();
        let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        if batch.epoch != 0 && taken.get(&batch.node).is_some_and(|last| batch.epoch <= *last) {
            return Ok(Taken::Already);
        }
        // No `await` from here to the entry's end: the entry is this thread's.
        let epoch = self.l1.open_entry();
        self.log.append(epoch, EntryKind::REMOTE_METRICS, &payload);
        self.l1.accept_metrics(metrics);
        self.l1.close_entry();
        if batch.epoch != 0 {
            taken.insert(batch.node, batch.epoch);
        }
        Ok(Taken::Now)
    }

    /// Waits until every batch taken so far is durable.
    pub async fn durable(&self) -> Result<(), Refusal> {
        self.log
            .durable(self.log.ticket_now())
            .await
            .map_err(|error| Refusal::unavailable(format!("not logged: {error}")))
    }

    /// Writes the snapshot of what has been taken (every entry it covers durable first), before
    /// the log's files are cut.
    pub async fn checkpoint(&self) -> std::io::Result<()> {
        let snapshot = render(&self.taken.lock().unwrap_or_else(PoisonError::into_inner));
        self.durable().await.map_err(|refusal| std::io::Error::other(refusal.to_string()))?;
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || state::save(log.dir(), SNAPSHOT, snapshot.as_bytes()))
            .await
            .map_err(std::io::Error::other)?
    }
}

impl Replayer for RemoteIntake {
    /// Puts a logged batch's metrics back into L1 under the entry's epoch (the replay opened it)
    /// and notes its (node, epoch) as taken.
    fn replay(
        &self,
        message: &[u8],
        _received_ms: i64,
        _dispatch: &mut dyn FnMut(&Source<'_>),
    ) -> Result<(), ReplayError> {
        let batch = MetricBatch::decode(message)?;
        if batch.catalog != self.catalog {
            return Err("a batch of other metric definitions (the OAL changed since it was logged)".into());
        }
        let metrics: Vec<Metric> = postcard::from_bytes(&batch.metrics)?;
        if batch.epoch != 0 {
            let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
            let last = taken.entry(batch.node).or_default();
            *last = (*last).max(batch.epoch);
        }
        self.l1.accept_metrics(metrics);
        Ok(())
    }
}

fn render(taken: &HashMap<u64, u64>) -> String {
    taken.iter().map(|(node, epoch)| format!("{node:016x} {epoch}\n")).collect()
}

fn parse(bytes: &[u8]) -> Option<HashMap<u64, u64>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut taken = HashMap::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let (node, epoch) = line.split_once(' ')?;
        taken.insert(u64::from_str_radix(node, 16).ok()?, epoch.trim().parse().ok()?);
    }
    if taken.is_empty() && !text.trim().is_empty() {
        warn!("an empty snapshot of remote senders");
    }
    Some(taken)
}

#[cfg(test)]
mod tests {
    use oap_ingest_log::LogConfig;

    use super::*;
    use crate::testing::core_catalog;

    fn metric(epoch: u64) -> Metric {
        crate::testing::one_call(epoch)
    }

    fn batch(node: u64, epoch: u64) -> MetricBatch {
        let metrics = [metric(epoch)];
        MetricBatch {
            sender: 1,
            sequence: epoch,
            catalog: 9,
            metrics: postcard::to_allocvec(&metrics[..]).expect("encodes"),
            count: 1,
            node,
            epoch,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_node_and_epoch_is_taken_once_across_a_restart_and_a_cut() {
        let dir = std::env::temp_dir().join(format!("oap-remote-intake-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = LogConfig { dir: dir.clone(), segment_bytes: 1 << 20, max_bytes: 1 << 30 };
        let l1 = Arc::new(L1::new(core_catalog(), 1_000));
        {
            let (log, _) = IngestLog::open(config.clone()).expect("opens");
            let intake = RemoteIntake::new(l1.clone(), Arc::new(log), 9).expect("intake");
            assert!(intake.take(&batch(5, 10), vec![metric(10)]).await.is_err(), "closed until opened");
            intake.open();
            assert_eq!(intake.take(&batch(5, 10), vec![metric(10)]).await.expect("taken"), Taken::Now);
            assert_eq!(intake.take(&batch(5, 10), vec![metric(10)]).await.expect("taken"), Taken::Already);
            assert_eq!(intake.take(&batch(6, 3), vec![metric(3)]).await.expect("taken"), Taken::Now);
            assert_eq!(intake.take(&batch(6, 0), vec![metric(0)]).await.expect("taken"), Taken::Now, "rerouted");
            intake.checkpoint().await.expect("snapshot");
            assert_eq!(intake.take(&batch(5, 11), vec![metric(11)]).await.expect("taken"), Taken::Now);
            intake.durable().await.expect("durable");
            assert_eq!(l1.held(), 4);
        }
        // After a restart: node 6's epoch from the snapshot, node 5's 11 from the log's entry.
        let (log, recovered) = IngestLog::open(config).expect("opens again");
        assert_eq!(recovered.entries, 4);
        let log = Arc::new(log);
        let intake = RemoteIntake::new(Arc::new(L1::new(core_catalog(), 1_000)), log.clone(), 9).expect("intake");
        for entry in log.replay() {
            let entry = entry.expect("readable");
            assert_eq!(entry.kind, EntryKind::REMOTE_METRICS);
            intake.replay(&entry.payload, 0, &mut |_| {}).expect("replayed");
        }
        intake.open();
        assert_eq!(intake.take(&batch(5, 11), vec![metric(11)]).await.expect("taken"), Taken::Already);
        assert_eq!(intake.take(&batch(6, 3), vec![metric(3)]).await.expect("taken"), Taken::Already);
        assert_eq!(intake.take(&batch(5, 12), vec![metric(12)]).await.expect("taken"), Taken::Now);
        let mut other = batch(5, 13);
        other.catalog = 8;
        assert!(intake.replay(&other.encode_to_vec(), 0, &mut |_| {}).is_err(), "other definitions are refused");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
