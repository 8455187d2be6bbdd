//! The receivers agents talk to, each a module of `application.yml` named as in SkyWalking.
//!
//! - [`trace`] (`receiver-trace`): segments over gRPC and HTTP, analysed into sources;
//! - [`register`] (`receiver-register`): `ManagementService`, the instances' properties and
//!   heartbeats;
//! - [`quiet`]: meters, logs, profiling, configuration discovery, events and runtime metrics,
//!   accepted and counted so agents stay quiet, not yet analysed.
//!
//! They share [`grpc`], a lenient gRPC service that hands each request message over as its own
//! bytes — so one bad message never ends a stream — and [`http`], the JSON side. Every receiver
//! counts what it receives and rejects ([`telemetry`]).

mod batch;
pub mod door;
pub mod grpc;
pub mod http;
pub mod quiet;
pub mod register;
pub mod telemetry;
pub mod trace;

pub use self::quiet::QUIET_RECEIVERS;
pub use self::register::{ManagementReceiver, RegisterReceiverProviderFactory};
pub use self::trace::{TraceReceiver, TraceReceiverProviderFactory};
