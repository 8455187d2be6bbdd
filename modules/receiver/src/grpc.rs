//! A lenient gRPC service for the rpcs agents call: every inbound message reaches the receiver
//! as its own bytes, so a malformed message is rejected and counted while the stream it came in
//! goes on.
//!
//! tonic's generated servers decode inside the transport: one undecodable message ends the
//! whole client stream, and the bytes are gone before the handler runs. Here the transport only
//! frames ([`RawCodec`]); the receiver decodes each message itself, keeps the bytes (the segment
//! record stores them as they came), and decides per message. Every rpc answers `Commands`.
//!
//! What the transport cannot deliver — a message over `maxMessageSize`, a broken frame or
//! compressed body — ends that call with `RESOURCE_EXHAUSTED` or `INTERNAL`, as in any gRPC
//! server: the framing of the rest of the stream cannot be trusted. What arrived before it was
//! handled already, and other calls are untouched.

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use oap_proto::v3::Commands;
use prost::Message;
use tonic::body::Body;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{Service, http};
use tonic::server::{ClientStreamingService, Grpc, NamedService, UnaryService};
use tonic::{Code, Request, Response, Status, Streaming};
use tracing::debug;

/// How an rpc sends its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    /// One request, one reply.
    Unary,
    /// Many requests, one reply once the client half-closes.
    ClientStream,
}

/// The rpcs of one agent service, as a receiver implements them.
pub trait AgentRpcs: Send + Sync + 'static {
    /// A method, resolved once per call and cheap to copy.
    type Method: Copy + Send + Sync + 'static;

    /// The method called `name` and how it sends, or `None` if the service has no such method.
    fn method(&self, name: &str) -> Option<(Self::Method, Arity)>;

    /// Handles one request message. An error rejects that message — the implementation counts
    /// it — and is the reply of a unary call; a stream logs it and goes on.
    fn handle(&self, method: Self::Method, message: Bytes) -> Result<(), Status>;

    /// Counts a request the transport could not deliver (over the size limit, broken framing or
    /// compression); the call ends with `status`.
    fn reject(&self, method: Self::Method, status: &Status);

    /// Waits, before the reply, until what the call's messages produced is durable; an error
    /// (`UNAVAILABLE`) tells the agent its data may not be kept. Nothing to wait for by default.
    fn settle(&self) -> Option<SettleCall> {
        None
    }
}

/// Messages of one stream handled before it waits for their data to be durable.
const SETTLE_EVERY: usize = 256;

/// A wait until a call's data is durable.
pub type SettleCall = Pin<Box<dyn Future<Output = Result<(), Status>> + Send>>;

/// Settles a call, and replies.
/// Waits even when the call failed: a batch's accepted messages are as durable as a good call's.
async fn settled<R: AgentRpcs>(rpcs: &R, handled: Result<(), Status>) -> Result<Response<Commands>, Status> {
    if let Some(wait) = rpcs.settle() {
        wait.await?;
    }
    handled.map(|()| Response::new(Commands::default()))
}

/// The name a service has on the wire, e.g. `skywalking.v3.TraceSegmentReportService`, or the
/// package-less compat name `TraceSegmentReportService`.
pub trait ServiceName: Send + Sync + 'static {
    /// The full service name.
    const NAME: &'static str;
}

/// An agent service under one name: a tonic service the shared gRPC server routes to.
pub struct AgentService<R, N> {
    rpcs: Arc<R>,
    max_message_size: usize,
    name: PhantomData<fn() -> N>,
}

impl<R, N> AgentService<R, N> {
    /// Serves `rpcs` under `N`'s name, refusing request messages over `max_message_size` bytes.
    pub fn new(rpcs: Arc<R>, max_message_size: usize) -> Self {
        Self { rpcs, max_message_size, name: PhantomData }
    }
}

impl<R, N> Clone for AgentService<R, N> {
    fn clone(&self) -> Self {
        Self { rpcs: self.rpcs.clone(), max_message_size: self.max_message_size, name: PhantomData }
    }
}

impl<R: AgentRpcs, N: ServiceName> NamedService for AgentService<R, N> {
    const NAME: &'static str = N::NAME;
}

impl<R: AgentRpcs, N: ServiceName> Service<http::Request<Body>> for AgentService<R, N> {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let name = request.uri().path().rsplit('/').next().unwrap_or_default();
        let Some((method, arity)) = self.rpcs.method(name) else {
            let status = Status::unimplemented(format!("service `{}` has no method `{name}`", N::NAME));
            return Box::pin(std::future::ready(Ok(status.into_http())));
        };
        let rpcs = self.rpcs.clone();
        let mut grpc = Grpc::new(RawCodec)
            .max_decoding_message_size(self.max_message_size)
            .accept_compressed(CompressionEncoding::Gzip);
        Box::pin(async move {
            let response = match arity {
                Arity::Unary => {
                    let handled = Arc::new(AtomicBool::new(false));
                    let call = UnaryCall { rpcs: rpcs.clone(), method, handled: handled.clone() };
                    let response = grpc.unary(call, request).await;
                    if handled.load(Ordering::Relaxed) {
                        response
                    } else {
                        // The request never reached the handler: the transport refused it.
                        transport_failure(rpcs.as_ref(), method, Status::from_header_map(response.headers()), response)
                    }
                }
                Arity::ClientStream => grpc.client_streaming(StreamCall { rpcs, method }, request).await,
            };
            Ok(response)
        })
    }
}

/// Counts a unary request the transport refused and answers with the clearer status.
fn transport_failure<R: AgentRpcs>(
    rpcs: &R,
    method: R::Method,
    status: Option<Status>,
    response: http::Response<Body>,
) -> http::Response<Body> {
    match status {
        Some(status) if status.code() != Code::Ok => {
            let status = transport_status(status);
            rpcs.reject(method, &status);
            status.into_http()
        }
        _ => response,
    }
}

/// tonic reports an over-size request as `OUT_OF_RANGE`; it is a `TooLarge` refusal
/// (`RESOURCE_EXHAUSTED`, gRPC's convention and the Java OAP's).
fn transport_status(status: Status) -> Status {
    if status.code() == Code::OutOfRange {
        oap_core::Refusal::too_large(status.message().to_owned()).into()
    } else {
        status
    }
}

struct UnaryCall<R: AgentRpcs> {
    rpcs: Arc<R>,
    method: R::Method,
    handled: Arc<AtomicBool>,
}

impl<R: AgentRpcs> UnaryService<Bytes> for UnaryCall<R> {
    type Response = Commands;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Commands>, Status>> + Send>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        self.handled.store(true, Ordering::Relaxed);
        let handled = self.rpcs.handle(self.method, request.into_inner());
        let rpcs = self.rpcs.clone();
        Box::pin(async move { settled(&*rpcs, handled).await })
    }
}

struct StreamCall<R: AgentRpcs> {
    rpcs: Arc<R>,
    method: R::Method,
}

impl<R: AgentRpcs> ClientStreamingService<Bytes> for StreamCall<R> {
    type Response = Commands;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Commands>, Status>> + Send>>;

    fn call(&mut self, request: Request<Streaming<Bytes>>) -> Self::Future {
        let (rpcs, method) = (self.rpcs.clone(), self.method);
        Box::pin(async move {
            let mut messages = request.into_inner();
            let mut unsettled = 0;
            loop {
                match messages.message().await {
                    Ok(Some(message)) => {
                        if let Err(status) = rpcs.handle(method, message) {
                            if status.code() == Code::Unavailable {
                                // The node takes nothing now (its store fails, or it stops):
                                // the agent hears it at once instead of at the stream's end.
                                return Err(status);
                            }
                            debug!(%status, "request message rejected; the stream goes on");
                        }
                        unsettled += 1;
                        // A long stream waits for its data now and then, so that a slow store
                        // slows the agent (HTTP/2 flow control) instead of filling memory.
                        if unsettled == SETTLE_EVERY {
                            unsettled = 0;
                            if let Some(wait) = rpcs.settle() {
                                wait.await?;
                            }
                        }
                    }
                    Ok(None) => return settled(&*rpcs, Ok(())).await,
                    Err(status) => {
                        let status = transport_status(status);
                        if status.code() != Code::Cancelled {
                            rpcs.reject(method, &status);
                        }
                        return Err(status);
                    }
                }
            }
        })
    }
}

/// Frames without decoding: requests arrive as their bytes, replies are `Commands`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Commands;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Commands;
    type Error = Status;

    fn encode(&mut self, item: Commands, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst).map_err(|error| Status::internal(format!("cannot encode the reply: {error}")))
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        // The buffer holds exactly one message; taking it splits it off without a copy.
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// Declares marker types that name services on the wire.
macro_rules! service_names {
    ($($(#[$doc:meta])* $marker:ident = $name:literal;)*) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $marker;

        impl ServiceName for $marker {
            const NAME: &'static str = $name;
        }
    )*};
}

/// The services agents call, under their `skywalking.v3` names and the package-less compat
/// names older agents use (docs/reference/protocol.md §3).
pub mod names {
    use super::ServiceName;

    service_names! {
        /// `skywalking.v3.TraceSegmentReportService`.
        TraceV3 = "skywalking.v3.TraceSegmentReportService";
        /// The compat `TraceSegmentReportService`.
        TraceCompat = "TraceSegmentReportService";
        /// `skywalking.v3.SpanAttachedEventReportService` (the eBPF agent).
        SpanAttachedEventV3 = "skywalking.v3.SpanAttachedEventReportService";
        /// `skywalking.v3.ManagementService`.
        ManagementV3 = "skywalking.v3.ManagementService";
        /// The compat `ManagementService`.
        ManagementCompat = "ManagementService";
        /// `skywalking.v3.MeterReportService`.
        MeterV3 = "skywalking.v3.MeterReportService";
        /// The compat `MeterReportService`.
        MeterCompat = "MeterReportService";
        /// `skywalking.v3.LogReportService`.
        LogV3 = "skywalking.v3.LogReportService";
        /// `skywalking.v3.ProfileTask`.
        ProfileV3 = "skywalking.v3.ProfileTask";
        /// The compat `ProfileTask`.
        ProfileCompat = "ProfileTask";
        /// `skywalking.v3.ConfigurationDiscoveryService`.
        ConfigurationDiscoveryV3 = "skywalking.v3.ConfigurationDiscoveryService";
        /// `skywalking.v3.EventService`.
        EventV3 = "skywalking.v3.EventService";
        /// `skywalking.v3.JVMMetricReportService` (the Java agent).
        JvmV3 = "skywalking.v3.JVMMetricReportService";
        /// The compat `JVMMetricReportService`.
        JvmCompat = "JVMMetricReportService";
        /// `skywalking.v3.CLRMetricReportService` (the .NET agent).
        ClrV3 = "skywalking.v3.CLRMetricReportService";
        /// The compat `CLRMetricReportService`.
        ClrCompat = "CLRMetricReportService";
    }
}
