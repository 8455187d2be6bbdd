//! Metric reads for charts (docs/reference/query-api.md §5,
//! docs/reference/pipeline-and-storage.md §11): the rows of one metric for an entity at given
//! buckets, by key — one multi-get, as Elasticsearch's `_mget`; the entities with the highest or
//! lowest average over a duration (Elasticsearch's terms aggregation ordered by an `avg`); and the
//! slowest sampled records of an entity.

use std::collections::HashMap;

use async_trait::async_trait;

use crate::error::StorageError;
use crate::model::Model;
use crate::query::{Filter, ScanQuery, Sort, SortKey, TimeRange};
use crate::row::{Row, RowKey, Value};
use crate::storage::Storage;

/// An entity and its average over a duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityAverage {
    /// The entity id (the row id).
    pub entity_id: String,
    /// The average of its value column, truncated to an integer as SkyWalking reports it.
    pub average: i64,
}

/// The top of a ranking: how many, of which range, in which order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Top {
    /// The buckets ranked.
    pub range: TimeRange,
    /// How many are returned at most.
    pub limit: usize,
    /// Largest first.
    pub descending: bool,
}

/// Reads of metric rows by id, ranked entities and sampled records.
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
        let mut by_bucket: HashMap<i64, Row> =
            self.multi_get(model, &keys).await?.into_iter().map(|row| (row.time_bucket, row)).collect();
        Ok(buckets.iter().map(|bucket| by_bucket.remove(bucket)).collect())
    }

    /// The `top.limit` entities of `model` whose average of column `value_column` over the
    /// buckets of `top.range` is largest (`top.descending`) or smallest, among the rows passing
    /// `filters`; ties go by entity id. Rows without a number in the column do not count.
    async fn sort_metrics(
        &self,
        model: &Model,
        value_column: usize,
        filters: Vec<Filter>,
        top: Top,
    ) -> Result<Vec<EntityAverage>, StorageError> {
        let Top { range, limit, descending } = top;
        let query = ScanQuery { time_range: Some(range), filters, ..ScanQuery::default() };
        let mut sums: HashMap<String, (f64, u32)> = HashMap::new();
        for row in self.scan(model, &query).await? {
            #[allow(clippy::cast_precision_loss)]
            let value = match row.value(value_column) {
                Value::Double(value) => *value,
                other => match other.as_i64() {
                    Some(value) => value as f64,
                    None => continue,
                },
            };
            let entry = sums.entry(row.id).or_insert((0.0, 0));
            entry.0 += value;
            entry.1 += 1;
        }
        let mut averages: Vec<(String, f64)> =
            sums.into_iter().map(|(id, (sum, count))| (id, sum / f64::from(count))).collect();
        averages.sort_by(|(a_id, a), (b_id, b)| {
            let order = a.total_cmp(b);
            (if descending { order.reverse() } else { order }).then_with(|| a_id.cmp(b_id))
        });
        #[allow(clippy::cast_possible_truncation)]
        Ok(averages
            .into_iter()
            .take(limit)
            .map(|(entity_id, average)| EntityAverage { entity_id, average: average as i64 })
            .collect())
    }

    /// The `top.limit` records of `model` within `top.range` (second buckets) whose
    /// `entity_column` is `entity_id`, by `value_column`, largest first when `top.descending`.
    async fn top_records(
        &self,
        model: &Model,
        entity_column: usize,
        entity_id: &str,
        value_column: usize,
        top: Top,
    ) -> Result<Vec<Row>, StorageError> {
        let query = ScanQuery {
            time_range: Some(top.range),
            filters: vec![Filter::Eq { column: entity_column, value: Value::Text(entity_id.to_owned()) }],
            sort: Some(Sort { key: SortKey::Column(value_column), descending: top.descending }),
            offset: 0,
            limit: Some(top.limit),
        };
        self.scan(model, &query).await
    }
}
