//! Evaluation of an expression for one entity over one duration: metric names read the
//! entity's series, `top_n` ranks entities or sampled records, and the operators of
//! [`outcome`](super::outcome) combine the results. Each metric read is one multi-get (a series)
//! or one ranked scan, so an expression costs as many reads as it names metrics. Evaluation
//! recurses once per node of the tree, which [`parse`](super::parse) bounds at
//! [`MAX_DEPTH`](super::parse::MAX_DEPTH) deep.

use std::future::Future;
use std::pin::Pin;

use super::outcome::{self, Outcome, ResultType, Series, Value};
use super::parse::{AttrFilter, Expr, LabelSelector};
use crate::budget::{RequestBudget, Weight};
use crate::context::QueryContext;
use crate::duration::{DurationError, Point, QueryDuration};
use crate::metrics::read;
use crate::metrics::{Entity, MetricInfo, MetricsType};
use crate::schema::common::Scope;

type Evaluated<'a> = Pin<Box<dyn Future<Output = Result<Outcome, String>> + Send + 'a>>;

/// An expression's context: who it is about and when, and the request's budget, which each
/// read reserves its rows from.
pub struct Evaluation<'a> {
    query: &'a QueryContext,
    budget: &'a RequestBudget,
    entity: &'a Entity,
    duration: QueryDuration,
    points: Vec<Point>,
}

impl<'a> Evaluation<'a> {
    /// The context of `entity` over `duration`, within `budget`.
    pub fn new(
        query: &'a QueryContext,
        budget: &'a RequestBudget,
        entity: &'a Entity,
        duration: QueryDuration,
    ) -> Result<Self, DurationError> {
        let points = duration.points(&query.buckets)?;
        Ok(Self { query, budget, entity, duration, points })
    }

    /// Reserves `rows` for a read; the error is a sentence for the result's `error` field.
    async fn reserve(&self, rows: usize, weight: Weight) -> Result<(), String> {
        self.budget.reserve(rows, weight).await.map(|_| ()).map_err(|error| error.to_string())
    }

    /// The value of `expr`; an error is a sentence for the result's `error` field.
    pub fn eval<'b>(&'b self, expr: &'b Expr) -> Evaluated<'b> {
        Box::pin(async move {
            match expr {
                Expr::Metric { name, labels } => self.metric(name, labels).await,
                Expr::Scalar(value) => Ok(Outcome::scalar(*value)),
                Expr::Binary { op, lhs, rhs } => {
                    let lhs = self.eval(lhs).await?;
                    let rhs = self.eval(rhs).await?;
                    outcome::binary(*op, lhs, rhs)
                }
                Expr::Aggregate { func, expr } => outcome::aggregate(*func, self.eval(expr).await?),
                Expr::Math { func, expr } => Ok(outcome::math(*func, self.eval(expr).await?)),
                Expr::Round { expr, places } => Ok(self.eval(expr).await?.map(|value| outcome::round(value, *places))),
                Expr::TopN { metric, n, descending, attrs } => self.top_n(metric, *n, *descending, attrs).await,
                Expr::Relabels { expr, from, to } => outcome::relabel(self.eval(expr).await?, from, to),
            }
        })
    }

    fn lookup(&self, name: &str) -> Result<MetricInfo, String> {
        MetricInfo::lookup(&self.query.catalog, name).ok_or_else(|| format!("Metric: [{name}] does not exist."))
    }

    /// A metric's series for the entity: one, or one per label set the selectors choose.
    async fn metric(&self, name: &str, selectors: &[LabelSelector]) -> Result<Outcome, String> {
        let metric = self.lookup(name)?;
        let labeled = metric.kind == MetricsType::LabeledValue;
        match metric.kind {
            MetricsType::RegularValue | MetricsType::LabeledValue => {}
            MetricsType::SampledRecord => {
                return Err(format!("Metric: [{name}] is topN record, need top_n function for query."));
            }
            MetricsType::Heatmap | MetricsType::Unknown => {
                return Err(format!("Metric: [{name}] is a heatmap, which expressions do not read."));
            }
        }
        let empty = Outcome { ty: ResultType::TimeSeriesValues, series: Vec::new(), labeled };
        // A metric the entity's names cannot identify has no data, as in SkyWalking.
        let Some(entity_id) = self.entity.id(metric.scope) else { return Ok(empty) };
        self.reserve(self.points.len(), Weight::Light).await?;
        let storage = &self.query.storage;
        let series = if labeled {
            let select = |labels: &[(String, String)]| {
                selectors.iter().filter(|selector| !selector.values.is_empty() && selector.name != "_").all(
                    |selector| {
                        labels.iter().any(|(name, value)| *name == selector.name && selector.values.contains(value))
                    },
                )
            };
            let found =
                read::labeled(storage, &metric, &entity_id, &self.points, select).await.map_err(storage_error)?;
            found
                .into_iter()
                .map(|series| {
                    let mut labels = series.labels;
                    labels.sort_by(|a, b| a.0.cmp(&b.0));
                    Series { labels, values: self.timed(&series.values) }
                })
                .collect()
        } else {
            let values = read::series(storage, &metric, &entity_id, &self.points).await.map_err(storage_error)?;
            vec![Series { labels: Vec::new(), values: self.timed(&values) }]
        };
        Ok(Outcome { series, ..empty })
    }

    /// Values with their points' times as ids.
    fn timed(&self, values: &[Option<i64>]) -> Vec<Value> {
        #[allow(clippy::cast_precision_loss)]
        self.points
            .iter()
            .zip(values)
            .map(|(point, value)| Value {
                id: Some(point.millis.to_string()),
                value: value.map(|value| value as f64),
                ..Value::default()
            })
            .collect()
    }

    /// `top_n`: entities ranked by a metric, or an entity's sampled records.
    async fn top_n(&self, name: &str, n: usize, descending: bool, attrs: &[AttrFilter]) -> Result<Outcome, String> {
        if n == 0 {
            return Err("TopN value must be > 0.".to_owned());
        }
        let metric = self.lookup(name)?;
        let storage = &self.query.storage;
        #[allow(clippy::cast_precision_loss)]
        let (ty, values) = match metric.kind {
            MetricsType::RegularValue => {
                // A ranking reads every entity's rows in the duration to answer `n`.
                self.reserve(n, Weight::Heavy).await?;
                let ranked = match read::parent_service(self.entity.service_name.as_deref(), self.entity.normal) {
                    Some(service_id) => {
                        read::rank(storage, &metric, &self.duration, service_id.as_deref(), attrs, n, descending)
                            .await
                            .map_err(|error| error.to_string())?
                    }
                    None => Vec::new(),
                };
                let values = ranked
                    .into_iter()
                    .map(|entity| Value {
                        id: Some(entity.name),
                        owner: Some(entity.owner),
                        value: Some(entity.value as f64),
                        trace_id: None,
                    })
                    .collect();
                (ResultType::SortedList, values)
            }
            MetricsType::SampledRecord => {
                self.reserve(n, Weight::Light).await?;
                let records = match self.entity.id(Scope::Service) {
                    Some(entity_id) => read::records(storage, &metric, &entity_id, &self.duration, n, descending)
                        .await
                        .map_err(storage_error)?,
                    None => Vec::new(),
                };
                let values = records
                    .into_iter()
                    .map(|record| Value {
                        id: Some(record.name),
                        owner: None,
                        value: Some(record.value as f64),
                        trace_id: record.trace_id,
                    })
                    .collect();
                (ResultType::RecordList, values)
            }
            MetricsType::LabeledValue => {
                return Err(format!("Metric: [{name}] is labeled value, does not support top_n query."));
            }
            MetricsType::Heatmap | MetricsType::Unknown => {
                return Err(format!("Metric: [{name}] is a heatmap, which top_n does not rank."));
            }
        };
        Ok(Outcome { ty, series: vec![Series { labels: Vec::new(), values }], labeled: false })
    }
}

fn storage_error(error: oap_storage::StorageError) -> String {
    format!("storage: {error}")
}
