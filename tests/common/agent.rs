//! Talking to a server as agents do, including as no well-behaved agent would: raw request
//! bytes over gRPC, the Python-agent fixtures, and the server's own counters.

#![allow(dead_code)]

use bytes::Bytes;
use oap_loadgen::codec::RawCodec;
use oap_proto::v3::{Commands, SegmentObject, SpanLayer, SpanObject, SpanType};
use prost::Message;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// The fixture directory.
pub fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/python-agent")
}

/// A fixture segment, e.g. `py-frontend-0`, moved to start a minute ago (the server refuses
/// segments older than its TTL), in the protobuf encoding.
pub fn segment_bytes(name: &str) -> Vec<u8> {
    let wire = std::fs::read(fixtures().join(format!("{name}.bin"))).expect("fixture segment");
    let mut segment = oap_proto::v3::SegmentObject::decode(wire.as_slice()).expect("a fixture segment decodes");
    move_to_recent(std::slice::from_mut(&mut segment));
    segment.encode_to_vec()
}

/// Line `n` (1-based) of `python.jsonl`: one segment in the proto3 JSON mapping, moved to start
/// a minute ago.
pub fn segment_json(n: usize) -> String {
    let text = std::fs::read_to_string(fixtures().join("python.jsonl")).expect("fixture segments");
    let mut segment: oap_proto::v3::SegmentObject =
        serde_json::from_str(text.lines().nth(n - 1).expect("line")).expect("a segment");
    move_to_recent(std::slice::from_mut(&mut segment));
    serde_json::to_string(&segment).expect("a segment encodes")
}

/// Moves every time of `segments` by the same amount, so that the first span starts a minute
/// ago.
fn move_to_recent(segments: &mut [oap_proto::v3::SegmentObject]) {
    shift_to(segments, oap_model::now_ms() - 60_000);
}

fn shift_to(segments: &mut [oap_proto::v3::SegmentObject], start: i64) {
    let first = segments.iter().flat_map(|segment| &segment.spans).map(|span| span.start_time).min().expect("spans");
    let shift = start - first;
    for span in segments.iter_mut().flat_map(|segment| &mut segment.spans) {
        span.start_time += shift;
        span.end_time += shift;
        for log in &mut span.logs {
            log.time += shift;
        }
    }
}

/// The Python agent's 100 segments, every time moved by the same amount so that its first span
/// starts at `start`; as sent, and as read.
pub fn python_agent(start: i64) -> (Vec<Vec<u8>>, Vec<oap_proto::v3::SegmentObject>) {
    let text = std::fs::read_to_string(fixtures().join("python.jsonl")).expect("read python.jsonl");
    let mut segments: Vec<oap_proto::v3::SegmentObject> =
        text.lines().map(|line| serde_json::from_str(line).expect("a segment")).collect();
    shift_to(&mut segments, start);
    (segments.iter().map(Message::encode_to_vec).collect(), segments)
}

/// Sends segments to a server's gRPC port in one `collectInSync` call, as an agent does, and
/// waits for the answer (given once they are stored).
pub async fn send_segments(grpc_port: u16, segments: Vec<Vec<u8>>) {
    let channel = connect(grpc_port).await;
    let path = "/skywalking.v3.TraceSegmentReportService/collectInSync";
    raw_unary(&channel, path, RawSegmentCollection { segments }.encode_to_vec()).await.expect("accepted");
}

/// A plaintext gRPC channel to a server's port on loopback, connected.
pub async fn connect(grpc_port: u16) -> Channel {
    Channel::from_shared(format!("http://127.0.0.1:{grpc_port}")).expect("uri").connect().await.expect("connect")
}

/// A client-streaming call to `path` (`/skywalking.v3.TraceSegmentReportService/collect`)
/// with these raw messages.
pub async fn raw_stream(channel: &Channel, path: &'static str, messages: Vec<Vec<u8>>) -> Result<Commands, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.map_err(|error| Status::unavailable(error.to_string()))?;
    let request = Request::new(tokio_stream::iter(messages.into_iter().map(Bytes::from)));
    grpc.client_streaming(request, PathAndQuery::from_static(path), RawCodec).await.map(|reply| reply.into_inner())
}

/// A unary call to `path` with this raw message.
pub async fn raw_unary(channel: &Channel, path: &'static str, message: Vec<u8>) -> Result<Commands, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.map_err(|error| Status::unavailable(error.to_string()))?;
    grpc.unary(Request::new(Bytes::from(message)), PathAndQuery::from_static(path), RawCodec)
        .await
        .map(|reply| reply.into_inner())
}

/// `SegmentCollection` with its segments given as bytes, so malformed ones can be sent.
#[derive(Clone, PartialEq, Message)]
pub struct RawSegmentCollection {
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub segments: Vec<Vec<u8>>,
}

/// One `collectInSync` message: a segment per id (its trace id too), each a 5 ms entry span of
/// `service`'s `instance` on `endpoint` that ended now.
pub fn entry_segment_call(
    ids: impl IntoIterator<Item = String>,
    service: &str,
    instance: &str,
    endpoint: &str,
) -> Vec<u8> {
    entry_segments_call(ids.into_iter().map(|id| (id, 5)), service, instance, endpoint)
}

/// [`entry_segment_call`] with each segment's latency, ms, given beside its id.
pub fn entry_segments_call(
    segments: impl IntoIterator<Item = (String, i64)>,
    service: &str,
    instance: &str,
    endpoint: &str,
) -> Vec<u8> {
    let now = oap_model::now_ms();
    let segments = segments
        .into_iter()
        .map(|(id, latency)| {
            SegmentObject {
                trace_id: id.clone(),
                trace_segment_id: id,
                service: service.to_owned(),
                service_instance: instance.to_owned(),
                spans: vec![span(0, SpanType::Entry, SpanLayer::Http, endpoint, now - latency, latency)],
                ..SegmentObject::default()
            }
            .encode_to_vec()
        })
        .collect();
    RawSegmentCollection { segments }.encode_to_vec()
}

/// The server's own metrics, scraped once.
pub struct Scrape(pub String);

impl Scrape {
    /// Scrapes `GET /metrics` on the telemetry port.
    pub async fn from_port(port: u16) -> Scrape {
        let url = format!("http://127.0.0.1:{port}/metrics");
        let response = reqwest::get(url).await.expect("scrape /metrics");
        Scrape(response.text().await.expect("metrics text"))
    }

    /// The value of one series, written as in the exposition format:
    /// `trace_in_latency_count{protocol="grpc"}`.
    pub fn value(&self, series: &str) -> f64 {
        let prefix = format!("{series} ");
        self.0
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("no series `{series}` in:\n{}", self.0))
    }

    /// The rounds each L2 partition completed at `level` (`minute` or `all`), by partition.
    pub fn l2_rounds(&self, level: &str) -> Vec<f64> {
        let level = format!("level=\"{level}\"");
        let mut rounds: Vec<(u32, f64)> = self
            .0
            .lines()
            .filter(|line| line.starts_with("metrics_l2_round_count{") && line.contains(&level))
            .filter_map(|line| {
                let partition = line.split("partition=\"").nth(1)?.split('"').next()?.parse().ok()?;
                Some((partition, line.rsplit(' ').next()?.parse().ok()?))
            })
            .collect();
        rounds.sort_by_key(|(partition, _)| *partition);
        rounds.into_iter().map(|(_, value)| value).collect()
    }
}

/// A span of component 7001 whose parent is the span before it (`id - 1`; -1 for the first).
pub fn span(id: i32, kind: SpanType, layer: SpanLayer, operation: &str, start: i64, latency: i64) -> SpanObject {
    SpanObject {
        span_id: id,
        parent_span_id: id - 1,
        start_time: start,
        end_time: start + latency,
        operation_name: operation.to_owned(),
        span_type: kind as i32,
        span_layer: layer as i32,
        component_id: 7001,
        ..SpanObject::default()
    }
}
