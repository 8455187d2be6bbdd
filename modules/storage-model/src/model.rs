//! Storage models: what is stored for each stream, described once and read by every provider —
//! the embedded store turns a model into partitions and indexes, Elasticsearch into index
//! templates and mappings (docs/reference/pipeline-and-storage.md §1, §10).

use std::sync::Arc;

use crate::error::StorageError;
use crate::row::Value;

/// How a model's rows are written, merged, kept and deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// Time series merged at L2: OAL metrics, relations, traffic (metadata), aliases.
    Metrics {
        /// The id holds the time bucket: one row per entity and bucket. False for metadata
        /// (traffic, aliases), which has one row per entity.
        time_relative: bool,
        /// Hour and day rows are derived from minute rows.
        downsampling: bool,
        /// A stored row may be rewritten (false: the first write wins).
        update: bool,
    },
    /// Written once, never merged or read back by the write path: segments, top-N statements.
    Record {
        /// A large record stream with storage of its own (`segment`, `log`), not the shared
        /// `records-all` table.
        super_dataset: bool,
    },
}

impl ModelKind {
    /// Whether the model's rows expire after `metricsDataTTL` (else `recordDataTTL`).
    pub fn is_metrics(self) -> bool {
        matches!(self, ModelKind::Metrics { .. })
    }
}

/// The type of a column's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// 32-bit integer.
    Int,
    /// 64-bit integer.
    Long,
    /// 64-bit float.
    Double,
    /// Text (ids, names, JSON, data tables).
    Text,
    /// Raw bytes (a segment's protobuf encoding).
    Bytes,
    /// A list of texts, each searchable on its own (a segment's `key=value` tags).
    TextList,
}

/// What a column is searched by; decides indexes and mappings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indexing {
    /// Stored and returned, never searched (`data_binary`, properties).
    StorageOnly,
    /// Filtered by equality or range within a time range, or sorted on.
    Filter,
    /// Looked up by equality across all time (a trace id): the store keeps a lookup index.
    Lookup,
    /// Searched by a part of its text (endpoint names), besides equality.
    Match,
}

/// One column of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The column's name, as SkyWalking names it (`service_id`, `latency`).
    pub name: &'static str,
    /// Its type.
    pub ty: ColumnType,
    /// How it is searched.
    pub indexing: Indexing,
}

impl Column {
    /// A column.
    pub const fn new(name: &'static str, ty: ColumnType, indexing: Indexing) -> Self {
        Self { name, ty, indexing }
    }
}

/// A stream's storage model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    /// The stream's name (`service_cpm`, `segment`, `service_traffic`).
    pub name: Arc<str>,
    /// How its rows live.
    pub kind: ModelKind,
    /// Its columns besides the id and the time bucket every row has.
    pub columns: Vec<Column>,
}

/// A model as the write and read paths share it.
pub type ModelRef = Arc<Model>;

impl Model {
    /// A model; every column name must be distinct.
    pub fn new(name: impl Into<Arc<str>>, kind: ModelKind, columns: Vec<Column>) -> Result<Self, String> {
        let name = name.into();
        for (index, column) in columns.iter().enumerate() {
            if columns[..index].iter().any(|earlier| earlier.name == column.name) {
                return Err(format!("model `{name}` has two columns named `{}`", column.name));
            }
            if matches!(column.name, "id" | "time_bucket") {
                return Err(format!("model `{name}`: `{}` is every row's own field, not a column", column.name));
            }
        }
        Ok(Self { name, kind, columns })
    }

    /// The position of the column called `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|column| column.name == name)
    }

    /// Checks that `values` fit the model: no more values than columns, each `Null` or of its
    /// column's type; a row that does not is refused as invalid by every provider.
    pub fn check(&self, values: &[Value]) -> Result<(), StorageError> {
        if values.len() > self.columns.len() {
            return Err(StorageError::Invalid(format!(
                "{} values for model `{}`, which has {} columns",
                values.len(),
                self.name,
                self.columns.len()
            )));
        }
        for (value, column) in values.iter().zip(&self.columns) {
            let fits = matches!(
                (value, column.ty),
                (Value::Null, _)
                    | (Value::Int(_), ColumnType::Int)
                    | (Value::Long(_), ColumnType::Long)
                    | (Value::Double(_), ColumnType::Double)
                    | (Value::Text(_), ColumnType::Text)
                    | (Value::Bytes(_), ColumnType::Bytes)
                    | (Value::TextList(_), ColumnType::TextList)
            );
            if !fits {
                return Err(StorageError::Invalid(format!(
                    "column `{}` of model `{}` is {:?}, not {value:?}",
                    column.name, self.name, column.ty
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_are_distinct_and_not_the_row_fields() {
        let text = |name| Column::new(name, ColumnType::Text, Indexing::Filter);
        let kind = ModelKind::Record { super_dataset: true };
        assert!(Model::new("segment", kind, vec![text("trace_id"), text("service_id")]).is_ok());
        let twice = Model::new("segment", kind, vec![text("trace_id"), text("trace_id")]).expect_err("twice");
        assert_eq!(twice, "model `segment` has two columns named `trace_id`");
        assert!(Model::new("segment", kind, vec![text("time_bucket")]).is_err());
    }

    #[test]
    fn values_must_fit_the_columns() {
        let columns = vec![
            Column::new("latency", ColumnType::Int, Indexing::Filter),
            Column::new("data_binary", ColumnType::Bytes, Indexing::StorageOnly),
        ];
        let model = Model::new("segment", ModelKind::Record { super_dataset: true }, columns).expect("valid");
        model.check(&[Value::Int(-3), Value::Bytes(vec![0, 255])]).expect("fits");
        model.check(&[Value::Null]).expect("a missing value fits any column");
        let wrong = model.check(&[Value::Text("3".to_owned())]).expect_err("text in an int column");
        assert!(wrong.to_string().contains("column `latency` of model `segment`"), "{wrong}");
        assert!(model.check(&[Value::Null, Value::Null, Value::Null]).is_err());
    }
}
