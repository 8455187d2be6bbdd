//! The ingest path's hot spots, stage by stage, on a batch of 2,000 segments of the load
//! generator's default estate (SkyWalking's storage-benchmark topology: 20 services × 20
//! instances × 100 endpoints, 5-span segments with cross-process refs), stamped with the current
//! time as the server would receive them:
//!
//! - `decode`: prost decoding of each segment from its wire bytes (per segment);
//! - `analysis`: each decoded segment analysed into sources, the sources only counted (per
//!   segment);
//! - `analysis_oal_dispatch`: the same, each source also evaluated by every OAL metric of its
//!   scope and the built-in streams into one scratch group — no table (per source; the dispatch
//!   alone is this minus `analysis`);
//! - `analysis_l1_merge`: the same into the real L1 — its group looked up or made, then merged —
//!   and L1 drained at the end of the batch (per source; L1's own share is this minus
//!   `analysis_oal_dispatch`);
//! - `l2_merge`: the metrics L1 drained from the batch merged by L2 with what it holds and
//!   persisted to the embedded store, minute, hour and day rows (per metric; steady state: every
//!   row is already cached and stored, so each is an update).
//!
//! - `remote_route`: the same metrics as one batch to another node of a cluster, over gRPC on
//!   loopback — encoded, sent, decoded, checked and handed to an aggregator that only counts
//!   them (per metric; what a Receiver node adds per metric over a Mixed node's in-process
//!   hand-off).
//!
//! Run: `cargo bench -p oap-loadgen --bench hot_paths`

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput};
use oap_agent_analyzer::{AnalysisRules, NetworkAddressAliasCache, SegmentAnalyzer};
use oap_loadgen::drive::now_ms;
use oap_loadgen::pool::Pool;
use oap_loadgen::topology::Topology;
use oap_model::TimeBuckets;
use oap_model::source::Source;
use oap_oal::catalog::{GroupId, Metric, MetricSink, Slot};
use oap_oal::{Catalog, EntityKey};
use oap_proto::oap::remote::v1::remote_service_client::RemoteServiceClient;
use oap_proto::v3::SegmentObject;
use oap_storage::Storage;
use oap_storage_embedded::{Budget, EmbeddedStore};
use oap_stream::l1::L1;
use oap_stream::l2::{L2, L2Config, L2Telemetry};
use oap_stream::retry::WriteTelemetry;
use oap_stream::route::Aggregator;
use oap_telemetry::Counter;
use prost::Message;

/// Traces in the batch: 5 segments each.
const TRACES: usize = 400;

/// The batch: each segment's wire bytes and its decoding.
struct Batch {
    wire: Vec<Bytes>,
    segments: Vec<SegmentObject>,
}

fn batch() -> Batch {
    let pool = Pool::build(&Topology::default(), TRACES, 0.0).expect("the default estate builds");
    let (mut arena, mut wire) = (BytesMut::new(), Vec::new());
    let now = now_ms();
    for index in 0..TRACES {
        pool.stamp(index, now, &mut arena, &mut wire);
    }
    let segments = wire.iter().map(|bytes| SegmentObject::decode(bytes.clone()).expect("decodes")).collect();
    Batch { wire, segments }
}

fn catalog() -> Arc<Catalog> {
    let oal = concat!(env!("CARGO_MANIFEST_DIR"), "/../oal");
    Arc::new(oap_core::catalog::load_catalog(oal, "no-apdex-file").expect("the shipped OAL compiles"))
}

fn analyzer() -> SegmentAnalyzer {
    SegmentAnalyzer::new(AnalysisRules::default(), TimeBuckets::system(), Arc::new(NetworkAddressAliasCache::new()))
}

/// Analyses every segment of the batch, handing each source to `each`.
fn analyse(analyzer: &SegmentAnalyzer, batch: &Batch, each: &mut dyn FnMut(&Source<'_>)) {
    let now = now_ms();
    for (segment, wire) in batch.segments.iter().zip(&batch.wire) {
        analyzer.analyze(segment, wire, now, &mut |source: Source<'_>| each(&source)).expect("a valid segment");
    }
}

/// A sink with one group's slots, reused whatever the group: the catalog's evaluation alone.
struct Scratch(Vec<Option<Slot>>);

impl MetricSink for Scratch {
    fn group(
        &mut self,
        _group: GroupId,
        slots: usize,
        _entity: &EntityKey<'_>,
        _time_bucket: i64,
    ) -> &mut [Option<Slot>] {
        self.0.clear();
        self.0.resize(slots, None);
        &mut self.0
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args().measurement_time(Duration::from_secs(5));
    let batch = batch();
    let catalog = catalog();
    let analyzer = analyzer();
    let mut sources = 0u64;
    analyse(&analyzer, &batch, &mut |_| sources += 1);
    let segments = batch.wire.len() as u64;
    println!("batch: {segments} segments, {sources} sources");

    let mut group = criterion.benchmark_group("ingest");
    group.throughput(Throughput::Elements(segments));
    group.bench_function("decode", |b| {
        b.iter(|| {
            for wire in &batch.wire {
                std::hint::black_box(SegmentObject::decode(wire.clone()).expect("decodes"));
            }
        });
    });
    group.bench_function("analysis", |b| {
        b.iter(|| {
            let mut count = 0u64;
            analyse(&analyzer, &batch, &mut |_| count += 1);
            std::hint::black_box(count);
        });
    });
    group.throughput(Throughput::Elements(sources));
    group.bench_function("analysis_oal_dispatch", |b| {
        let mut scratch = Scratch(Vec::new());
        b.iter(|| {
            let mut started = 0;
            analyse(&analyzer, &batch, &mut |source| started += catalog.aggregate(source, &mut scratch));
            std::hint::black_box(started);
        });
    });
    let l1 = L1::new(catalog.clone(), usize::MAX);
    group.bench_function("analysis_l1_merge", |b| {
        b.iter(|| {
            analyse(&analyzer, &batch, &mut |source| l1.accept(source));
            std::hint::black_box(l1.drain());
        });
    });

    analyse(&analyzer, &batch, &mut |source| l1.accept(source));
    let metrics = l1.drain();
    println!("L1 drains {} metrics from the batch", metrics.len());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let dir = std::env::temp_dir().join(format!("oap-bench-l2-{}", std::process::id()));
    let l2 = runtime.block_on(start_l2(&catalog, &dir));
    // The first round inserts and caches every row; the measured ones update them.
    runtime.block_on(merge(&l2, metrics.clone()));
    group.throughput(Throughput::Elements(metrics.len() as u64));
    group.bench_function("l2_merge", |b| {
        b.iter_batched(|| metrics.clone(), |metrics| runtime.block_on(merge(&l2, metrics)), BatchSize::LargeInput);
    });
    runtime.block_on(l2.stop());

    let (client, receiving_l1) = runtime.block_on(remote_receiver(&catalog, &dir.join("log")));
    let digest = oap_stream::remote::catalog_digest(&catalog);
    let origin = |sequence| oap_stream::remote::BatchOrigin { sender: 7, sequence, node: 7, epoch: sequence };
    let encoded = oap_stream::remote::encode_batch(origin(0), digest, &metrics).expect("encodes").metrics.len();
    println!("a batch of {} metrics is {encoded} bytes on the wire between nodes", metrics.len());
    let mut sequence = 0;
    group.bench_function("remote_route", |b| {
        b.iter(|| {
            sequence += 1;
            let batch = oap_stream::remote::encode_batch(origin(sequence), digest, &metrics).expect("encodes");
            runtime.block_on(client.clone().take(batch)).expect("taken");
            // What a flush would take out of the receiving node's L1.
            drop(receiving_l1.drain());
        });
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
    criterion.final_summary();
}

async fn start_l2(catalog: &Arc<Catalog>, dir: &std::path::Path) -> Arc<L2> {
    let store = EmbeddedStore::open(dir, Budget::default()).expect("the store opens");
    let mut models = oap_storage::builtin::models();
    models.extend(catalog.models());
    store.install(&models).await.expect("the models install");
    let config = L2Config {
        persistent_period: Duration::from_secs(3600),
        session_timeout: Duration::from_secs(3600),
        hour: true,
        day: true,
        ttl_days: 7,
        partitions: 1,
        node: 1,
        max_rows: oap_stream::provider::DEFAULT_L2_MAX_ROWS,
    };
    let counter = || Counter::new("bench", "counts nowhere").expect("a counter");
    let metrics = L2Telemetry {
        writes: WriteTelemetry::detached(),
        expired: counter(),
        read_errors: counter(),
        conflicts: counter(),
        rounds: Vec::new(),
    };
    L2::start(catalog.clone(), Arc::new(store), config, metrics, TimeBuckets::system())
}

/// A node's remote service on a loopback port, taking batches into its ingest log (in `dir`) and
/// an L1; a client of it, and that L1.
async fn remote_receiver(
    catalog: &Arc<Catalog>,
    dir: &std::path::Path,
) -> (RemoteServiceClient<tonic::transport::Channel>, Arc<L1>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let address = listener.local_addr().expect("an address");
    let telemetry = oap_telemetry::MetricsRegistry::new();
    let metrics = oap_stream::remote::RemoteTelemetry::new(&telemetry).expect("metrics");
    let config = oap_ingest_log::LogConfig { dir: dir.to_owned(), segment_bytes: 64 << 20, max_bytes: 1 << 40 };
    let (log, _) = oap_ingest_log::IngestLog::open(config).expect("the log opens");
    let l1 = Arc::new(L1::new(catalog.clone(), usize::MAX));
    let digest = oap_stream::remote::catalog_digest(catalog);
    let intake = oap_stream::remote_intake::RemoteIntake::new(l1.clone(), Arc::new(log), digest).expect("an intake");
    intake.open();
    let service = oap_stream::remote::RemoteReceiver::service(Arc::new(intake), catalog, metrics);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .expect("a uri")
        .connect()
        .await
        .expect("connects");
    (RemoteServiceClient::new(channel).max_decoding_message_size(256 << 20).max_encoding_message_size(256 << 20), l1)
}

/// One L2 round: the batch taken, then everything persisted.
async fn merge(l2: &L2, metrics: Vec<Metric>) {
    l2.take(metrics).await.expect("L2 takes the batch");
    l2.flush().await;
}
