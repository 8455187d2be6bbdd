//! `network_address_alias` (docs/reference/analysis.md §5.2): which real service and instance an
//! address that callers used (`host:port`) belongs to; reloaded by every node into its alias cache.

use oap_model::ids;

use super::{Lazy, METADATA, model};
use crate::model::ColumnType::{Long, Text};
use crate::model::Indexing::{Filter, StorageOnly};
use crate::row::{Row, Value};

/// Column positions.
pub mod col {
    /// `address`.
    pub const ADDRESS: usize = 0;
    /// `represent_service_id`.
    pub const SERVICE_ID: usize = 1;
    /// `represent_service_instance_id`.
    pub const INSTANCE_ID: usize = 2;
    /// `last_update_time_bucket`, a minute bucket.
    pub const LAST_UPDATE: usize = 3;
}

/// The `network_address_alias` model.
pub static MODEL: Lazy = Lazy::new(|| {
    model(
        "network_address_alias",
        METADATA,
        &[
            ("address", Text, StorageOnly),
            ("represent_service_id", Text, StorageOnly),
            ("represent_service_instance_id", Text, StorageOnly),
            ("last_update_time_bucket", Long, Filter),
        ],
    )
});

/// One alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAddressAlias {
    /// The address callers used.
    pub address: String,
    /// The service it belongs to.
    pub represent_service_id: String,
    /// The instance it belongs to.
    pub represent_service_instance_id: String,
    /// The minute of the latest setup.
    pub last_update_time_bucket: i64,
    /// The minute of the earliest setup.
    pub time_bucket: i64,
}

impl NetworkAddressAlias {
    /// As a storage row; the id is `base64(address)`.
    pub fn into_row(self) -> Row {
        Row {
            id: ids::network_address_alias_id(&self.address),
            time_bucket: self.time_bucket,
            values: vec![
                Value::Text(self.address),
                Value::Text(self.represent_service_id),
                Value::Text(self.represent_service_instance_id),
                Value::Long(self.last_update_time_bucket),
            ],
        }
    }

    /// A stored row read back.
    pub fn from_row(mut row: Row) -> Self {
        Self {
            address: row.take_text(col::ADDRESS),
            represent_service_id: row.take_text(col::SERVICE_ID),
            represent_service_instance_id: row.take_text(col::INSTANCE_ID),
            last_update_time_bucket: row.long(col::LAST_UPDATE),
            time_bucket: row.time_bucket,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_the_encoded_address() {
        let alias = NetworkAddressAlias {
            address: "127.0.0.1:18082".to_owned(),
            represent_service_id: "cHktYmFja2VuZA==.1".to_owned(),
            represent_service_instance_id: "cHktYmFja2VuZA==.1_aTE=".to_owned(),
            last_update_time_bucket: 202_611_211_231,
            time_bucket: 202_611_211_230,
        };
        let row = alias.clone().into_row();
        assert_eq!(row.id, "MTI3LjAuMC4xOjE4MDgy");
        assert_eq!(NetworkAddressAlias::from_row(row), alias);
    }
}
