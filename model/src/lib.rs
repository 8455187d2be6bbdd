//! The data model of oap-rs, shared by trace analysis, OAL, storage and the query API, with
//! SkyWalking's exact encodings (`docs/reference/analysis.md` §10–§13):
//!
//! - [`Layer`]: the layer of a service, with SkyWalking's numbers and its *normal* flag;
//! - [`ids`]: entity ids (`base64(name).1`, `serviceId_base64(instance)`, relation ids, …);
//! - [`TimeBuckets`]: `yyyyMMddHHmm`-style buckets in one configured time zone;
//! - [`NamingControl`]: the service / instance / endpoint name length limits;
//! - [`source`]: what analysis emits — the inputs of OAL metrics, records and metadata.
//!
//! Everything here is synchronous, does no I/O and reads no clock: time is passed in.

pub mod ids;
mod layer;
pub mod naming;
pub mod source;
mod time_bucket;

pub use self::layer::Layer;
pub use self::naming::NamingControl;
pub use self::time_bucket::{
    Granularity, TimeBucket, TimeBuckets, TimeZoneError, day_of, now_ms, rolled_up, whole_days,
};
