//! One storage test suite, written once and run unchanged against every provider: a provider's
//! test file implements [`Target`] and calls [`storage_suite!`](crate::storage_suite), which
//! generates one test per function here.
//!
//! Expected values are worked out by hand in the comments from the data each test writes.

use std::future::Future;
use std::sync::Arc;

use oap_model::Layer;

use crate::StorageRef;
use crate::builtin::alias::NetworkAddressAlias;
use crate::builtin::relation::{EndpointRelation, InstanceRelation, ServiceRelation};
use crate::builtin::segment::{self, SegmentRow};
use crate::builtin::tag::{self, TagAutocomplete};
use crate::builtin::traffic::{self, EndpointTraffic, InstanceTraffic, ServiceTraffic};
use crate::builtin::{alias, relation};
use crate::dao::{Side, Top, TraceOrder, TraceSearch, TraceState};
use crate::model::{Column, ColumnType, Indexing, Model, ModelKind, ModelRef};
use crate::query::{Filter, TimeRange};
use crate::row::{Row, RowKey, Value};
use crate::storage::Write;

/// A provider under test.
pub trait Target: Send + Sync {
    /// A new, empty place for a store (a directory, an index prefix).
    fn place(&self) -> String;
    /// Opens the store at `place`; opening a place again, after the earlier store was dropped,
    /// must show what was stored there.
    fn open(&self, place: &str) -> impl Future<Output = StorageRef> + Send;
}

/// Generates one `#[tokio::test]` per suite test, each calling it with `$target`.
#[macro_export]
macro_rules! storage_suite {
    ($target:expr) => {
        $crate::storage_suite!(@tests $target;
            inserts_updates_and_multi_gets,
            segment_search_filters_sorts_and_pages,
            segment_pages_end_on_whole_buckets,
            slowest_first_pages_of_many_segments,
            segments_of_a_trace,
            metadata_reads,
            topology_reads,
            metric_points_in_bucket_order,
            entities_ranked_by_average,
            slowest_records_of_an_entity,
            ttl_drops_whole_days,
            concurrent_writers_lose_nothing,
            acknowledged_writes_survive_a_reopen,
            invalid_writes_are_refused_and_harm_nothing,
            rows_too_long_to_hold_are_refused_and_harm_nothing
        );
    };
    (@tests $target:expr; $($test:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                $crate::testsuite::$test(&$target).await;
            }
        )+
    };
}

async fn fresh(target: &impl Target) -> StorageRef {
    let store = target.open(&target.place()).await;
    store.install(&crate::builtin::models()).await.expect("install the built-in models");
    store.install(&[cpm()]).await.expect("install a metric model");
    store
}

async fn write(store: &StorageRef, batch: Vec<Write>) {
    store.write(&batch).await.expect("write");
}

fn insert(model: &ModelRef, row: Row) -> Write {
    Write::Insert(model.clone(), row)
}

/// A metric model like OAL's `service_cpm`: `value` and `total`.
fn cpm() -> ModelRef {
    let columns = vec![
        Column::new("value", ColumnType::Long, Indexing::Filter),
        Column::new("total", ColumnType::Long, Indexing::StorageOnly),
    ];
    let kind = ModelKind::Metrics { time_relative: true, downsampling: true, update: true };
    Arc::new(Model::new("service_cpm", kind, columns).expect("valid model"))
}

fn cpm_row(entity: &str, time_bucket: i64, value: i64) -> Row {
    Row { id: entity.to_owned(), time_bucket, values: vec![Value::Long(value), Value::Long(value * 10)] }
}

fn value_of(row: &Row) -> i64 {
    row.long(0)
}

#[allow(clippy::too_many_arguments)]
fn segment_row(
    id: &str,
    trace: &str,
    service: &str,
    instance: &str,
    endpoint: &str,
    time_bucket: i64,
    start_time: i64,
    latency: i32,
    is_error: bool,
    tags: &[&str],
) -> SegmentRow {
    SegmentRow {
        segment_id: id.to_owned(),
        trace_id: trace.to_owned(),
        service_id: service.to_owned(),
        service_instance_id: instance.to_owned(),
        endpoint_id: endpoint.to_owned(),
        start_time,
        latency,
        is_error,
        time_bucket,
        data_binary: format!("bytes of {id}").into_bytes(),
        tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
    }
}

/// Five segments over two days (the 20th and the 21st):
///
/// | id | trace | service | instance | endpoint | second bucket | start | latency | error | tags |
/// |----|-------|---------|----------|----------|---------------|-------|---------|-------|------|
/// | s1 | t1 | A | a1 | A/api | 20261120235959 | 100000 | 30 | no | GET, 200 |
/// | s2 | t1 | B | b1 | B/work | 20261121000000 | 100010 | 20 | no | GET |
/// | s3 | t2 | A | a2 | A/api | 20261121000100 | 160000 | 50 | yes | POST, 500 |
/// | s4 | t3 | B | b1 | B/work | 20261121000200 | 220000 | 5 | no | — |
/// | s5 | t3 | A | a1 | A/health | 20261121120000 | 300000 | 30 | no | GET |
fn five_segments() -> Vec<SegmentRow> {
    let (get, ok, post, error) =
        ("http.method=GET", "http.status_code=200", "http.method=POST", "http.status_code=500");
    vec![
        segment_row("s1", "t1", "A", "a1", "A/api", 20_261_120_235_959, 100_000, 30, false, &[get, ok]),
        segment_row("s2", "t1", "B", "b1", "B/work", 20_261_121_000_000, 100_010, 20, false, &[get]),
        segment_row("s3", "t2", "A", "a2", "A/api", 20_261_121_000_100, 160_000, 50, true, &[post, error]),
        segment_row("s4", "t3", "B", "b1", "B/work", 20_261_121_000_200, 220_000, 5, false, &[]),
        segment_row("s5", "t3", "A", "a1", "A/health", 20_261_121_120_000, 300_000, 30, false, &[get]),
    ]
}

async fn write_segments(store: &StorageRef, segments: Vec<SegmentRow>) {
    write(store, segments.into_iter().map(|segment| insert(&segment::MODEL, segment.into_row())).collect()).await;
}

fn ids(segments: &[SegmentRow]) -> Vec<&str> {
    segments.iter().map(|segment| segment.segment_id.as_str()).collect()
}

/// Inserted rows are read back by key; an update replaces the row; keys without a row are
/// left out; metadata keys match by id whatever their bucket.
pub async fn inserts_updates_and_multi_gets(target: &impl Target) {
    let store = fresh(target).await;
    let model = cpm();
    write(
        &store,
        vec![
            insert(&model, cpm_row("X", 202_611_202_359, 1)),
            insert(&model, cpm_row("X", 202_611_210_000, 2)),
            insert(&model, cpm_row("Y", 202_611_210_000, 3)),
        ],
    )
    .await;
    write(&store, vec![Write::Update(model.clone(), cpm_row("X", 202_611_210_000, 7))]).await;
    let keys = [
        RowKey { id: "X".to_owned(), time_bucket: 202_611_202_359 },
        RowKey { id: "X".to_owned(), time_bucket: 202_611_210_000 },
        RowKey { id: "X".to_owned(), time_bucket: 202_611_210_001 },
        RowKey { id: "Z".to_owned(), time_bucket: 202_611_210_000 },
    ];
    let mut rows = store.multi_get(&model, &keys).await.expect("multi-get");
    rows.sort_by_key(|row| row.time_bucket);
    let found: Vec<(&str, i64, i64)> =
        rows.iter().map(|row| (row.id.as_str(), row.time_bucket, value_of(row))).collect();
    assert_eq!(found, [("X", 202_611_202_359, 1), ("X", 202_611_210_000, 7)]);
    assert_eq!(rows[1].values, [Value::Long(7), Value::Long(70)], "an update carries the whole row");

    let instance = InstanceTraffic {
        service_id: "B".to_owned(),
        name: "b1".to_owned(),
        last_ping: 202_611_211_230,
        properties: "{}".to_owned(),
        time_bucket: 202_611_211_200,
    };
    write(&store, vec![insert(&traffic::INSTANCE, instance.clone().into_row())]).await;
    let key = RowKey { id: instance.id(), time_bucket: 0 };
    let rows = store.multi_get(&traffic::INSTANCE, &[key]).await.expect("multi-get metadata");
    assert_eq!(rows.into_iter().map(InstanceTraffic::from_row).collect::<Vec<_>>(), [instance]);
}

/// Every search condition of the trace list, both orders, and pages that never overlap.
pub async fn segment_search_filters_sorts_and_pages(target: &impl Target) {
    let store = fresh(target).await;
    write_segments(&store, five_segments()).await;
    let search = |change: &dyn Fn(&mut TraceSearch)| {
        let mut search = TraceSearch { limit: 20, ..TraceSearch::default() };
        change(&mut search);
        let store = store.clone();
        async move { store.search_segments(&search).await.expect("search") }
    };
    let all = search(&|_| {}).await;
    assert_eq!(ids(&all), ["s5", "s4", "s3", "s2", "s1"], "newest start first");
    assert_eq!(all[4], five_segments()[0], "a segment reads back whole");
    // Latencies 50, 30, 30, 20, 5; s1 and s5 tie and go by id.
    let slowest = search(&|s| s.order = TraceOrder::Duration).await;
    assert_eq!(ids(&slowest), ["s3", "s1", "s5", "s2", "s4"]);
    assert_eq!(ids(&search(&|s| s.service_id = Some("A".to_owned())).await), ["s5", "s3", "s1"]);
    assert_eq!(ids(&search(&|s| s.service_instance_id = Some("b1".to_owned())).await), ["s4", "s2"]);
    assert_eq!(ids(&search(&|s| s.endpoint_id = Some("A/api".to_owned())).await), ["s3", "s1"]);
    assert_eq!(ids(&search(&|s| s.trace_id = Some("t3".to_owned())).await), ["s5", "s4"]);
    let t3_of_b = search(&|s| {
        s.trace_id = Some("t3".to_owned());
        s.service_id = Some("B".to_owned());
    });
    assert_eq!(ids(&t3_of_b.await), ["s4"]);
    let one_day =
        |s: &mut TraceSearch| s.time_range = Some(TimeRange { start: 20_261_121_000_000, end: 20_261_121_000_200 });
    assert_eq!(ids(&search(&one_day).await), ["s4", "s3", "s2"]);
    let midnight =
        |s: &mut TraceSearch| s.time_range = Some(TimeRange { start: 20_261_120_235_959, end: 20_261_121_000_000 });
    assert_eq!(ids(&search(&midnight).await), ["s2", "s1"], "a range across midnight reads both days");
    let latency = search(&|s| {
        s.min_latency = Some(20);
        s.max_latency = Some(30);
    });
    assert_eq!(ids(&latency.await), ["s5", "s2", "s1"]);
    assert_eq!(ids(&search(&|s| s.state = TraceState::Error).await), ["s3"]);
    assert_eq!(ids(&search(&|s| s.state = TraceState::Success).await), ["s5", "s4", "s2", "s1"]);
    assert_eq!(ids(&search(&|s| s.tags = vec!["http.method=GET".to_owned()]).await), ["s5", "s2", "s1"]);
    let both = search(&|s| s.tags = vec!["http.method=GET".to_owned(), "http.status_code=200".to_owned()]);
    assert_eq!(ids(&both.await), ["s1"]);
    assert!(search(&|s| s.trace_id = Some("t9".to_owned())).await.is_empty());
    let mut pages = Vec::new();
    for offset in [0, 2, 4, 6] {
        pages.push(
            ids(&search(&|s| {
                s.offset = offset;
                s.limit = 2;
            })
            .await)
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>(),
        );
    }
    assert_eq!(pages, [vec!["s5", "s4"], vec!["s3", "s2"], vec!["s1"], vec![]]);
}

/// Several segments to a second: a page that ends inside a second still has the second's
/// newest segments, in start order, ties by id — unfiltered and filtered by endpoint, across
/// midnight.
pub async fn segment_pages_end_on_whole_buckets(target: &impl Target) {
    let store = fresh(target).await;
    let (b1, b2, b3) = (20_261_120_235_959, 20_261_121_000_000, 20_261_121_000_001);
    let segment = |id: &str, bucket: i64, start: i64, endpoint: &str| {
        let service = &endpoint[..1];
        segment_row(id, id, service, service, endpoint, bucket, start, 10, false, &[])
    };
    write_segments(
        &store,
        vec![
            segment("p1", b1, 1_000_100, "A/api"),
            segment("p2", b1, 1_000_900, "B/x"),
            segment("p3", b1, 1_000_500, "A/api"),
            segment("p4", b2, 1_001_000, "A/api"),
            segment("p5", b2, 1_001_000, "A/api"),
            segment("p6", b2, 1_001_700, "B/x"),
            segment("p7", b3, 1_002_300, "A/api"),
            segment("p8", b3, 1_002_200, "A/api"),
            segment("p9", b3, 1_002_400, "B/x"),
        ],
    )
    .await;
    let page = |endpoint: Option<&str>, offset: usize, limit: usize| {
        let search = TraceSearch { endpoint_id: endpoint.map(str::to_owned), offset, limit, ..TraceSearch::default() };
        let store = store.clone();
        async move {
            let found = store.search_segments(&search).await.expect("search");
            ids(&found).into_iter().map(str::to_owned).collect::<Vec<_>>()
        }
    };
    // Newest second first; within one, latest start first; p4 and p5 start together: by id.
    // All: p9 p7 p8 | p6 p4 p5 | p2 p3 p1.
    let mut pages = Vec::new();
    for offset in [0, 2, 4, 6, 8, 10] {
        pages.push(page(None, offset, 2).await);
    }
    assert_eq!(pages, [vec!["p9", "p7"], vec!["p8", "p6"], vec!["p4", "p5"], vec!["p2", "p3"], vec!["p1"], vec![]]);
    // Endpoint A/api: p7 p8 | p4 p5 | p3 p1.
    assert_eq!(page(Some("A/api"), 0, 1).await, ["p7"]);
    assert_eq!(page(Some("A/api"), 0, 4).await, ["p7", "p8", "p4", "p5"]);
    assert_eq!(page(Some("A/api"), 2, 3).await, ["p4", "p5", "p3"]);
    assert_eq!(page(Some("A/api"), 4, 4).await, ["p3", "p1"]);
    assert_eq!(page(Some("B/x"), 1, 1).await, ["p6"]);
}

/// Slowest first over more segments than a store holds at once while it reads: every page is
/// the one sorting them all gives (latency, then id), deep pages too.
pub async fn slowest_first_pages_of_many_segments(target: &impl Target) {
    let store = fresh(target).await;
    let segments: Vec<SegmentRow> = (0..1_500)
        .map(|n: i32| {
            let id = format!("m{n:04}");
            let bucket = 20_261_121_000_000 + i64::from(n % 60);
            segment_row(&id, &id, "A", "a1", "A/api", bucket, 100_000 + i64::from(n), (n * 7919) % 1_000, false, &[])
        })
        .collect();
    let mut slowest: Vec<(i32, String)> =
        segments.iter().map(|segment| (segment.latency, segment.segment_id.clone())).collect();
    slowest.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    for chunk in segments.chunks(500) {
        write_segments(&store, chunk.to_vec()).await;
    }
    // Each page's end is less than half the rows, so the embedded store trims while it reads.
    for (offset, limit) in [(0, 10), (200, 50), (600, 7)] {
        let search = TraceSearch { order: TraceOrder::Duration, offset, limit, ..TraceSearch::default() };
        let found = store.search_segments(&search).await.expect("search");
        let expected: Vec<&str> = slowest.iter().skip(offset).take(limit).map(|(_, id)| id.as_str()).collect();
        assert_eq!(ids(&found), expected, "offset {offset}, limit {limit}");
    }
}

/// A trace's segments across days, oldest first; a time range narrows them.
pub async fn segments_of_a_trace(target: &impl Target) {
    let store = fresh(target).await;
    write_segments(&store, five_segments()).await;
    let t1 = store.segments_of_trace("t1", None, 200).await.expect("trace");
    assert_eq!(ids(&t1), ["s1", "s2"]);
    assert_eq!(t1[1].data_binary, b"bytes of s2");
    let day = TimeRange { start: 20_261_121_000_000, end: 20_261_121_235_959 };
    assert_eq!(ids(&store.segments_of_trace("t1", Some(day), 200).await.expect("trace")), ["s2"]);
    assert_eq!(ids(&store.segments_of_trace("t3", None, 1).await.expect("trace")), ["s4"]);
    assert!(store.segments_of_trace("t9", None, 200).await.expect("trace").is_empty());
}

/// Services, instances active in a range, one instance, endpoint search, alias reload.
pub async fn metadata_reads(target: &impl Target) {
    let store = fresh(target).await;
    let service = |name: &str, layer| ServiceTraffic { name: name.to_owned(), layer, time_bucket: 202_611_211_200 };
    let instance = |service: &str, name: &str, first: i64, last: i64| InstanceTraffic {
        service_id: service.to_owned(),
        name: name.to_owned(),
        last_ping: last,
        properties: format!(r#"{{"name":"{name}"}}"#),
        time_bucket: first,
    };
    let endpoint = |service: &str, name: &str, first: i64, last: i64| EndpointTraffic {
        service_id: service.to_owned(),
        name: name.to_owned(),
        last_ping: last,
        time_bucket: first,
    };
    let backend = "cHktYmFja2VuZA==.1";
    let instances = [
        instance(backend, "i1", 202_611_211_200, 202_611_211_230),
        instance(backend, "i2", 202_611_211_000, 202_611_211_100),
        instance(backend, "i3", 202_611_211_300, 202_611_211_310),
        instance("cHktZnJvbnRlbmQ=.1", "i4", 202_611_211_200, 202_611_211_230),
    ];
    let endpoints = [
        endpoint(backend, "/work", 202_611_211_200, 202_611_211_230),
        endpoint(backend, "/work/slow", 202_611_211_210, 202_611_211_210),
        endpoint(backend, "/health", 202_611_211_220, 202_611_211_220),
        endpoint("cHktZnJvbnRlbmQ=.1", "/work", 202_611_211_200, 202_611_211_230),
    ];
    let aliases = [("127.0.0.1:18082", 202_611_211_231), ("10.0.0.1:80", 202_611_211_100)].map(|(address, last)| {
        NetworkAddressAlias {
            address: address.to_owned(),
            represent_service_id: backend.to_owned(),
            represent_service_instance_id: format!("{backend}_aTE="),
            last_update_time_bucket: last,
            time_bucket: 202_611_211_000,
        }
    });
    let mut batch = vec![
        insert(&traffic::SERVICE, service("py-frontend", Layer::GENERAL).into_row()),
        insert(&traffic::SERVICE, service("py-backend", Layer::GENERAL).into_row()),
        insert(&traffic::SERVICE, service("mysql:3306", Layer::VIRTUAL_DATABASE).into_row()),
    ];
    batch.extend(instances.iter().map(|row| insert(&traffic::INSTANCE, row.clone().into_row())));
    batch.extend(endpoints.iter().map(|row| insert(&traffic::ENDPOINT, row.clone().into_row())));
    batch.extend(aliases.iter().map(|row| insert(&alias::MODEL, row.clone().into_row())));
    write(&store, batch).await;

    // By id: bXlzcWw6MzMwNg==.14 < cHktYmFja2VuZA==.2 < cHktZnJvbnRlbmQ=.2.
    let services = store.list_services().await.expect("services");
    let names: Vec<(&str, Layer)> = services.iter().map(|service| (service.name.as_str(), service.layer)).collect();
    assert_eq!(
        names,
        [("mysql:3306", Layer::VIRTUAL_DATABASE), ("py-backend", Layer::GENERAL), ("py-frontend", Layer::GENERAL)]
    );

    // i2 was last seen before the start, i3 first seen after the end.
    let names = |rows: Vec<InstanceTraffic>| rows.into_iter().map(|row| row.name).collect::<Vec<_>>();
    let active = store.list_instances(backend, 202_611_211_200, 202_611_211_259).await.expect("instances");
    assert_eq!(names(active), ["i1"]);
    let wide = store.list_instances(backend, 202_611_211_000, 202_611_211_400).await.expect("instances");
    assert_eq!(names(wide), ["i1", "i2", "i3"]);
    assert_eq!(store.instance(&instances[0].id()).await.expect("instance"), Some(instances[0].clone()));
    assert_eq!(store.instance("nope").await.expect("instance"), None);

    let found = |rows: Vec<EndpointTraffic>| rows.into_iter().map(|row| row.name).collect::<Vec<_>>();
    let work = store.find_endpoints(backend, Some("work"), None, 10).await.expect("endpoints");
    assert_eq!(found(work), ["/work/slow", "/work"], "newest first");
    assert_eq!(found(store.find_endpoints(backend, Some("work"), None, 1).await.expect("endpoints")), ["/work/slow"]);
    assert_eq!(
        found(store.find_endpoints(backend, None, None, 10).await.expect("endpoints")),
        ["/health", "/work/slow", "/work"]
    );
    // Active from 12:15 to 13:00: /work/slow was last seen at 12:10.
    let active =
        store.find_endpoints(backend, None, Some((202_611_211_215, 202_611_211_300)), 10).await.expect("endpoints");
    assert_eq!(found(active), ["/health", "/work"]);

    let reloaded = store.aliases_since(202_611_211_200).await.expect("aliases");
    assert_eq!(reloaded, [aliases[0].clone()]);

    // Tags: a row per day and tag; a range reads the whole days it touches.
    let tag = |key: &str, value: &str, tag_type: &str, minute: i64| {
        let row = TagAutocomplete {
            key: key.to_owned(),
            value: value.to_owned(),
            tag_type: tag_type.to_owned(),
            time_bucket: minute,
        };
        insert(&tag::MODEL, row.into_row())
    };
    write(
        &store,
        vec![
            tag("http.method", "POST", tag::TRACE, 202_611_201_000),
            tag("http.method", "GET", tag::TRACE, 202_611_210_900),
            tag("http.method", "GET", tag::TRACE, 202_611_211_200),
            tag("http.status_code", "500", tag::TRACE, 202_611_212_350),
            tag("db.type", "mysql", tag::TRACE, 202_611_211_230),
            tag("level", "ERROR", "LOG", 202_611_211_230),
        ],
    )
    .await;
    let (noon, one) = (202_611_211_200, 202_611_211_300);
    let keys = store.tag_keys(tag::TRACE, noon, one, 100).await.expect("keys");
    assert_eq!(keys, ["db.type", "http.method", "http.status_code"], "the 21st's trace tags, each key once");
    assert_eq!(store.tag_keys(tag::TRACE, noon, one, 2).await.expect("keys"), ["db.type", "http.method"]);
    assert_eq!(store.tag_keys("LOG", noon, one, 100).await.expect("keys"), ["level"]);
    let values = |start, end| {
        let store = store.clone();
        async move { store.tag_values(tag::TRACE, "http.method", start, end, 100).await.expect("values") }
    };
    assert_eq!(values(noon, one).await, ["GET"]);
    assert_eq!(values(202_611_202_300, one).await, ["GET", "POST"], "across midnight");
    assert!(values(202_611_220_000, 202_611_220_100).await.is_empty());
}

/// Relation rows by side, time range and granularity, selected by services, pair or endpoint.
pub async fn topology_reads(target: &impl Target) {
    let store = fresh(target).await;
    let edge = |source: &str, dest: &str, time_bucket, component| ServiceRelation {
        source_service_id: source.to_owned(),
        dest_service_id: dest.to_owned(),
        component_ids: vec![component],
        time_bucket,
    };
    let (minute, next, hour) = (202_611_211_230, 202_611_211_231, 2_026_112_112);
    let mut batch: Vec<Write> = [
        edge("A", "B", minute, 7001),
        edge("User", "A", next, 7001),
        edge("C", "D", minute, 7001),
        edge("A", "B", hour, 7001),
    ]
    .into_iter()
    .map(|edge| insert(&relation::SERVICE_SERVER, edge.into_row()))
    .collect();
    batch.push(insert(&relation::SERVICE_CLIENT, edge("A", "B", minute, 7002).into_row()));
    let instance_edge = |source_service: &str, source: &str, dest_service: &str, dest: &str| InstanceRelation {
        source_service_id: source_service.to_owned(),
        source_instance_id: source.to_owned(),
        dest_service_id: dest_service.to_owned(),
        dest_instance_id: dest.to_owned(),
        time_bucket: minute,
    };
    for row in
        [instance_edge("A", "a1", "B", "b1"), instance_edge("B", "b1", "A", "a2"), instance_edge("C", "c1", "D", "d1")]
    {
        batch.push(insert(&relation::INSTANCE_SERVER, row.into_row()));
    }
    let endpoint_edge = |source: &str, dest: &str| EndpointRelation {
        entity_id: format!("{source}-{dest}"),
        source_endpoint: source.to_owned(),
        dest_endpoint: dest.to_owned(),
        component_id: 7001,
        time_bucket: minute,
    };
    for row in [endpoint_edge("e1", "e2"), endpoint_edge("e3", "e1"), endpoint_edge("e4", "e5")] {
        batch.push(insert(&relation::ENDPOINT_SERVER, row.into_row()));
    }
    write(&store, batch).await;

    let minutes = TimeRange { start: minute, end: next };
    let pairs = |rows: Vec<ServiceRelation>| {
        let mut pairs: Vec<(String, String, i64, Vec<i32>)> = rows
            .into_iter()
            .map(|row| (row.source_service_id, row.dest_service_id, row.time_bucket, row.component_ids))
            .collect();
        pairs.sort();
        pairs
    };
    let pair = |source: &str, dest: &str, time_bucket: i64, component: i32| {
        (source.to_owned(), dest.to_owned(), time_bucket, vec![component])
    };
    let all = store.service_relations(Side::Server, minutes, &[]).await.expect("relations");
    assert_eq!(pairs(all), [pair("A", "B", minute, 7001), pair("C", "D", minute, 7001), pair("User", "A", next, 7001)]);
    let of_b = store.service_relations(Side::Server, minutes, &["B".to_owned()]).await.expect("relations");
    assert_eq!(pairs(of_b), [pair("A", "B", minute, 7001)]);
    let of_a = store.service_relations(Side::Server, minutes, &["A".to_owned()]).await.expect("relations");
    assert_eq!(pairs(of_a), [pair("A", "B", minute, 7001), pair("User", "A", next, 7001)], "as source or target");
    let client = store.service_relations(Side::Client, minutes, &["A".to_owned()]).await.expect("relations");
    assert_eq!(pairs(client), [pair("A", "B", minute, 7002)]);
    let hours = TimeRange { start: hour, end: hour };
    assert_eq!(
        pairs(store.service_relations(Side::Server, hours, &[]).await.expect("relations")),
        [pair("A", "B", hour, 7001)]
    );

    let mut instances: Vec<String> = store
        .instance_relations(Side::Server, minutes, "A", "B")
        .await
        .expect("instance relations")
        .into_iter()
        .map(|row| format!("{}>{}", row.source_instance_id, row.dest_instance_id))
        .collect();
    instances.sort();
    assert_eq!(instances, ["a1>b1", "b1>a2"], "either direction");
    assert!(store.instance_relations(Side::Client, minutes, "A", "B").await.expect("instance relations").is_empty());

    let mut endpoints: Vec<String> = store
        .endpoint_relations(minutes, "e1")
        .await
        .expect("endpoint relations")
        .into_iter()
        .map(|row| row.entity_id)
        .collect();
    endpoints.sort();
    assert_eq!(endpoints, ["e1-e2", "e3-e1"]);
}

/// Chart reads: one value per bucket asked, `None` where nothing is stored.
pub async fn metric_points_in_bucket_order(target: &impl Target) {
    let store = fresh(target).await;
    let model = cpm();
    write(
        &store,
        vec![
            insert(&model, cpm_row("X", 202_611_211_232, 32)),
            insert(&model, cpm_row("X", 202_611_211_230, 30)),
            insert(&model, cpm_row("Y", 202_611_211_231, 99)),
        ],
    )
    .await;
    let buckets = [202_611_211_230, 202_611_211_231, 202_611_211_232];
    let points = store.read_points(&model, "X", &buckets).await.expect("points");
    assert_eq!(points.iter().map(|point| point.as_ref().map(value_of)).collect::<Vec<_>>(), [Some(30), None, Some(32)]);
}

/// An endpoint metric like OAL's `endpoint_cpm`: `service_id`, `attr0` and `value`.
fn endpoint_cpm() -> ModelRef {
    let columns = vec![
        Column::new("service_id", ColumnType::Text, Indexing::Filter),
        Column::new("attr0", ColumnType::Text, Indexing::Filter),
        Column::new("value", ColumnType::Long, Indexing::Filter),
    ];
    let kind = ModelKind::Metrics { time_relative: true, downsampling: true, update: true };
    Arc::new(Model::new("endpoint_cpm", kind, columns).expect("valid model"))
}

/// Top-N of a metric: entities by the average of their rows in the range, filtered by columns
/// (equal, or not equal with nulls passing), ordered by the exact average with ties by id, and
/// reported truncated.
pub async fn entities_ranked_by_average(target: &impl Target) {
    let store = fresh(target).await;
    store.install(&[endpoint_cpm()]).await.expect("install");
    let model = endpoint_cpm();
    let row = |id: &str, bucket: i64, service: &str, layer: Option<&str>, value: i64| {
        let layer = layer.map_or(Value::Null, |layer| Value::Text(layer.to_owned()));
        insert(
            &model,
            Row {
                id: id.to_owned(),
                time_bucket: bucket,
                values: vec![Value::Text(service.to_owned()), layer, Value::Long(value)],
            },
        )
    };
    let (m1, m2, m3) = (202_611_211_231, 202_611_211_232, 202_611_211_233);
    write(
        &store,
        vec![
            // a: (10 + 21) / 2 = 15.5 → 15; b: 15 (its 900 is outside the range); c: 40; d: 7 and null attr0.
            row("a", m1, "s1", Some("GENERAL"), 10),
            row("a", m2, "s1", Some("GENERAL"), 21),
            row("b", m2, "s1", Some("GENERAL"), 15),
            row("b", m3, "s1", Some("GENERAL"), 900),
            row("c", m1, "s2", Some("GENERAL"), 40),
            row("d", m1, "s1", None, 7),
        ],
    )
    .await;
    let range = TimeRange { start: m1, end: m2 };
    let ranked = |filters: Vec<Filter>, limit: usize, descending: bool| {
        let (store, model) = (store.clone(), model.clone());
        async move {
            let found = store.sort_metrics(&model, 2, filters, Top { range, limit, descending }).await.expect("sort");
            found.into_iter().map(|entity| (entity.entity_id, entity.average)).collect::<Vec<_>>()
        }
    };
    let pairs = |list: &[(&str, i64)]| list.iter().map(|(id, value)| ((*id).to_owned(), *value)).collect::<Vec<_>>();
    assert_eq!(ranked(Vec::new(), 10, true).await, pairs(&[("c", 40), ("a", 15), ("b", 15), ("d", 7)]));
    // The order is by the exact average: b's 15 is below a's 15.5.
    assert_eq!(ranked(Vec::new(), 2, false).await, pairs(&[("d", 7), ("b", 15)]));
    let s1 = Filter::Eq { column: 0, value: Value::Text("s1".to_owned()) };
    let general = Filter::Eq { column: 1, value: Value::Text("GENERAL".to_owned()) };
    assert_eq!(ranked(vec![s1.clone(), general.clone()], 10, true).await, pairs(&[("a", 15), ("b", 15)]));
    assert_eq!(ranked(vec![s1, Filter::Not(Box::new(general))], 10, true).await, pairs(&[("d", 7)]));
}

/// Sampled records (top-N statements): one entity's, within the second range, by latency.
pub async fn slowest_records_of_an_entity(target: &impl Target) {
    use crate::builtin::top_n::col::{ENTITY_ID, LATENCY};
    use crate::builtin::top_n::{self, TopNRecord};
    let store = fresh(target).await;
    let model = top_n::SERVICE_DATABASE_STATEMENT.clone();
    let record = |id: &str, second: i64, entity: &str, latency: i64| TopNRecord {
        id: id.to_owned(),
        statement: format!("select {latency}"),
        latency,
        trace_id: format!("trace-{id}"),
        entity_id: entity.to_owned(),
        time_bucket: 20_261_121_123_000 + second,
        timestamp: 0,
    };
    let records = [
        record("r1", 1, "svc", 30),
        record("r2", 2, "svc", 50),
        record("r3", 3, "svc", 40),
        record("r4", 4, "other", 99),
        record("r5", 70, "svc", 80),
    ];
    write(&store, records.into_iter().map(|record| insert(&model, record.into_row())).collect()).await;
    let range = TimeRange { start: 20_261_121_123_000, end: 20_261_121_123_059 };
    let ids = |rows: Vec<Row>| rows.into_iter().map(|row| row.id).collect::<Vec<_>>();
    let slowest = store.top_records(&model, ENTITY_ID, "svc", LATENCY, Top { range, limit: 2, descending: true });
    assert_eq!(ids(slowest.await.expect("records")), ["r2", "r3"]);
    let fastest = store.top_records(&model, ENTITY_ID, "svc", LATENCY, Top { range, limit: 5, descending: false });
    assert_eq!(ids(fastest.await.expect("records")), ["r1", "r3", "r2"]);
}

/// TTL drops whole days of a model's group, and expired metadata rows.
pub async fn ttl_drops_whole_days(target: &impl Target) {
    let store = fresh(target).await;
    let mut segments = five_segments();
    segments.push(segment_row("s0", "t0", "A", "a1", "A/api", 20_261_119_120_000, 50_000, 10, false, &[]));
    write_segments(&store, segments).await;
    let model = cpm();
    let old = |entity: &str, first: i64| InstanceTraffic {
        service_id: "B".to_owned(),
        name: entity.to_owned(),
        last_ping: first,
        properties: "{}".to_owned(),
        time_bucket: first,
    };
    write(
        &store,
        vec![
            insert(&model, cpm_row("X", 202_611_191_200, 1)),
            insert(&model, cpm_row("X", 202_611_211_200, 2)),
            insert(&traffic::INSTANCE, old("i19", 202_611_191_200).into_row()),
            insert(&traffic::INSTANCE, old("i21", 202_611_211_200).into_row()),
        ],
    )
    .await;

    assert_eq!(store.delete_before(&segment::MODEL, 20_261_120).await.expect("ttl"), 1, "the 19th");
    assert_eq!(store.delete_before(&segment::MODEL, 20_261_120).await.expect("ttl"), 0, "nothing left to drop");
    let left = store.search_segments(&TraceSearch { limit: 20, ..TraceSearch::default() }).await.expect("search");
    assert_eq!(ids(&left), ["s5", "s4", "s3", "s2", "s1"]);
    assert!(store.segments_of_trace("t0", None, 200).await.expect("trace").is_empty(), "the index went with its day");

    // The metric has rows on the 19th and the 21st; the 20th holds none.
    assert_eq!(store.delete_before(&model, 20_261_121).await.expect("ttl"), 1);
    let points = store.read_points(&model, "X", &[202_611_191_200, 202_611_211_200]).await.expect("points");
    assert_eq!(points.iter().map(|point| point.as_ref().map(value_of)).collect::<Vec<_>>(), [None, Some(2)]);

    store.delete_before(&traffic::INSTANCE, 20_261_120).await.expect("ttl");
    let instances = store.list_instances("B", 0, 999_999_999_999).await.expect("instances");
    assert_eq!(instances.into_iter().map(|row| row.name).collect::<Vec<_>>(), ["i21"]);
}

/// Many tasks writing at once: every acknowledged row is there.
pub async fn concurrent_writers_lose_nothing(target: &impl Target) {
    let store = fresh(target).await;
    let model = cpm();
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let (store, model) = (store.clone(), model.clone());
            tokio::spawn(async move {
                for batch in 0..25 {
                    let mut writes = Vec::new();
                    for item in 0..4 {
                        let id = format!("w{writer}-b{batch}-i{item}");
                        let second = 20_261_121_120_000 + i64::from(batch);
                        let row = segment_row(&id, &id, "A", "a1", "A/api", second, 1_000, 1, false, &[]);
                        writes.push(insert(&segment::MODEL, row.into_row()));
                        writes.push(insert(&model, cpm_row(&id, 202_611_211_200, i64::from(item))));
                    }
                    store.write(&writes).await.expect("concurrent write");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer task");
    }
    let all = store.search_segments(&TraceSearch { limit: 10_000, ..TraceSearch::default() }).await.expect("search");
    assert_eq!(all.len(), 8 * 25 * 4);
    let keys: Vec<RowKey> =
        all.iter().map(|row| RowKey { id: row.segment_id.clone(), time_bucket: 202_611_211_200 }).collect();
    assert_eq!(store.multi_get(&model, &keys).await.expect("multi-get").len(), 8 * 25 * 4);
}

/// What was acknowledged is there after the store is closed and opened again.
pub async fn acknowledged_writes_survive_a_reopen(target: &impl Target) {
    let place = target.place();
    let store = target.open(&place).await;
    store.install(&crate::builtin::models()).await.expect("install");
    write_segments(&store, five_segments()).await;
    let model = cpm();
    let service = ServiceTraffic { name: "py-backend".to_owned(), layer: Layer::GENERAL, time_bucket: 202_611_211_200 };
    write(
        &store,
        vec![insert(&model, cpm_row("X", 202_611_211_230, 5)), insert(&traffic::SERVICE, service.clone().into_row())],
    )
    .await;
    drop(store);

    let store = target.open(&place).await;
    let all = store.search_segments(&TraceSearch { limit: 20, ..TraceSearch::default() }).await.expect("search");
    let mut expected = five_segments();
    expected.reverse();
    assert_eq!(all, expected);
    assert_eq!(ids(&store.segments_of_trace("t3", None, 200).await.expect("trace")), ["s4", "s5"]);
    let point = store.read_points(&model, "X", &[202_611_211_230]).await.expect("points");
    assert_eq!(point[0].as_ref().map(value_of), Some(5));
    assert_eq!(store.list_services().await.expect("services"), [service]);
    write(&store, vec![insert(&model, cpm_row("X", 202_611_211_231, 6))]).await;
}

/// A row that does not fit its model is refused as invalid (not to be retried); the store
/// goes on.
pub async fn invalid_writes_are_refused_and_harm_nothing(target: &impl Target) {
    let store = fresh(target).await;
    let model = cpm();
    let wrong = Row { id: "X".to_owned(), time_bucket: 202_611_211_230, values: vec![Value::Text("five".to_owned())] };
    let refused = store.write(&[insert(&model, wrong)]).await.expect_err("text in a long column");
    assert!(!refused.is_retryable(), "{refused}");
    write(&store, vec![insert(&model, cpm_row("X", 202_611_211_230, 5))]).await;
    let point = store.read_points(&model, "X", &[202_611_211_230]).await.expect("points");
    assert_eq!(point[0].as_ref().map(value_of), Some(5));
}

/// Rows whose id or looked-up value is too long for any store (64 KiB: past an embedded key and
/// an Elasticsearch document id) fail their own write as invalid; the store goes on writing.
pub async fn rows_too_long_to_hold_are_refused_and_harm_nothing(target: &impl Target) {
    let store = fresh(target).await;
    let huge = "t".repeat(65_535);
    let long_trace = segment_row("s-long-trace", &huge, "A", "a1", "A/api", 20_261_121_000_000, 1, 1, false, &[]);
    let long_id = segment_row(&huge, "t1", "A", "a1", "A/api", 20_261_121_000_000, 1, 1, false, &[]);
    for row in [long_trace, long_id] {
        let refused = store.write(&[insert(&segment::MODEL, row.into_row())]).await.expect_err("too long to hold");
        assert!(!refused.is_retryable(), "{refused}");
    }
    let metric = cpm_row(&huge, 202_611_211_230, 1);
    assert!(!store.write(&[insert(&cpm(), metric)]).await.expect_err("a 64 KiB metric id").is_retryable());
    let fine = segment_row("s-fine", "t1", "A", "a1", "A/api", 20_261_121_000_000, 1, 1, false, &[]);
    write(&store, vec![insert(&segment::MODEL, fine.into_row())]).await;
    let found = store.segments_of_trace("t1", None, 200).await.expect("segments of t1");
    assert_eq!(found.iter().map(|row| row.segment_id.as_str()).collect::<Vec<_>>(), ["s-fine"]);
}
