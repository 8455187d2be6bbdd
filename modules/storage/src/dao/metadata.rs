//! Metadata reads (docs/reference/query-api.md §4, §6, docs/reference/analysis.md §5.3, §6.5):
//! services, instances, endpoints and network address aliases from the traffic and alias streams,
//! and the trace page's tag suggestions.

use std::collections::BTreeSet;

use async_trait::async_trait;

use crate::builtin::alias::{self, NetworkAddressAlias};
use crate::builtin::tag;
use crate::builtin::traffic::{self, EndpointTraffic, InstanceTraffic, ServiceTraffic, endpoint_col, instance_col};
use crate::error::StorageError;
use crate::query::{Filter, ScanQuery, Sort, SortKey, TimeRange};
use crate::row::{RowKey, Value, day_of};
use crate::storage::Storage;

fn text(column: usize, value: &str) -> Filter {
    Filter::Eq { column, value: Value::Text(value.to_owned()) }
}

/// Rows active in `[start, end]` (minute buckets): last seen at or after the start, first seen at
/// or before the end.
fn active(last_ping: usize, start: i64, end: i64) -> (Option<TimeRange>, Filter) {
    (Some(TimeRange { start: 0, end }), Filter::Range { column: last_ping, min: Some(start), max: None })
}

/// Reads of the traffic and alias streams.
#[async_trait]
pub trait MetadataQueryDao: Storage {
    /// Every service row (one per service and layer), by id.
    async fn list_services(&self) -> Result<Vec<ServiceTraffic>, StorageError> {
        let rows = self.scan(&traffic::SERVICE, &ScanQuery::default()).await?;
        Ok(rows.into_iter().map(ServiceTraffic::from_row).collect())
    }

    /// The instances of a service active between two minute buckets, by id.
    async fn list_instances(
        &self,
        service_id: &str,
        start_minute: i64,
        end_minute: i64,
    ) -> Result<Vec<InstanceTraffic>, StorageError> {
        let (time_range, recent) = active(instance_col::LAST_PING, start_minute, end_minute);
        let query = ScanQuery {
            time_range,
            filters: vec![text(instance_col::SERVICE_ID, service_id), recent],
            ..ScanQuery::default()
        };
        let rows = self.scan(&traffic::INSTANCE, &query).await?;
        Ok(rows.into_iter().map(InstanceTraffic::from_row).collect())
    }

    /// One instance by id.
    async fn instance(&self, instance_id: &str) -> Result<Option<InstanceTraffic>, StorageError> {
        let key = RowKey { id: instance_id.to_owned(), time_bucket: 0 };
        let rows = self.multi_get(&traffic::INSTANCE, std::slice::from_ref(&key)).await?;
        Ok(rows.into_iter().next().map(InstanceTraffic::from_row))
    }

    /// Endpoints of a service whose name contains `keyword` (all when `None`), active in the
    /// minute range when given, newest first, at most `limit`.
    async fn find_endpoints(
        &self,
        service_id: &str,
        keyword: Option<&str>,
        minutes: Option<(i64, i64)>,
        limit: usize,
    ) -> Result<Vec<EndpointTraffic>, StorageError> {
        let mut query = ScanQuery {
            filters: vec![text(endpoint_col::SERVICE_ID, service_id)],
            sort: Some(Sort { key: SortKey::TimeBucket, descending: true }),
            limit: Some(limit),
            ..ScanQuery::default()
        };
        if let Some(keyword) = keyword.filter(|keyword| !keyword.is_empty()) {
            query.filters.push(Filter::Contains { column: endpoint_col::NAME, text: keyword.to_owned() });
        }
        if let Some((start, end)) = minutes {
            let (time_range, recent) = active(endpoint_col::LAST_PING, start, end);
            query.time_range = time_range;
            query.filters.push(recent);
        }
        let rows = self.scan(&traffic::ENDPOINT, &query).await?;
        Ok(rows.into_iter().map(EndpointTraffic::from_row).collect())
    }

    /// Aliases updated at or after a minute bucket (the alias cache reload).
    async fn aliases_since(&self, minute: i64) -> Result<Vec<NetworkAddressAlias>, StorageError> {
        let query = ScanQuery {
            filters: vec![Filter::Range { column: alias::col::LAST_UPDATE, min: Some(minute), max: None }],
            ..ScanQuery::default()
        };
        let rows = self.scan(&alias::MODEL, &query).await?;
        Ok(rows.into_iter().map(NetworkAddressAlias::from_row).collect())
    }

    /// The distinct keys of `tag_type` tags seen on the days from `start_minute` to
    /// `end_minute` (whole days, as SkyWalking reads whole daily indices), sorted, at most `limit`.
    async fn tag_keys(
        &self,
        tag_type: &str,
        start_minute: i64,
        end_minute: i64,
        limit: usize,
    ) -> Result<Vec<String>, StorageError> {
        let filters = vec![text(tag::col::TYPE, tag_type)];
        self.tag_column(tag::col::KEY, filters, (start_minute, end_minute), limit).await
    }

    /// The distinct values of the `tag_type` tag `key` seen on the days from `start_minute` to
    /// `end_minute`, sorted, at most `limit`.
    async fn tag_values(
        &self,
        tag_type: &str,
        key: &str,
        start_minute: i64,
        end_minute: i64,
        limit: usize,
    ) -> Result<Vec<String>, StorageError> {
        let filters = vec![text(tag::col::TYPE, tag_type), text(tag::col::KEY, key)];
        self.tag_column(tag::col::VALUE, filters, (start_minute, end_minute), limit).await
    }

    /// The distinct texts of one `tag_autocomplete` column among the rows passing `filters` on
    /// the days of a minute range, sorted, at most `limit`.
    async fn tag_column(
        &self,
        column: usize,
        filters: Vec<Filter>,
        (start_minute, end_minute): (i64, i64),
        limit: usize,
    ) -> Result<Vec<String>, StorageError> {
        let time_range = TimeRange { start: day_of(start_minute) * 10_000, end: day_of(end_minute) * 10_000 + 2_359 };
        let query = ScanQuery { time_range: Some(time_range), filters, ..ScanQuery::default() };
        let texts: BTreeSet<String> =
            self.scan(&tag::MODEL, &query).await?.into_iter().map(|mut row| row.take_text(column)).collect();
        Ok(texts.into_iter().take(limit).collect())
    }
}
