//! The metric queries (metrics-v3, metrics-v2, record): `execExpression` evaluates MQE for an
//! entity over a duration; `typeOfMetrics` and `listMetrics` describe the metrics; the older
//! `readMetricsValue(s)`, `readLabeledMetricsValues`, `sortMetrics`, `readSampledRecords` and
//! `readRecords` read the same data in their older shapes.
//!
//! An expression that cannot be evaluated answers with type `UNKNOWN` and the reason in
//! `error`, never a GraphQL error; a malformed duration is a GraphQL error, as in every query.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

use super::common::{DurationInput, KeyValue, Long, Order, Scope, query_context, request_budget, storage_error};
use crate::budget::{RequestBudget, Weight};
use crate::context::QueryContext;
use crate::duration::QueryDuration;
use crate::metrics::read;
use crate::metrics::{Entity, MetricInfo, MetricsType, Owner};
use crate::mqe::{self, Evaluation, Outcome, ResultType};

/// An expression's answer.
#[derive(SimpleObject, Debug, Clone)]
pub struct ExpressionResult {
    /// Its type; `UNKNOWN` with `error` when it could not be evaluated.
    #[graphql(name = "type")]
    pub ty: ResultType,
    /// One series, or one per label set.
    pub results: Vec<MqeValues>,
    /// Why it could not be evaluated.
    pub error: Option<String>,
    /// The steps of the evaluation, when `debug` asked for them.
    pub debugging_trace: Option<DebuggingTrace>,
}

/// The values of one label set.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "MQEValues")]
pub struct MqeValues {
    /// The labels.
    pub metric: Metadata,
    /// The values.
    pub values: Vec<MqeValue>,
}

/// Labels of a series.
#[derive(SimpleObject, Debug, Clone)]
pub struct Metadata {
    /// Sorted by key.
    pub labels: Vec<KeyValue>,
}

/// One value.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "MQEValue")]
pub struct MqeValue {
    /// The point (epoch ms), or the entity's or record's name; null for an aggregate.
    pub id: Option<ID>,
    /// Whose value it is, in a sorted list.
    pub owner: Option<Owner>,
    /// At most three decimals; null when there is no data.
    pub value: Option<String>,
    /// The trace of a sampled record.
    #[graphql(name = "traceID")]
    pub trace_id: Option<ID>,
}

/// One step of a debugged query.
#[derive(SimpleObject, Debug, Clone)]
pub struct DebuggingSpan {
    /// From 0.
    pub span_id: i32,
    /// -1 for the first.
    pub parent_span_id: i32,
    /// What it did.
    pub operation: String,
    /// Start, epoch ms.
    pub start_time: Long,
    /// End, epoch ms.
    pub end_time: Long,
    /// ms.
    pub duration: Long,
    /// Detail.
    pub msg: Option<String>,
    /// What failed.
    pub error: Option<String>,
}

/// How a debugged query went.
#[derive(SimpleObject, Debug, Clone)]
pub struct DebuggingTrace {
    /// This trace's id.
    pub trace_id: String,
    /// The query's arguments.
    pub condition: String,
    /// Start, epoch ms.
    pub start_time: Long,
    /// End, epoch ms.
    pub end_time: Long,
    /// ms.
    pub duration: Long,
    /// Its steps.
    pub spans: Vec<DebuggingSpan>,
}

impl ExpressionResult {
    fn of(outcome: Result<Outcome, String>) -> Self {
        match outcome {
            Ok(outcome) => Self {
                ty: outcome.ty,
                results: outcome
                    .series
                    .into_iter()
                    .map(|series| MqeValues {
                        metric: Metadata {
                            labels: series
                                .labels
                                .into_iter()
                                .map(|(key, value)| KeyValue { key, value: Some(value) })
                                .collect(),
                        },
                        values: series
                            .values
                            .into_iter()
                            .map(|value| MqeValue {
                                id: value.id.map(ID),
                                owner: value.owner,
                                value: value.value.map(mqe::format),
                                trace_id: value.trace_id.map(ID),
                            })
                            .collect(),
                    })
                    .collect(),
                error: None,
                debugging_trace: None,
            },
            Err(error) => {
                Self { ty: ResultType::Unknown, results: Vec::new(), error: Some(error), debugging_trace: None }
            }
        }
    }
}

/// A metric and its kind.
#[derive(SimpleObject, Debug, Clone)]
pub struct MetricDefinition {
    /// The name.
    pub name: String,
    /// The kind of value.
    #[graphql(name = "type")]
    pub ty: MetricsType,
    /// The scope catalog (`SERVICE`, `ENDPOINT_RELATION`, …).
    pub catalog: Option<String>,
}

/// A metric of an entity.
#[derive(InputObject, Debug, Clone)]
pub struct MetricsCondition {
    /// The metric.
    pub name: String,
    /// The entity.
    pub entity: Entity,
}

/// A ranking of a metric's entities.
#[derive(InputObject, Debug, Clone)]
#[graphql(name = "TopNCondition")]
pub struct TopNCondition {
    /// The metric.
    pub name: String,
    /// Rank only this service's instances or endpoints; all when null.
    pub parent_service: Option<String>,
    /// Whether the parent service is a real one.
    pub normal: Option<bool>,
    /// Ignored: the metric's definition decides.
    pub scope: Option<Scope>,
    /// How many.
    pub top_n: i32,
    /// Largest (`DES`) or smallest first.
    pub order: Order,
}

/// An entity's sampled records.
#[derive(InputObject, Debug, Clone)]
pub struct RecordCondition {
    /// The top-N stream.
    pub name: String,
    /// Whose records.
    pub parent_entity: Entity,
    /// How many.
    pub top_n: i32,
    /// Slowest (`DES`) or fastest first.
    pub order: Order,
}

/// A value at a point.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "KVInt")]
pub struct KvInt {
    /// `<bucket>_<entity id>`.
    pub id: ID,
    /// The value; the default (0) when there is no data.
    pub value: Long,
    /// Whether there was no data.
    pub is_empty_value: bool,
}

/// Values at points.
#[derive(SimpleObject, Debug, Clone, Default)]
pub struct IntValues {
    /// One per point.
    pub values: Vec<KvInt>,
}

/// A series, with its label.
#[derive(SimpleObject, Debug, Clone, Default)]
pub struct MetricsValues {
    /// The label asked for; null for a regular metric.
    pub label: Option<String>,
    /// The values.
    pub values: IntValues,
}

/// A value that may be absent.
#[derive(SimpleObject, Debug, Clone)]
pub struct NullableValue {
    /// The value; 0 when there is no data.
    pub value: Long,
    /// Whether there was no data.
    pub is_empty_value: bool,
}

/// An entity of a ranking, or a sampled record.
#[derive(SimpleObject, Debug, Clone)]
pub struct SelectedRecord {
    /// What to show.
    pub name: String,
    /// The entity's or record's id.
    pub id: ID,
    /// The value.
    pub value: Option<String>,
    /// The trace of a record.
    pub ref_id: Option<ID>,
}

/// A sampled record.
#[derive(SimpleObject, Debug, Clone)]
pub struct Record {
    /// The statement or command.
    pub name: String,
    /// The record's id.
    pub id: ID,
    /// Its latency.
    pub value: Option<String>,
    /// Its trace.
    pub ref_id: Option<ID>,
}

/// The values of a metric of an entity at each point, as `KVInt`s: the default with
/// `isEmptyValue` where there is no data, and only those when the metric or the entity is not
/// one the node knows.
async fn int_values(
    query: &QueryContext,
    budget: &RequestBudget,
    condition: &MetricsCondition,
    duration: &QueryDuration,
) -> async_graphql::Result<Vec<(String, Option<i64>)>> {
    let points = duration.points(&query.buckets)?;
    let metric = MetricInfo::lookup(&query.catalog, &condition.name);
    let entity_id = metric.as_ref().and_then(|metric| condition.entity.id(metric.scope));
    let values = match (&metric, &entity_id) {
        (Some(metric), Some(entity_id)) if metric.kind == MetricsType::RegularValue => {
            budget.reserve(points.len(), Weight::Light).await?;
            read::series(&query.storage, metric, entity_id, &points).await.map_err(storage_error)?
        }
        _ => vec![None; points.len()],
    };
    let owner = point_owner(metric.is_some(), entity_id);
    Ok(points.iter().zip(values).map(|(point, value)| (format!("{}_{owner}", point.bucket), value)).collect())
}

/// What a `KVInt` id names after its bucket: the entity, or why there is none, as SkyWalking
/// writes it.
fn point_owner(known_metric: bool, entity_id: Option<String>) -> String {
    entity_id.unwrap_or_else(|| if known_metric { "ILLEGAL_ENTITY" } else { "UNKNOWN_METRIC_NAME" }.to_owned())
}

fn kv_ints(values: Vec<(String, Option<i64>)>) -> IntValues {
    IntValues {
        values: values
            .into_iter()
            .map(|(id, value)| KvInt { id: ID(id), value: Long(value.unwrap_or(0)), is_empty_value: value.is_none() })
            .collect(),
    }
}

/// The average of the values with data, truncated; `None` when none has.
fn average(values: &[(String, Option<i64>)]) -> Option<i64> {
    let numbers: Vec<i64> = values.iter().filter_map(|(_, value)| *value).collect();
    let count = i64::try_from(numbers.len()).ok().filter(|count| *count > 0)?;
    Some(numbers.iter().sum::<i64>() / count)
}

fn limit(top_n: i32) -> usize {
    usize::try_from(top_n).unwrap_or(0)
}

/// The metric queries.
#[derive(Default)]
pub struct MetricsQuery;

#[Object]
impl MetricsQuery {
    /// What kind of value a metric holds; `UNKNOWN` for a name the node does not have.
    async fn type_of_metrics(&self, ctx: &Context<'_>, name: String) -> MetricsType {
        MetricInfo::lookup(&query_context(ctx).catalog, &name).map_or(MetricsType::Unknown, |metric| metric.kind)
    }

    /// The node's metrics by name, those whose whole name matches `regex` when it is given.
    async fn list_metrics(
        &self,
        ctx: &Context<'_>,
        regex: Option<String>,
    ) -> async_graphql::Result<Vec<MetricDefinition>> {
        let pattern = match regex.filter(|regex| !regex.is_empty()) {
            Some(regex) => Some(
                regex::Regex::new(&format!("^(?:{regex})$"))
                    .map_err(|error| format!("`{regex}` is not a regular expression: {error}"))?,
            ),
            None => None,
        };
        let mut metrics: Vec<MetricDefinition> = MetricInfo::all(&query_context(ctx).catalog)
            .into_iter()
            .filter(|metric| pattern.as_ref().is_none_or(|pattern| pattern.is_match(metric.name())))
            .map(|metric| MetricDefinition {
                name: metric.name().to_owned(),
                ty: metric.kind,
                catalog: Some(metric.catalog().to_owned()),
            })
            .collect();
        metrics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(metrics)
    }

    /// Evaluates an MQE expression for `entity` over `duration`.
    async fn exec_expression(
        &self,
        ctx: &Context<'_>,
        expression: String,
        entity: Entity,
        duration: DurationInput,
        #[graphql(desc = "Accepted; no debugging trace is recorded.")] debug: Option<bool>,
        #[graphql(desc = "Accepted; ignored.")] dump_db_rsp: Option<bool>,
    ) -> async_graphql::Result<ExpressionResult> {
        let _ = (debug, dump_db_rsp);
        let query = query_context(ctx);
        let duration = duration.resolve(query)?;
        let evaluation = Evaluation::new(query, request_budget(ctx)?, &entity, duration)?;
        let outcome = match mqe::parse(&expression) {
            Ok(expr) => evaluation.eval(&expr).await,
            Err(error) => Err(error),
        };
        Ok(ExpressionResult::of(outcome))
    }

    /// The average of a metric of an entity over the duration; 0 when there is no data.
    async fn read_metrics_value(
        &self,
        ctx: &Context<'_>,
        condition: MetricsCondition,
        duration: DurationInput,
    ) -> async_graphql::Result<Long> {
        let query = query_context(ctx);
        let values = int_values(query, request_budget(ctx)?, &condition, &duration.resolve(query)?).await?;
        Ok(Long(average(&values).unwrap_or(0)))
    }

    /// The same, saying whether there was any data.
    async fn read_nullable_metrics_value(
        &self,
        ctx: &Context<'_>,
        condition: MetricsCondition,
        duration: DurationInput,
    ) -> async_graphql::Result<NullableValue> {
        let query = query_context(ctx);
        let values = int_values(query, request_budget(ctx)?, &condition, &duration.resolve(query)?).await?;
        let average = average(&values);
        Ok(NullableValue { value: Long(average.unwrap_or(0)), is_empty_value: average.is_none() })
    }

    /// A metric of an entity at each point of the duration.
    async fn read_metrics_values(
        &self,
        ctx: &Context<'_>,
        condition: MetricsCondition,
        duration: DurationInput,
    ) -> async_graphql::Result<MetricsValues> {
        let query = query_context(ctx);
        let values = int_values(query, request_budget(ctx)?, &condition, &duration.resolve(query)?).await?;
        Ok(MetricsValues { label: None, values: kv_ints(values) })
    }

    /// A labeled metric of an entity at each point, one series per label value asked for
    /// (`["50", "99"]` for a percentile's p50 and p99).
    async fn read_labeled_metrics_values(
        &self,
        ctx: &Context<'_>,
        condition: MetricsCondition,
        labels: Vec<String>,
        duration: DurationInput,
    ) -> async_graphql::Result<Vec<MetricsValues>> {
        let query = query_context(ctx);
        let duration = duration.resolve(query)?;
        let points = duration.points(&query.buckets)?;
        let metric = MetricInfo::lookup(&query.catalog, &condition.name);
        let entity_id = metric.as_ref().and_then(|metric| condition.entity.id(metric.scope));
        let found = match (&metric, &entity_id) {
            (Some(metric), Some(entity_id)) if metric.kind == MetricsType::LabeledValue => {
                request_budget(ctx)?.reserve(points.len(), Weight::Light).await?;
                read::labeled(&query.storage, metric, entity_id, &points, |_| true).await.map_err(storage_error)?
            }
            _ => Vec::new(),
        };
        let owner = point_owner(metric.is_some(), entity_id);
        Ok(labels
            .into_iter()
            .map(|label| {
                let series = found.iter().find(|series| series.labels.iter().any(|(_, value)| *value == label));
                let values = points
                    .iter()
                    .enumerate()
                    .map(|(index, point)| {
                        let value = series.and_then(|series| series.values.get(index).copied().flatten());
                        (format!("{}_{owner}", point.bucket), value)
                    })
                    .collect();
                MetricsValues { label: Some(label), values: kv_ints(values) }
            })
            .collect())
    }

    /// A metric's entities ranked by their average over the duration.
    async fn sort_metrics(
        &self,
        ctx: &Context<'_>,
        condition: TopNCondition,
        duration: DurationInput,
    ) -> async_graphql::Result<Vec<SelectedRecord>> {
        let query = query_context(ctx);
        let duration = duration.resolve(query)?;
        let Some(metric) = MetricInfo::lookup(&query.catalog, &condition.name) else { return Ok(Vec::new()) };
        if metric.kind != MetricsType::RegularValue {
            return Ok(Vec::new());
        }
        let Some(service_id) = read::parent_service(condition.parent_service.as_deref(), condition.normal) else {
            return Ok(Vec::new());
        };
        let descending = condition.order == Order::Des;
        // A ranking reads every entity's rows in the duration to answer `topN`.
        request_budget(ctx)?.reserve(limit(condition.top_n), Weight::Heavy).await?;
        let ranked = read::rank(
            &query.storage,
            &metric,
            &duration,
            service_id.as_deref(),
            &[],
            limit(condition.top_n),
            descending,
        )
        .await
        .map_err(|error| error.to_string())?;
        Ok(ranked
            .into_iter()
            .map(|entity| SelectedRecord {
                name: entity.name,
                id: ID(entity.id),
                value: Some(entity.value.to_string()),
                ref_id: None,
            })
            .collect())
    }

    /// Deprecated since SkyWalking 9.3.0 for `readRecords`: a service's sampled records.
    async fn read_sampled_records(
        &self,
        ctx: &Context<'_>,
        condition: TopNCondition,
        duration: DurationInput,
    ) -> async_graphql::Result<Vec<SelectedRecord>> {
        let Some(service_name) = condition.parent_service else { return Ok(Vec::new()) };
        let parent_entity = Entity { service_name: Some(service_name), normal: condition.normal, ..Entity::default() };
        let condition =
            RecordCondition { name: condition.name, parent_entity, top_n: condition.top_n, order: condition.order };
        let records = self.read_records(ctx, condition, duration).await?;
        Ok(records
            .into_iter()
            .map(|record| SelectedRecord {
                name: record.name,
                id: record.id,
                value: record.value,
                ref_id: record.ref_id,
            })
            .collect())
    }

    /// An entity's sampled records of a top-N stream, slowest or fastest first.
    async fn read_records(
        &self,
        ctx: &Context<'_>,
        condition: RecordCondition,
        duration: DurationInput,
    ) -> async_graphql::Result<Vec<Record>> {
        let query = query_context(ctx);
        let duration = duration.resolve(query)?;
        let Some(metric) = MetricInfo::lookup(&query.catalog, &condition.name) else { return Ok(Vec::new()) };
        let Some(entity_id) = condition.parent_entity.id(metric.scope) else { return Ok(Vec::new()) };
        if metric.kind != MetricsType::SampledRecord {
            return Ok(Vec::new());
        }
        let descending = condition.order == Order::Des;
        request_budget(ctx)?.reserve(limit(condition.top_n), Weight::Light).await?;
        let records = read::records(&query.storage, &metric, &entity_id, &duration, limit(condition.top_n), descending)
            .await
            .map_err(storage_error)?;
        Ok(records
            .into_iter()
            .map(|record| Record {
                name: record.name,
                id: ID(record.id),
                value: Some(record.value.to_string()),
                ref_id: record.trace_id.map(ID),
            })
            .collect())
    }
}
