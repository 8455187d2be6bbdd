//! The parts of `oap-loadgen`, also used by the hot-path benches and the tests: the simulated
//! estate ([`topology`]), segments encoded once and stamped per send ([`template`], [`pool`]),
//! the agents' gRPC streams ([`codec`], [`drive`]), the decode-only collector ([`sink`]) and the
//! ingest benchmark that drives `oap-server` with them ([`bench`]).

pub mod bench;
pub mod codec;
pub mod drive;
pub mod pool;
pub mod sink;
pub mod template;
pub mod topology;
