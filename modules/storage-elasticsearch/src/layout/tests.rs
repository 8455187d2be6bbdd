//! Index names and document ids against the examples of pipeline-and-storage.md §10.

use oap_storage::builtin::{relation, segment, top_n, traffic};

use super::*;

/// `service_cpm`-like: a time-relative, downsampled metric.
fn service_cpm() -> Model {
    let kind = ModelKind::Metrics { time_relative: true, downsampling: true, update: true };
    Model::new("service_cpm", kind, Vec::new()).expect("a model")
}

#[test]
fn every_metric_level_lands_in_the_index_of_its_day() {
    let layout = Layout::new("", 1, -1);
    let model = service_cpm();
    assert_eq!(layout.alias(&model), "sw_metrics-all");
    for bucket in [202_611_211_230, 2_026_112_112, 20_261_121] {
        assert_eq!(layout.index(&model, bucket).as_deref(), Some("sw_metrics-all-20261121"), "bucket {bucket}");
    }
    // Relations and traffic share the merged table.
    assert_eq!(layout.index(&relation::SERVICE_SERVER, 202_611_211_230).as_deref(), Some("sw_metrics-all-20261121"));
    assert_eq!(layout.index(&traffic::SERVICE, 202_611_211_230).as_deref(), Some("sw_metrics-all-20261121"));
    assert_eq!(layout.index(&model, 202_613_211_230), None, "month 13 is not a date");
}

#[test]
fn records_share_a_table_and_a_super_dataset_has_its_own() {
    let layout = Layout::new("Prod", 1, -1);
    assert_eq!(layout.index(&top_n::DATABASE_STATEMENT, 202_611_211_230).as_deref(), Some("prod_records-all-20261121"));
    // A segment's bucket is a second: yyyyMMddHHmmss.
    assert_eq!(layout.index(&segment::MODEL, 20_261_121_123_456).as_deref(), Some("prod_segment-20261121"));
    assert_eq!(layout.alias(&segment::MODEL), "prod_segment");
}

#[test]
fn document_ids_follow_skywalking() {
    let layout = Layout::new("", 1, -1);
    assert_eq!(
        layout.document_id(&service_cpm(), "cHktYmFja2VuZA==.1", 202_611_211_230),
        "service_cpm_202611211230_cHktYmFja2VuZA==.1"
    );
    assert_eq!(
        layout.document_id(&traffic::SERVICE, "cHktYmFja2VuZA==.2", 202_611_211_230),
        "service_traffic_cHktYmFja2VuZA==.2"
    );
    assert_eq!(layout.document_id(&top_n::DATABASE_STATEMENT, "abc", 202_611_211_230), "top_n_database_statement_abc");
    let segment_id = "3ff89744e5a411f1b4d102fc00000001";
    assert_eq!(layout.document_id(&segment::MODEL, segment_id, 20_261_121_123_456), segment_id);
}

#[test]
fn day_steps_group_days_counted_from_2000_01_01() {
    // 2026-11-21 is day 9,821 after 2000-01-01 (26 years with 7 leap days, 2000…2024, is
    // 9,497 days to 2026-01-01, then 324 days to Nov 21). 9,821 % 3 = 2, so its group of
    // three starts on the 19th; 9,821 % 7 = 0, so a group of seven starts on the day itself.
    let model = service_cpm();
    assert_eq!(Layout::new("", 3, -1).index(&model, 20_261_121).as_deref(), Some("sw_metrics-all-20261119"));
    assert_eq!(Layout::new("", 7, -1).index(&model, 20_261_121).as_deref(), Some("sw_metrics-all-20261121"));
    assert_eq!(Layout::new("", 7, -1).index(&model, 20_261_127).as_deref(), Some("sw_metrics-all-20261121"));
    assert_eq!(Layout::new("", 7, -1).index(&model, 20_261_128).as_deref(), Some("sw_metrics-all-20261128"));
    // A group may start in the month before: 2026-12-01 is day 9,831, 9,831 % 7 = 3.
    assert_eq!(Layout::new("", 7, -1).index(&model, 20_261_201).as_deref(), Some("sw_metrics-all-20261128"));
    // superDatasetDayStep -1 follows dayStep; a positive one applies to super datasets only.
    let layout = Layout::new("", 3, 7);
    assert_eq!(layout.index(&segment::MODEL, 20_261_127_000_000).as_deref(), Some("sw_segment-20261121"));
    assert_eq!(layout.index(&model, 20_261_127).as_deref(), Some("sw_metrics-all-20261125"));
}
