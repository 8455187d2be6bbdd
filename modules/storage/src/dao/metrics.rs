//! Metric reads for charts (query-api.md §5, pipeline-and-storage.md §11): the rows of one
//! metric for entities at given buckets, by key — one multi-get, as Elasticsearch's `_mget`.

use async_trait::async_trait;

use crate::error::StorageError;
use crate::model::Model;
use crate::row::{Row, RowKey};
use crate::storage::Storage;

/// Reads of metric rows by id.
#[async_trait]
pub trait MetricsQueryDao: Storage {
    /// The row of `entity_id` at each of `buckets`, in their order; `None` where none is stored
    /// (the chart shows the metric's default there).
    async fn read_points(
        &self,
        model: &Model,
        entity_id: &str,
        buckets: &[i64],
    ) -> Result<Vec<Option<Row>>, StorageError> {
        let keys: Vec<RowKey> =
            buckets.iter().map(|&time_bucket| RowKey { id: entity_id.to_owned(), time_bucket }).collect();
        let mut rows = self.multi_get(model, &keys).await?;
        Ok(buckets
            .iter()
            .map(|bucket| {
                let at = rows.iter().position(|row| row.time_bucket == *bucket)?;
                Some(rows.swap_remove(at))
            })
            .collect())
    }
}
