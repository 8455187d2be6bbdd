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
    /// A row written only if what is stored is as expected — absent, or of the version read —
    /// else reported as a [`Written::Conflict`] by [`Storage::write_checked`] (Elasticsearch
    /// `create`, or `index` with `if_seq_no` and `if_primary_term`). Two nodes of a cluster may
    /// then both read-modify-write a row without one losing the other's change. A store that
    /// one process owns has no such race, and writes it as it is.
    Checked(ModelRef, Row, Expect),
}

/// What a [`Write::Checked`] expects of the stored row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No row with its id.
    Absent,
    /// The row as it was read.
    Version(RowVersion),
}

/// A stored row's version, as the store that keeps one tells it (Elasticsearch's `_seq_no` and
/// `_primary_term`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowVersion {
    /// `_seq_no`.
    pub seq_no: i64,
    /// `_primary_term`.
    pub primary_term: i64,
}

/// What became of one write of a batch ([`Storage::write_checked`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Stored; its new version, if the store keeps versions.
    Stored(Option<RowVersion>),
    /// Not written: the stored row was not as the [`Write::Checked`] expected.
    Conflict,
}

impl Write {
    /// The model written to.
    pub fn model(&self) -> &ModelRef {
        match self {
            Write::Insert(model, _) | Write::Update(model, _) | Write::Checked(model, _, _) => model,
        }
    }

    /// The row written.
    pub fn row(&self) -> &Row {
        match self {
            Write::Insert(_, row) | Write::Update(_, row) | Write::Checked(_, row, _) => row,
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

    /// [`Storage::multi_get`], with each row's version where the store keeps them (for a
    /// [`Write::Checked`] of it later).
    async fn multi_get_versioned(
        &self,
        model: &Model,
        keys: &[RowKey],
    ) -> Result<Vec<(Row, Option<RowVersion>)>, StorageError> {
        Ok(self.multi_get(model, keys).await?.into_iter().map(|row| (row, None)).collect())
    }

    /// [`Storage::write`], saying for each write whether it was stored (and as which version)
    /// or, for a [`Write::Checked`], found the stored row not as expected. `Ok` means every
    /// write is either durable or a conflict.
    async fn write_checked(&self, batch: &[Write]) -> Result<Vec<Written>, StorageError> {
        self.write(batch).await?;
        Ok(vec![Written::Stored(None); batch.len()])
    }

    /// The rows of `model` that `query` selects, sorted and paged as it says.
    async fn scan(&self, model: &Model, query: &ScanQuery) -> Result<Vec<Row>, StorageError>;

    /// Deletes every row of `model` whose day (`yyyyMMdd`) is before `day`; returns how many
    /// whole days were dropped.
    async fn delete_before(&self, model: &Model, day: i64) -> Result<usize, StorageError>;
}
