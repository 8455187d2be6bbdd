//! The `storage` module's interface: the models streams are stored as, the rows, the scans, and
//! the [`Storage`] trait that the embedded default store and Elasticsearch implement.
//!
//! - [`model`], [`row`], [`error`], [`builtin`]: what is stored — the models, rows, errors and the
//!   hard-coded models — re-exported from `oap-storage-model`, where the language can use them
//!   without the server;
//! - [`query`]: scans — the filter, sort and paging semantics every provider shares;
//! - [`storage`]: the trait itself, with its durability promise;
//! - [`dao`]: the typed reads the query API makes, with defaults over `scan` and `multi_get`;
//! - [`retry`]: writing until stored, counted; [`record_stream`]: records to storage, settled;
//! - [`ttl`]: the data keeper that drops expired days.
//!
//! The providers (the embedded store, Elasticsearch) live in crates of their own; what they
//! start on top of their store (metrics, records, keeper) is `oap-stream`'s `StreamWork`.

pub mod dao;
#[cfg(test)]
mod fake;
pub mod query;
pub mod record_stream;
pub mod retry;
pub mod storage;
#[cfg(feature = "testsuite")]
pub mod testsuite;
pub mod ttl;

use std::sync::Arc;

use oap_kernel::{ModuleDefinition, ServiceDecl};

pub use oap_storage_model::{
    Column, ColumnType, Indexing, Model, ModelKind, ModelRef, Row, RowKey, StorageError, Value, ValueRef, builtin,
    day_of, error, model, row,
};

pub use self::dao::StorageDao;
pub use self::query::{Filter, ScanQuery, Sort, SortKey, TimeRange};
pub use self::storage::{Storage, Write};

/// The module's name in `application.yml`.
pub const MODULE_NAME: &str = "storage";

/// The store and its DAOs, as other modules look them up.
pub type StorageRef = Arc<dyn StorageDao>;

/// The module's definition: it offers a [`StorageRef`].
pub fn module_definition() -> ModuleDefinition {
    ModuleDefinition::new(MODULE_NAME, vec![ServiceDecl::of::<StorageRef>()])
}
