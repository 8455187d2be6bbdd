//! The `storage` module's interface: the models streams are stored as, the rows, the scans, and
//! the [`Storage`] trait that the embedded default store and Elasticsearch implement.
//!
//! - [`model`]: what each stream stores, and how it is searched;
//! - [`row`]: rows with one value per column, and the day a time bucket falls in;
//! - [`query`]: scans — the filter, sort and paging semantics every provider shares;
//! - [`storage`]: the trait itself, with its durability promise;
//! - [`error`]: failures, split into retryable and not.
//!
//! No provider is built yet: this crate fixes the interface the pipeline (L2 merge, records,
//! TTL) and the query API will be written against.

pub mod error;
pub mod model;
pub mod query;
pub mod row;
pub mod storage;

use std::sync::Arc;

use oap_kernel::{ModuleDefinition, ServiceDecl};

pub use self::error::StorageError;
pub use self::model::{Column, ColumnType, Indexing, Model, ModelKind, ModelRef};
pub use self::query::{Filter, ScanQuery, Sort, SortKey, TimeRange};
pub use self::row::{Row, RowKey, Value, day_of};
pub use self::storage::{Storage, Write};

/// The module's name in `application.yml`.
pub const MODULE_NAME: &str = "storage";

/// The store, as other modules look it up.
pub type StorageRef = Arc<dyn Storage>;

/// The module's definition: it offers a [`StorageRef`].
pub fn module_definition() -> ModuleDefinition {
    ModuleDefinition::new(MODULE_NAME, vec![ServiceDecl::of::<StorageRef>()])
}
