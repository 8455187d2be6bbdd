//! Metrics between the nodes of a cluster (docs/reference/pipeline-and-storage.md §4): the router's
//! targets follow the cluster's node list — this node's own L2 in-process, every other aggregating
//! node through a [`RemotePeer`] — and [`RemoteReceiver`] takes the batches other nodes send into
//! the local pipeline.
//!
//! A peer keeps a bounded queue of batches (a full queue makes L1's flush wait: backpressure)
//! and sends them one at a time, in order, each with a deadline. A batch that fails is sent
//! again, with a growing pause, while the peer is listed; once the peer has left the list its
//! batches are routed again over the nodes that remain, not dropped. Each batch carries its
//! sender process and a sequence number, so one sent again after a lost answer is taken once;
//! and the sending node's lasting identity and the epoch it is of, so one sent again after
//! either node restarted is taken once too (docs/durable-ingest.md §8). A peer answers once the
//! batch is in its own ingest log ([`crate::remote_intake`]); the sender keeps its log until every
//! peer has so answered for an epoch ([`Aggregator::delivered`]).
//!
//! With TLS on the gRPC port (`gRPCSslEnabled`) every node's port speaks TLS, so a peer is
//! reached over TLS too, trusting the CA of `gRPCSslTrustedCAPath` ([`peer_tls`]), as
//! SkyWalking's remote client does; each node's certificate must name the address the cluster
//! lists it at. The remote service is not asked for the agent token (`authentication`).

use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use crate::retry::{Outage, OutageLog};
use async_trait::async_trait;
use oap_cluster::{MembershipRef, RemoteNode};
use oap_core::CoreConfig;
use oap_kernel::ModuleError;
use oap_oal::Catalog;
use oap_oal::catalog::Metric;
use oap_proto::oap::remote::v1::remote_service_client::RemoteServiceClient;
use oap_proto::oap::remote::v1::remote_service_server::{RemoteService, RemoteServiceServer};
use oap_proto::oap::remote::v1::{MetricBatch, TakeReply};
use oap_telemetry::{Counter, MetricsCreator, TelemetryError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::transport::ClientTlsConfig;
use tonic::{Request, Response, Status};
use tracing::{error, info, warn};

use crate::l2::L2;
use crate::remote_intake::{RemoteIntake, Taken};
use crate::route::{Aggregator, AggregatorError, Pending, Router, Target};

/// Batches a peer holds queued at most.
const PEER_QUEUE: usize = 64;
/// How long one batch may take to be answered (SkyWalking's `remoteTimeout`).
const REMOTE_TIMEOUT: Duration = Duration::from_secs(20);

/// A digest of the streams a catalog defines, in order: nodes exchange metrics by stream number,
/// so two nodes must agree on it (FNV-1a over the names).
pub fn catalog_digest(catalog: &Catalog) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for stream in catalog.streams() {
        for byte in stream.model.name.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// Who sends a batch and what it is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOrigin {
    /// The sending process (random per start).
    pub sender: u64,
    /// Its batches to one node, counted from 1.
    pub sequence: u64,
    /// The sending node, as long as its ingest log lasts.
    pub node: u64,
    /// The sender's epoch the metrics are of (0: routed again from a node that left).
    pub epoch: u64,
}

/// The message carrying `metrics` from `origin`.
pub fn encode_batch(origin: BatchOrigin, catalog: u64, metrics: &[Metric]) -> Result<MetricBatch, postcard::Error> {
    Ok(MetricBatch {
        sender: origin.sender,
        sequence: origin.sequence,
        catalog,
        metrics: postcard::to_allocvec(metrics)?,
        count: u32::try_from(metrics.len()).unwrap_or(u32::MAX),
        node: origin.node,
        epoch: origin.epoch,
    })
}

/// Counters of the node-to-node traffic.
#[derive(Clone)]
pub struct RemoteTelemetry {
    sent: Counter,
    retried: Counter,
    rerouted: Counter,
    lost: Counter,
    received: Counter,
    duplicates: Counter,
    at_risk: Counter,
}

impl RemoteTelemetry {
    /// The counters, registered in `metrics`.
    pub fn new(metrics: &dyn MetricsCreator) -> Result<Self, TelemetryError> {
        Ok(Self {
            sent: metrics.counter("remote_out_count", "Metrics another node's L2 took from this node", &[])?,
            retried: metrics.counter("remote_out_retry_count", "Batches sent again to a node", &[])?,
            rerouted: metrics.counter(
                "remote_out_rerouted_count",
                "Metrics routed again because their node left the cluster",
                &[],
            )?,
            lost: metrics.counter(
                "remote_out_error_count",
                "Metrics a node refused for good (other metric definitions)",
                &[],
            )?,
            received: metrics.counter("remote_in_count", "Metrics taken from other nodes", &[])?,
            duplicates: metrics.counter("remote_in_duplicate_count", "Batches received again and taken once", &[])?,
            at_risk: metrics.counter(
                "remote_out_at_risk_count",
                "Metrics a node that left had taken within its last persistent period: kept in its ingest log, stored once it starts again on its data, lost if it never does",
                &[],
            )?,
        })
    }
}

/// What every peer of this node shares.
#[derive(Clone)]
struct PeerContext {
    /// How long an aggregator holds what it took before it is stored: `persistentPeriod` and a
    /// margin. What a peer took within this of its last answer is what its death may lose.
    holds_for: Duration,
    sender: u64,
    /// This node's lasting identity.
    node: u64,
    catalog: u64,
    router: Weak<Router>,
    membership: MembershipRef,
    metrics: RemoteTelemetry,
    /// How peers are reached over TLS, when the cluster's gRPC ports have it.
    tls: Option<ClientTlsConfig>,
}

/// How this node reaches its peers: `None` (plain text) unless `gRPCSslEnabled`, and then TLS
/// trusting the CA of `gRPCSslTrustedCAPath`, which must be set and readable.
pub fn peer_tls(core: &CoreConfig) -> Result<Option<ClientTlsConfig>, ModuleError> {
    if !core.grpc_ssl_enabled {
        return Ok(None);
    }
    if core.grpc_ssl_trusted_ca_path.is_empty() {
        return Err(ModuleError::Config(
            "gRPCSslTrustedCAPath: needed when gRPCSslEnabled is true in a cluster: the PEM CA that signed the \
             other nodes' certificates"
                .to_owned(),
        ));
    }
    let ca = oap_core::tls::trusted_ca(&core.grpc_ssl_trusted_ca_path)
        .map_err(|error| ModuleError::Config(format!("gRPCSslTrustedCAPath: {error}")))?;
    Ok(Some(ClientTlsConfig::new().ca_certificate(ca)))
}

/// A batch in a peer's queue, and the epoch it is of (0: routed again).
struct Outgoing {
    metrics: Vec<Metric>,
    epoch: u64,
}

/// Another aggregating node, as this node's router sees it.
pub struct RemotePeer {
    queue: mpsc::Sender<Outgoing>,
    pending: Arc<Pending>,
    /// The router let this peer go: what its queue still holds is routed again (to whatever
    /// now stands at its address too), never sent by this sender after a newer one's batches.
    retired: Arc<AtomicBool>,
}

#[async_trait]
impl Aggregator for RemotePeer {
    async fn take(&self, metrics: Vec<Metric>) -> Result<(), AggregatorError> {
        // L1 stamps every metric of a flush (or of a replayed epoch) with its epoch.
        let epoch = metrics.iter().map(|metric| metric.epoch).max().unwrap_or(0);
        self.send(Outgoing { metrics, epoch }).await
    }

    /// A peer takes each (node, epoch) once, whether it was sent live before a restart or not.
    async fn take_replayed(&self, metrics: Vec<Metric>) -> Result<(), AggregatorError> {
        self.take(metrics).await
    }

    async fn take_rerouted(&self, metrics: Vec<Metric>) -> Result<(), AggregatorError> {
        self.send(Outgoing { metrics, epoch: 0 }).await
    }

    async fn epoch_done(&self, epoch: u64) -> Result<(), AggregatorError> {
        self.pending.mark(epoch);
        Ok(())
    }

    fn pending(&self) -> Option<Arc<Pending>> {
        Some(self.pending.clone())
    }
}

impl RemotePeer {
    fn start(node: RemoteNode, context: PeerContext) -> Arc<Self> {
        let (queue, batches) = mpsc::channel(PEER_QUEUE);
        let pending = Arc::new(Pending::default());
        let retired = Arc::new(AtomicBool::new(false));
        // A sender of its own: a peer that left and came back at the same address gets a new
        // one, whose sequence numbers are not mistaken for the old one's.
        let context = PeerContext { sender: rand::random(), ..context };
        tokio::spawn(send_all(node, batches, context, pending.clone(), retired.clone()));
        Arc::new(Self { queue, pending, retired })
    }

    async fn send(&self, outgoing: Outgoing) -> Result<(), AggregatorError> {
        let epoch = outgoing.epoch;
        self.pending.handed(epoch);
        let sent = self.queue.send(outgoing).await.map_err(|_| AggregatorError::Stopped("the peer's sender"));
        if sent.is_err() {
            self.pending.settled(epoch);
        }
        sent
    }

    fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }
}

/// Whether `peer` is still one of the cluster's nodes.
fn listed(membership: &MembershipRef, peer: &RemoteNode) -> bool {
    membership.nodes().iter().any(|node| node.host == peer.host && node.port == peer.port)
}

/// Sends the peer's batches in order until its queue closes (the peer left the router).
async fn send_all(
    peer: RemoteNode,
    mut batches: mpsc::Receiver<Outgoing>,
    context: PeerContext,
    pending: Arc<Pending>,
    retired: Arc<AtomicBool>,
) {
    let address = peer.address();
    let scheme = if context.tls.is_some() { "https" } else { "http" };
    let endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://{address}"))
        .and_then(|endpoint| match &context.tls {
            Some(tls) => endpoint.tls_config(tls.clone()),
            None => Ok(endpoint),
        })
        .map(|endpoint| endpoint.connect_timeout(Duration::from_secs(3)));
    let endpoint = match endpoint {
        Ok(endpoint) => endpoint,
        Err(error) => {
            error!(%address, %error, "not a node address");
            return;
        }
    };
    let mut client = RemoteServiceClient::new(endpoint.connect_lazy());
    let mut sequence = 0u64;
    // What the peer took lately, and when: what it may still hold unstored.
    let mut recent: std::collections::VecDeque<(Instant, usize)> = std::collections::VecDeque::new();
    while let Some(Outgoing { metrics: batch, epoch }) = batches.recv().await {
        send_one(&peer, &mut client, batch, epoch, &context, &retired, &mut sequence, &mut recent).await;
        pending.settled(epoch);
        // Keep what was taken within `holds_for` of the latest delivery: if the peer dies now,
        // that is what it may not have stored.
        if let Some(&(latest, _)) = recent.back() {
            while recent.front().is_some_and(|(at, _)| latest.duration_since(*at) > context.holds_for) {
                recent.pop_front();
            }
        }
    }
    pending.finish();
    // The router let the peer go: it left the cluster.
    let at_risk: usize = recent.iter().map(|(_, count)| count).sum();
    if at_risk > 0 && !listed(&context.membership, &peer) {
        context.metrics.at_risk.inc_by(at_risk as u64);
        warn!(
            %address,
            metrics = at_risk,
            "a node left the cluster holding metrics it took from this one within its persistent period; \
             its ingest log keeps them until it starts again on its data (remote_out_at_risk_count)"
        );
    }
}

/// Sends one batch until the peer answers, refuses it for good, or leaves (then the batch is
/// routed again).
#[allow(clippy::too_many_arguments)]
async fn send_one(
    peer: &RemoteNode,
    client: &mut RemoteServiceClient<tonic::transport::Channel>,
    batch: Vec<Metric>,
    epoch: u64,
    context: &PeerContext,
    retired: &AtomicBool,
    sequence: &mut u64,
    recent: &mut VecDeque<(Instant, usize)>,
) {
    let address = peer.address();
    {
        if retired.load(Ordering::Acquire) || !listed(&context.membership, peer) {
            // Left while this batch waited: no need to try a node that is gone.
            reroute(peer, batch, context, retired).await;
            return;
        }
        *sequence += 1;
    }
    let count = batch.len();
    let origin = BatchOrigin { sender: context.sender, sequence: *sequence, node: context.node, epoch };
    let message = match encode_batch(origin, context.catalog, &batch) {
        Ok(message) => message,
        Err(error) => {
            context.metrics.lost.inc_by(count as u64);
            error!(%address, %error, metrics = count, "metrics could not be encoded; they are lost");
            return;
        }
    };
    let mut outage = Outage::default();
    loop {
        // Checked before every attempt: once a newer sender stands for this address (the node
        // left and came back), this one's late batch would reach it after newer epochs, and be
        // taken for one it had already.
        if retired.load(Ordering::Acquire) {
            reroute(peer, batch, context, retired).await;
            return;
        }
        let mut request = Request::new(message.clone());
        request.set_timeout(REMOTE_TIMEOUT);
        match client.take(request).await {
            Ok(_) => {
                context.metrics.sent.inc_by(count as u64);
                recent.push_back((Instant::now(), count));
                if let Some((attempts, waited)) = outage.ended() {
                    info!(%address, failed_attempts = attempts, ?waited, "metrics delivered after retries");
                }
                return;
            }
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                context.metrics.lost.inc_by(count as u64);
                error!(%address, %status, metrics = count, "a node refused metrics for good; they are lost");
                return;
            }
            Err(status) => {
                if retired.load(Ordering::Acquire) || !listed(&context.membership, peer) {
                    reroute(peer, batch, context, retired).await;
                    return;
                }
                context.metrics.retried.inc();
                match outage.failed() {
                    Some(OutageLog::Began) => {
                        warn!(%address, %status, "sending metrics to a node failed; retrying")
                    }
                    Some(OutageLog::Lasts { attempts, failing_for }) => {
                        warn!(%address, %status, failed_attempts = attempts, ?failing_for, "a node still takes no metrics");
                    }
                    None => {}
                }
                outage.pause().await;
            }
        }
    }
}

/// Routes a batch of a node that left over the nodes that remain, once the router no longer
/// lists the node — or at once, to whatever the router lists now, when this sender was retired
/// (the node may be back at its address, with a sender of its own).
async fn reroute(peer: &RemoteNode, batch: Vec<Metric>, context: &PeerContext, retired: &AtomicBool) {
    let Some(router) = context.router.upgrade() else { return };
    let key = peer.sort_key();
    while !retired.load(Ordering::Acquire) && router.has_target(&key) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    context.metrics.rerouted.inc_by(batch.len() as u64);
    info!(address = %peer.address(), metrics = batch.len(), "a node left the cluster; its metrics are routed again");
    router.route_rerouted(batch).await;
}

/// Keeps the router's targets equal to the cluster's aggregating nodes: `l2` for this node, a
/// [`RemotePeer`] for each other one (kept while it stays listed); tells `l2` when the list
/// changes, as entities then change owner. Peers are reached over `tls` when it is set.
#[allow(clippy::too_many_arguments)]
pub fn follow_membership(
    node: u64,
    membership: MembershipRef,
    router: &Arc<Router>,
    l2: Option<Arc<L2>>,
    catalog: &Catalog,
    persistent_period: Duration,
    metrics: RemoteTelemetry,
    tls: Option<ClientTlsConfig>,
) -> JoinHandle<()> {
    let context = PeerContext {
        holds_for: persistent_period + Duration::from_secs(2),
        sender: rand::random(),
        node,
        catalog: catalog_digest(catalog),
        router: Arc::downgrade(router),
        membership: membership.clone(),
        metrics,
        tls,
    };
    let router = router.clone();
    let mut changes = membership.watch();
    let local = l2.clone().map(|l2| l2 as Arc<dyn Aggregator>);
    tokio::spawn(async move {
        let mut peers: HashMap<String, Arc<RemotePeer>> = HashMap::new();
        let mut first = true;
        loop {
            let nodes = changes.borrow_and_update().clone();
            let mut targets = Vec::with_capacity(nodes.len());
            let mut kept = HashMap::new();
            for node in nodes.iter() {
                // The router sorts by this key, as the cluster sorts its nodes.
                let key = node.sort_key();
                let aggregator: Arc<dyn Aggregator> = if node.is_self {
                    match &local {
                        Some(local) => local.clone(),
                        None => continue,
                    }
                } else {
                    let peer = peers.remove(&key).unwrap_or_else(|| RemotePeer::start(node.clone(), context.clone()));
                    kept.insert(key.clone(), peer.clone());
                    peer
                };
                targets.push(Target { address: key, aggregator });
            }
            // Peers no longer listed are dropped here: their queues close once the router lets
            // them go, and what they still hold is routed again.
            for gone in peers.values() {
                gone.retire();
            }
            peers = kept;
            router.set_targets(targets);
            if let Some(l2) = l2.as_ref().filter(|_| !first) {
                l2.owners_changed().await;
            }
            first = false;
            if changes.changed().await.is_err() {
                return;
            }
        }
    })
}

/// Takes other nodes' batches into this node's pipeline, through its ingest log.
pub struct RemoteReceiver {
    intake: Arc<RemoteIntake>,
    catalog: u64,
    /// The last sequence taken from each sending process.
    taken: Mutex<HashMap<u64, u64>>,
    metrics: RemoteTelemetry,
}

impl RemoteReceiver {
    /// The gRPC service over `intake`.
    pub fn service(
        intake: Arc<RemoteIntake>,
        catalog: &Catalog,
        metrics: RemoteTelemetry,
    ) -> RemoteServiceServer<RemoteReceiver> {
        RemoteServiceServer::new(Self {
            intake,
            catalog: catalog_digest(catalog),
            taken: Mutex::new(HashMap::new()),
            metrics,
        })
        .max_decoding_message_size(256 << 20)
    }
}

#[async_trait]
impl RemoteService for RemoteReceiver {
    async fn take(&self, request: Request<MetricBatch>) -> Result<Response<TakeReply>, Status> {
        let batch = request.into_inner();
        if batch.catalog != self.catalog {
            return Err(Status::failed_precondition("this node defines other metric streams (its OAL differs)"));
        }
        let last = self.taken.lock().unwrap_or_else(PoisonError::into_inner).get(&batch.sender).copied();
        let taken = if last.is_some_and(|last| batch.sequence <= last) {
            Taken::Already
        } else {
            let metrics: Vec<Metric> = postcard::from_bytes(&batch.metrics)
                .map_err(|error| Status::invalid_argument(format!("unreadable metrics: {error}")))?;
            let count = metrics.len();
            let taken = self.intake.take(&batch, metrics).await.map_err(Status::from)?;
            if taken == Taken::Now {
                self.metrics.received.inc_by(count as u64);
            }
            self.taken.lock().unwrap_or_else(PoisonError::into_inner).insert(batch.sender, batch.sequence);
            taken
        };
        // Answered once the log holds the batch — or, for one taken before, holds it by now.
        self.intake.durable().await.map_err(Status::from)?;
        if taken == Taken::Already {
            self.metrics.duplicates.inc();
        }
        Ok(Response::new(TakeReply { duplicate: taken == Taken::Already }))
    }
}
