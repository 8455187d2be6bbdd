//! The top-N records (docs/reference/analysis.md §7.1–7.2,
//! docs/reference/pipeline-and-storage.md §7): the slowest database statements per database
//! (`top_n_database_statement`) and per calling service (`top_n_service_database_statement`), and
//! the slowest cache reads and writes per cache (`top_n_cache_read_command`,
//! `top_n_cache_write_command`). They live in the shared records table and are read back by entity,
//! time and latency (`top_n(top_n_service_database_statement, 20, des)` on the service dashboard).

use super::{Lazy, model};
use crate::model::ColumnType::{Long, Text};
use crate::model::Indexing::{Filter, StorageOnly};
use crate::model::{ModelKind, ModelRef};
use crate::row::{Row, Value};

/// Column positions, the same in all four models.
pub mod col {
    /// `statement`: the SQL, or the cache command and key.
    pub const STATEMENT: usize = 0;
    /// `latency`, ms.
    pub const LATENCY: usize = 1;
    /// `trace_id`.
    pub const TRACE_ID: usize = 2;
    /// `entity_id`: the database's, the calling service's or the cache's service id.
    pub const ENTITY_ID: usize = 3;
    /// `timestamp`: the span's start, epoch ms.
    pub const TIMESTAMP: usize = 4;
}

fn top_n_model(name: &'static str) -> ModelRef {
    model(
        name,
        ModelKind::Record { super_dataset: false },
        &[
            ("statement", Text, StorageOnly),
            ("latency", Long, Filter),
            ("trace_id", Text, StorageOnly),
            ("entity_id", Text, Filter),
            ("timestamp", Long, StorageOnly),
        ],
    )
}

/// `top_n_database_statement`: per database.
pub static DATABASE_STATEMENT: Lazy = Lazy::new(|| top_n_model("top_n_database_statement"));
/// `top_n_service_database_statement`: per calling service.
pub static SERVICE_DATABASE_STATEMENT: Lazy = Lazy::new(|| top_n_model("top_n_service_database_statement"));
/// `top_n_cache_read_command`: per cache, reads.
pub static CACHE_READ_COMMAND: Lazy = Lazy::new(|| top_n_model("top_n_cache_read_command"));
/// `top_n_cache_write_command`: per cache, writes.
pub static CACHE_WRITE_COMMAND: Lazy = Lazy::new(|| top_n_model("top_n_cache_write_command"));

/// The four models.
pub fn models() -> [ModelRef; 4] {
    [
        DATABASE_STATEMENT.clone(),
        SERVICE_DATABASE_STATEMENT.clone(),
        CACHE_READ_COMMAND.clone(),
        CACHE_WRITE_COMMAND.clone(),
    ]
}

/// One slow statement or command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopNRecord {
    /// `<segment id>-<span id>`, the row id.
    pub id: String,
    /// The statement, or `<command> <key>` for a cache.
    pub statement: String,
    /// ms.
    pub latency: i64,
    /// The trace it was seen in.
    pub trace_id: String,
    /// The service id it is listed under.
    pub entity_id: String,
    /// Second bucket of the span's start.
    pub time_bucket: i64,
    /// The span's start, epoch ms.
    pub timestamp: i64,
}

impl TopNRecord {
    /// As a storage row.
    pub fn into_row(self) -> Row {
        Row {
            id: self.id,
            time_bucket: self.time_bucket,
            values: vec![
                Value::Text(self.statement),
                Value::Long(self.latency),
                Value::Text(self.trace_id),
                Value::Text(self.entity_id),
                Value::Long(self.timestamp),
            ],
        }
    }

    /// A stored row read back.
    pub fn from_row(mut row: Row) -> Self {
        Self {
            statement: row.take_text(col::STATEMENT),
            latency: row.long(col::LATENCY),
            trace_id: row.take_text(col::TRACE_ID),
            entity_id: row.take_text(col::ENTITY_ID),
            timestamp: row.long(col::TIMESTAMP),
            id: row.id,
            time_bucket: row.time_bucket,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_as_itself_in_the_column_order_of_every_model() {
        let record = TopNRecord {
            id: "3ff89744e5a411f1b4d102fc00000001-2".to_owned(),
            statement: "select * from orders".to_owned(),
            latency: 2_000,
            trace_id: "t1".to_owned(),
            entity_id: "bXlzcWw6MzMwNg==.0".to_owned(),
            time_bucket: 20_261_121_123_456,
            timestamp: 1_795_000_000_000,
        };
        let row = record.clone().into_row();
        for model in models() {
            assert_eq!(model.column("statement"), Some(col::STATEMENT));
            assert_eq!(model.column("latency"), Some(col::LATENCY));
            assert_eq!(model.column("trace_id"), Some(col::TRACE_ID));
            assert_eq!(model.column("entity_id"), Some(col::ENTITY_ID));
            assert_eq!(model.column("timestamp"), Some(col::TIMESTAMP));
        }
        assert_eq!(TopNRecord::from_row(row), record);
    }
}
