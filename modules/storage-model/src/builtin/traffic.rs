//! The traffic (metadata) streams — `service_traffic`, `instance_traffic`, `endpoint_traffic`
//! (docs/reference/analysis.md §9.1): one row per entity, not per minute; what the service,
//! instance and endpoint lists read.

use oap_model::{Layer, ids};

use super::{Lazy, METADATA, model};
use crate::model::ColumnType::{Int, Long, Text};
use crate::model::Indexing::{Filter, Match, StorageOnly};
use crate::model::ModelKind;
use crate::row::{Row, Value};

/// Column positions of `service_traffic`.
pub mod service_col {
    /// `service_traffic_name`.
    pub const NAME: usize = 0;
    /// `short_name`.
    pub const SHORT_NAME: usize = 1;
    /// `service_id`.
    pub const SERVICE_ID: usize = 2;
    /// `service_group`.
    pub const GROUP: usize = 3;
    /// `layer`, the layer number.
    pub const LAYER: usize = 4;
}

/// Column positions of `instance_traffic`.
pub mod instance_col {
    /// `service_id`.
    pub const SERVICE_ID: usize = 0;
    /// `instance_traffic_name`.
    pub const NAME: usize = 1;
    /// `last_ping`, a minute bucket.
    pub const LAST_PING: usize = 2;
    /// `properties`, a JSON object.
    pub const PROPERTIES: usize = 3;
}

/// Column positions of `endpoint_traffic`.
pub mod endpoint_col {
    /// `service_id`.
    pub const SERVICE_ID: usize = 0;
    /// `endpoint_traffic_name`.
    pub const NAME: usize = 1;
    /// `last_ping`, a minute bucket.
    pub const LAST_PING: usize = 2;
}

/// `service_traffic`: inserted once per service and layer (`supportUpdate = false`).
pub static SERVICE: Lazy = Lazy::new(|| {
    model(
        "service_traffic",
        ModelKind::Metrics { time_relative: false, downsampling: false, update: false },
        &[
            ("service_traffic_name", Text, Match),
            ("short_name", Text, StorageOnly),
            ("service_id", Text, Filter),
            ("service_group", Text, Filter),
            ("layer", Int, Filter),
        ],
    )
});

/// `instance_traffic`.
pub static INSTANCE: Lazy = Lazy::new(|| {
    model(
        "instance_traffic",
        METADATA,
        &[
            ("service_id", Text, Filter),
            ("instance_traffic_name", Text, Filter),
            ("last_ping", Long, Filter),
            ("properties", Text, StorageOnly),
        ],
    )
});

/// `endpoint_traffic`.
pub static ENDPOINT: Lazy = Lazy::new(|| {
    model(
        "endpoint_traffic",
        METADATA,
        &[("service_id", Text, Filter), ("endpoint_traffic_name", Text, Match), ("last_ping", Long, Filter)],
    )
});

/// A service seen in one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTraffic {
    /// The service name.
    pub name: String,
    /// Its layer.
    pub layer: Layer,
    /// The minute it was first seen.
    pub time_bucket: i64,
}

impl ServiceTraffic {
    /// The service id (`base64(name).normal`).
    pub fn service_id(&self) -> String {
        ids::service_id(&self.name, self.layer.is_normal())
    }

    /// The group and short name: split at the first `::` past the start, else no group.
    pub fn group_and_short_name(&self) -> (&str, &str) {
        match self.name.find("::") {
            Some(at) if at > 0 => (&self.name[..at], &self.name[at + 2..]),
            _ => ("", &self.name),
        }
    }

    /// As a storage row; the id is `base64(name).layerNumber`.
    pub fn into_row(self) -> Row {
        let (group, short_name) = self.group_and_short_name();
        let (group, short_name) = (group.to_owned(), short_name.to_owned());
        let (id, service_id) = (ids::service_traffic_id(&self.name, self.layer.number()), self.service_id());
        let values = vec![
            Value::Text(self.name),
            Value::Text(short_name),
            Value::Text(service_id),
            Value::Text(group),
            Value::Int(self.layer.number()),
        ];
        Row { id, time_bucket: self.time_bucket, values }
    }

    /// A stored row read back (an unknown layer number reads as `UNDEFINED`).
    pub fn from_row(mut row: Row) -> Self {
        let layer = i32::try_from(row.long(service_col::LAYER)).ok().and_then(Layer::from_number);
        Self {
            name: row.take_text(service_col::NAME),
            layer: layer.unwrap_or(Layer::UNDEFINED),
            time_bucket: row.time_bucket,
        }
    }
}

/// A service instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceTraffic {
    /// The service id.
    pub service_id: String,
    /// The instance name.
    pub name: String,
    /// The minute of the latest report.
    pub last_ping: i64,
    /// The reported properties, a JSON object (`{}` when none).
    pub properties: String,
    /// The minute it was first seen.
    pub time_bucket: i64,
}

impl InstanceTraffic {
    /// The instance id.
    pub fn id(&self) -> String {
        ids::instance_id(&self.service_id, &self.name)
    }

    /// As a storage row.
    pub fn into_row(self) -> Row {
        Row {
            id: self.id(),
            time_bucket: self.time_bucket,
            values: vec![
                Value::Text(self.service_id),
                Value::Text(self.name),
                Value::Long(self.last_ping),
                Value::Text(self.properties),
            ],
        }
    }

    /// A stored row read back.
    pub fn from_row(mut row: Row) -> Self {
        Self {
            service_id: row.take_text(instance_col::SERVICE_ID),
            name: row.take_text(instance_col::NAME),
            last_ping: row.long(instance_col::LAST_PING),
            properties: row.take_text(instance_col::PROPERTIES),
            time_bucket: row.time_bucket,
        }
    }
}

/// An endpoint of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointTraffic {
    /// The service id.
    pub service_id: String,
    /// The endpoint name.
    pub name: String,
    /// The minute it was last seen.
    pub last_ping: i64,
    /// The minute it was first seen.
    pub time_bucket: i64,
}

impl EndpointTraffic {
    /// The endpoint id.
    pub fn id(&self) -> String {
        ids::endpoint_id(&self.service_id, &self.name)
    }

    /// As a storage row.
    pub fn into_row(self) -> Row {
        Row {
            id: self.id(),
            time_bucket: self.time_bucket,
            values: vec![Value::Text(self.service_id), Value::Text(self.name), Value::Long(self.last_ping)],
        }
    }

    /// A stored row read back.
    pub fn from_row(mut row: Row) -> Self {
        Self {
            service_id: row.take_text(endpoint_col::SERVICE_ID),
            name: row.take_text(endpoint_col::NAME),
            last_ping: row.long(endpoint_col::LAST_PING),
            time_bucket: row.time_bucket,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_rows_carry_the_reference_ids_and_groups() {
        let service = ServiceTraffic { name: "shop::py-backend".to_owned(), layer: Layer::GENERAL, time_bucket: 1 };
        assert_eq!(service.group_and_short_name(), ("shop", "py-backend"));
        let row = service.clone().into_row();
        // base64("shop::py-backend") = c2hvcDo6cHktYmFja2VuZA==; GENERAL is layer 2, normal.
        assert_eq!(row.id, "c2hvcDo6cHktYmFja2VuZA==.2");
        assert_eq!(row.value(service_col::SERVICE_ID).as_str(), Some("c2hvcDo6cHktYmFja2VuZA==.1"));
        assert_eq!(row.value(service_col::GROUP).as_str(), Some("shop"));
        assert_eq!(row.value(service_col::SHORT_NAME).as_str(), Some("py-backend"));
        assert_eq!(ServiceTraffic::from_row(row), service);
        let plain = ServiceTraffic { name: "::x".to_owned(), layer: Layer::GENERAL, time_bucket: 1 };
        assert_eq!(plain.group_and_short_name(), ("", "::x"));
    }

    #[test]
    fn instance_and_endpoint_rows_round_trip() {
        let instance = InstanceTraffic {
            service_id: "cHktYmFja2VuZA==.1".to_owned(),
            name: "i1".to_owned(),
            last_ping: 202_611_211_230,
            properties: r#"{"language":"python"}"#.to_owned(),
            time_bucket: 202_611_211_200,
        };
        assert_eq!(instance.id(), "cHktYmFja2VuZA==.1_aTE=");
        assert_eq!(InstanceTraffic::from_row(instance.clone().into_row()), instance);
        let endpoint = EndpointTraffic {
            service_id: "cHktYmFja2VuZA==.1".to_owned(),
            name: "/work".to_owned(),
            last_ping: 202_611_211_230,
            time_bucket: 202_611_211_200,
        };
        assert_eq!(endpoint.id(), "cHktYmFja2VuZA==.1_L3dvcms=");
        assert_eq!(EndpointTraffic::from_row(endpoint.clone().into_row()), endpoint);
    }
}
