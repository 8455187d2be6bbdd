//! The storage interface the pipeline and the query API use, and every provider implements.
//!
//! It is deliberately small: install the models, write batches durably, multi-get rows by key
//! (the L2 merge and chart reads), scan (searches, topology, metadata, top-N inputs), and drop
//! expired days. Query-specific shortcuts a provider can answer natively (Elasticsearch
//! aggregations) can be added as methods with a default built on `scan`.

use async_trait::async_trait;

use crate::error::StorageError;
use crate::model::{Model, ModelRef};
use crate::query::ScanQuery;
use crate::row::{Row, RowKey};

/// One write of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// A new row (Elasticsearch `index`).
    Insert(ModelRef, Row),
    /// A new full version of a stored row (Elasticsearch `update` with the whole document).
    Update(ModelRef, Row),
}

impl Write {
    /// The model written to.
    pub fn model(&self) -> &ModelRef {
        match self {
            Write::Insert(model, _) | Write::Update(model, _) => model,
        }
    }

    /// The row written.
    pub fn row(&self) -> &Row {
        match self {
            Write::Insert(_, row) | Write::Update(_, row) => row,
        }
    }
}

/// A store of models' rows.
#[async_trait]
pub trait Storage: Send + Sync {
    /// Creates what the models need (partitions, index templates); idempotent, run at start.
    async fn install(&self, models: &[ModelRef]) -> Result<(), StorageError>;

    /// Writes a batch. When it returns `Ok`, every write is durable: readable after the process
    /// is killed. On an error, none or some may have been applied; writing the batch again is
    /// safe (inserts and updates of the same id converge).
    async fn write(&self, batch: &[Write]) -> Result<(), StorageError>;

    /// The stored rows of `model` with these keys; keys with no row are left out. A key of a
    /// time-relative model names its row by entity id and bucket; one of a model that is not
    /// time-relative (metadata) by id alone, its bucket ignored.
    async fn multi_get(&self, model: &Model, keys: &[RowKey]) -> Result<Vec<Row>, StorageError>;

    /// The rows of `model` that `query` selects, sorted and paged as it says.
    async fn scan(&self, model: &Model, query: &ScanQuery) -> Result<Vec<Row>, StorageError>;

    /// Deletes every row of `model` whose day (`yyyyMMdd`) is before `day`; returns how many
    /// whole days were dropped.
    async fn delete_before(&self, model: &Model, day: i64) -> Result<usize, StorageError>;
}
