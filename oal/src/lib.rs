//! The Observability Analysis Language (OAL): SkyWalking's language for metric definitions,
//! e.g. `service_resp_time = from(Service.latency).longAvg();`.
//!
//! Not implemented yet: the parser, the compiler and the shipped `core.oal` arrive with the OAL
//! engine and metrics pipeline. The crate exists now so that the workspace has its final shape.
