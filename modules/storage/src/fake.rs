//! A store for the unit tests of this crate's workers: unavailable for its first `failures`
//! writes, then it keeps the ids of the rows it is given and counts the deletions asked of it.
//! It reads nothing back.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use crate::dao::{MetadataQueryDao, MetricsQueryDao, TopologyQueryDao, TraceQueryDao};
use crate::error::StorageError;
use crate::model::{Model, ModelRef};
use crate::query::ScanQuery;
use crate::row::{Row, RowKey};
use crate::storage::{Storage, Write};

/// The fake store.
#[derive(Default)]
pub struct FakeStore {
    /// Writes still to fail.
    pub failures: AtomicUsize,
    /// Ids of the rows written, in order.
    pub rows: Mutex<Vec<String>>,
    /// `delete_before` calls.
    pub deletions: AtomicUsize,
    /// A batch with a row of this id is refused as invalid.
    pub refused_id: Option<String>,
}

impl FakeStore {
    /// The ids written so far.
    pub fn stored(&self) -> Vec<String> {
        self.rows.lock().expect("lock").clone()
    }
}

#[async_trait]
impl Storage for FakeStore {
    async fn install(&self, _models: &[ModelRef]) -> Result<(), StorageError> {
        Ok(())
    }

    async fn write(&self, batch: &[Write]) -> Result<(), StorageError> {
        if self.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(StorageError::Unavailable("disk busy".to_owned()));
        }
        if batch.iter().any(|write| Some(&write.row().id) == self.refused_id.as_ref()) {
            return Err(StorageError::Invalid("refused: the row cannot be stored".to_owned()));
        }
        self.rows.lock().expect("lock").extend(batch.iter().map(|write| write.row().id.clone()));
        Ok(())
    }

    async fn multi_get(&self, _model: &Model, _keys: &[RowKey]) -> Result<Vec<Row>, StorageError> {
        Ok(Vec::new())
    }

    async fn scan(&self, _model: &Model, _query: &ScanQuery) -> Result<Vec<Row>, StorageError> {
        Ok(Vec::new())
    }

    async fn delete_before(&self, _model: &Model, _day: i64) -> Result<usize, StorageError> {
        self.deletions.fetch_add(1, Ordering::SeqCst);
        Ok(0)
    }
}

impl MetricsQueryDao for FakeStore {}
impl TraceQueryDao for FakeStore {}
impl TopologyQueryDao for FakeStore {}
impl MetadataQueryDao for FakeStore {}
