//! The `receiver-trace` module: trace segments from agents, over gRPC
//! (`TraceSegmentReportService/collect` and `collectInSync`, under the `skywalking.v3` and the
//! compat names) and HTTP (`POST /v3/segment`, `POST /v3/segments`), analysed by the
//! agent-analyzer into sources for the dispatcher.
//!
//! Each segment stands alone: one that does not decode or fails validation is rejected, counted
//! in `trace_analysis_error_count` and logged, and the stream or batch it came in goes on. Every
//! segment received is timed in `trace_in_latency`.

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::Response;
use axum::routing::post;
use oap_agent_analyzer::{AnalysisError, SegmentAnalyzer};
use oap_core::{
    CoreConfigRef, EntryKind, GrpcServerRef, HttpServerRef, NodeHealthRef, Refusal, ReplayError, Replayer,
    SourceDispatcherRef,
};
use oap_kernel::{ConfigError, ModuleContext, ModuleDefinition, ModuleError, ModuleProvider, TypedProviderFactory};
use oap_model::source::Source;
use oap_proto::v3::{SegmentObject, SpanAttachedEvent};
use oap_telemetry::{LogLimit, MetricsCreatorRef};
use prost::Message;
use serde::Deserialize;
use tonic::Status;
use tracing::warn;

use crate::batch::Batch;
use crate::door::Door;
use crate::grpc::names::{SpanAttachedEventV3, TraceCompat, TraceV3};
use crate::grpc::{AgentRpcs, AgentService, Arity, SettleCall};
use crate::http;
use crate::quiet::{QuietMethod, QuietRpcs};
use crate::telemetry::{Protocol, ReceiverTelemetry};

/// The module's name in `application.yml`.
pub const MODULE_NAME: &str = "receiver-trace";

/// The module's definition; it offers no service.
pub fn module_definition() -> ModuleDefinition {
    ModuleDefinition::new(MODULE_NAME, Vec::new())
}

/// Why a segment was rejected.
#[derive(Debug, thiserror::Error)]
pub enum SegmentRejection {
    /// The bytes are not a `SegmentObject`.
    #[error("malformed SegmentObject: {0}")]
    Malformed(#[from] prost::DecodeError),
    /// The JSON is not a `SegmentObject`.
    #[error("invalid SegmentObject JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The segment decodes but breaks a rule of analysis.
    #[error("invalid segment: {0}")]
    Invalid(#[from] AnalysisError),
    /// The node takes nothing now; the segment was not looked at.
    #[error("{0}")]
    Refused(Refusal),
}

impl SegmentRejection {
    /// The status an agent hears.
    pub fn status(&self) -> Status {
        match self {
            SegmentRejection::Refused(refusal) => refusal.clone().into(),
            rejection => Refusal::invalid(rejection.to_string()).into(),
        }
    }
}

/// Receives segments in either encoding, analyses them and dispatches their sources.
pub struct TraceReceiver {
    analyzer: SegmentAnalyzer,
    dispatcher: SourceDispatcherRef,
    metrics: ReceiverTelemetry,
    door: Door,
}

impl TraceReceiver {
    /// A receiver feeding `dispatcher`, counting in `metrics`, checking at `door`.
    pub fn new(
        analyzer: SegmentAnalyzer,
        dispatcher: SourceDispatcherRef,
        metrics: ReceiverTelemetry,
        door: Door,
    ) -> Self {
        Self { analyzer, dispatcher, metrics, door }
    }

    /// One segment in its protobuf encoding, as gRPC delivers it; the bytes are stored as the
    /// segment record's `data_binary` without re-encoding.
    pub fn receive_encoded(&self, protocol: Protocol, raw: &[u8]) -> Result<(), SegmentRejection> {
        if let Err(closed) = self.door.open(&self.dispatcher) {
            self.metrics.of(protocol).reject();
            return Err(SegmentRejection::Refused(closed));
        }
        self.take_encoded(protocol, raw)
    }

    /// One segment of a message the door already let in: the segments of one message are taken
    /// whole, so a door that closes while a batch is read cannot leave part of it counted and the
    /// call refused.
    fn take_encoded(&self, protocol: Protocol, raw: &[u8]) -> Result<(), SegmentRejection> {
        let metrics = self.metrics.of(protocol);
        let _timer = metrics.time();
        let received = SegmentObject::decode(raw)
            .map_err(SegmentRejection::from)
            .and_then(|segment| self.analyse(&segment, raw).map_err(SegmentRejection::from));
        if received.is_err() {
            metrics.reject();
        }
        received
    }

    /// One segment in the proto3 JSON mapping, as the HTTP receiver delivers it.
    pub fn receive_json(&self, json: &[u8]) -> Result<(), SegmentRejection> {
        if let Err(closed) = self.door.open(&self.dispatcher) {
            self.metrics.of(Protocol::Http).reject();
            return Err(SegmentRejection::Refused(closed));
        }
        self.take_json(json)
    }

    /// One segment of a request the door already let in (see [`TraceReceiver::take_encoded`]).
    fn take_json(&self, json: &[u8]) -> Result<(), SegmentRejection> {
        let metrics = self.metrics.of(Protocol::Http);
        let _timer = metrics.time();
        let received =
            serde_json::from_slice::<SegmentObject>(json).map_err(SegmentRejection::from).and_then(|segment| {
                let raw = segment.encode_to_vec();
                self.analyse(&segment, &raw).map_err(SegmentRejection::from)
            });
        if received.is_err() {
            metrics.reject();
        }
        received
    }

    /// Counts a request that never became a segment (an unreadable body or frame).
    pub fn reject_unreadable(&self, protocol: Protocol) {
        self.metrics.of(protocol).reject();
    }

    /// An HTTP request refused whole, counted, while the door is closed; `None` while it is open.
    fn closed_door(&self) -> Option<Response> {
        let closed = self.door.open(&self.dispatcher).err()?;
        self.reject_unreadable(Protocol::Http);
        Some(http::settled(Err(closed), http::commands()))
    }

    /// Waits until what was received before the call is durable, at most `ackTimeout`.
    pub async fn settle(&self) -> Result<(), Refusal> {
        self.door.settle(&self.dispatcher, "segments").await
    }

    /// Analyses one segment as one entry of the pipeline: its sources counted in one epoch, its
    /// bytes logged once it is taken.
    fn analyse(&self, segment: &SegmentObject, raw: &[u8]) -> Result<(), AnalysisError> {
        let now = oap_model::now_ms();
        self.dispatcher.take(EntryKind::SEGMENT, raw, |dispatch| {
            self.analyzer.analyze(segment, raw, now, &mut |source: Source<'_>| dispatch(&source))
        })
    }
}

/// A segment the ingest log holds is analysed again at start exactly as it was when taken: the
/// same protobuf bytes through the same analysis (the log holds every segment in protobuf, also
/// those that came as JSON), not counted by the receiver's own telemetry a second time.
impl Replayer for TraceReceiver {
    fn replay(
        &self,
        message: &[u8],
        received_ms: i64,
        dispatch: &mut dyn FnMut(&Source<'_>),
    ) -> Result<(), ReplayError> {
        let segment = SegmentObject::decode(message)?;
        self.analyzer.analyze(&segment, message, received_ms, &mut |source: Source<'_>| dispatch(&source))?;
        Ok(())
    }
}

/// Logs a rejected segment, a few per interval (every one is counted).
fn log_rejected(rejection: &SegmentRejection) {
    static LOG: LogLimit = LogLimit::default_budget();
    if let Some(left_out) = LOG.admit() {
        warn!(%rejection, left_out, "segment rejected");
    }
}

/// A `SegmentCollection` whose segments stay encoded, so each is decoded (and rejected) alone
/// and keeps its original bytes.
#[derive(Clone, PartialEq, Message)]
struct EncodedSegments {
    #[prost(bytes = "bytes", repeated, tag = "1")]
    segments: Vec<Bytes>,
}

/// The gRPC face of the receiver.
struct TraceRpcs(Arc<TraceReceiver>);

#[derive(Debug, Clone, Copy)]
enum TraceMethod {
    Collect,
    CollectInSync,
}

impl AgentRpcs for TraceRpcs {
    type Method = TraceMethod;

    fn method(&self, name: &str) -> Option<(TraceMethod, Arity)> {
        match name {
            "collect" => Some((TraceMethod::Collect, Arity::ClientStream)),
            "collectInSync" => Some((TraceMethod::CollectInSync, Arity::Unary)),
            _ => None,
        }
    }

    fn handle(&self, method: TraceMethod, message: Bytes) -> Result<(), Status> {
        match method {
            TraceMethod::Collect => self.0.receive_encoded(Protocol::Grpc, &message).map_err(|rejection| {
                log_rejected(&rejection);
                rejection.status()
            }),
            TraceMethod::CollectInSync => {
                self.0.door.open(&self.0.dispatcher).map_err(Status::from)?;
                let collection = EncodedSegments::decode(message).map_err(|error| {
                    self.0.reject_unreadable(Protocol::Grpc);
                    Status::invalid_argument(format!("malformed SegmentCollection: {error}"))
                })?;
                let outcome =
                    Batch::of(collection.segments.iter().map(|segment| self.0.take_encoded(Protocol::Grpc, segment)));
                outcome.into_status("segments")
            }
        }
    }

    fn settle(&self) -> Option<SettleCall> {
        let receiver = self.0.clone();
        Some(Box::pin(async move { receiver.settle().await.map_err(Status::from) }))
    }

    fn reject(&self, _method: TraceMethod, status: &Status) {
        static LOG: LogLimit = LogLimit::default_budget();
        if let Some(left_out) = LOG.admit() {
            warn!(%status, left_out, "segment request refused by the transport");
        }
        self.0.reject_unreadable(Protocol::Grpc);
    }
}

async fn post_segment(State(receiver): State<Arc<TraceReceiver>>, body: Result<Bytes, BytesRejection>) -> Response {
    if let Some(refused) = receiver.closed_door() {
        return refused;
    }
    let reply = http::reply_one(
        body,
        || receiver.reject_unreadable(Protocol::Http),
        |json| receiver.receive_json(json).inspect_err(log_rejected),
    );
    http::settled(receiver.settle().await, reply)
}

async fn post_segments(State(receiver): State<Arc<TraceReceiver>>, body: Result<Bytes, BytesRejection>) -> Response {
    if let Some(refused) = receiver.closed_door() {
        return refused;
    }
    let reply = http::reply_array(
        body,
        "SegmentObject",
        || receiver.reject_unreadable(Protocol::Http),
        |json| receiver.take_json(json.as_bytes()),
    );
    http::settled(receiver.settle().await, reply)
}

/// `receiver-trace.default` takes no settings.
#[derive(Debug, Default, Deserialize)]
pub struct TraceReceiverConfig {}

/// Builds the `default` provider of `receiver-trace`.
pub struct TraceReceiverProviderFactory;

impl TypedProviderFactory for TraceReceiverProviderFactory {
    const MODULE: &'static str = MODULE_NAME;
    const NAME: &'static str = "default";
    const REQUIRES: &'static [&'static str] =
        &[oap_core::MODULE_NAME, oap_agent_analyzer::MODULE_NAME, oap_telemetry::MODULE_NAME];
    type Config = TraceReceiverConfig;

    fn build(&self, _config: TraceReceiverConfig) -> Result<Box<dyn ModuleProvider>, Vec<ConfigError>> {
        Ok(Box::new(TraceReceiverProvider))
    }
}

struct TraceReceiverProvider;

/// The eBPF agent's span-attached events: accepted and counted; analysing them is later work.
const SPAN_ATTACHED_EVENT_METHODS: &[QuietMethod] =
    &[QuietMethod::checked::<SpanAttachedEvent>("collect", Arity::ClientStream)];

#[async_trait]
impl ModuleProvider for TraceReceiverProvider {
    async fn prepare(&mut self, _ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        Ok(())
    }

    async fn start(&mut self, ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        let grpc = ctx.service::<GrpcServerRef>()?;
        let http_server = ctx.service::<HttpServerRef>()?;
        let metrics = ctx.service::<MetricsCreatorRef>()?;
        let receiver = Arc::new(TraceReceiver::new(
            ctx.service::<SegmentAnalyzer>()?,
            ctx.service::<SourceDispatcherRef>()?,
            ReceiverTelemetry::new(metrics.as_ref(), "trace", "trace")?,
            Door::new(ctx.service::<NodeHealthRef>()?, ctx.service::<CoreConfigRef>()?.ack_timeout),
        ));

        ctx.service::<SourceDispatcherRef>()?.register_replayer(EntryKind::SEGMENT, receiver.clone())?;
        let max = grpc.max_message_size();
        let rpcs = Arc::new(TraceRpcs(receiver.clone()));
        grpc.add_service(AgentService::<_, TraceV3>::new(rpcs.clone(), max))?;
        grpc.add_service(AgentService::<_, TraceCompat>::new(rpcs, max))?;
        let span_events = ReceiverTelemetry::new(metrics.as_ref(), "span_attached_event", "span attached event")?;
        let span_events = Arc::new(QuietRpcs::new(SPAN_ATTACHED_EVENT_METHODS, span_events));
        grpc.add_service(AgentService::<_, SpanAttachedEventV3>::new(span_events, max))?;

        http_server.add_routes_with_body_limit(
            Router::new()
                .route("/v3/segment", post(post_segment))
                .route("/v3/segments", post(post_segments))
                .with_state(receiver),
            max,
        )
    }
}
