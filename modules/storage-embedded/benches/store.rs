//! Throughput of the embedded store on its hot paths, and its size on disk.
//!
//! - `segment_write`: batches of 500 typical 5-span segments (a Java service's entry, a local
//!   span, MySQL, Redis and HTTP exits), each batch synced before it returns;
//! - `metrics_bulk_write`: 2,000 metric rows updated per batch (one L2 flush of one metric);
//! - `metrics_multi_get`: 2,000 random keys out of 20,000 rows (the L2 merge's load).
//!
//! Before those, it stores 20,000 segments, compacts the store as a long-running one ends up,
//! and prints the bytes on disk per span.
//!
//! Run: `cargo bench -p oap-storage-embedded --bench store`

use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput};
use oap_proto::v3::{KeyStringValuePair, RefType, SegmentObject, SegmentReference, SpanLayer, SpanObject, SpanType};
use oap_storage::builtin::segment::{self, SegmentRow};
use oap_storage::{Column, ColumnType, Indexing, Model, ModelKind, ModelRef, Row, RowKey, Storage, Value, Write};
use oap_storage_embedded::{Budget, EmbeddedStore};
use prost::Message;
use rand::RngExt;

const SPANS_PER_SEGMENT: usize = 5;

fn tag(key: &str, value: impl Into<String>) -> KeyStringValuePair {
    KeyStringValuePair { key: key.to_owned(), value: value.into() }
}

fn hex_id(rng: &mut impl rand::Rng) -> String {
    format!("{:032x}", rng.random::<u128>())
}

#[allow(clippy::too_many_arguments)]
fn span(
    id: i32,
    parent: i32,
    start: i64,
    millis: i64,
    operation: &str,
    peer: &str,
    span_type: SpanType,
    layer: SpanLayer,
    component: i32,
    tags: Vec<KeyStringValuePair>,
) -> SpanObject {
    SpanObject {
        span_id: id,
        parent_span_id: parent,
        start_time: start,
        end_time: start + millis,
        operation_name: operation.to_owned(),
        peer: peer.to_owned(),
        span_type: span_type.into(),
        span_layer: layer.into(),
        component_id: component,
        tags,
        ..SpanObject::default()
    }
}

/// A typical segment of an instrumented Java service handling one request.
fn typical_segment(rng: &mut impl rand::Rng, start: i64) -> (SegmentRow, usize) {
    let (trace_id, segment_id) = (format!("{}.64.{start}0001", hex_id(rng)), hex_id(rng));
    let order = rng.random_range(1_000..100_000);
    let latency = rng.random_range(5..400);
    let mut entry = span(
        0,
        -1,
        start,
        latency,
        "/api/orders/{id}",
        "",
        SpanType::Entry,
        SpanLayer::Http,
        1,
        vec![
            tag("http.method", "GET"),
            tag("url", format!("http://order-service:8080/api/orders/{order}")),
            tag("http.status_code", "200"),
        ],
    );
    entry.refs = vec![SegmentReference {
        ref_type: RefType::CrossProcess.into(),
        trace_id: trace_id.clone(),
        parent_trace_segment_id: hex_id(rng),
        parent_span_id: 2,
        parent_service: "gateway".to_owned(),
        parent_service_instance: "gateway-5c8f@10.0.1.2".to_owned(),
        parent_endpoint: "/api/orders/{id}".to_owned(),
        network_address_used_at_peer: "order-service:8080".to_owned(),
    }];
    let spans = vec![
        span(1, 0, start + 1, latency - 2, "OrderService.find", "", SpanType::Local, SpanLayer::Unknown, 0, vec![]),
        span(
            2,
            1,
            start + 2,
            3,
            "Mysql/JDBC/PreparedStatement/executeQuery",
            "mysql:3306",
            SpanType::Exit,
            SpanLayer::Database,
            33,
            vec![
                tag("db.type", "Mysql"),
                tag("db.instance", "orders"),
                tag("db.statement", "SELECT id, status, total FROM orders WHERE id = ?"),
            ],
        ),
        span(
            3,
            1,
            start + 6,
            1,
            "Jedis/get",
            "redis:6379",
            SpanType::Exit,
            SpanLayer::Cache,
            30,
            vec![tag("cache.type", "Redis"), tag("cache.cmd", "get"), tag("cache.key", format!("order:{order}"))],
        ),
        span(
            4,
            1,
            start + 8,
            latency / 2,
            "/api/stock/{sku}",
            "stock-service:8080",
            SpanType::Exit,
            SpanLayer::Http,
            13,
            vec![
                tag("http.method", "GET"),
                tag("url", format!("http://stock-service:8080/api/stock/{}", order % 977)),
                tag("http.status_code", "200"),
            ],
        ),
        entry,
    ];
    let object = SegmentObject {
        trace_id: trace_id.clone(),
        trace_segment_id: segment_id.clone(),
        spans,
        service: "order-service".to_owned(),
        service_instance: "order-service-7d9f@10.0.3.17".to_owned(),
        is_size_limited: false,
    };
    let data_binary = object.encode_to_vec();
    let raw = data_binary.len();
    let row = SegmentRow {
        segment_id,
        trace_id,
        service_id: "b3JkZXItc2VydmljZQ==.1".to_owned(),
        service_instance_id: "b3JkZXItc2VydmljZQ==.1_b3JkZXItc2VydmljZS03ZDlmQDEwLjAuMy4xNw==".to_owned(),
        endpoint_id: "b3JkZXItc2VydmljZQ==.1_L2FwaS9vcmRlcnMve2lkfQ==".to_owned(),
        start_time: start,
        latency: i32::try_from(latency).unwrap_or(i32::MAX),
        is_error: false,
        time_bucket: 20_261_121_120_000 + (start / 1_000) % 60,
        data_binary,
        tags: ["http.method=GET", "http.status_code=200", "db.type=Mysql", "db.instance=orders"]
            .map(str::to_owned)
            .to_vec(),
    };
    (row, raw)
}

fn segment_batch(rng: &mut impl rand::Rng, size: usize) -> Vec<Write> {
    (0..size)
        .map(|_| {
            let start = 1_795_262_400_000 + rng.random_range(0..60_000);
            Write::Insert(segment::MODEL.clone(), typical_segment(rng, start).0.into_row())
        })
        .collect()
}

fn metric_model() -> ModelRef {
    let columns = vec![
        Column::new("value", ColumnType::Long, Indexing::Filter),
        Column::new("total", ColumnType::Long, Indexing::StorageOnly),
        Column::new("service_id", ColumnType::Text, Indexing::Filter),
    ];
    let kind = ModelKind::Metrics { time_relative: true, downsampling: true, update: true };
    Arc::new(Model::new("endpoint_cpm", kind, columns).expect("valid model"))
}

fn metric_rows(model: &ModelRef, entities: usize, value: i64) -> Vec<Write> {
    (0..entities)
        .map(|entity| {
            let row = Row {
                id: format!("b3JkZXItc2VydmljZQ==.1_L2FwaS9vcmRlcnMve2lkfQ==-{entity}"),
                time_bucket: 202_611_211_200,
                values: vec![
                    Value::Long(value),
                    Value::Long(value * 60),
                    Value::Text("b3JkZXItc2VydmljZQ==.1".to_owned()),
                ],
            };
            Write::Update(model.clone(), row)
        })
        .collect()
}

fn open(name: &str) -> EmbeddedStore {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    EmbeddedStore::open(&dir, Budget::default()).expect("open the store")
}

fn report_disk_usage(runtime: &tokio::runtime::Runtime) {
    let store = open("disk");
    let mut rng = rand::rng();
    let segments = 20_000;
    let mut raw = 0;
    runtime.block_on(async {
        for _ in 0..segments / 500 {
            let batch: Vec<Write> = (0..500)
                .map(|_| {
                    let start = 1_795_262_400_000 + rng.random_range(0..60_000);
                    let (row, bytes) = typical_segment(&mut rng, start);
                    raw += bytes;
                    Write::Insert(segment::MODEL.clone(), row.into_row())
                })
                .collect();
            store.write(&batch).await.expect("write");
        }
        store.compact().await.expect("compact");
    });
    let (tables, disk) = (store.table_space(), store.disk_space().expect("disk space"));
    let spans = (segments * SPANS_PER_SEGMENT) as f64;
    println!(
        "disk usage: {segments} segments of {SPANS_PER_SEGMENT} spans: tables {tables} B = {:.1} B/span \
         (the segments' protobuf alone: {:.1} B/span); with the journal's preallocated file: {disk} B",
        tables as f64 / spans,
        raw as f64 / spans
    );
    for (name, bytes) in store.table_space_by_partition() {
        println!("  partition {name}: {bytes} B = {:.1} B/span", bytes as f64 / spans);
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    report_disk_usage(&runtime);
    let mut criterion =
        Criterion::default().sample_size(20).measurement_time(Duration::from_secs(8)).configure_from_args();

    let store = open("segments");
    let mut rng = rand::rng();
    let mut group = criterion.benchmark_group("segment_write");
    group.throughput(Throughput::Elements(500));
    group.bench_function("batch_500_synced", |bench| {
        bench.iter_batched(
            || segment_batch(&mut rng, 500),
            |batch| runtime.block_on(store.write(&batch)).expect("write"),
            BatchSize::LargeInput,
        );
    });
    group.finish();
    drop(store);

    let store = open("metrics");
    let model = metric_model();
    runtime.block_on(store.write(&metric_rows(&model, 20_000, 1))).expect("prefill");
    let mut group = criterion.benchmark_group("metrics");
    group.throughput(Throughput::Elements(2_000));
    let mut value = 1;
    group.bench_function("bulk_write_2000", |bench| {
        bench.iter_batched(
            || {
                value += 1;
                metric_rows(&model, 2_000, value)
            },
            |batch| runtime.block_on(store.write(&batch)).expect("write"),
            BatchSize::LargeInput,
        );
    });
    group.bench_function("multi_get_2000_of_20000", |bench| {
        bench.iter_batched(
            || {
                (0..2_000)
                    .map(|_| RowKey {
                        id: format!("b3JkZXItc2VydmljZQ==.1_L2FwaS9vcmRlcnMve2lkfQ==-{}", rng.random_range(0..20_000)),
                        time_bucket: 202_611_211_200,
                    })
                    .collect::<Vec<_>>()
            },
            |keys| {
                let rows = runtime.block_on(store.multi_get(&model, &keys)).expect("multi-get");
                assert_eq!(rows.len(), keys.len());
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
    criterion.final_summary();
}
