//! The DAOs the pipeline and the query API call: typed questions over the built-in and OAL
//! models. Each trait extends [`Storage`](crate::Storage) and answers with a default built on
//! its generic `scan` and `multi_get`, so a provider gets them all by an empty `impl`; a provider
//! with a native way (Elasticsearch aggregations, `_source` filtering) overrides that method.

pub mod metadata;
pub mod metrics;
pub mod topology;
pub mod trace;

pub use self::metadata::MetadataQueryDao;
pub use self::metrics::{EntityAverage, MetricsQueryDao, Top};
pub use self::topology::{Side, TopologyQueryDao};
pub use self::trace::{TraceOrder, TraceQueryDao, TraceSearch, TraceState};

/// Everything a provider offers: the store and every DAO. The storage module registers one of
/// these as [`StorageRef`](crate::StorageRef).
pub trait StorageDao: MetricsQueryDao + TraceQueryDao + TopologyQueryDao + MetadataQueryDao {}

impl<T: MetricsQueryDao + TraceQueryDao + TopologyQueryDao + MetadataQueryDao> StorageDao for T {}
