//! The relation (topology) streams (docs/reference/analysis.md §9.2): one row per edge and time
//! bucket, seen from the server or the client side. A row's id is the edge's entity id; its bucket
//! says the minute, hour or day.

use super::{Lazy, model};
use crate::model::ColumnType::{Int, Text};
use crate::model::Indexing::{Filter, StorageOnly};
use crate::model::{ModelKind, ModelRef};
use crate::row::{Row, Value};

/// Column positions of the service relations.
pub mod service_col {
    /// `source_service_id`.
    pub const SOURCE: usize = 0;
    /// `dest_service_id`.
    pub const DEST: usize = 1;
    /// `component_ids`, `|`-separated.
    pub const COMPONENT_IDS: usize = 2;
}

/// Column positions of the instance relations.
pub mod instance_col {
    /// `source_service_id`.
    pub const SOURCE_SERVICE: usize = 0;
    /// `source_service_instance_id`.
    pub const SOURCE: usize = 1;
    /// `dest_service_id`.
    pub const DEST_SERVICE: usize = 2;
    /// `dest_service_instance_id`.
    pub const DEST: usize = 3;
}

/// Column positions of `endpoint_relation_server_side`.
pub mod endpoint_col {
    /// `source_endpoint`, an endpoint id.
    pub const SOURCE: usize = 0;
    /// `dest_endpoint`, an endpoint id.
    pub const DEST: usize = 1;
    /// `component_id`.
    pub const COMPONENT_ID: usize = 2;
}

const fn relation(update: bool) -> ModelKind {
    ModelKind::Metrics { time_relative: true, downsampling: true, update }
}

fn service_relation(name: &'static str) -> ModelRef {
    model(
        name,
        relation(true),
        &[("source_service_id", Text, Filter), ("dest_service_id", Text, Filter), ("component_ids", Text, StorageOnly)],
    )
}

fn instance_relation(name: &'static str) -> ModelRef {
    model(
        name,
        relation(false),
        &[
            ("source_service_id", Text, Filter),
            ("source_service_instance_id", Text, StorageOnly),
            ("dest_service_id", Text, Filter),
            ("dest_service_instance_id", Text, StorageOnly),
        ],
    )
}

/// `service_relation_server_side`.
pub static SERVICE_SERVER: Lazy = Lazy::new(|| service_relation("service_relation_server_side"));
/// `service_relation_client_side`.
pub static SERVICE_CLIENT: Lazy = Lazy::new(|| service_relation("service_relation_client_side"));
/// `service_instance_relation_server_side`.
pub static INSTANCE_SERVER: Lazy = Lazy::new(|| instance_relation("service_instance_relation_server_side"));
/// `service_instance_relation_client_side`.
pub static INSTANCE_CLIENT: Lazy = Lazy::new(|| instance_relation("service_instance_relation_client_side"));
/// `endpoint_relation_server_side`.
pub static ENDPOINT_SERVER: Lazy = Lazy::new(|| {
    model(
        "endpoint_relation_server_side",
        relation(false),
        &[("source_endpoint", Text, Filter), ("dest_endpoint", Text, Filter), ("component_id", Int, StorageOnly)],
    )
});

/// The five relation models.
pub fn models() -> [ModelRef; 5] {
    [
        SERVICE_SERVER.clone(),
        SERVICE_CLIENT.clone(),
        INSTANCE_SERVER.clone(),
        INSTANCE_CLIENT.clone(),
        ENDPOINT_SERVER.clone(),
    ]
}

/// An edge between two services in one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRelation {
    /// The calling service.
    pub source_service_id: String,
    /// The called service.
    pub dest_service_id: String,
    /// The components seen on the edge.
    pub component_ids: Vec<i32>,
    /// The bucket.
    pub time_bucket: i64,
}

impl ServiceRelation {
    /// As a storage row; the id is `source-dest`.
    pub fn into_row(self) -> Row {
        let components: Vec<String> = self.component_ids.iter().map(i32::to_string).collect();
        Row {
            id: oap_model::ids::relation_id(&self.source_service_id, &self.dest_service_id),
            time_bucket: self.time_bucket,
            values: vec![
                Value::Text(self.source_service_id),
                Value::Text(self.dest_service_id),
                Value::Text(components.join("|")),
            ],
        }
    }

    /// A stored row read back; component ids that are not numbers are skipped.
    pub fn from_row(mut row: Row) -> Self {
        let components = row.take_text(service_col::COMPONENT_IDS);
        Self {
            source_service_id: row.take_text(service_col::SOURCE),
            dest_service_id: row.take_text(service_col::DEST),
            component_ids: components.split('|').filter_map(|id| id.parse().ok()).collect(),
            time_bucket: row.time_bucket,
        }
    }
}

/// An edge between two instances in one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRelation {
    /// The calling instance's service.
    pub source_service_id: String,
    /// The calling instance.
    pub source_instance_id: String,
    /// The called instance's service.
    pub dest_service_id: String,
    /// The called instance.
    pub dest_instance_id: String,
    /// The bucket.
    pub time_bucket: i64,
}

impl InstanceRelation {
    /// As a storage row; the id is `source-dest` over the instance ids.
    pub fn into_row(self) -> Row {
        Row {
            id: oap_model::ids::relation_id(&self.source_instance_id, &self.dest_instance_id),
            time_bucket: self.time_bucket,
            values: vec![
                Value::Text(self.source_service_id),
                Value::Text(self.source_instance_id),
                Value::Text(self.dest_service_id),
                Value::Text(self.dest_instance_id),
            ],
        }
    }

    /// A stored row read back.
    pub fn from_row(mut row: Row) -> Self {
        Self {
            source_service_id: row.take_text(instance_col::SOURCE_SERVICE),
            source_instance_id: row.take_text(instance_col::SOURCE),
            dest_service_id: row.take_text(instance_col::DEST_SERVICE),
            dest_instance_id: row.take_text(instance_col::DEST),
            time_bucket: row.time_bucket,
        }
    }
}

/// An edge between two endpoints in one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRelation {
    /// The entity id (`srcServiceId-base64(src)-destServiceId-base64(dest)`).
    pub entity_id: String,
    /// The calling endpoint's id.
    pub source_endpoint: String,
    /// The called endpoint's id.
    pub dest_endpoint: String,
    /// The component.
    pub component_id: i32,
    /// The bucket.
    pub time_bucket: i64,
}

impl EndpointRelation {
    /// As a storage row.
    pub fn into_row(self) -> Row {
        Row {
            id: self.entity_id,
            time_bucket: self.time_bucket,
            values: vec![
                Value::Text(self.source_endpoint),
                Value::Text(self.dest_endpoint),
                Value::Int(self.component_id),
            ],
        }
    }

    /// A stored row read back.
    pub fn from_row(mut row: Row) -> Self {
        Self {
            source_endpoint: row.take_text(endpoint_col::SOURCE),
            dest_endpoint: row.take_text(endpoint_col::DEST),
            component_id: i32::try_from(row.long(endpoint_col::COMPONENT_ID)).unwrap_or_default(),
            entity_id: row.id,
            time_bucket: row.time_bucket,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_ids_are_stored_as_pipe_separated_text() {
        let edge = ServiceRelation {
            source_service_id: "cHktZnJvbnRlbmQ=.1".to_owned(),
            dest_service_id: "cHktYmFja2VuZA==.1".to_owned(),
            component_ids: vec![7001, 142],
            time_bucket: 202_611_211_230,
        };
        let row = edge.clone().into_row();
        assert_eq!(row.id, "cHktZnJvbnRlbmQ=.1-cHktYmFja2VuZA==.1");
        assert_eq!(row.value(service_col::COMPONENT_IDS).as_str(), Some("7001|142"));
        assert_eq!(ServiceRelation::from_row(row), edge);
    }

    #[test]
    fn instance_and_endpoint_edges_round_trip() {
        let edge = InstanceRelation {
            source_service_id: "a.1".to_owned(),
            source_instance_id: "a.1_aQ==".to_owned(),
            dest_service_id: "b.1".to_owned(),
            dest_instance_id: "b.1_aQ==".to_owned(),
            time_bucket: 2_026_112_112,
        };
        assert_eq!(edge.clone().into_row().id, "a.1_aQ==-b.1_aQ==");
        assert_eq!(InstanceRelation::from_row(edge.clone().into_row()), edge);
        let edge = EndpointRelation {
            entity_id: "a.1-L2E=-b.1-L2I=".to_owned(),
            source_endpoint: "a.1_L2E=".to_owned(),
            dest_endpoint: "b.1_L2I=".to_owned(),
            component_id: 7001,
            time_bucket: 20_261_121,
        };
        assert_eq!(EndpointRelation::from_row(edge.clone().into_row()), edge);
    }
}
