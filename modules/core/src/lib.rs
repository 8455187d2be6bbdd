//! The `core` module: the settings every other module reads (role, TTLs, periods, name
//! limits) and the two servers agents and users talk to.
//!
//! - [`CoreConfig`]: `core.default` of `application.yml`, with SkyWalking's keys and defaults.
//! - [`GrpcServer`]: the gRPC server on `gRPCPort` (11800). Receivers add their tonic services
//!   during `prepare` or `start`; it serves them, plus the standard `grpc.health.v1` service,
//!   once every module has started.
//! - [`HttpServer`]: the HTTP server on `restPort` (12800), for the HTTP receivers, GraphQL
//!   and `/status`; modules add axum routes the same way.
//! - [`SourceDispatcher`]: where analysis hands its sources; the metric and record streams
//!   subscribe to it.
//! - [`TimeBuckets`]: the one time zone every time bucket is computed in.
//! - [`catalog`]: the metric definitions (the OAL scripts and apdex thresholds), compiled once
//!   for the pipeline and the query API.
//!
//! Both servers bind in `start`, so a taken port fails the boot before anything is served, and
//! close gracefully on shutdown. Their doors:
//! - [`authentication`]: the agent token on the gRPC port (`authentication`, `SW_AUTHENTICATION`);
//! - [`tls`]: TLS on either port (`gRPCSslEnabled`, `restSSLEnabled`), with rustls;
//! - request bodies on the REST port are bounded (`restMaxRequestBodySize`, see [`HttpServer`]);
//! - [`basic_auth`]: HTTP basic authentication a module may put on its routes (the query API);

pub mod authentication;
pub mod basic_auth;
pub mod catalog;
mod config;
mod dispatcher;
mod grpc_server;
pub mod health;
mod http_server;
pub mod naming;
mod provider;
pub mod refusal;
pub mod tls;

use std::sync::Arc;

use oap_kernel::{ModuleDefinition, ServiceDecl};
pub use oap_model::TimeBuckets;

pub use self::catalog::CatalogRef;
pub use self::config::{CoreConfig, Downsampling, Role};
pub use self::dispatcher::{Journal, ReplayError, Replayer, Settle, SourceConsumer, SourceDispatcher};
pub use self::grpc_server::GrpcServer;
pub use self::health::{NodeHealth, NodeHealthRef};
pub use self::http_server::HttpServer;
pub use self::provider::CoreProviderFactory;
pub use self::refusal::{Refusal, RefusalKind};
pub use oap_ingest_log::EntryKind;

/// The module's name in `application.yml`.
pub const MODULE_NAME: &str = "core";

/// The core settings, as other modules look them up.
pub type CoreConfigRef = Arc<CoreConfig>;
/// The gRPC server, as other modules look it up.
pub type GrpcServerRef = Arc<GrpcServer>;
/// The HTTP server, as other modules look it up.
pub type HttpServerRef = Arc<HttpServer>;
/// The source dispatcher, as other modules look it up.
pub type SourceDispatcherRef = Arc<SourceDispatcher>;

/// The module's definition: it offers the settings, both servers, the dispatcher, the time
/// buckets, the name control, the node's health and the metric catalog.
pub fn module_definition() -> ModuleDefinition {
    ModuleDefinition::new(
        MODULE_NAME,
        vec![
            ServiceDecl::of::<CoreConfigRef>(),
            ServiceDecl::of::<GrpcServerRef>(),
            ServiceDecl::of::<HttpServerRef>(),
            ServiceDecl::of::<SourceDispatcherRef>(),
            ServiceDecl::of::<TimeBuckets>(),
            ServiceDecl::of::<oap_model::NamingControl>(),
            ServiceDecl::of::<health::NodeHealthRef>(),
            ServiceDecl::of::<CatalogRef>(),
        ],
    )
}
