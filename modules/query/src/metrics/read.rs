//! The reads every metric query shares, MQE's and the older `readMetricsValues` family's: a
//! metric's value of one entity at each point of a duration; its labeled values; the entities
//! of a metric ranked by their average over a duration (`top_n`, `sortMetrics`); and an
//! entity's slowest sampled records (`top_n` of a top-N stream, `readRecords`).
//!
//! Values are integers, as SkyWalking reads them (a `double_value` is truncated); a point with
//! no row, or a row without the value, is `None`, which the callers show as their empty value.

use std::collections::{BTreeMap, HashMap};

use oap_model::ids;
use oap_storage::builtin::top_n::col;
use oap_storage::dao::Top;
use oap_storage::{Filter, Row, StorageError, StorageRef, Value};

use super::{MetricInfo, Owner};
use crate::duration::{Point, QueryDuration};
use crate::mqe::AttrFilter;
use crate::schema::common::Scope;
use crate::schema::metadata::split_child_id;

/// A read that cannot be done.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The question is not one the metric can answer.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}

/// The metric's value of `entity_id` at each point.
pub async fn series(
    storage: &StorageRef,
    metric: &MetricInfo,
    entity_id: &str,
    points: &[Point],
) -> Result<Vec<Option<i64>>, StorageError> {
    let buckets: Vec<i64> = points.iter().map(|point| point.bucket).collect();
    let rows = storage.read_points(&metric.model, entity_id, &buckets).await?;
    Ok(rows.iter().map(|row| row.as_ref().and_then(|row| number(row.value(metric.value_column)))).collect())
}

/// One label set of a labeled metric and its value at each point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabeledSeries {
    /// The labels, in the order stored (`[("p", "50")]`).
    pub labels: Vec<(String, String)>,
    /// The value at each point.
    pub values: Vec<Option<i64>>,
}

/// The labeled values of `entity_id` at each point, one series per label set that `select`
/// accepts and that some point holds, ordered by the stored label text (`{p=50}`, `{p=75}`, …).
pub async fn labeled(
    storage: &StorageRef,
    metric: &MetricInfo,
    entity_id: &str,
    points: &[Point],
    select: impl Fn(&[(String, String)]) -> bool,
) -> Result<Vec<LabeledSeries>, StorageError> {
    let buckets: Vec<i64> = points.iter().map(|point| point.bucket).collect();
    let rows = storage.read_points(&metric.model, entity_id, &buckets).await?;
    let tables: Vec<HashMap<String, i64>> = rows
        .iter()
        .map(|row| {
            row.as_ref().and_then(|row| row.value(metric.value_column).as_str()).map(data_table).unwrap_or_default()
        })
        .collect();
    let mut keys: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
    for key in tables.iter().flat_map(HashMap::keys) {
        if !keys.contains_key(key.as_str())
            && let Some(labels) = parse_labels(key)
            && select(&labels)
        {
            keys.insert(key, labels);
        }
    }
    Ok(keys
        .into_iter()
        .map(|(key, labels)| LabeledSeries {
            labels,
            values: tables.iter().map(|table| table.get(key).copied()).collect(),
        })
        .collect())
}

/// The service a ranking is limited to: `Some(None)` for all services, `Some(Some(id))` for one,
/// and `None` — rank nothing, as SkyWalking does — for a service named without `normal`.
pub fn parent_service(name: Option<&str>, normal: Option<bool>) -> Option<Option<String>> {
    match (name, normal) {
        (Some(name), Some(normal)) => Some(Some(ids::service_id(name, normal))),
        (Some(_), None) => None,
        (None, _) => Some(None),
    }
}

/// An entity of a ranking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranked {
    /// Its id.
    pub id: String,
    /// What the UI shows: the name, prefixed by the service's in a global list of instances or
    /// endpoints (`svc - /users`).
    pub name: String,
    /// Its average over the duration.
    pub value: i64,
    /// Whose it is.
    pub owner: Owner,
}

/// The `n` entities of `metric` with the largest (`descending`) or smallest average over the
/// duration — of one service when `service_id` is given, else of all — among those whose
/// decorator columns pass `attrs`.
pub async fn rank(
    storage: &StorageRef,
    metric: &MetricInfo,
    duration: &QueryDuration,
    service_id: Option<&str>,
    attrs: &[AttrFilter],
    n: usize,
    descending: bool,
) -> Result<Vec<Ranked>, ReadError> {
    let mut filters = Vec::with_capacity(attrs.len() + 1);
    for attr in attrs {
        let name = format!("attr{}", attr.index);
        let column = metric.model.column(&name).ok_or_else(|| {
            ReadError::Invalid(format!(
                "The attribute [{name}] is not a queryable column of metric [{}], so it can not be used as a top_n \
                 condition.",
                metric.name()
            ))
        })?;
        let equal = Filter::Eq { column, value: Value::Text(attr.value.clone()) };
        filters.push(if attr.equal { equal } else { Filter::Not(Box::new(equal)) });
    }
    // A service metric has no `service_id` column: its one entity is the service itself.
    let mut only = None;
    if let Some(service_id) = service_id {
        match metric.model.column("service_id") {
            Some(column) => filters.push(Filter::Eq { column, value: Value::Text(service_id.to_owned()) }),
            None => only = Some(service_id),
        }
    }
    let limit = if only.is_some() { usize::MAX } else { n };
    let top = Top { range: duration.bucket_range(), limit, descending };
    let ranked = storage.sort_metrics(&metric.model, metric.value_column, filters, top).await?;
    Ok(ranked
        .into_iter()
        .filter(|entity| only.is_none_or(|only| entity.entity_id == only))
        .take(n)
        .map(|entity| {
            let (name, owner) = describe(metric.scope, &entity.entity_id, service_id.is_none());
            Ranked { id: entity.entity_id, name, value: entity.average, owner }
        })
        .collect())
}

/// The name and owner of an entity id of `scope`; `global` prefixes child names with their
/// service's.
fn describe(scope: Scope, id: &str, global: bool) -> (String, Owner) {
    let mut owner = Owner { scope: Some(scope), ..Owner::default() };
    let service = |service_id: &str, owner: &mut Owner| {
        let (name, normal) = ids::parse_service_id(service_id).unzip();
        owner.service_id = Some(service_id.into());
        owner.service_name.clone_from(&name);
        owner.normal = normal;
        name.unwrap_or_default()
    };
    let name = match scope {
        Scope::Service => service(id, &mut owner),
        Scope::ServiceInstance | Scope::Endpoint => match split_child_id(id) {
            Some((service_id, child)) => {
                let service_name = service(service_id, &mut owner);
                if scope == Scope::ServiceInstance {
                    owner.service_instance_id = Some(id.into());
                    owner.service_instance_name = Some(child.clone());
                } else {
                    owner.endpoint_id = Some(id.into());
                    owner.endpoint_name = Some(child.clone());
                }
                if global { format!("{service_name} - {child}") } else { child }
            }
            None => id.to_owned(),
        },
        _ => "Unknown".to_owned(),
    };
    (name, owner)
}

/// A sampled record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sampled {
    /// The record's id.
    pub id: String,
    /// What it sampled: the statement or command.
    pub name: String,
    /// Its latency, ms.
    pub value: i64,
    /// The trace it came from.
    pub trace_id: Option<String>,
}

/// The `n` slowest (`descending`) or fastest records of `metric` for `entity_id` in the duration.
pub async fn records(
    storage: &StorageRef,
    metric: &MetricInfo,
    entity_id: &str,
    duration: &QueryDuration,
    n: usize,
    descending: bool,
) -> Result<Vec<Sampled>, StorageError> {
    let top = Top { range: duration.second_range(), limit: n, descending };
    let rows = storage.top_records(&metric.model, col::ENTITY_ID, entity_id, metric.value_column, top).await?;
    Ok(rows.into_iter().map(sampled).collect())
}

fn sampled(row: Row) -> Sampled {
    let text = |column: usize| row.value(column).as_str().unwrap_or_default().to_owned();
    let trace_id = Some(text(col::TRACE_ID)).filter(|id| !id.is_empty());
    Sampled { name: text(col::STATEMENT), value: row.long(col::LATENCY), trace_id, id: row.id }
}

/// A stored number as an integer; a double is truncated, as SkyWalking's `longValue()` does.
fn number(value: &Value) -> Option<i64> {
    match value {
        #[allow(clippy::cast_possible_truncation)]
        Value::Double(value) => Some(*value as i64),
        other => other.as_i64(),
    }
}

/// A `DataTable` text (`{p=50},120|{p=75},240`) as its entries.
fn data_table(text: &str) -> HashMap<String, i64> {
    text.split('|')
        .filter_map(|entry| {
            let (key, value) = entry.rsplit_once(',')?;
            Some((key.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// The labels of a labeled key (`{p=50}`, `{a=1,b=2}`); `None` for a key that is not one.
fn parse_labels(key: &str) -> Option<Vec<(String, String)>> {
    let inner = key.strip_prefix('{')?.strip_suffix('}')?;
    inner
        .split(',')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').map(|(name, value)| (name.to_owned(), value.to_owned())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labeled_keys_and_tables_parse() {
        assert_eq!(parse_labels("{p=50}"), Some(vec![("p".to_owned(), "50".to_owned())]));
        assert_eq!(parse_labels("{a=1,b=x}").map(|labels| labels.len()), Some(2));
        assert_eq!(parse_labels("50"), None, "an unlabeled key");
        let table = data_table("{p=50},120|{p=75},240|broken");
        assert_eq!((table.get("{p=50}"), table.get("{p=75}"), table.len()), (Some(&120), Some(&240), 2));
    }

    #[test]
    fn ranked_entities_are_named_for_their_scope() {
        let service = ids::service_id("py-backend", true);
        let endpoint = ids::endpoint_id(&service, "/users");
        let (name, owner) = describe(Scope::Endpoint, &endpoint, true);
        assert_eq!(name, "py-backend - /users");
        assert_eq!(owner.service_name.as_deref(), Some("py-backend"));
        assert_eq!(owner.endpoint_name.as_deref(), Some("/users"));
        assert_eq!(owner.normal, Some(true));
        assert_eq!(describe(Scope::Endpoint, &endpoint, false).0, "/users", "within a service, no prefix");
        assert_eq!(describe(Scope::Service, &service, true).0, "py-backend");
        assert_eq!(describe(Scope::ServiceRelation, "a-b", true).0, "Unknown");
    }
}
