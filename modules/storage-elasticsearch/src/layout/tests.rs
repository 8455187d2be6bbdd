//! Index names and document ids against the examples of docs/reference/pipeline-and-storage.md §10.

use oap_storage::builtin::{relation, segment, top_n, traffic};

use oap_storage::TimeRange;

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

#[test]
fn searches_name_the_indices_of_their_days() {
    let layout = Layout::new("", 1, -1);
    let model = service_cpm();
    let range = |start, end| Some(TimeRange { start, end });
    assert_eq!(
        layout.search_indices(&model, range(202_611_202_359, 202_611_210_001)),
        ["sw_metrics-all-20261120", "sw_metrics-all-20261121"],
        "a range across midnight reads both days"
    );
    // Across a month's end, in second buckets.
    assert_eq!(
        layout.search_indices(&segment::MODEL, range(20_261_130_235_959, 20_261_201_000_000)),
        ["sw_segment-20261130", "sw_segment-20261201"]
    );
    assert_eq!(layout.search_indices(&model, None), ["sw_metrics-all"], "all time: the alias");
    assert_eq!(
        layout.search_indices(&model, range(202_601_010_000, 202_611_210_000)),
        ["sw_metrics-all"],
        "a long range"
    );
    // Groups of three days: the 19th–21st, then the 22nd–24th.
    let grouped = Layout::new("", 3, -1);
    assert_eq!(
        grouped.search_indices(&model, range(202_611_190_000, 202_611_230_000)),
        ["sw_metrics-all-20261119", "sw_metrics-all-20261122"]
    );
}

#[test]
fn an_index_name_tells_the_last_day_it_holds() {
    let layout = Layout::new("", 3, 1);
    assert_eq!(layout.last_day_of_index("metrics-all", false, "sw_metrics-all-20261119"), Some(20_261_121));
    assert_eq!(layout.last_day_of_index("segment", true, "sw_segment-20261130"), Some(20_261_130));
    assert_eq!(layout.last_day_of_index("metrics-all", false, "sw_metrics-all-2026111"), None);
    assert_eq!(layout.last_day_of_index("metrics-all", false, "other_metrics-all-20261119"), None);
}

#[test]
fn documents_name_their_model_and_row() {
    let layout = Layout::new("", 1, -1);
    assert_eq!(
        (layout.table_field(&service_cpm()), layout.id_field(&service_cpm()).as_str()),
        (Some("metric_table"), "entity_id")
    );
    let top_n = &top_n::DATABASE_STATEMENT;
    assert_eq!((layout.table_field(top_n), layout.id_field(top_n).as_str()), (Some("record_table"), "id"));
    assert_eq!((layout.table_field(&segment::MODEL), layout.id_field(&segment::MODEL).as_str()), (None, "segment_id"));
}
