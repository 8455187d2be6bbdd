//! Rows as documents: a row is written as its table's discriminator, its id, its time bucket
//! and one field per non-null column (bytes in base64, as the `binary` type wants); a document's
//! `_source` is read back into a row by the model's column types.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use oap_storage::{ColumnType, Indexing, Model, Row, StorageError, Value};
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value as Json};

use crate::layout::TIME_BUCKET;

/// Elasticsearch's longest document id, in bytes.
pub const MAX_DOCUMENT_ID: usize = 512;

/// Lucene's longest indexed term, in bytes: a longer keyword fails its whole document.
pub const MAX_TERM: usize = 32_766;

/// Refuses, as invalid, a row Elasticsearch would refuse: a document id or an indexed keyword
/// too long to hold. Checked before the row is sent, so the reason is ours and clear.
pub fn check_limits(model: &Model, document_id: &str, row: &Row) -> Result<(), StorageError> {
    let shown = || row.id.chars().take(64).collect::<String>();
    if document_id.len() > MAX_DOCUMENT_ID {
        return Err(StorageError::Invalid(format!(
            "a `{}` row `{}…` has a document id of {} bytes, more than the {MAX_DOCUMENT_ID} Elasticsearch holds",
            model.name,
            shown(),
            document_id.len()
        )));
    }
    for (column, value) in model.columns.iter().zip(&row.values) {
        if column.indexing == Indexing::StorageOnly {
            continue;
        }
        let longest = match value {
            Value::Text(text) => text.len(),
            Value::TextList(list) => list.iter().map(String::len).max().unwrap_or(0),
            _ => 0,
        };
        if longest > MAX_TERM {
            return Err(StorageError::Invalid(format!(
                "a `{}` row `{}…` has a `{}` of {longest} bytes, more than the {MAX_TERM} an indexed keyword holds",
                model.name,
                shown(),
                column.name
            )));
        }
    }
    Ok(())
}

/// How a model's rows are written and read: the fields beside the columns.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    /// The discriminator field and its value (the model's name), for merged tables.
    pub table: Option<(&'static str, &'a str)>,
    /// The field holding the row id.
    pub id: &'a str,
}

/// Appends `row` as a JSON document to `out`; `row` must have passed [`Model::check`].
pub fn write(out: &mut Vec<u8>, model: &Model, fields: Fields<'_>, row: &Row) -> Result<(), StorageError> {
    let invalid = |error: serde_json::Error| StorageError::Invalid(format!("cannot encode a row: {error}"));
    let mut serializer = serde_json::Serializer::new(out);
    let mut map = serializer.serialize_map(None).map_err(invalid)?;
    if let Some((field, name)) = fields.table {
        map.serialize_entry(field, name).map_err(invalid)?;
    }
    map.serialize_entry(fields.id, &row.id).map_err(invalid)?;
    map.serialize_entry(TIME_BUCKET, &row.time_bucket).map_err(invalid)?;
    for (column, value) in model.columns.iter().zip(&row.values) {
        match value {
            Value::Null => {}
            Value::Int(value) => map.serialize_entry(column.name, value).map_err(invalid)?,
            Value::Long(value) => map.serialize_entry(column.name, value).map_err(invalid)?,
            // JSON has no NaN or infinity: such a value is stored as absent.
            Value::Double(value) if !value.is_finite() => {}
            Value::Double(value) => map.serialize_entry(column.name, value).map_err(invalid)?,
            Value::Text(text) => map.serialize_entry(column.name, text).map_err(invalid)?,
            Value::Bytes(bytes) => map.serialize_entry(column.name, &BASE64.encode(bytes)).map_err(invalid)?,
            Value::TextList(list) => map.serialize_entry(column.name, list).map_err(invalid)?,
        }
    }
    map.end().map_err(invalid)
}

/// The row a document's `_source` holds.
pub fn read(model: &Model, fields: Fields<'_>, source: &Map<String, Json>) -> Result<Row, StorageError> {
    let corrupt = |what: &str| StorageError::Corrupt(format!("a `{}` document: {what}", model.name));
    let id = source.get(fields.id).and_then(Json::as_str).ok_or_else(|| corrupt(&format!("no `{}`", fields.id)))?;
    let time_bucket =
        source.get(TIME_BUCKET).and_then(Json::as_i64).ok_or_else(|| corrupt("no whole `time_bucket`"))?;
    let mut values = Vec::with_capacity(model.columns.len());
    for column in &model.columns {
        let value = match source.get(column.name) {
            None | Some(Json::Null) => Some(Value::Null),
            Some(json) => value(column.ty, json),
        };
        values.push(value.ok_or_else(|| corrupt(&format!("`{}` is not {:?}", column.name, column.ty)))?);
    }
    Ok(Row { id: id.to_owned(), time_bucket, values })
}

fn value(ty: ColumnType, json: &Json) -> Option<Value> {
    Some(match ty {
        ColumnType::Int => Value::Int(i32::try_from(whole(json)?).ok()?),
        ColumnType::Long => Value::Long(whole(json)?),
        ColumnType::Double => Value::Double(json.as_f64()?),
        ColumnType::Text => Value::Text(json.as_str()?.to_owned()),
        ColumnType::Bytes => Value::Bytes(BASE64.decode(json.as_str()?).ok()?),
        ColumnType::TextList => match json {
            Json::Array(items) => {
                Value::TextList(items.iter().map(|item| item.as_str().map(str::to_owned)).collect::<Option<_>>()?)
            }
            Json::String(text) => Value::TextList(vec![text.clone()]),
            _ => return None,
        },
    })
}

/// A whole number, also when another server wrote it as `5.0`.
fn whole(json: &Json) -> Option<i64> {
    json.as_i64().or_else(|| {
        let value = json.as_f64()?;
        // Only whole values within i64's range get here.
        #[allow(clippy::cast_possible_truncation)]
        (value.fract() == 0.0 && value.abs() < 9.2e18).then_some(value as i64)
    })
}

#[cfg(test)]
mod tests {
    use oap_storage::builtin::segment;
    use oap_storage::{Column, Indexing, ModelKind};

    use super::*;

    fn fields(model: &Model) -> Fields<'_> {
        Fields { table: Some(("metric_table", &model.name)), id: "entity_id" }
    }

    #[test]
    fn every_value_type_round_trips() {
        let kind = ModelKind::Metrics { time_relative: true, downsampling: true, update: true };
        let columns = vec![
            Column::new("count", ColumnType::Int, Indexing::Filter),
            Column::new("total", ColumnType::Long, Indexing::Filter),
            Column::new("value", ColumnType::Double, Indexing::Filter),
            Column::new("name", ColumnType::Text, Indexing::Match),
            Column::new("raw", ColumnType::Bytes, Indexing::StorageOnly),
            Column::new("tags", ColumnType::TextList, Indexing::Filter),
            Column::new("unset", ColumnType::Long, Indexing::Filter),
        ];
        let model = Model::new("service_max", kind, columns).expect("a model");
        let row = Row {
            id: "cHktYmFja2VuZA==.1".to_owned(),
            time_bucket: 202_611_211_230,
            values: vec![
                Value::Int(-3),
                Value::Long(1 << 40),
                Value::Double(0.1),
                Value::Text("GET:/\"quoted\"".to_owned()),
                Value::Bytes(vec![0, 1, 255]),
                Value::TextList(vec!["a=1".to_owned(), "b=2".to_owned()]),
                Value::Null,
            ],
        };
        let mut out = Vec::new();
        write(&mut out, &model, fields(&model), &row).expect("writes");
        let json: Json = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(
            json,
            serde_json::json!({
                "metric_table": "service_max", "entity_id": "cHktYmFja2VuZA==.1", "time_bucket": 202_611_211_230_i64,
                "count": -3, "total": 1_099_511_627_776_i64, "value": 0.1, "name": "GET:/\"quoted\"",
                "raw": "AAH/", "tags": ["a=1", "b=2"],
            })
        );
        let source = json.as_object().expect("an object");
        assert_eq!(read(&model, fields(&model), source).expect("reads"), row);
    }

    #[test]
    fn numbers_written_by_another_server_and_damaged_documents() {
        let model = segment::MODEL.clone();
        let fields = Fields { table: None, id: "segment_id" };
        let source = serde_json::json!({ "segment_id": "s1", "time_bucket": 20_261_121_000_000_i64, "latency": 5.0 });
        let row = read(&model, fields, source.as_object().expect("object")).expect("a whole double is an int");
        assert_eq!(row.values[segment::col::LATENCY], Value::Int(5));
        let damaged = serde_json::json!({ "segment_id": "s1", "time_bucket": 1, "latency": "slow" });
        let error = read(&model, fields, damaged.as_object().expect("object")).expect_err("text in an int column");
        assert!(matches!(error, StorageError::Corrupt(_)), "{error}");
        let no_id = serde_json::json!({ "time_bucket": 1 });
        assert!(read(&model, fields, no_id.as_object().expect("object")).is_err());
    }
}
