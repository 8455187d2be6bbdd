//! Scans as Elasticsearch searches (docs/reference/pipeline-and-storage.md §11): the model's
//! discriminator, the time range and the filters become a `bool` query of non-scoring clauses; the
//! sort gets the row id and the time bucket as tie-breakers, so that the order is total — the same
//! order as [`ScanQuery::finish`] — and pages can follow each other with `search_after`.

use oap_storage::{Filter, Model, ScanQuery, Sort, SortKey, TimeRange, Value};
use serde_json::{Value as Json, json};

use crate::layout::TIME_BUCKET;

/// A filter's value as JSON (bytes are never searched).
fn json_of(value: &Value) -> Json {
    match value {
        Value::Null | Value::Bytes(_) => Json::Null,
        Value::Int(value) => json!(value),
        Value::Long(value) => json!(value),
        Value::Double(value) => json!(value),
        Value::Text(text) => json!(text),
        Value::TextList(list) => json!(list),
    }
}

/// `text` with the wildcard query's special characters escaped.
fn escape_wildcard(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 2);
    for character in text.chars() {
        if matches!(character, '*' | '?' | '\\') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

fn column_name(model: &Model, column: usize) -> Result<&'static str, String> {
    model
        .columns
        .get(column)
        .map(|column| column.name)
        .ok_or_else(|| format!("model `{}` has no column {column}", model.name))
}

/// The query clause of `filter`.
pub fn clause(model: &Model, filter: &Filter) -> Result<Json, String> {
    Ok(match filter {
        Filter::Eq { column, value: Value::Null } => {
            json!({ "bool": { "must_not": [{ "exists": { "field": column_name(model, *column)? } }] } })
        }
        Filter::Eq { column, value } => json!({ "term": { column_name(model, *column)?: json_of(value) } }),
        Filter::In { column, values } => {
            json!({ "terms": { column_name(model, *column)?: values.iter().map(json_of).collect::<Vec<_>>() } })
        }
        Filter::Range { column, min, max } => {
            let mut bounds = serde_json::Map::new();
            if let Some(min) = min {
                bounds.insert("gte".to_owned(), json!(min));
            }
            if let Some(max) = max {
                bounds.insert("lte".to_owned(), json!(max));
            }
            let name = column_name(model, *column)?;
            if bounds.is_empty() {
                json!({ "exists": { "field": name } })
            } else {
                json!({ "range": { name: bounds } })
            }
        }
        Filter::Contains { column, text } => {
            json!({ "wildcard": { column_name(model, *column)?: { "value": format!("*{}*", escape_wildcard(text)) } } })
        }
        Filter::HasAll { column, texts } => {
            let name = column_name(model, *column)?;
            let terms: Vec<Json> = texts.iter().map(|text| json!({ "term": { name: text } })).collect();
            json!({ "bool": { "filter": terms } })
        }
        Filter::All(filters) => json!({ "bool": { "filter": clauses(model, filters)? } }),
        Filter::Any(filters) => {
            json!({ "bool": { "should": clauses(model, filters)?, "minimum_should_match": 1 } })
        }
        Filter::Not(filter) => json!({ "bool": { "must_not": [clause(model, filter)?] } }),
    })
}

fn clauses(model: &Model, filters: &[Filter]) -> Result<Vec<Json>, String> {
    filters.iter().map(|filter| clause(model, filter)).collect()
}

/// The `bool` query selecting `model`'s rows in `time_range` that pass `filters`.
pub fn query(
    model: &Model,
    table_field: Option<&str>,
    time_range: Option<TimeRange>,
    filters: &[Filter],
) -> Result<Json, String> {
    let mut all = Vec::with_capacity(filters.len() + 2);
    if let Some(field) = table_field {
        all.push(json!({ "term": { field: &*model.name } }));
    }
    if let Some(range) = time_range {
        all.push(json!({ "range": { TIME_BUCKET: { "gte": range.start, "lte": range.end } } }));
    }
    all.extend(clauses(model, filters)?);
    Ok(json!({ "bool": { "filter": all } }))
}

/// The sort of a scan: its key, then the row id and the time bucket, ascending.
pub fn sort(model: &Model, sort: Option<Sort>, id_field: &str) -> Result<Vec<Json>, String> {
    let order = |descending: bool| if descending { "desc" } else { "asc" };
    // A row without the column sorts as the smallest value, as `ScanQuery::finish` sorts it.
    let column = |column: usize, descending: bool| -> Result<Json, String> {
        Ok(json!({ column_name(model, column)?: {
            "order": order(descending),
            "missing": if descending { "_last" } else { "_first" },
            "unmapped_type": "long",
        } }))
    };
    let mut keys = Vec::with_capacity(4);
    let mut by_bucket = false;
    if let Some(Sort { key, descending }) = sort {
        match key {
            SortKey::TimeBucket => {
                keys.push(json!({ TIME_BUCKET: order(descending) }));
                by_bucket = true;
            }
            SortKey::Column(index) => keys.push(column(index, descending)?),
            SortKey::TimeBucketThen(index) => {
                keys.push(json!({ TIME_BUCKET: order(descending) }));
                keys.push(column(index, descending)?);
                by_bucket = true;
            }
        }
    }
    keys.push(json!({ id_field: "asc" }));
    if !by_bucket {
        keys.push(json!({ TIME_BUCKET: "asc" }));
    }
    Ok(keys)
}

/// How many rows a scan fetches in all (its page's end), `None` for every matching row.
pub fn wanted(query: &ScanQuery) -> Option<usize> {
    query.limit.map(|limit| query.offset.saturating_add(limit))
}

#[cfg(test)]
mod tests {
    use oap_storage::builtin::segment::{self, col};

    use super::*;

    #[test]
    fn filters_become_non_scoring_clauses() {
        let model = &segment::MODEL;
        let filters = [
            Filter::Eq { column: col::SERVICE_ID, value: Value::Text("A".to_owned()) },
            Filter::Range { column: col::LATENCY, min: Some(20), max: None },
            Filter::Any(vec![
                Filter::In { column: col::IS_ERROR, values: vec![Value::Int(1)] },
                Filter::Not(Box::new(Filter::Contains { column: col::ENDPOINT_ID, text: "a*b".to_owned() })),
            ]),
            Filter::HasAll { column: col::TAGS, texts: vec!["http.method=GET".to_owned()] },
        ];
        let range = TimeRange { start: 20_261_121_000_000, end: 20_261_121_235_959 };
        let query = query(model, None, Some(range), &filters).expect("a query");
        assert_eq!(
            query,
            json!({ "bool": { "filter": [
                { "range": { "time_bucket": { "gte": 20_261_121_000_000_i64, "lte": 20_261_121_235_959_i64 } } },
                { "term": { "service_id": "A" } },
                { "range": { "latency": { "gte": 20 } } },
                { "bool": { "should": [
                    { "terms": { "is_error": [1] } },
                    { "bool": { "must_not": [{ "wildcard": { "endpoint_id": { "value": "*a\\*b*" } } }] } },
                ], "minimum_should_match": 1 } },
                { "bool": { "filter": [{ "term": { "tags": "http.method=GET" } }] } },
            ] } })
        );
        assert!(super::query(model, None, None, &[Filter::Eq { column: 99, value: Value::Int(1) }]).is_err());
    }

    #[test]
    fn sorts_are_total() {
        let model = &segment::MODEL;
        let newest = Some(Sort { key: SortKey::TimeBucketThen(col::START_TIME), descending: true });
        assert_eq!(
            sort(model, newest, "segment_id").expect("a sort"),
            [
                json!({ "time_bucket": "desc" }),
                json!({ "start_time": { "order": "desc", "missing": "_last", "unmapped_type": "long" } }),
                json!({ "segment_id": "asc" }),
            ]
        );
        assert_eq!(
            sort(model, None, "segment_id").expect("a sort"),
            [json!({ "segment_id": "asc" }), json!({ "time_bucket": "asc" })]
        );
    }
}
