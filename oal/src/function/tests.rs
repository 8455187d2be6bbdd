//! Worked examples of every function, and the properties L1, L2 and downsampling rely on:
//! partial values merge to what one pass over all sources gives, however they were split; hour
//! and day values rolled up from minutes equal one pass over the hour's or day's sources; and
//! a stored value reads back as itself.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn run(function: Function, inputs: &[Input]) -> MetricValue {
    let mut value = function.empty();
    for input in inputs {
        value.add(*input);
    }
    value
}

fn written(value: &MetricValue, granularity: Granularity) -> Vec<Value> {
    let mut out = Vec::new();
    value.write(granularity, &mut out);
    out
}

#[test]
fn averages_divide_like_java_longs() {
    let value = run(Function::LongAvg, &[Input::Long(3), Input::Long(4)]);
    assert_eq!(written(&value, Granularity::Minute), [Value::Long(7), Value::Long(2), Value::Long(3)]);
    let value = run(Function::DoubleAvg, &[Input::Long(3), Input::Long(4)]);
    assert_eq!(written(&value, Granularity::Minute), [Value::Double(7.0), Value::Long(2), Value::Double(3.5)]);
}

#[test]
fn cpm_divides_by_the_minutes_in_the_bucket() {
    let value = run(Function::Cpm, &vec![Input::One; 150]);
    assert_eq!(written(&value, Granularity::Minute), [Value::Long(150), Value::Long(150)]);
    // 150 calls in an hour: 150 / 60 = 2 (truncated); in a day 150 / 1440 = 0.
    assert_eq!(written(&value, Granularity::Hour), [Value::Long(150), Value::Long(2)]);
    assert_eq!(written(&value, Granularity::Day), [Value::Long(150), Value::Long(0)]);
}

#[test]
fn percent_and_rate_are_basis_points() {
    let inputs = [Input::Conditions(true, true), Input::Conditions(true, false), Input::Conditions(false, true)];
    // 2 of 3: 20000 / 3 = 6666.
    let percent = run(Function::Percent, &inputs);
    assert_eq!(written(&percent, Granularity::Minute), [Value::Long(3), Value::Long(2), Value::Int(6666)]);
    // numerator 2, denominator 2: 10000.
    let rate = run(Function::Rate, &inputs);
    assert_eq!(written(&rate, Granularity::Minute), [Value::Long(2), Value::Long(2), Value::Int(10_000)]);
    assert_eq!(written(&Function::Rate.empty(), Granularity::Minute)[2], Value::Int(0), "no denominator");
}

#[test]
fn apdex_counts_satisfied_tolerating_and_frustrated() {
    // T = 500: 100 ms satisfies, 600 ms tolerates (≤ 2000), 2500 ms frustrates, an error frustrates.
    let inputs = [
        Input::Apdex(100, true, 500),
        Input::Apdex(600, true, 500),
        Input::Apdex(2500, true, 500),
        Input::Apdex(100, false, 500),
    ];
    let value = run(Function::Apdex, &inputs);
    // (1 * 10000 + 1 * 10000 / 2) / 4 = 3750.
    assert_eq!(
        written(&value, Granularity::Minute),
        [Value::Long(4), Value::Long(1), Value::Long(1), Value::Int(3750)]
    );
}

#[test]
fn percentile2_reports_the_lower_edge_of_each_ranks_bucket() {
    let value = run(Function::Percentile2 { precision: 10 }, &[1, 5, 12, 120].map(Input::Long));
    // Buckets 0, 0, 1, 12; total 4. Roofs: p50 2 → bucket 0; p75 3 → bucket 1; p90 round(3.6) = 4,
    // p95 round(3.8) = 4, p99 round(3.96) = 4 → bucket 12. Values are bucket × 10.
    assert_eq!(
        written(&value, Granularity::Minute),
        [
            Value::Int(10),
            Value::Text("0,2|1,1|12,1".to_owned()),
            Value::Text("{p=50},0|{p=75},10|{p=90},120|{p=95},120|{p=99},120".to_owned()),
        ]
    );
}

#[test]
fn histogram_buckets_start_at_zero_and_cap_at_the_last_step() {
    let value = run(Function::Histogram { step: 100, max_steps: 3 }, &[0, 99, 150, 10_000].map(Input::Long));
    assert_eq!(written(&value, Granularity::Minute), [Value::Text("0,2|100,1|200,0|300,1".to_owned())]);
}

#[test]
fn extremes_keep_the_largest_and_smallest() {
    let inputs = [5, -2, 9].map(Input::Long);
    assert_eq!(run(Function::Max, &inputs), MetricValue::Max(9));
    assert_eq!(run(Function::Min, &inputs), MetricValue::Min(-2));
    assert_eq!(run(Function::MaxDouble, &inputs), MetricValue::MaxDouble(9.0));
    assert_eq!(run(Function::MinDouble, &inputs), MetricValue::MinDouble(-2.0));
    assert_eq!(run(Function::Sum, &inputs), MetricValue::Sum(12));
    assert_eq!(run(Function::Count, &[Input::One; 3]), MetricValue::Count(3));
}

#[test]
fn component_sets_grow_by_union_and_say_when_they_did_not() {
    let mut ids = MetricValue::Components(vec![7001]);
    assert!(ids.combine(&MetricValue::Components(vec![142, 7001])));
    assert_eq!(ids, MetricValue::Components(vec![142, 7001]));
    assert!(!ids.combine(&MetricValue::Components(vec![7001])), "nothing new");
    assert!(!MetricValue::Fixed.combine(&MetricValue::Fixed));
}

#[test]
fn pings_keep_the_latest_and_merge_properties_key_by_key() {
    let mut ping = MetricValue::Ping { last_ping: 202_611_211_230, properties: Some(r#"{"a":"1","b":"2"}"#.into()) };
    ping.combine(&MetricValue::Ping { last_ping: 202_611_211_229, properties: Some(r#"{"b":"3"}"#.into()) });
    ping.combine(&MetricValue::Ping { last_ping: 202_611_211_231, properties: None });
    assert_eq!(ping, MetricValue::Ping { last_ping: 202_611_211_231, properties: Some(r#"{"a":"1","b":"3"}"#.into()) });
}

/// Every OAL function, with a strategy for what one source may contribute to it.
fn function_and_inputs() -> impl Strategy<Value = (Function, Vec<Input>)> {
    let long = || (-1_000i64..100_000).prop_map(Input::Long);
    let sized = |inputs: BoxedStrategy<Input>| proptest::collection::vec(inputs, 1..60);
    prop_oneof![
        sized(long().boxed()).prop_map(|inputs| (Function::LongAvg, inputs)),
        sized(long().boxed()).prop_map(|inputs| (Function::DoubleAvg, inputs)),
        sized(Just(Input::One).boxed()).prop_map(|inputs| (Function::Cpm, inputs)),
        sized(Just(Input::One).boxed()).prop_map(|inputs| (Function::Count, inputs)),
        sized(long().boxed()).prop_map(|inputs| (Function::Sum, inputs)),
        sized(long().boxed()).prop_map(|inputs| (Function::Max, inputs)),
        sized(long().boxed()).prop_map(|inputs| (Function::Min, inputs)),
        sized(long().boxed()).prop_map(|inputs| (Function::MaxDouble, inputs)),
        sized(long().boxed()).prop_map(|inputs| (Function::MinDouble, inputs)),
        sized(any::<(bool, bool)>().prop_map(|(a, b)| Input::Conditions(a, b)).boxed())
            .prop_map(|inputs| (Function::Percent, inputs)),
        sized(any::<(bool, bool)>().prop_map(|(a, b)| Input::Conditions(a, b)).boxed())
            .prop_map(|inputs| (Function::Rate, inputs)),
        sized((0i64..5_000, any::<bool>()).prop_map(|(ms, ok)| Input::Apdex(ms, ok, 500)).boxed())
            .prop_map(|inputs| (Function::Apdex, inputs)),
        sized((0i64..3_000).prop_map(Input::Long).boxed())
            .prop_map(|inputs| (Function::Percentile2 { precision: 10 }, inputs)),
        sized((0i64..3_000).prop_map(Input::Long).boxed())
            .prop_map(|inputs| (Function::Histogram { step: 100, max_steps: 20 }, inputs)),
    ]
}

proptest! {
    #[test]
    fn merging_partials_split_anyhow_equals_one_pass(
        (function, inputs) in function_and_inputs(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut.index(inputs.len() + 1)).collect();
        cuts.extend([0, inputs.len()]);
        cuts.sort_unstable();
        // Merge the parts newest first, as L2 may see them.
        let mut merged = function.empty();
        for part in cuts.windows(2).rev() {
            merged.combine(&run(function, &inputs[part[0]..part[1]]));
        }
        let whole = run(function, &inputs);
        for granularity in [Granularity::Minute, Granularity::Hour, Granularity::Day] {
            prop_assert_eq!(written(&merged, granularity), written(&whole, granularity));
        }
    }

    #[test]
    fn rolled_up_minutes_equal_one_pass_per_hour_and_day(
        (function, inputs) in function_and_inputs(),
        minutes in proptest::collection::vec(0i64..3 * 24 * 60, 60),
    ) {
        // Each source lands in a minute of three days starting 2026-11-20 00:00.
        let bucket = |minute: i64| 202_611_200_000 + (minute / 1440) * 10_000 + (minute % 1440 / 60) * 100 + minute % 60;
        let mut by_minute: BTreeMap<i64, MetricValue> = BTreeMap::new();
        let mut by_hour: BTreeMap<i64, MetricValue> = BTreeMap::new();
        let mut by_day: BTreeMap<i64, MetricValue> = BTreeMap::new();
        for (input, minute) in inputs.iter().zip(minutes.iter().cycle()) {
            let minute = bucket(*minute);
            by_minute.entry(minute).or_insert_with(|| function.empty()).add(*input);
            by_hour.entry(minute / 100).or_insert_with(|| function.empty()).add(*input);
            by_day.entry(minute / 10_000).or_insert_with(|| function.empty()).add(*input);
        }
        for (granularity, direct, divisor) in [(Granularity::Hour, &by_hour, 100), (Granularity::Day, &by_day, 10_000)] {
            let mut rolled: BTreeMap<i64, MetricValue> = BTreeMap::new();
            for (minute, value) in &by_minute {
                rolled.entry(minute / divisor).or_insert_with(|| function.empty()).combine(value);
            }
            prop_assert_eq!(rolled.keys().collect::<Vec<_>>(), direct.keys().collect::<Vec<_>>());
            for (bucket, value) in direct {
                prop_assert_eq!(written(&rolled[bucket], granularity), written(value, granularity));
            }
        }
    }

    #[test]
    fn stored_values_read_back_as_themselves((function, inputs) in function_and_inputs()) {
        let value = run(function, &inputs);
        let stored = written(&value, Granularity::Minute);
        prop_assert_eq!(function.read(&stored), value);
    }
}
