//! SkyWalking's agent protocol v3, as agents speak it on the wire.
//!
//! The `.proto` files under `protos/` were written for this project from the field tables of
//! the reference (`docs/reference/protocol.md`); the Rust code is generated at build time into
//! `OUT_DIR` and never edited by hand.
//!
//! With the `grpc` feature the gRPC clients and servers are generated too (tonic); without it,
//! only the messages (prost, serde), so the data model and the language stay free of tonic.
//!
//! - [`skywalking::v3`]: messages, enums, gRPC clients and servers of package `skywalking.v3`,
//!   plus `serde` implementations that follow the proto3 JSON mapping (camelCase names, enums
//!   by name, 64-bit integers as strings), which the HTTP receivers use.
//! - [`compat`]: the package-less service names (`/TraceSegmentReportService/collect`) that
//!   older agents call; they reuse the `skywalking.v3` messages.
//! - [`oap::remote::v1`]: the node-to-node protocol of an oap-rs cluster (ours).

/// The `skywalking` protobuf package tree.
pub mod skywalking {
    /// Package `skywalking.v3`: everything agents send and receive.
    #[allow(missing_docs, clippy::all, clippy::unwrap_used)]
    pub mod v3 {
        include!(concat!(env!("OUT_DIR"), "/skywalking.v3.rs"));
        include!(concat!(env!("OUT_DIR"), "/skywalking.v3.serde.rs"));
    }
}

/// Package-less compat services (`*Compat.proto` upstream): same rpcs, no package in the path.
#[cfg(feature = "grpc")]
#[allow(missing_docs, clippy::all, clippy::unwrap_used)]
pub mod compat {
    // The generated code refers to the messages as `super::skywalking::v3::…`.
    pub use super::skywalking;

    include!(concat!(env!("OUT_DIR"), "/_.rs"));
}

/// Package `oap.remote.v1`: what oap-rs nodes send each other (our own protocol).
pub mod oap {
    /// Node-to-node messages and services.
    pub mod remote {
        /// Version 1.
        #[allow(missing_docs, clippy::all, clippy::unwrap_used)]
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/oap.remote.v1.rs"));
        }
    }
}

pub use skywalking::v3;
