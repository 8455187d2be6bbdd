//! The `storage` module's interface: the models streams are stored as, the rows, the scans, and
//! the [`Storage`] trait that the embedded default store and Elasticsearch implement.
//!
//! - [`model`], [`row`], [`error`], [`builtin`]: what is stored — the models, rows, errors and the
//!   hard-coded models — re-exported from `oap-storage-model`, where the language can use them
//!   without the server;
//! - [`query`]: scans — the filter, sort and paging semantics every provider shares;
//! - [`storage`]: the trait itself, with its durability promise;
//! - [`dao`]: the typed reads the query API makes, with defaults over `scan` and `multi_get`.
//!
//! The providers (the embedded store, Elasticsearch) live in crates of their own and are stores
//! only: they open their store and register it as a [`StorageRef`]. What runs on top of it —
//! the metric and record streams, the data keeper — is the `pipeline` module (`oap-stream`).

pub mod dao;
pub mod query;
pub mod storage;
#[cfg(feature = "testsuite")]
pub mod testsuite;

use std::sync::Arc;

use oap_kernel::{ModuleDefinition, ServiceDecl};

pub use oap_storage_model::{
    Column, ColumnType, Indexing, Model, ModelKind, ModelRef, Row, RowKey, StorageError, Value, ValueRef, builtin,
    day_of, error, model, row,
};

pub use self::dao::StorageDao;
pub use self::query::{Filter, ScanQuery, Sort, SortKey, TimeRange};
pub use self::storage::{Expect, RowVersion, Storage, Write, Written};

/// The module's name in `application.yml`.
pub const MODULE_NAME: &str = "storage";

/// The store and its DAOs, as other modules look them up.
pub type StorageRef = Arc<dyn StorageDao>;

/// The module's definition: it offers a [`StorageRef`].
pub fn module_definition() -> ModuleDefinition {
    ModuleDefinition::new(MODULE_NAME, vec![ServiceDecl::of::<StorageRef>()])
}
