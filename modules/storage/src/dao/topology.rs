//! Topology reads (docs/reference/query-api.md §7): relation rows of a time range, selected by the
//! services, service pair or endpoint a view is about.

use async_trait::async_trait;

use crate::builtin::relation::{
    self, EndpointRelation, InstanceRelation, ServiceRelation, endpoint_col, instance_col, service_col,
};
use crate::error::StorageError;
use crate::model::Model;
use crate::query::{Filter, ScanQuery, TimeRange};
use crate::row::{Row, Value};
use crate::storage::Storage;

/// Which side saw a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The callee (`*_server_side`).
    Server,
    /// The caller (`*_client_side`).
    Client,
}

fn text(column: usize, value: &str) -> Filter {
    Filter::Eq { column, value: Value::Text(value.to_owned()) }
}

async fn relations<S: Storage + ?Sized>(
    storage: &S,
    model: &Model,
    time_range: TimeRange,
    filters: Vec<Filter>,
) -> Result<Vec<Row>, StorageError> {
    storage.scan(model, &ScanQuery { time_range: Some(time_range), filters, ..ScanQuery::default() }).await
}

/// Reads of the relation streams.
#[async_trait]
pub trait TopologyQueryDao: Storage {
    /// Service edges seen from `side` in the range; with service ids, only edges whose source or
    /// target is one of them.
    async fn service_relations(
        &self,
        side: Side,
        time_range: TimeRange,
        service_ids: &[String],
    ) -> Result<Vec<ServiceRelation>, StorageError> {
        let model = match side {
            Side::Server => &relation::SERVICE_SERVER,
            Side::Client => &relation::SERVICE_CLIENT,
        };
        let mut filters = Vec::new();
        if !service_ids.is_empty() {
            let ids: Vec<Value> = service_ids.iter().cloned().map(Value::Text).collect();
            filters.push(Filter::Any(vec![
                Filter::In { column: service_col::SOURCE, values: ids.clone() },
                Filter::In { column: service_col::DEST, values: ids },
            ]));
        }
        let rows = relations(self, model, time_range, filters).await?;
        Ok(rows.into_iter().map(ServiceRelation::from_row).collect())
    }

    /// Instance edges seen from `side` in the range between two services, either direction.
    async fn instance_relations(
        &self,
        side: Side,
        time_range: TimeRange,
        client_service_id: &str,
        server_service_id: &str,
    ) -> Result<Vec<InstanceRelation>, StorageError> {
        let model = match side {
            Side::Server => &relation::INSTANCE_SERVER,
            Side::Client => &relation::INSTANCE_CLIENT,
        };
        let pair = |source, dest| {
            Filter::All(vec![text(instance_col::SOURCE_SERVICE, source), text(instance_col::DEST_SERVICE, dest)])
        };
        let filters = vec![Filter::Any(vec![
            pair(client_service_id, server_service_id),
            pair(server_service_id, client_service_id),
        ])];
        let rows = relations(self, model, time_range, filters).await?;
        Ok(rows.into_iter().map(InstanceRelation::from_row).collect())
    }

    /// Endpoint edges in the range where the endpoint is the source or the target.
    async fn endpoint_relations(
        &self,
        time_range: TimeRange,
        endpoint_id: &str,
    ) -> Result<Vec<EndpointRelation>, StorageError> {
        let filters =
            vec![Filter::Any(vec![text(endpoint_col::SOURCE, endpoint_id), text(endpoint_col::DEST, endpoint_id)])];
        let rows = relations(self, &relation::ENDPOINT_SERVER, time_range, filters).await?;
        Ok(rows.into_iter().map(EndpointRelation::from_row).collect())
    }
}
