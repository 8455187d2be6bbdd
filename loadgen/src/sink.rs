//! A collector that only decodes: the same gRPC service as oap-server's, answering each stream
//! once its segments are decoded, with no analysis and no storage. Driven with the same
//! generator, it measures the ceiling that framing and protobuf decoding alone set.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use oap_proto::v3::trace_segment_report_service_server::{TraceSegmentReportService, TraceSegmentReportServiceServer};
use oap_proto::v3::{Commands, SegmentCollection, SegmentObject};
use tonic::{Request, Response, Status, Streaming};

/// Counts what it decodes.
#[derive(Debug, Default, Clone)]
pub struct Sink {
    decoded: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl TraceSegmentReportService for Sink {
    async fn collect(&self, request: Request<Streaming<SegmentObject>>) -> Result<Response<Commands>, Status> {
        let mut stream = request.into_inner();
        let mut count = 0;
        while let Some(segment) = stream.message().await? {
            std::hint::black_box(&segment);
            count += 1;
        }
        self.decoded.fetch_add(count, Ordering::Relaxed);
        Ok(Response::new(Commands::default()))
    }

    async fn collect_in_sync(&self, request: Request<SegmentCollection>) -> Result<Response<Commands>, Status> {
        let segments = request.into_inner().segments;
        self.decoded.fetch_add(segments.len() as u64, Ordering::Relaxed);
        Ok(Response::new(Commands::default()))
    }
}

/// Serves the sink on `address` until the process ends.
pub async fn serve(address: SocketAddr) -> anyhow::Result<()> {
    let sink = Sink::default();
    tonic::transport::Server::builder()
        .add_service(TraceSegmentReportServiceServer::new(sink).max_decoding_message_size(50 << 20))
        .serve(address)
        .await?;
    Ok(())
}
