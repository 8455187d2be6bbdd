//! What an expression evaluates to, and the operations on it (docs/reference/query-api.md §5.2,
//! §5.4): a type, and series of values, each series with its labels. Operations follow SkyWalking's
//! MQE: an empty value stays empty through arithmetic, aggregations skip empty values, a labeled
//! series meets another by its label set, and a single value meets every value of a series or list.
//! Values are doubles until [`format`] prints them as the UI reads them.

use async_graphql::Enum;

use super::parse::{Aggregation, BinaryOp, LabelSelector, MathFn};
use crate::metrics::Owner;

/// The kind of an expression's result (`ExpressionResultType`).
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultType {
    /// The expression could not be evaluated.
    Unknown,
    /// One value (per label set).
    SingleValue,
    /// One value per point of the duration (per label set).
    TimeSeriesValues,
    /// Entities ranked by a metric (`top_n` of a metric).
    SortedList,
    /// Sampled records ranked (`top_n` of a top-N stream).
    RecordList,
}

/// One value of a result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Value {
    /// The point (epoch ms), or the entity's or record's name; none for an aggregate.
    pub id: Option<String>,
    /// Whose value it is, in a ranked list.
    pub owner: Option<Owner>,
    /// The value; `None` when there is no data.
    pub value: Option<f64>,
    /// The trace a sampled record came from.
    pub trace_id: Option<String>,
}

impl Value {
    /// A value without id.
    pub fn number(value: Option<f64>) -> Self {
        Self { value, ..Self::default() }
    }
}

/// The values of one label set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// The labels, `(name, value)`.
    pub labels: Vec<(String, String)>,
    /// The values.
    pub values: Vec<Value>,
}

/// An evaluated expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Its type.
    pub ty: ResultType,
    /// Its series: one, or one per label set of a labeled metric.
    pub series: Vec<Series>,
    /// Whether the series are of a labeled metric.
    pub labeled: bool,
}

impl Outcome {
    /// A single number (a scalar of the expression).
    pub fn scalar(value: f64) -> Self {
        let series = Series { labels: Vec::new(), values: vec![Value::number(Some(value))] };
        Self { ty: ResultType::SingleValue, series: vec![series], labeled: false }
    }

    /// Applies `f` to every value with data.
    pub fn map(mut self, f: impl Fn(f64) -> f64) -> Self {
        for value in self.series.iter_mut().flat_map(|series| series.values.iter_mut()) {
            if let Some(number) = value.value.as_mut() {
                *number = f(*number);
            }
        }
        self
    }

    /// The one value of an unlabeled single result.
    fn single(&self, side: &str) -> Result<Option<f64>, String> {
        match self.series.as_slice() {
            [series] if series.values.len() == 1 => Ok(series.values[0].value),
            _ => Err(format!("the {side} single value is empty or has more than one value")),
        }
    }
}

/// `lhs op rhs`.
pub fn binary(op: BinaryOp, lhs: Outcome, rhs: Outcome) -> Result<Outcome, String> {
    use ResultType::{RecordList, SingleValue, SortedList, TimeSeriesValues};
    let apply = |a: f64, b: f64| calculate(op, a, b);
    let many = |ty| matches!(ty, TimeSeriesValues | SortedList | RecordList);
    let result = match (lhs.ty, rhs.ty) {
        (SingleValue, SingleValue) if !lhs.labeled && !rhs.labeled => {
            let value = match (lhs.single("left")?, rhs.single("right")?) {
                (Some(a), Some(b)) => Some(apply(a, b)),
                _ => None,
            };
            let series = Series { labels: Vec::new(), values: vec![Value::number(value)] };
            Ok(Outcome { ty: SingleValue, series: vec![series], labeled: false })
        }
        (SingleValue, SingleValue) if lhs.labeled && rhs.labeled => Ok(by_labels(lhs, &rhs, apply)),
        (SingleValue, SingleValue) if lhs.labeled => rhs.single("right").map(|b| with_one(lhs, b, apply)),
        (SingleValue, SingleValue) => lhs.single("left").map(|a| with_one(rhs, a, |b, a| apply(a, b))),
        (left, SingleValue) if many(left) => rhs.single("right").map(|b| with_one(lhs, b, apply)),
        (SingleValue, right) if many(right) => lhs.single("left").map(|a| with_one(rhs, a, |b, a| apply(a, b))),
        (TimeSeriesValues, TimeSeriesValues) => match (lhs.labeled, rhs.labeled) {
            (true, true) => Ok(by_labels(lhs, &rhs, apply)),
            (true, false) => series_with_series(lhs, &rhs, apply),
            (false, true) => series_with_series(rhs, &lhs, |b, a| apply(a, b)),
            (false, false) => series_with_series(lhs, &rhs, apply),
        },
        (left, right) => Err(format!("{left:?} {op:?} {right:?} is not defined")),
    };
    let kind = if matches!(op, BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod) {
        "binary"
    } else {
        "compare"
    };
    result.map_err(|error| format!("Unsupported {kind} operation: {error}."))
}

fn calculate(op: BinaryOp, a: f64, b: f64) -> f64 {
    let truth = |holds: bool| if holds { 1.0 } else { 0.0 };
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Mod => a % b,
        #[allow(clippy::float_cmp)]
        BinaryOp::Eq => truth(a == b),
        #[allow(clippy::float_cmp)]
        BinaryOp::NotEq => truth(a != b),
        BinaryOp::Lt => truth(a < b),
        BinaryOp::Le => truth(a <= b),
        BinaryOp::Gt => truth(a > b),
        BinaryOp::Ge => truth(a >= b),
    }
}

/// Every value of `many` with the one value `one`; empty stays empty, and an empty `one`
/// leaves `many` as it is (SkyWalking would compute with the empty value's 0 instead).
fn with_one(many: Outcome, one: Option<f64>, apply: impl Fn(f64, f64) -> f64) -> Outcome {
    match one {
        Some(one) => many.map(|value| apply(value, one)),
        None => many,
    }
}

/// Each series of `lhs` with the series of `rhs` of the same label set, point by point; a label
/// set `rhs` lacks becomes empty.
fn by_labels(mut lhs: Outcome, rhs: &Outcome, apply: impl Fn(f64, f64) -> f64) -> Outcome {
    let key = |labels: &[(String, String)]| {
        let mut labels = labels.to_vec();
        labels.sort();
        labels
    };
    for series in &mut lhs.series {
        let wanted = key(&series.labels);
        let other = rhs.series.iter().find(|other| key(&other.labels) == wanted);
        for (index, value) in series.values.iter_mut().enumerate() {
            let theirs = other.and_then(|other| other.values.get(index)).and_then(|value| value.value);
            value.value = match (value.value, theirs) {
                (Some(a), Some(b)) => Some(apply(a, b)),
                _ => None,
            };
        }
    }
    lhs
}

/// Each series of `many` with the one series of `one`, point by point.
fn series_with_series(mut many: Outcome, one: &Outcome, apply: impl Fn(f64, f64) -> f64) -> Result<Outcome, String> {
    let Some(theirs) = one.series.first() else { return Err("a series is empty".to_owned()) };
    for series in &mut many.series {
        if series.values.len() != theirs.values.len() {
            return Err("the two series have different numbers of points".to_owned());
        }
        for (value, other) in series.values.iter_mut().zip(&theirs.values) {
            value.value = match (value.value, other.value) {
                (Some(a), Some(b)) => Some(apply(a, b)),
                _ => None,
            };
        }
    }
    Ok(many)
}

/// `avg(…)`, `sum(…)` and the like: each series to one value; empty values are skipped, and a
/// series without data gives an empty value.
pub fn aggregate(func: Aggregation, mut outcome: Outcome) -> Result<Outcome, String> {
    if func == Aggregation::Latest && outcome.ty != ResultType::TimeSeriesValues {
        return Err("latest can only be used on a time series.".to_owned());
    }
    for series in &mut outcome.series {
        let values = std::mem::take(&mut series.values);
        let mut with_data = values.into_iter().filter(|value| value.value.is_some());
        let picked = match func {
            Aggregation::Avg | Aggregation::Sum | Aggregation::Count => {
                let numbers: Vec<f64> = with_data.filter_map(|value| value.value).collect();
                #[allow(clippy::cast_precision_loss)]
                let result = match func {
                    Aggregation::Avg if numbers.is_empty() => None,
                    Aggregation::Avg => Some(numbers.iter().sum::<f64>() / numbers.len() as f64),
                    Aggregation::Sum => Some(numbers.iter().sum()),
                    _ => Some(numbers.len() as f64),
                };
                Some(Value::number(result))
            }
            // The first of equal values wins, as in Java's `Stream.max` and `Stream.min`.
            Aggregation::Max => with_data.reduce(|best, next| if next.value > best.value { next } else { best }),
            Aggregation::Min => with_data.reduce(|best, next| if next.value < best.value { next } else { best }),
            Aggregation::Latest => with_data.next_back(),
        }
        .unwrap_or_default();
        series.values = vec![picked];
    }
    outcome.ty = ResultType::SingleValue;
    Ok(outcome)
}

/// `abs`, `ceil` or `floor` of every value.
pub fn math(func: MathFn, outcome: Outcome) -> Outcome {
    match func {
        MathFn::Abs => outcome.map(f64::abs),
        MathFn::Ceil => outcome.map(f64::ceil),
        MathFn::Floor => outcome.map(f64::floor),
    }
}

/// `round(…, places)`: half away from zero at the decimal digit, as Java's
/// `BigDecimal.valueOf(value).setScale(places, HALF_UP)` rounds the shortest decimal form.
pub fn round(value: f64, places: u32) -> f64 {
    if !value.is_finite() {
        return value;
    }
    let text = format!("{}", value.abs());
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let keep = places as usize;
    if fraction.len() <= keep {
        return value;
    }
    let mut digits: Vec<u8> = whole.bytes().chain(fraction.bytes().take(keep)).map(|digit| digit - b'0').collect();
    if fraction.as_bytes()[keep] >= b'5' {
        let mut at = digits.len();
        loop {
            if at == 0 {
                digits.insert(0, 1);
                break;
            }
            at -= 1;
            if digits[at] == 9 {
                digits[at] = 0;
            } else {
                digits[at] += 1;
                break;
            }
        }
    }
    let split = digits.len() - keep;
    let text: String = digits.iter().map(|digit| char::from(b'0' + digit)).collect();
    let rounded: f64 = format!("{}.{}", &text[..split], &text[split..]).parse().unwrap_or(value.abs());
    rounded.copysign(value)
}

/// `relabels(…, from, to)`: the labels `from.name = from.values[i]` become
/// `to.name = to.values[i]`.
pub fn relabel(mut outcome: Outcome, from: &LabelSelector, to: &LabelSelector) -> Result<Outcome, String> {
    if !outcome.labeled {
        return Err("relabels needs a labeled result, such as a percentile metric's".to_owned());
    }
    for (name, value) in outcome.series.iter_mut().flat_map(|series| series.labels.iter_mut()) {
        if *name != from.name {
            continue;
        }
        if let Some(index) = from.values.iter().position(|old| old == value)
            && let Some(new) = to.values.get(index)
        {
            name.clone_from(&to.name);
            value.clone_from(new);
        }
    }
    Ok(outcome)
}

/// A value as the UI reads it: like Java's `DecimalFormat` without grouping — at most three
/// fraction digits (half-even), no trailing zeros, no `.0` on an integral value.
pub fn format(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "∞".to_owned() } else { "-∞".to_owned() };
    }
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" { "0".to_owned() } else { text.to_owned() }
}

#[cfg(test)]
mod tests;
