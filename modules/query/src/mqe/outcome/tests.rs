//! The operations by SkyWalking's MQE rules, on hand-made results.

use super::*;

fn values(list: &[Option<f64>]) -> Vec<Value> {
    list.iter()
        .enumerate()
        .map(|(index, value)| Value { id: Some(format!("t{index}")), value: *value, ..Value::default() })
        .collect()
}

fn series(list: &[Option<f64>]) -> Outcome {
    let series = Series { labels: Vec::new(), values: values(list) };
    Outcome { ty: ResultType::TimeSeriesValues, series: vec![series], labeled: false }
}

fn labeled(sets: &[(&str, &[Option<f64>])]) -> Outcome {
    let series = sets
        .iter()
        .map(|(p, list)| Series { labels: vec![("p".to_owned(), (*p).to_owned())], values: values(list) })
        .collect();
    Outcome { ty: ResultType::TimeSeriesValues, series, labeled: true }
}

fn numbers(outcome: &Outcome) -> Vec<Vec<Option<f64>>> {
    outcome.series.iter().map(|series| series.values.iter().map(|value| value.value).collect()).collect()
}

#[test]
fn values_print_like_java_decimal_format() {
    assert_eq!(format(95.0), "95");
    assert_eq!(format(123.4567), "123.457");
    assert_eq!(format(98.5), "98.5");
    // 0.0625 lies exactly between 0.062 and 0.063: half-even keeps the even digit.
    assert_eq!(format(0.0625), "0.062");
    assert_eq!(format(1e20), "100000000000000000000");
    assert_eq!(format(-0.0001), "0");
    assert_eq!(format(1.0 / 0.0), "∞");
}

#[test]
fn round_is_half_up_on_the_decimal_form() {
    // 1.005 is stored as 1.00499999…, but its decimal form is "1.005": Java's BigDecimal rounds that to 1.01.
    assert!((round(1.005, 2) - 1.01).abs() < 1e-12);
    assert!((round(-2.5, 0) + 3.0).abs() < 1e-12);
    assert!((round(2.345, 1) - 2.3).abs() < 1e-12);
    assert!((round(9.99, 1) - 10.0).abs() < 1e-12);
    assert!((round(3.0, 2) - 3.0).abs() < 1e-12);
}

#[test]
fn a_series_and_a_scalar_meet_value_by_value_and_empty_stays_empty() {
    let sla = binary(BinaryOp::Div, series(&[Some(9800.0), None]), Outcome::scalar(100.0)).expect("divide");
    assert_eq!(sla.ty, ResultType::TimeSeriesValues);
    assert_eq!(numbers(&sla), [[Some(98.0), None]]);
    assert_eq!(sla.series[0].values[0].id.as_deref(), Some("t0"), "the points keep their ids");
    let inverse = binary(BinaryOp::Div, Outcome::scalar(100.0), series(&[Some(4.0), None])).expect("divide");
    assert_eq!(numbers(&inverse), [[Some(25.0), None]]);
    let compared = binary(BinaryOp::Gt, series(&[Some(1.0), Some(5.0)]), Outcome::scalar(2.0)).expect("compare");
    assert_eq!(numbers(&compared), [[Some(0.0), Some(1.0)]]);
}

#[test]
fn two_single_values_give_one_and_an_empty_side_makes_it_empty() {
    let ratio = binary(BinaryOp::Div, Outcome::scalar(9950.0), Outcome::scalar(100.0)).expect("divide");
    assert_eq!((ratio.ty, numbers(&ratio)), (ResultType::SingleValue, vec![vec![Some(99.5)]]));
    let empty = aggregate(Aggregation::Avg, series(&[None, None])).expect("avg");
    let divided = binary(BinaryOp::Div, empty, Outcome::scalar(100.0)).expect("divide");
    assert_eq!(numbers(&divided), [[None]]);
}

#[test]
fn two_series_meet_point_by_point() {
    let sum =
        binary(BinaryOp::Add, series(&[Some(1.0), None, Some(3.0)]), series(&[Some(10.0), Some(20.0), Some(30.0)]))
            .expect("add");
    assert_eq!(numbers(&sum), [[Some(11.0), None, Some(33.0)]]);
    let error = binary(BinaryOp::Add, series(&[Some(1.0)]), series(&[Some(1.0), Some(2.0)])).expect_err("lengths");
    assert_eq!(error, "Unsupported binary operation: the two series have different numbers of points.");
}

#[test]
fn labeled_series_meet_by_label_set() {
    let lhs = labeled(&[("50", &[Some(1.0), Some(2.0)]), ("75", &[Some(3.0), Some(4.0)])]);
    let rhs = labeled(&[("75", &[Some(10.0), Some(10.0)])]);
    let sum = binary(BinaryOp::Add, lhs.clone(), rhs).expect("add");
    assert_eq!(numbers(&sum), [[None, None], [Some(13.0), Some(14.0)]]);
    let scaled = binary(BinaryOp::Mul, lhs, series(&[Some(2.0), None])).expect("times an unlabeled series");
    assert_eq!(numbers(&scaled), [[Some(2.0), None], [Some(6.0), None]]);
    assert!(scaled.labeled);
}

#[test]
fn lists_meet_only_single_values() {
    let ranked = Outcome {
        ty: ResultType::SortedList,
        series: vec![Series { labels: Vec::new(), values: values(&[Some(9900.0), Some(9500.0)]) }],
        labeled: false,
    };
    let percent = binary(BinaryOp::Div, ranked.clone(), Outcome::scalar(100.0)).expect("divide");
    assert_eq!((percent.ty, numbers(&percent)), (ResultType::SortedList, vec![vec![Some(99.0), Some(95.0)]]));
    let error = binary(BinaryOp::Add, series(&[Some(1.0), Some(2.0)]), ranked).expect_err("series and list");
    assert_eq!(error, "Unsupported binary operation: TimeSeriesValues Add SortedList is not defined.");
}

#[test]
fn aggregations_skip_empty_points() {
    let points = || series(&[Some(2.0), None, Some(4.0), Some(4.0)]);
    let one = |func| {
        let outcome = aggregate(func, points()).expect("aggregate");
        assert_eq!(outcome.ty, ResultType::SingleValue);
        outcome.series[0].values[0].clone()
    };
    assert_eq!(one(Aggregation::Avg).value, Some(10.0 / 3.0));
    assert_eq!(one(Aggregation::Sum).value, Some(10.0));
    assert_eq!(one(Aggregation::Count).value, Some(3.0));
    assert_eq!(one(Aggregation::Avg).id, None, "a computed value has no point");
    let max = one(Aggregation::Max);
    assert_eq!((max.value, max.id.as_deref()), (Some(4.0), Some("t2")), "the first of equal maxima, with its point");
    assert_eq!(one(Aggregation::Min).id.as_deref(), Some("t0"));
    assert_eq!(one(Aggregation::Latest).id.as_deref(), Some("t3"));
    let nothing = aggregate(Aggregation::Avg, series(&[None, None])).expect("avg");
    assert_eq!(numbers(&nothing), [[None]]);
    let list = Outcome { ty: ResultType::SortedList, ..series(&[Some(1.0)]) };
    assert!(aggregate(Aggregation::Latest, list).is_err(), "latest is of a time series");
}

#[test]
fn relabels_renames_the_chosen_label_values() {
    let selector = |name: &str, values: &[&str]| LabelSelector {
        name: name.to_owned(),
        values: values.iter().map(|value| (*value).to_owned()).collect(),
    };
    let percentiles = labeled(&[("50", &[Some(1.0)]), ("99", &[Some(9.0)])]);
    let renamed =
        relabel(percentiles, &selector("p", &["50", "75", "99"]), &selector("percentile", &["P50", "P75", "P99"]))
            .expect("relabel");
    let labels: Vec<_> = renamed.series.iter().map(|series| series.labels.clone()).collect();
    let pair = |name: &str, value: &str| vec![(name.to_owned(), value.to_owned())];
    assert_eq!(labels, [pair("percentile", "P50"), pair("percentile", "P99")]);
    assert!(relabel(series(&[Some(1.0)]), &selector("p", &["50"]), &selector("q", &["x"])).is_err());
}
