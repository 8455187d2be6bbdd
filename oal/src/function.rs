//! The aggregation functions (docs/reference/oal.md §3): what one source adds (the entrance), how
//! two partial values merge, and what is stored and queried (calculate), at minute, hour and day.
//!
//! A function is a [`Function`], chosen when a script compiles; a partial value is a
//! [`MetricValue`], a closed enum, so merging dispatches statically. The hard-coded streams'
//! values (component sets, pings, aliases) are variants of the same enum, so L1 and L2 handle
//! every stream alike.

pub mod dataset;

use oap_model::Granularity;
use oap_storage_model::{ColumnType, Indexing, Value};
use serde::{Deserialize, Serialize};

pub use self::dataset::Dataset;

/// An aggregation function with its compile-time arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `longAvg()`.
    LongAvg,
    /// `doubleAvg()`.
    DoubleAvg,
    /// `cpm()`.
    Cpm,
    /// `count()`.
    Count,
    /// `sum()`.
    Sum,
    /// `max()`.
    Max,
    /// `min()`.
    Min,
    /// `maxDouble()`.
    MaxDouble,
    /// `minDouble()`.
    MinDouble,
    /// `percent(cond)`.
    Percent,
    /// `rate(numerator, denominator)`.
    Rate,
    /// `apdex(name, status)`.
    Apdex,
    /// `percentile2(precision)`.
    Percentile2 {
        /// Bucket width, ms.
        precision: i32,
    },
    /// `histogram(step, maxNumOfSteps)`.
    Histogram {
        /// Bucket width.
        step: i32,
        /// The last bucket is `max_steps * step`.
        max_steps: i32,
    },
}

/// The ranks `percentile2` reports.
pub const PERCENTILE_RANKS: [i64; 5] = [50, 75, 90, 95, 99];

type ColumnSpec = (&'static str, ColumnType, Indexing);

impl Function {
    /// The function OAL names `name`; `None` for an unknown or unsupported name.
    pub fn of_name(name: &str) -> Option<FunctionName> {
        Some(match name {
            "longAvg" => FunctionName::Ready(Function::LongAvg),
            "doubleAvg" => FunctionName::Ready(Function::DoubleAvg),
            "cpm" => FunctionName::Ready(Function::Cpm),
            "count" => FunctionName::Ready(Function::Count),
            "sum" => FunctionName::Ready(Function::Sum),
            "max" => FunctionName::Ready(Function::Max),
            "min" => FunctionName::Ready(Function::Min),
            "maxDouble" => FunctionName::Ready(Function::MaxDouble),
            "minDouble" => FunctionName::Ready(Function::MinDouble),
            "percent" => FunctionName::Ready(Function::Percent),
            "rate" => FunctionName::Ready(Function::Rate),
            "apdex" => FunctionName::Ready(Function::Apdex),
            "percentile2" => FunctionName::Percentile2,
            "histogram" => FunctionName::Histogram,
            "percentile" => {
                FunctionName::Unsupported("`percentile` was replaced by `percentile2` in SkyWalking 10.0.0")
            }
            "p99" | "p95" | "p90" | "p75" | "p50" => {
                FunctionName::Unsupported("the `pNN` functions were removed in SkyWalking 9.2.0; use `percentile2`")
            }
            "labelCount" | "labelAvg" => FunctionName::Unsupported("labeled functions are not supported by oap-rs yet"),
            _ => return None,
        })
    }

    /// The columns the function stores, in order; the query reads [`Function::value_column`].
    pub fn columns(self) -> &'static [ColumnSpec] {
        use ColumnType::{Double, Int, Long, Text};
        use Indexing::{Filter, StorageOnly};
        match self {
            Function::LongAvg => {
                &[("summation", Long, StorageOnly), ("count", Long, StorageOnly), ("value", Long, Filter)]
            }
            Function::DoubleAvg => &[
                ("double_summation", Double, StorageOnly),
                ("count", Long, StorageOnly),
                ("double_value", Double, Filter),
            ],
            Function::Cpm => &[("total", Long, StorageOnly), ("value", Long, Filter)],
            Function::Count | Function::Sum | Function::Max | Function::Min => &[("value", Long, Filter)],
            Function::MaxDouble | Function::MinDouble => &[("value", Double, Filter)],
            Function::Percent => {
                &[("total", Long, StorageOnly), ("match", Long, StorageOnly), ("percentage", Int, Filter)]
            }
            Function::Rate => {
                &[("numerator", Long, Filter), ("denominator", Long, Filter), ("percentage", Int, Filter)]
            }
            Function::Apdex => &[
                ("total_num", Long, StorageOnly),
                ("s_num", Long, StorageOnly),
                ("t_num", Long, StorageOnly),
                ("int_value", Int, Filter),
            ],
            Function::Percentile2 { .. } => &[
                ("precision", Int, StorageOnly),
                ("dataset", Text, StorageOnly),
                ("datatable_value", Text, StorageOnly),
            ],
            Function::Histogram { .. } => &[("dataset", Text, StorageOnly)],
        }
    }

    /// The column the query API reads.
    pub fn value_column(self) -> &'static str {
        match self {
            Function::DoubleAvg => "double_value",
            Function::Percent | Function::Rate => "percentage",
            Function::Apdex => "int_value",
            Function::Percentile2 { .. } => "datatable_value",
            Function::Histogram { .. } => "dataset",
            _ => "value",
        }
    }

    /// The value before any source was added.
    pub fn empty(self) -> MetricValue {
        match self {
            Function::LongAvg => MetricValue::LongAvg { summation: 0, count: 0 },
            Function::DoubleAvg => MetricValue::DoubleAvg { summation: 0.0, count: 0 },
            Function::Cpm => MetricValue::Cpm { total: 0 },
            Function::Count => MetricValue::Count(0),
            Function::Sum => MetricValue::Sum(0),
            Function::Max => MetricValue::Max(i64::MIN),
            Function::Min => MetricValue::Min(i64::MAX),
            Function::MaxDouble => MetricValue::MaxDouble(f64::NEG_INFINITY),
            Function::MinDouble => MetricValue::MinDouble(f64::INFINITY),
            Function::Percent => MetricValue::Percent { matched: 0, total: 0 },
            Function::Rate => MetricValue::Rate { numerator: 0, denominator: 0 },
            Function::Apdex => MetricValue::Apdex { total: 0, satisfied: 0, tolerating: 0 },
            Function::Percentile2 { precision } => MetricValue::Percentile2 { precision, dataset: Dataset::new() },
            Function::Histogram { step, max_steps } => {
                let dataset = (0..=i64::from(max_steps)).map(|k| (k * i64::from(step), 0)).collect();
                MetricValue::Histogram { step, max_steps, dataset }
            }
        }
    }

    /// A stored value read back from its columns (in [`Function::columns`] order).
    pub fn read(self, values: &[Value]) -> MetricValue {
        let long = |index: usize| values.get(index).and_then(Value::as_i64).unwrap_or_default();
        let double = |index: usize| match values.get(index) {
            Some(Value::Double(value)) => *value,
            #[allow(clippy::cast_precision_loss)]
            Some(other) => other.as_i64().unwrap_or_default() as f64,
            None => 0.0,
        };
        let table = |index: usize| values.get(index).and_then(Value::as_str).map(parse_dataset).unwrap_or_default();
        match self {
            Function::LongAvg => MetricValue::LongAvg { summation: long(0), count: long(1) },
            Function::DoubleAvg => MetricValue::DoubleAvg { summation: double(0), count: long(1) },
            Function::Cpm => MetricValue::Cpm { total: long(0) },
            Function::Count => MetricValue::Count(long(0)),
            Function::Sum => MetricValue::Sum(long(0)),
            Function::Max => MetricValue::Max(long(0)),
            Function::Min => MetricValue::Min(long(0)),
            Function::MaxDouble => MetricValue::MaxDouble(double(0)),
            Function::MinDouble => MetricValue::MinDouble(double(0)),
            Function::Percent => MetricValue::Percent { total: long(0), matched: long(1) },
            Function::Rate => MetricValue::Rate { numerator: long(0), denominator: long(1) },
            Function::Apdex => MetricValue::Apdex { total: long(0), satisfied: long(1), tolerating: long(2) },
            Function::Percentile2 { precision } => MetricValue::Percentile2 { precision, dataset: table(1) },
            Function::Histogram { step, max_steps } => MetricValue::Histogram { step, max_steps, dataset: table(0) },
        }
    }
}

/// What a function name in a script means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionName {
    /// A function without arguments that shape it.
    Ready(Function),
    /// `percentile2`, whose precision is its argument.
    Percentile2,
    /// `histogram`, whose step and size are its arguments.
    Histogram,
    /// A known name oap-rs does not take, and why.
    Unsupported(&'static str),
}

/// What one source contributes to a metric, read from it before the metric's row is touched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Input {
    /// One more source (`cpm`, `count`).
    One,
    /// A number (`longAvg`, `sum`, `max`, `min`, `percentile2`, `histogram`, the doubles).
    Long(i64),
    /// Condition results (`percent` reads the first, `rate` both).
    Conditions(bool, bool),
    /// An apdex sample: latency, status, threshold.
    Apdex(i64, bool, i64),
}

/// A partial or complete value of one metric row: what L1 and L2 merge and storage keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetricValue {
    /// `longAvg`.
    LongAvg {
        /// Σ values.
        summation: i64,
        /// Number of values.
        count: i64,
    },
    /// `doubleAvg`.
    DoubleAvg {
        /// Σ values.
        summation: f64,
        /// Number of values.
        count: i64,
    },
    /// `cpm`.
    Cpm {
        /// Calls in the bucket.
        total: i64,
    },
    /// `count`.
    Count(i64),
    /// `sum`.
    Sum(i64),
    /// `max`.
    Max(i64),
    /// `min`.
    Min(i64),
    /// `maxDouble`.
    MaxDouble(f64),
    /// `minDouble`.
    MinDouble(f64),
    /// `percent`.
    Percent {
        /// Sources that met the condition.
        matched: i64,
        /// All sources.
        total: i64,
    },
    /// `rate`.
    Rate {
        /// Sources that met the numerator's condition.
        numerator: i64,
        /// Sources that met the denominator's condition.
        denominator: i64,
    },
    /// `apdex`.
    Apdex {
        /// All requests.
        total: i64,
        /// Requests within the threshold.
        satisfied: i64,
        /// Requests within four times the threshold.
        tolerating: i64,
    },
    /// `percentile2`: counts per bucket `latency / precision`.
    Percentile2 {
        /// Bucket width.
        precision: i32,
        /// Bucket → count.
        dataset: Dataset,
    },
    /// `histogram`: counts per bucket lower edge.
    Histogram {
        /// Bucket width.
        step: i32,
        /// The last bucket is `max_steps * step`.
        max_steps: i32,
        /// Lower edge → count.
        dataset: Dataset,
    },
    /// A relation's component ids (service relations): a sorted set, merged by union.
    Components(Vec<i32>),
    /// Nothing beyond the row's fixed columns: the first write wins.
    Fixed,
    /// A traffic row's last activity (`instance_traffic`, `endpoint_traffic`).
    Ping {
        /// Minute bucket of the latest activity.
        last_ping: i64,
        /// Instance properties as a JSON object, when reported.
        properties: Option<String>,
    },
    /// An endpoint's last activity (`endpoint_traffic`): minute bucket.
    LastPing(i64),
    /// A network address alias's target.
    Alias {
        /// The service and instance behind the address, boxed: a rare value that would otherwise
        /// make every metric value of L1 and L2 16 bytes larger.
        target: Box<AliasTarget>,
        /// Minute bucket of the latest setup.
        last_update: i64,
    },
}

/// Where a network address leads ([`MetricValue::Alias`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasTarget {
    /// The service behind the address.
    pub service_id: String,
    /// The instance behind it.
    pub instance_id: String,
}

impl MetricValue {
    /// Adds what one source contributes.
    pub fn add(&mut self, input: Input) {
        match input {
            Input::One => self.add_one(),
            Input::Long(value) => self.add_long(value),
            Input::Conditions(first, second) => self.add_conditions(first, second),
            Input::Apdex(latency, status, threshold) => self.add_apdex(latency, status, threshold),
        }
    }

    /// Adds a value (`longAvg`, `sum`, `max`, `min`, `percentile2`, `histogram`, and as a
    /// double the double functions).
    pub fn add_long(&mut self, value: i64) {
        match self {
            MetricValue::LongAvg { summation, count } => {
                *summation = summation.wrapping_add(value);
                *count += 1;
            }
            MetricValue::Sum(sum) => *sum = sum.wrapping_add(value),
            MetricValue::Max(max) => *max = (*max).max(value),
            MetricValue::Min(min) => *min = (*min).min(value),
            MetricValue::Percentile2 { precision, dataset } => {
                dataset.add(value / i64::from((*precision).max(1)), 1);
            }
            MetricValue::Histogram { step, max_steps, dataset } => {
                let (step, max_steps) = (i64::from((*step).max(1)), i64::from(*max_steps));
                dataset.add((value / step).min(max_steps) * step, 1);
            }
            #[allow(clippy::cast_precision_loss)]
            MetricValue::DoubleAvg { .. } | MetricValue::MaxDouble(_) | MetricValue::MinDouble(_) => {
                self.add_double(value as f64)
            }
            _ => debug_assert!(false, "add_long on {self:?}"),
        }
    }

    /// Adds a double (`doubleAvg`, `maxDouble`, `minDouble`).
    pub fn add_double(&mut self, value: f64) {
        match self {
            MetricValue::DoubleAvg { summation, count } => {
                *summation += value;
                *count += 1;
            }
            MetricValue::MaxDouble(max) => *max = max.max(value),
            MetricValue::MinDouble(min) => *min = min.min(value),
            _ => debug_assert!(false, "add_double on {self:?}"),
        }
    }

    /// Counts one source (`cpm`, `count`).
    pub fn add_one(&mut self) {
        match self {
            MetricValue::Cpm { total } | MetricValue::Count(total) => *total += 1,
            _ => debug_assert!(false, "add_one on {self:?}"),
        }
    }

    /// Adds one source's condition results (`percent` takes the first, `rate` both).
    pub fn add_conditions(&mut self, first: bool, second: bool) {
        match self {
            MetricValue::Percent { matched, total } => {
                *matched += i64::from(first);
                *total += 1;
            }
            MetricValue::Rate { numerator, denominator } => {
                *numerator += i64::from(first);
                *denominator += i64::from(second);
            }
            _ => debug_assert!(false, "add_conditions on {self:?}"),
        }
    }

    /// Adds one request to an apdex score with threshold `threshold` ms
    /// (docs/reference/oal.md §3.1).
    pub fn add_apdex(&mut self, latency: i64, status: bool, threshold: i64) {
        if let MetricValue::Apdex { total, satisfied, tolerating } = self {
            *total += 1;
            if status && latency <= threshold {
                *satisfied += 1;
            } else if status && latency <= 4 * threshold {
                *tolerating += 1;
            }
        } else {
            debug_assert!(false, "add_apdex on {self:?}");
        }
    }

    /// Merges `other`, of the same function, into `self`; false when `self` did not change
    /// (only the hard-coded streams can say so).
    pub fn combine(&mut self, other: &MetricValue) -> bool {
        use MetricValue as M;
        match (self, other) {
            (M::LongAvg { summation, count }, M::LongAvg { summation: s, count: c }) => {
                *summation = summation.wrapping_add(*s);
                *count += c;
            }
            (M::DoubleAvg { summation, count }, M::DoubleAvg { summation: s, count: c }) => {
                *summation += s;
                *count += c;
            }
            (M::Cpm { total }, M::Cpm { total: t }) => *total += t,
            (M::Count(a), M::Count(b)) | (M::Sum(a), M::Sum(b)) => *a = a.wrapping_add(*b),
            (M::Max(a), M::Max(b)) => *a = (*a).max(*b),
            (M::Min(a), M::Min(b)) => *a = (*a).min(*b),
            (M::MaxDouble(a), M::MaxDouble(b)) => *a = a.max(*b),
            (M::MinDouble(a), M::MinDouble(b)) => *a = a.min(*b),
            (M::Percent { matched, total }, M::Percent { matched: m, total: t }) => {
                *matched += m;
                *total += t;
            }
            (M::Rate { numerator, denominator }, M::Rate { numerator: n, denominator: d }) => {
                *numerator += n;
                *denominator += d;
            }
            (M::Apdex { total, satisfied, tolerating }, M::Apdex { total: t, satisfied: s, tolerating: o }) => {
                *total += t;
                *satisfied += s;
                *tolerating += o;
            }
            (M::Percentile2 { dataset, .. }, M::Percentile2 { dataset: other, .. })
            | (M::Histogram { dataset, .. }, M::Histogram { dataset: other, .. }) => {
                dataset.merge(other);
            }
            (M::Components(ids), M::Components(more)) => {
                let before = ids.len();
                for id in more {
                    if let Err(at) = ids.binary_search(id) {
                        ids.insert(at, *id);
                    }
                }
                return ids.len() != before;
            }
            (M::Fixed, M::Fixed) => return false,
            (M::Ping { last_ping, properties }, M::Ping { last_ping: ping, properties: more }) => {
                *last_ping = (*last_ping).max(*ping);
                if let Some(more) = more {
                    *properties = Some(match properties.take() {
                        Some(mine) => merge_properties(&mine, more),
                        None => more.clone(),
                    });
                }
            }
            (M::LastPing(last_ping), M::LastPing(ping)) => *last_ping = (*last_ping).max(*ping),
            (M::Alias { target, last_update }, M::Alias { target: theirs, last_update: u }) => {
                if *u >= *last_update {
                    target.clone_from(theirs);
                    *last_update = *u;
                }
            }
            (mine, theirs) => {
                debug_assert!(false, "combine {mine:?} with {theirs:?}");
                return false;
            }
        }
        true
    }

    /// Calculates the queryable value for a bucket of `granularity` and appends the stored
    /// columns (in [`Function::columns`] order) to `out`.
    pub fn write(&self, granularity: Granularity, out: &mut Vec<Value>) {
        use MetricValue as M;
        match self {
            M::LongAvg { summation, count } => {
                out.extend([Value::Long(*summation), Value::Long(*count), Value::Long(div(*summation, *count))]);
            }
            M::DoubleAvg { summation, count } => {
                #[allow(clippy::cast_precision_loss)]
                let average = if *count == 0 { 0.0 } else { summation / *count as f64 };
                out.extend([Value::Double(*summation), Value::Long(*count), Value::Double(average)]);
            }
            M::Cpm { total } => out.extend([Value::Long(*total), Value::Long(total / granularity.minutes())]),
            M::Count(value) | M::Sum(value) | M::Max(value) | M::Min(value) => out.push(Value::Long(*value)),
            M::MaxDouble(value) | M::MinDouble(value) => out.push(Value::Double(*value)),
            M::Percent { matched, total } => {
                out.extend([Value::Long(*total), Value::Long(*matched), Value::Int(basis_points(*matched, *total))]);
            }
            M::Rate { numerator, denominator } => out.extend([
                Value::Long(*numerator),
                Value::Long(*denominator),
                Value::Int(basis_points(*numerator, *denominator)),
            ]),
            M::Apdex { total, satisfied, tolerating } => {
                let score = if *total == 0 { 0 } else { (satisfied * 10_000 + tolerating * 10_000 / 2) / total };
                out.extend([
                    Value::Long(*total),
                    Value::Long(*satisfied),
                    Value::Long(*tolerating),
                    Value::Int(i32::try_from(score).unwrap_or(i32::MAX)),
                ]);
            }
            M::Percentile2 { precision, dataset } => {
                let ranks = percentiles(*precision, dataset);
                let labeled = PERCENTILE_RANKS
                    .iter()
                    .zip(ranks)
                    .map(|(rank, value)| format!("{{p={rank}}},{value}"))
                    .collect::<Vec<_>>()
                    .join("|");
                out.extend([Value::Int(*precision), Value::Text(format_dataset(dataset)), Value::Text(labeled)]);
            }
            M::Histogram { dataset, .. } => out.push(Value::Text(format_dataset(dataset))),
            M::Components(ids) => {
                out.push(Value::Text(ids.iter().map(i32::to_string).collect::<Vec<_>>().join("|")));
            }
            M::Fixed => {}
            M::Ping { last_ping, properties } => {
                out.extend([Value::Long(*last_ping), Value::Text(properties.clone().unwrap_or_default())]);
            }
            M::LastPing(last_ping) => out.push(Value::Long(*last_ping)),
            M::Alias { target, last_update } => out.extend([
                Value::Text(target.service_id.clone()),
                Value::Text(target.instance_id.clone()),
                Value::Long(*last_update),
            ]),
        }
    }
}

/// Java's truncating `long` division, 0 for an empty denominator.
fn div(numerator: i64, denominator: i64) -> i64 {
    if denominator == 0 { 0 } else { numerator / denominator }
}

/// `numerator * 10000 / denominator`: a ratio in basis points (10000 = 100 %).
fn basis_points(numerator: i64, denominator: i64) -> i32 {
    i32::try_from(div(numerator.saturating_mul(10_000), denominator)).unwrap_or(i32::MAX)
}

/// The p50…p99 values of a `percentile2` dataset (docs/reference/oal.md §3.2): for each rank the
/// lower edge of the first bucket whose cumulative count reaches `round(total * rank / 100)`.
pub fn percentiles(precision: i32, dataset: &Dataset) -> [i64; 5] {
    let total = dataset.total();
    let mut values = [0; 5];
    for (slot, rank) in values.iter_mut().zip(PERCENTILE_RANKS) {
        // Java's Math.round(total * rank / 100.0): half up. Exact for any count below 2^53.
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
        let roof = ((total as f64) * (rank as f64) / 100.0 + 0.5).floor() as i64;
        let mut seen = 0;
        for (bucket, count) in dataset.iter() {
            seen += count;
            if seen >= roof {
                *slot = bucket * i64::from(precision);
                break;
            }
        }
    }
    values
}

/// A dataset as `DataTable` text: `key,value` entries joined by `|` (docs/reference/oal.md §3.4).
pub fn format_dataset(dataset: &Dataset) -> String {
    dataset.iter().map(|(key, count)| format!("{key},{count}")).collect::<Vec<_>>().join("|")
}

/// `DataTable` text back into a dataset; entries that are not `integer,integer` are skipped.
pub fn parse_dataset(text: &str) -> Dataset {
    text.split('|')
        .filter_map(|entry| {
            let (key, value) = entry.rsplit_once(',')?;
            Some((key.trim().parse().ok()?, value.trim().parse().ok()?))
        })
        .collect()
}

/// Instance properties merged key by key, later values winning; text that is not a JSON object
/// is replaced whole.
fn merge_properties(mine: &str, more: &str) -> String {
    type Object = serde_json::Map<String, serde_json::Value>;
    match (serde_json::from_str::<Object>(mine), serde_json::from_str::<Object>(more)) {
        (Ok(mut mine), Ok(more)) => {
            mine.extend(more);
            serde_json::Value::Object(mine).to_string()
        }
        _ => more.to_owned(),
    }
}

#[cfg(test)]
mod tests;
