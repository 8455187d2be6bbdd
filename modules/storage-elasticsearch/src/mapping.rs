//! Index templates (docs/reference/pipeline-and-storage.md §10.2): one composable template per
//! table, whose mapping is the union of its models' columns, with the table's settings and alias.
//!
//! Column to field: strings are `keyword`, numbers `integer` / `long` / `double`, bytes
//! `binary`, text lists `keyword` arrays. Storage-only columns are neither indexed nor given
//! doc values; searched numbers keep doc values (they are sorted and averaged), searched
//! keywords do not (they are only matched). A match column is copied to `<column>_match`, a
//! `text` field analysed by `oap_analyzer`. Models sharing a table may name the same column
//! with different number types (`value` is a long for `longAvg`, a double for `maxDouble`): the
//! field takes the widest, so every value keeps its precision up to 2^53.

use std::collections::BTreeMap;

use oap_storage::{ColumnType, Indexing, Model};
use serde_json::{Value as Json, json};

use crate::layout::{TIME_BUCKET, table_field};

/// The analyzer of `_match` fields, SkyWalking's name for a `stop` analyzer.
pub const MATCH_ANALYZER: &str = "oap_analyzer";

/// The suffix of the text field a match column is copied to.
pub const MATCH_SUFFIX: &str = "_match";

/// A field's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FieldType {
    /// `integer`.
    Integer,
    /// `long`.
    Long,
    /// `double`.
    Double,
    /// `keyword`.
    Keyword,
    /// `binary`: base64 in the source, never indexed.
    Binary,
}

impl FieldType {
    fn of(ty: ColumnType) -> Self {
        match ty {
            ColumnType::Int => FieldType::Integer,
            ColumnType::Long => FieldType::Long,
            ColumnType::Double => FieldType::Double,
            ColumnType::Text | ColumnType::TextList => FieldType::Keyword,
            ColumnType::Bytes => FieldType::Binary,
        }
    }

    fn name(self) -> &'static str {
        match self {
            FieldType::Integer => "integer",
            FieldType::Long => "long",
            FieldType::Double => "double",
            FieldType::Keyword => "keyword",
            FieldType::Binary => "binary",
        }
    }

    fn is_number(self) -> bool {
        matches!(self, FieldType::Integer | FieldType::Long | FieldType::Double)
    }
}

/// One field of a table's mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Its type.
    pub ty: FieldType,
    /// Whether it is indexed (searchable).
    pub index: bool,
    /// Whether it has doc values (sortable, aggregatable).
    pub doc_values: bool,
    /// Whether it is copied to a `_match` text field.
    pub matched: bool,
}

impl Field {
    const fn new(ty: FieldType, index: bool, doc_values: bool) -> Self {
        Self { ty, index, doc_values, matched: false }
    }

    fn of_column(ty: ColumnType, indexing: Indexing) -> Self {
        let ty = FieldType::of(ty);
        match indexing {
            Indexing::StorageOnly => Field::new(ty, false, false),
            Indexing::Filter | Indexing::Lookup => Field::new(ty, true, ty.is_number()),
            Indexing::Match => Field { matched: true, ..Field::new(ty, true, ty.is_number()) },
        }
    }

    /// One field for two models' columns of the same name: the wider number type, indexed and
    /// with doc values if either asks.
    fn merge(self, other: Field) -> Result<Field, String> {
        let ty = if self.ty == other.ty {
            self.ty
        } else if self.ty.is_number() && other.ty.is_number() {
            self.ty.max(other.ty)
        } else {
            return Err(format!("`{}` and `{}`", self.ty.name(), other.ty.name()));
        };
        Ok(Field {
            ty,
            index: self.index || other.index,
            doc_values: self.doc_values || other.doc_values,
            matched: self.matched || other.matched,
        })
    }

    fn to_json(self, name: &str) -> Json {
        let mut field = json!({ "type": self.ty.name() });
        if self.ty != FieldType::Binary {
            if !self.index {
                field["index"] = json!(false);
            }
            if !self.doc_values {
                field["doc_values"] = json!(false);
            }
        }
        if self.matched {
            field["copy_to"] = json!(format!("{name}{MATCH_SUFFIX}"));
        }
        field
    }
}

/// The mapping of one table: its fields by name, merged from every model installed in it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableMapping {
    fields: BTreeMap<String, Field>,
}

impl TableMapping {
    /// Adds `model`'s fields, whose row ids live in `id_field`; says whether anything changed,
    /// or why the model cannot share the table.
    pub fn add(&mut self, model: &Model, id_field: &str) -> Result<bool, String> {
        let mut fields = vec![
            (id_field.to_owned(), Field::new(FieldType::Keyword, true, true)),
            (TIME_BUCKET.to_owned(), Field::new(FieldType::Long, true, true)),
        ];
        if let Some(table_field) = table_field(model.kind) {
            fields.push((table_field.to_owned(), Field::new(FieldType::Keyword, true, false)));
        }
        for column in &model.columns {
            if fields.iter().any(|(name, _)| name == column.name) {
                return Err(format!("model `{}`: column `{}` is a field every document has", model.name, column.name));
            }
            if column.name.ends_with(MATCH_SUFFIX) {
                return Err(format!("model `{}`: column `{}` looks like a match field", model.name, column.name));
            }
            fields.push((column.name.to_owned(), Field::of_column(column.ty, column.indexing)));
        }
        let mut merged = self.fields.clone();
        for (name, field) in fields {
            let field = match merged.get(&name) {
                Some(known) => known
                    .merge(field)
                    .map_err(|types| format!("model `{}`: field `{name}` would be both {types}", model.name))?,
                None => field,
            };
            merged.insert(name, field);
        }
        let changed = merged != self.fields;
        self.fields = merged;
        Ok(changed)
    }

    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<Field> {
        self.fields.get(name).copied()
    }

    /// The mapping's `properties`, match fields included.
    pub fn properties(&self) -> serde_json::Map<String, Json> {
        let mut properties = serde_json::Map::new();
        for (name, field) in &self.fields {
            properties.insert(name.clone(), field.to_json(name));
            if field.matched {
                properties
                    .insert(format!("{name}{MATCH_SUFFIX}"), json!({ "type": "text", "analyzer": MATCH_ANALYZER }));
            }
        }
        properties
    }

    fn has_match_fields(&self) -> bool {
        self.fields.values().any(|field| field.matched)
    }
}

/// A table's index settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSettings {
    /// `index.number_of_shards`.
    pub shards: u32,
    /// `index.number_of_replicas`.
    pub replicas: u32,
    /// `index.refresh_interval`, seconds.
    pub refresh_seconds: u64,
}

/// The composable index template of a table: its daily indices (`<alias>-*`) get the
/// settings, the mapping and the alias.
pub fn index_template(alias: &str, mapping: &TableMapping, settings: IndexSettings, priority: u32) -> Json {
    let mut index = json!({
        "number_of_shards": settings.shards,
        "number_of_replicas": settings.replicas,
        "refresh_interval": format!("{}s", settings.refresh_seconds),
    });
    if mapping.has_match_fields() {
        index["analysis"] = json!({ "analyzer": { MATCH_ANALYZER: { "type": "stop" } } });
    }
    json!({
        "index_patterns": [format!("{alias}-*")],
        "priority": priority,
        "template": {
            "settings": { "index": index },
            "mappings": { "properties": mapping.properties() },
            "aliases": { alias: {} },
        },
    })
}

#[cfg(test)]
mod tests {
    use oap_storage::builtin::{segment, traffic};
    use oap_storage::{Column, ModelKind};

    use super::*;

    fn metric(name: &str, columns: Vec<Column>) -> Model {
        let kind = ModelKind::Metrics { time_relative: true, downsampling: true, update: true };
        Model::new(name, kind, columns).expect("a model")
    }

    #[test]
    fn the_segment_table_maps_as_skywalking_s() {
        let mut mapping = TableMapping::default();
        assert_eq!(mapping.add(&segment::MODEL, "segment_id"), Ok(true));
        let properties = Json::Object(mapping.properties());
        assert_eq!(properties["segment_id"], json!({ "type": "keyword" }));
        assert_eq!(properties["trace_id"], json!({ "type": "keyword", "doc_values": false }));
        assert_eq!(properties["start_time"], json!({ "type": "long" }));
        assert_eq!(properties["latency"], json!({ "type": "integer" }));
        assert_eq!(properties["data_binary"], json!({ "type": "binary" }));
        assert_eq!(properties["tags"], json!({ "type": "keyword", "doc_values": false }));
        assert_eq!(properties["time_bucket"], json!({ "type": "long" }));
        assert!(properties.get("metric_table").is_none(), "a super dataset holds one model");
        assert_eq!(mapping.add(&segment::MODEL, "segment_id"), Ok(false), "installing again changes nothing");
    }

    #[test]
    fn merged_tables_widen_numbers_and_copy_match_columns() {
        let mut mapping = TableMapping::default();
        let long = metric("service_cpm", vec![Column::new("value", ColumnType::Long, Indexing::Filter)]);
        let double = metric("service_max", vec![Column::new("value", ColumnType::Double, Indexing::Filter)]);
        let int = metric("service_x", vec![Column::new("value", ColumnType::Int, Indexing::StorageOnly)]);
        for model in [&long, &double, &int] {
            mapping.add(model, "entity_id").expect("numbers merge");
        }
        assert_eq!(mapping.field("value"), Some(Field::new(FieldType::Double, true, true)));
        mapping.add(&traffic::ENDPOINT, "entity_id").expect("endpoint traffic");
        let properties = Json::Object(mapping.properties());
        assert_eq!(properties["metric_table"], json!({ "type": "keyword", "doc_values": false }));
        assert_eq!(properties["entity_id"], json!({ "type": "keyword" }));
        assert_eq!(
            properties["endpoint_traffic_name"],
            json!({ "type": "keyword", "doc_values": false, "copy_to": "endpoint_traffic_name_match" })
        );
        assert_eq!(properties["endpoint_traffic_name_match"], json!({ "type": "text", "analyzer": "oap_analyzer" }));
        let template = index_template(
            "sw_metrics-all",
            &mapping,
            IndexSettings { shards: 1, replicas: 1, refresh_seconds: 30 },
            0,
        );
        assert_eq!(template["index_patterns"], json!(["sw_metrics-all-*"]));
        assert_eq!(template["template"]["aliases"], json!({ "sw_metrics-all": {} }));
        assert_eq!(template["template"]["settings"]["index"]["refresh_interval"], json!("30s"));
        assert_eq!(template["template"]["settings"]["index"]["analysis"]["analyzer"]["oap_analyzer"]["type"], "stop");
    }

    #[test]
    fn clashing_columns_are_refused() {
        let mut mapping = TableMapping::default();
        mapping
            .add(&metric("a", vec![Column::new("value", ColumnType::Long, Indexing::Filter)]), "entity_id")
            .expect("a");
        let text = metric("b", vec![Column::new("value", ColumnType::Text, Indexing::Filter)]);
        let error = mapping.add(&text, "entity_id").expect_err("a number and a keyword");
        assert_eq!(error, "model `b`: field `value` would be both `long` and `keyword`");
        assert_eq!(mapping.field("value").map(|field| field.ty), Some(FieldType::Long), "the table is unchanged");
        let own = metric("c", vec![Column::new("entity_id", ColumnType::Text, Indexing::Filter)]);
        assert!(mapping.add(&own, "entity_id").is_err());
    }
}
