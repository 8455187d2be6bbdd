//! The running pipeline of a node, built in one place: every model of the catalog installed in
//! the store, the metrics stream (L1 → route → L2), the record stream and the top-N buffers
//! subscribed to the dispatcher, the peers of a cluster followed, and the data keeper on its
//! timer — and, at shutdown, all of it drained in order.

use std::sync::Arc;
use std::time::Duration;

use oap_cluster::MembershipRef;
use oap_core::{
    CatalogRef, CoreConfig, CoreConfigRef, Downsampling, GrpcServerRef, NodeHealthRef, Role, SourceDispatcherRef,
    TimeBuckets,
};
use oap_ingest_log::{EntryKind, IngestLog, LogConfig};
use oap_kernel::{ModuleContext, ModuleError};
use oap_storage::{StorageRef, builtin};
use oap_telemetry::MetricsCreatorRef;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::journal::PipelineJournal;
use crate::l1::{DEFAULT_CAPACITY, L1};
use crate::l2::{L2, L2Config, L2Telemetry, RoundTelemetry};
use crate::log_keeper::LogKeeper;
use crate::metrics_stream::{FlushContext, MetricsStream};
use crate::provider::PipelineConfig;
use crate::record_stream::RecordStream;
use crate::remote::{RemoteReceiver, RemoteTelemetry, catalog_digest, follow_membership, peer_tls};
use crate::remote_intake::RemoteIntake;
use crate::replay::{Replay, ReplayTelemetry};
use crate::retry::WriteTelemetry;
use crate::route::{Router, Target};
use crate::top_n::{TopN, TopNReport};
use crate::ttl::DataKeeper;

/// How long shutdown waits for queued records to be stored.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The address the local aggregator is known by until the cluster gives it one.
const SELF_ADDRESS: &str = "self";
/// The part of the node's health that is failing while the ingest log is replayed.
const REPLAY_PART: &str = "replay";

/// The running streams of a node.
pub struct StreamWork {
    log: Arc<IngestLog>,
    log_keeper: Option<JoinHandle<()>>,
    /// What runs once the modules have started: the replay of an earlier run's log, then the
    /// log's keeper.
    opening: Option<Opening>,
    l2: Option<Arc<L2>>,
    router: Arc<Router>,
    health: NodeHealthRef,
    metrics: MetricsStream,
    records: Arc<RecordStream>,
    top_n: Option<TopNReport>,
    writer: JoinHandle<()>,
    keeper: Option<JoinHandle<()>>,
    follower: Option<JoinHandle<()>>,
}

impl StreamWork {
    /// Installs every model of the catalog in the store, opens the ingest log (on a node that
    /// takes agents' data) and starts the streams and the keepers; the provider must require
    /// `core`, `telemetry`, `cluster` and `storage`.
    pub async fn start(ctx: &mut ModuleContext<'_>, config: &PipelineConfig) -> Result<Self, ModuleError> {
        let storage = &ctx.service::<StorageRef>()?;
        let catalog = ctx.service::<CatalogRef>()?;
        let core = ctx.service::<CoreConfigRef>()?;
        let telemetry = ctx.service::<MetricsCreatorRef>()?;
        let dispatcher = ctx.service::<SourceDispatcherRef>()?;
        let buckets = ctx.service::<TimeBuckets>()?;
        let health = ctx.service::<NodeHealthRef>()?;

        let mut models = builtin::models();
        for model in catalog.models() {
            if !models.iter().any(|known| known.name == model.name) {
                models.push(model);
            }
        }
        storage
            .install(&models)
            .await
            .map_err(|error| ModuleError::Other(format!("cannot install the models: {error}")))?;

        let l1 = Arc::new(L1::new(catalog.clone(), DEFAULT_CAPACITY));
        l1.start_after(u64::try_from(oap_model::now_ms()).unwrap_or_default());
        // Every node keeps a log: of agents' messages on a node that takes them, of the batches
        // other nodes route to it on one that aggregates in a cluster.
        let (log, earlier_entries) = open_log(config, &l1).await?;
        let node = oap_ingest_log::state::node_id(log.dir(), rand::random)
            .map_err(|error| ModuleError::Other(format!("the node identity beside the ingest log: {error}")))?;
        let l2 = core.role.is_aggregation_target().then(|| {
            let metrics = L2Telemetry {
                writes: WriteTelemetry::new(&*telemetry, "metrics")?.reporting_to(health.clone()),
                expired: telemetry.counter(
                    "metrics_l2_expired_count",
                    "Metrics that reached L2 older than metricsDataTTL and were dropped",
                    &[],
                )?,
                read_errors: telemetry.counter(
                    "metrics_l2_read_error_count",
                    "Reads of stored metrics that failed for good (their increments waited a round)",
                    &[],
                )?,
                conflicts: telemetry.counter(
                    "metrics_l2_conflict_count",
                    "Metric rows another node changed between this node's read and write (read and merged again)",
                    &[],
                )?,
                rounds: (0..l2_config(&core, config, node).partitions)
                    .map(|partition| RoundTelemetry::new(&*telemetry, partition))
                    .collect::<Result<_, _>>()?,
            };
            let storage: Arc<dyn oap_storage::Storage> = storage.clone();
            Ok::<_, ModuleError>(L2::start(
                catalog.clone(),
                storage,
                l2_config(&core, config, node),
                metrics,
                buckets.clone(),
            ))
        });
        let l2 = l2.transpose()?;
        let targets = l2.iter().map(|l2| Target { address: SELF_ADDRESS.to_owned(), aggregator: l2.clone() }).collect();
        let dropped =
            telemetry.counter("metrics_route_dropped_count", "Metrics L1 could not hand to any aggregator", &[])?;
        let router = Arc::new(Router::new(targets, dropped));
        let membership = ctx.service::<MembershipRef>()?;
        let mut intake = None;
        let follower = if membership.is_standalone() {
            None
        } else {
            // A node of a cluster: the targets are the cluster's aggregating nodes, and an
            // aggregating node takes the metrics the others route to it, through its log.
            let remote = RemoteTelemetry::new(&*telemetry)?;
            let tls = peer_tls(&core)?;
            if l2.is_some() {
                let taking = Arc::new(
                    RemoteIntake::new(l1.clone(), log.clone(), catalog_digest(&catalog))
                        .map_err(|error| ModuleError::Other(format!("the ingest log's remote senders: {error}")))?,
                );
                dispatcher.register_replayer(EntryKind::REMOTE_METRICS, taking.clone())?;
                // Nodes, not agents, call it: the agent token does not apply.
                let grpc = ctx.service::<GrpcServerRef>()?;
                grpc.add_internal_service(RemoteReceiver::service(taking.clone(), &catalog, remote.clone()))?;
                intake = Some(taking);
            }
            let period = core.persistent_period;
            Some(follow_membership(node, membership.clone(), &router, l2.clone(), &catalog, period, remote, tls))
        };
        let flushes = telemetry.counter("metrics_l1_flush_count", "L1 flushes completed (drained and routed)", &[])?;
        let context = FlushContext { period: core.l1_flush_period, flushes, log: Some(log.clone()) };
        let metrics = MetricsStream::start(l1.clone(), router.clone(), l2.clone(), context);
        if core.role != Role::Aggregator {
            dispatcher.subscribe(metrics.consumer())?;
            let full_refusals = telemetry.counter(
                "ingest_log_full_refusal_count",
                "Messages refused (RESOURCE_EXHAUSTED) while the ingest log held logMaxSize",
                &[],
            )?;
            dispatcher.set_journal(Arc::new(PipelineJournal::new(l1.clone(), log.clone(), full_refusals)))?;
        }

        let (records, writer) = RecordStream::start(
            storage.clone(),
            WriteTelemetry::new(&*telemetry, "record")?.reporting_to(health.clone()),
            Some(log.clone()),
        );
        if !catalog.is_disabled("segment") {
            dispatcher.subscribe(records.clone())?;
        }
        let top_n = Arc::new(TopN::new(&catalog));
        let top_n = (top_n.is_enabled() && core.role != Role::Aggregator)
            .then(|| {
                dispatcher.subscribe(top_n.clone())?;
                Ok::<_, ModuleError>(TopNReport::start(top_n, records.clone(), core.top_n_report_period))
            })
            .transpose()?;
        let keeper = core.enable_data_keeper_executor.then(|| {
            DataKeeper::new(storage.clone(), models, core.record_data_ttl, core.metrics_data_ttl, buckets.clone())
                .start(core.data_keeper_execute_period, move || membership.is_first())
        });
        let replay = (earlier_entries > 0).then(|| {
            // The doors stay closed (agents hear UNAVAILABLE and send again) until the earlier
            // run's entries are counted.
            health.failing(REPLAY_PART, format!("replaying {earlier_entries} entries of the ingest log"));
            Ok::<_, ModuleError>(Replay {
                log: log.clone(),
                l1,
                dispatcher: dispatcher.clone(),
                router: router.clone(),
                records: records.clone(),
                telemetry: ReplayTelemetry::new(&*telemetry)?,
            })
        });
        let log_keeper = LogKeeper::new(log.clone(), l2.clone(), router.clone(), intake.clone(), &*telemetry)?;
        let opening =
            Some(Opening { replay: replay.transpose()?, keeper: log_keeper, intake, period: core.persistent_period });
        Ok(Self {
            log,
            log_keeper: None,
            opening,
            l2,
            router,
            health,
            metrics,
            records,
            top_n,
            writer,
            keeper,
            follower,
        })
    }

    /// Once every module has started (so every receiver has registered its replayer): replays
    /// what an earlier run left in the ingest log, persists it, opens the doors, and starts
    /// the log's keeper — which cuts nothing before the replayed epochs are stored.
    pub async fn open(&mut self) {
        let Some(Opening { replay, keeper, intake, period }) = self.opening.take() else { return };
        if let Some(replay) = replay {
            let report = replay.run().await;
            if let Some(l2) = &self.l2 {
                l2.flush().await;
            }
            let seconds = report.elapsed.as_secs_f64();
            info!(
                entries = report.entries,
                bytes = report.bytes,
                epochs = report.epochs,
                refused = report.refused,
                skipped = report.skipped,
                lost_metrics = report.lost_metrics,
                seconds,
                entries_per_second = (report.entries as f64 / seconds.max(1e-9)).round(),
                "replayed the ingest log"
            );
            self.health.working(REPLAY_PART);
        }
        if let Some(intake) = intake {
            intake.open();
        }
        self.log_keeper = Some(keeper.start(period, self.metrics.routed(), self.health.clone()));
    }

    /// Stops the keeper, persists the metrics held, reports the top-N lists, and waits (a
    /// bounded time) until queued records are stored.
    pub async fn stop(self) {
        if let Some(keeper) = self.keeper {
            keeper.abort();
        }
        if let Some(follower) = self.follower {
            follower.abort();
        }
        if let Some(log_keeper) = self.log_keeper {
            log_keeper.abort();
        }
        let routed = self.metrics.routed();
        self.metrics.stop().await;
        if let Some(top_n) = self.top_n {
            top_n.stop().await;
        }
        let mut records_stored = true;
        if let Some(settle) = oap_core::SourceConsumer::settle(&*self.records) {
            match tokio::time::timeout(DRAIN_TIMEOUT, settle).await {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => {
                    records_stored = false;
                    warn!(%reason, "queued records were not stored");
                }
                Err(_) => {
                    records_stored = false;
                    warn!("queued records were not stored within {DRAIN_TIMEOUT:?}");
                }
            }
        }
        drop(self.records);
        self.writer.abort();
        // With the records stored, the other aggregators holding what went to them and this
        // node's L2 having persisted the epochs routed to it, every closed file of the log is
        // stored; where L2 could not persist some (a row that kept changing or was refused), the
        // log keeps them for the next start to replay.
        let routed = routed.load(std::sync::atomic::Ordering::Acquire);
        let delivered = self.router.wait_delivered(routed, DRAIN_TIMEOUT).await;
        let persisted = self.l2.as_ref().map_or(routed, |l2| l2.persisted_epoch());
        if persisted < routed {
            warn!(routed, persisted, "L2 did not persist every epoch routed to it; the ingest log keeps them");
        }
        let through = if records_stored && delivered { routed.min(persisted) } else { 0 };
        let log = self.log;
        let _ = tokio::task::spawn_blocking(move || {
            // Every file whose epochs are stored goes, the last one too: the next start has only
            // what is not stored to replay.
            let saved = match through {
                0 => Ok(()),
                _ => oap_ingest_log::state::save(
                    log.dir(),
                    oap_ingest_log::state::EPOCH_FILE,
                    through.to_string().as_bytes(),
                ),
            };
            let cut = saved.and_then(|()| log.close_through(through));
            if let Err(error) = cut {
                warn!(%error, "the ingest log could not be cut after the stop");
                log.close();
            }
        })
        .await;
    }
}

/// What [`StreamWork::open`] runs.
struct Opening {
    replay: Option<Replay>,
    keeper: LogKeeper,
    /// Takes other nodes' batches once the replay is done.
    intake: Option<Arc<RemoteIntake>>,
    period: Duration,
}

/// Opens the node's ingest log and makes L1's epochs start past every epoch in it; returns the
/// log and how many entries earlier runs left in it.
async fn open_log(config: &PipelineConfig, l1: &L1) -> Result<(Arc<IngestLog>, u64), ModuleError> {
    let config = LogConfig {
        dir: config.log_dir.clone().into(),
        segment_bytes: config.log_segment_size,
        max_bytes: config.log_max_size,
    };
    let (log, recovered) = tokio::task::spawn_blocking(move || IngestLog::open(config))
        .await
        .map_err(|error| ModuleError::Other(format!("opening the ingest log failed: {error}")))?
        .map_err(|error| ModuleError::Other(error.to_string()))?;
    let cut = oap_ingest_log::state::cut_epoch(log.dir())
        .map_err(|error| ModuleError::Other(format!("the ingest log's last cut: {error}")))?;
    l1.start_after(recovered.max_epoch.max(cut));
    if recovered.entries > 0 {
        info!(
            entries = recovered.entries,
            bytes = recovered.bytes,
            torn_bytes = recovered.torn_bytes,
            "the ingest log holds entries of an earlier run"
        );
    }
    Ok((Arc::new(log), recovered.entries))
}

/// L2's settings from `core.default` and `pipeline.default`, on the node of identity `node`.
pub fn l2_config(core: &CoreConfig, pipeline: &PipelineConfig, node: u64) -> L2Config {
    L2Config {
        persistent_period: core.persistent_period,
        session_timeout: core.storage_session_timeout,
        hour: core.downsampling.contains(&Downsampling::Hour),
        day: core.downsampling.contains(&Downsampling::Day),
        ttl_days: oap_model::whole_days(core.metrics_data_ttl),
        partitions: core.prepare_threads.max(1),
        node,
        max_rows: pipeline.l2_max_rows,
    }
}
