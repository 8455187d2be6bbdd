//! The shipped `core.oal` against the reference's table, and sources turned into the values of
//! OAL metrics and hard-coded streams.

use std::collections::HashMap;

use oap_model::Layer;
use oap_model::source::{RequestFacts, RequestType, Service, ServiceRelation, SpanTags};
use oap_proto::v3::KeyStringValuePair;

use super::*;
use crate::function::Function;

/// The 63 metrics of docs/reference/oal.md §5 with their scope and function.
const REFERENCE: &[(&str, Scope, &str)] = &[
    ("service_resp_time", Scope::Service, "longAvg"),
    ("service_sla", Scope::Service, "percent"),
    ("service_cpm", Scope::Service, "cpm"),
    ("service_percentile", Scope::Service, "percentile2"),
    ("service_apdex", Scope::Service, "apdex"),
    ("service_mq_consume_count", Scope::Service, "count"),
    ("service_mq_consume_latency", Scope::Service, "longAvg"),
    ("service_relation_client_cpm", Scope::ServiceRelation, "cpm"),
    ("service_relation_server_cpm", Scope::ServiceRelation, "cpm"),
    ("service_relation_client_call_sla", Scope::ServiceRelation, "percent"),
    ("service_relation_server_call_sla", Scope::ServiceRelation, "percent"),
    ("service_relation_client_resp_time", Scope::ServiceRelation, "longAvg"),
    ("service_relation_server_resp_time", Scope::ServiceRelation, "longAvg"),
    ("service_relation_client_percentile", Scope::ServiceRelation, "percentile2"),
    ("service_relation_server_percentile", Scope::ServiceRelation, "percentile2"),
    ("service_instance_relation_client_cpm", Scope::ServiceInstanceRelation, "cpm"),
    ("service_instance_relation_server_cpm", Scope::ServiceInstanceRelation, "cpm"),
    ("service_instance_relation_client_call_sla", Scope::ServiceInstanceRelation, "percent"),
    ("service_instance_relation_server_call_sla", Scope::ServiceInstanceRelation, "percent"),
    ("service_instance_relation_client_resp_time", Scope::ServiceInstanceRelation, "longAvg"),
    ("service_instance_relation_server_resp_time", Scope::ServiceInstanceRelation, "longAvg"),
    ("service_instance_relation_client_percentile", Scope::ServiceInstanceRelation, "percentile2"),
    ("service_instance_relation_server_percentile", Scope::ServiceInstanceRelation, "percentile2"),
    ("service_instance_sla", Scope::ServiceInstance, "percent"),
    ("service_instance_resp_time", Scope::ServiceInstance, "longAvg"),
    ("service_instance_cpm", Scope::ServiceInstance, "cpm"),
    ("endpoint_cpm", Scope::Endpoint, "cpm"),
    ("endpoint_resp_time", Scope::Endpoint, "longAvg"),
    ("endpoint_sla", Scope::Endpoint, "percent"),
    ("endpoint_percentile", Scope::Endpoint, "percentile2"),
    ("endpoint_mq_consume_latency", Scope::Endpoint, "longAvg"),
    ("endpoint_relation_cpm", Scope::EndpointRelation, "cpm"),
    ("endpoint_relation_resp_time", Scope::EndpointRelation, "longAvg"),
    ("endpoint_relation_sla", Scope::EndpointRelation, "percent"),
    ("endpoint_relation_percentile", Scope::EndpointRelation, "percentile2"),
    ("database_access_resp_time", Scope::DatabaseAccess, "longAvg"),
    ("database_access_sla", Scope::DatabaseAccess, "percent"),
    ("database_access_cpm", Scope::DatabaseAccess, "cpm"),
    ("database_access_percentile", Scope::DatabaseAccess, "percentile2"),
    ("cache_read_resp_time", Scope::CacheAccess, "longAvg"),
    ("cache_read_sla", Scope::CacheAccess, "percent"),
    ("cache_read_cpm", Scope::CacheAccess, "cpm"),
    ("cache_read_percentile", Scope::CacheAccess, "percentile2"),
    ("cache_write_resp_time", Scope::CacheAccess, "longAvg"),
    ("cache_write_sla", Scope::CacheAccess, "percent"),
    ("cache_write_cpm", Scope::CacheAccess, "cpm"),
    ("cache_write_percentile", Scope::CacheAccess, "percentile2"),
    ("cache_access_resp_time", Scope::CacheAccess, "longAvg"),
    ("cache_access_sla", Scope::CacheAccess, "percent"),
    ("cache_access_cpm", Scope::CacheAccess, "cpm"),
    ("cache_access_percentile", Scope::CacheAccess, "percentile2"),
    ("mq_service_consume_cpm", Scope::MqAccess, "cpm"),
    ("mq_service_consume_sla", Scope::MqAccess, "percent"),
    ("mq_service_consume_latency", Scope::MqAccess, "longAvg"),
    ("mq_service_consume_percentile", Scope::MqAccess, "percentile2"),
    ("mq_service_produce_cpm", Scope::MqAccess, "cpm"),
    ("mq_service_produce_sla", Scope::MqAccess, "percent"),
    ("mq_endpoint_consume_cpm", Scope::MqEndpointAccess, "cpm"),
    ("mq_endpoint_consume_latency", Scope::MqEndpointAccess, "longAvg"),
    ("mq_endpoint_consume_percentile", Scope::MqEndpointAccess, "percentile2"),
    ("mq_endpoint_consume_sla", Scope::MqEndpointAccess, "percent"),
    ("mq_endpoint_produce_cpm", Scope::MqEndpointAccess, "cpm"),
    ("mq_endpoint_produce_sla", Scope::MqEndpointAccess, "percent"),
];

fn core() -> Catalog {
    let definitions = crate::load("core.oal", crate::CORE_OAL).expect("core.oal compiles");
    Catalog::new(definitions, ApdexThresholds::default()).expect("a catalog")
}

#[test]
fn every_scope_of_core_oal_is_compiled_into_one_program() {
    let catalog = core();
    for (index, program) in catalog.programs.iter().enumerate() {
        assert!(program.numbers_everything(), "scope {index}: a metric evaluates its own filters or input");
    }
    let relation = &catalog.programs[Scope::ServiceRelation.index()];
    // detectPoint CLIENT, detectPoint SERVER, status == true: each read once per source.
    assert_eq!(relation.conditions(), 3);
}

#[test]
fn core_oal_defines_exactly_the_reference_metrics() {
    let catalog = core();
    assert_eq!(catalog.metrics().len(), 63);
    for (metric, (name, scope, function)) in catalog.metrics().iter().zip(REFERENCE) {
        assert_eq!((metric.name.as_str(), metric.scope), (*name, *scope));
        let expected = match Function::of_name(function) {
            Some(crate::function::FunctionName::Ready(function)) => function,
            _ => Function::Percentile2 { precision: 10 },
        };
        assert_eq!(metric.function, expected, "{name}");
    }
    let decorated: Vec<&str> =
        catalog.metrics().iter().filter(|metric| metric.decorated).map(|metric| metric.name.as_str()).collect();
    assert_eq!(
        decorated,
        [
            "service_resp_time",
            "service_sla",
            "service_cpm",
            "service_apdex",
            "endpoint_cpm",
            "endpoint_resp_time",
            "endpoint_sla"
        ]
    );
    // 63 metrics and the 10 hard-coded metric streams.
    assert_eq!(catalog.streams().len(), 73);
    let model = &catalog.find("endpoint_cpm").expect("endpoint_cpm").1.model;
    let columns: Vec<&str> = model.columns.iter().map(|column| column.name).collect();
    // SkyWalking's columns, then ours: the epochs the row holds (docs/durable-ingest.md).
    assert_eq!(
        columns,
        ["service_id", "attr0", "attr1", "attr2", "attr3", "attr4", "attr5", "total", "value", "ingest_epochs"]
    );
}

#[test]
fn disabled_streams_are_left_out() {
    let mut definitions = crate::load("core.oal", crate::CORE_OAL).expect("compiles");
    definitions.merge(crate::load("disable.oal", "disable(endpoint_relation_server_side);").expect("ok")).expect("ok");
    let catalog = Catalog::new(definitions, ApdexThresholds::default()).expect("a catalog");
    assert!(catalog.find("endpoint_relation_server_side").is_none());
    assert!(catalog.is_disabled("endpoint_relation_server_side"));
    assert_eq!(catalog.streams().len(), 72);
}

/// A sink that keeps every group's slots, as L1 does.
#[derive(Default)]
struct Rows(HashMap<(GroupId, String, i64), Vec<Option<Slot>>>);

impl MetricSink for Rows {
    fn group(&mut self, group: GroupId, slots: usize, entity: &EntityKey<'_>, time_bucket: i64) -> &mut [Option<Slot>] {
        self.0.entry((group, entity.id(), time_bucket)).or_insert_with(|| vec![None; slots])
    }
}

impl Rows {
    /// Every row held: stream, entity and slot.
    fn all<'a>(&'a self, catalog: &'a Catalog) -> impl Iterator<Item = (StreamId, &'a str, &'a Slot)> {
        self.0.iter().flat_map(|((group, entity, _), slots)| {
            let streams = catalog.group_streams(*group);
            assert_eq!(streams.len(), slots.len(), "a group has a slot per stream");
            streams.iter().zip(slots).filter_map(|(stream, slot)| Some((*stream, entity.as_str(), slot.as_ref()?)))
        })
    }

    /// The fixed columns and value of `name`'s row for `entity`.
    fn get(&self, catalog: &Catalog, name: &str, entity: &str) -> Option<(Vec<Value>, MetricValue)> {
        let (id, _) = catalog.find(name)?;
        self.all(catalog)
            .find(|(stream, id_, _)| *stream == id && *id_ == entity)
            .map(|(_, _, slot)| (slot.fixed.to_vec(), slot.value.clone()))
    }
}

fn facts(latency: i32, status: bool, tags: &[KeyStringValuePair]) -> RequestFacts<'_> {
    RequestFacts {
        latency,
        status,
        http_response_status_code: 0,
        rpc_status_code: "",
        request_type: Some(RequestType::Mq),
        tags: SpanTags(tags),
        time_bucket: 202_611_211_230,
    }
}

#[test]
fn service_sources_feed_their_metrics_and_the_traffic_stream() {
    let catalog = core();
    let mut rows = Rows::default();
    let tags = [KeyStringValuePair { key: "transmission.latency".into(), value: "40".into() }];
    for (latency, status, tags) in [(100, true, &tags[..]), (700, true, &[][..]), (50, false, &[][..])] {
        let service = Service {
            name: "py-backend",
            layer: Layer::GENERAL,
            service_instance_name: "i1",
            endpoint_name: "/work",
            request: facts(latency, status, tags),
        };
        catalog.aggregate(&Source::Service(service), &mut rows);
    }
    let entity = "cHktYmFja2VuZA==.1";
    let value = |name| rows.get(&catalog, name, entity).map(|row| row.1);
    assert_eq!(value("service_cpm"), Some(MetricValue::Cpm { total: 3 }));
    assert_eq!(value("service_resp_time"), Some(MetricValue::LongAvg { summation: 850, count: 3 }));
    assert_eq!(value("service_sla"), Some(MetricValue::Percent { matched: 2, total: 3 }));
    // 100 ms satisfies, 700 ms tolerates (T = 500), the error frustrates.
    assert_eq!(value("service_apdex"), Some(MetricValue::Apdex { total: 3, satisfied: 1, tolerating: 1 }));
    assert_eq!(value("service_mq_consume_count"), Some(MetricValue::Count(3)));
    // Only the first source has the tag: the others pass no filter and touch nothing.
    assert_eq!(value("service_mq_consume_latency"), Some(MetricValue::LongAvg { summation: 40, count: 1 }));
    let (fixed, _) = rows.get(&catalog, "service_cpm", entity).expect("row");
    assert_eq!(fixed[0], Value::Text("GENERAL".into()), "ServiceDecorator fills attr0");
    assert_eq!(fixed[1..], [Value::Null, Value::Null, Value::Null, Value::Null, Value::Null]);
    let (fixed, _) = rows.get(&catalog, "service_percentile", entity).expect("row");
    assert_eq!(fixed[0], Value::Null, "no decorator, no attr0");
    let (fixed, value) = rows.get(&catalog, "service_traffic", "cHktYmFja2VuZA==.2").expect("traffic");
    assert_eq!(fixed[0], Value::Text("py-backend".into()));
    assert_eq!(value, MetricValue::Fixed);
}

#[test]
fn relations_feed_their_side_with_component_ids() {
    let catalog = core();
    let mut rows = Rows::default();
    for (detect_point, component_id) in
        [(DetectPoint::Client, 7002), (DetectPoint::Client, 7001), (DetectPoint::Server, 7001)]
    {
        let relation = ServiceRelation {
            source_service_name: "py-frontend",
            source_service_instance_name: "f1",
            source_layer: Layer::GENERAL,
            dest_service_name: "py-backend",
            dest_service_instance_name: "b1",
            dest_layer: Layer::GENERAL,
            endpoint: "/work",
            component_id,
            detect_point,
            request: facts(20, true, &[]),
        };
        catalog.aggregate(&Source::ServiceRelation(relation), &mut rows);
    }
    let entity = "cHktZnJvbnRlbmQ=.1-cHktYmFja2VuZA==.1";
    let client = rows.get(&catalog, "service_relation_client_side", entity).expect("client side");
    assert_eq!(client.0, [Value::Text("cHktZnJvbnRlbmQ=.1".into()), Value::Text("cHktYmFja2VuZA==.1".into())]);
    assert_eq!(client.1, MetricValue::Components(vec![7001, 7002]));
    let server = rows.get(&catalog, "service_relation_server_side", entity).expect("server side");
    assert_eq!(server.1, MetricValue::Components(vec![7001]));
    assert_eq!(
        rows.get(&catalog, "service_relation_client_cpm", entity).map(|row| row.1),
        Some(MetricValue::Cpm { total: 2 })
    );
    assert_eq!(
        rows.get(&catalog, "service_relation_server_cpm", entity).map(|row| row.1),
        Some(MetricValue::Cpm { total: 1 })
    );
}

#[test]
fn stored_rows_read_back_into_the_same_metric() {
    let catalog = core();
    let (id, stream) = catalog.find("service_relation_client_side").expect("stream");
    let metric = Metric {
        stream: id,
        entity_id: "a.1-b.1".into(),
        time_bucket: 2_026_112_112,
        fixed: vec![Value::Text("a.1".into()), Value::Text("b.1".into())].into(),
        value: MetricValue::Components(vec![142, 7001]),
        epoch: 0,
    };
    assert_eq!(stream.read(id, stream.row(&metric, &WriterEpochs::default())), metric);
    let (id, stream) = catalog.find("instance_traffic").expect("stream");
    let metric = Metric {
        stream: id,
        entity_id: "a.1_aQ==".into(),
        time_bucket: 202_611_211_230,
        fixed: vec![Value::Text("a.1".into()), Value::Text("i".into())].into(),
        value: MetricValue::Ping { last_ping: 202_611_211_231, properties: Some("{}".into()) },
        epoch: 0,
    };
    assert_eq!(stream.read(id, stream.row(&metric, &WriterEpochs::default())), metric);
}

#[test]
fn an_oal_row_keeps_each_writers_epoch_and_an_older_row_reads_as_none() {
    let catalog = core();
    let (id, stream) = catalog.find("service_resp_time").expect("stream");
    let fixed: Vec<Value> = stream.model.columns[..stream.fixed].iter().map(|_| Value::Null).collect();
    let metric = Metric {
        stream: id,
        entity_id: "a.1".into(),
        time_bucket: 202_611_211_230,
        fixed: fixed.into(),
        value: MetricValue::LongAvg { summation: 300, count: 2 },
        epoch: 0,
    };
    let mut writers = WriterEpochs::default();
    writers.raise(0xab, 1_796_000_000_123);
    writers.raise(0x1f, 1_796_000_000_500);
    writers.raise(0xab, 1_796_000_000_100);
    assert_eq!(writers.get(0xab), 1_796_000_000_123, "never lowered");
    let row = stream.row(&metric, &writers);
    let column = stream.model.column(crate::catalog::EPOCH_COLUMN).expect("the epoch column");
    assert_eq!(row.values.len(), stream.model.columns.len());
    assert_eq!(row.value(column).as_str(), Some("ab:1796000000123,1f:1796000000500"));
    assert_eq!(stream.writers(&row), writers);
    assert_eq!(stream.read(id, row.clone()), metric);
    let mut older = row;
    older.values.pop();
    assert_eq!(stream.writers(&older), WriterEpochs::default());
    assert_eq!(stream.read(id, older), metric);
    assert_eq!(WriterEpochs::parse("zz:1,2:x,3:4").get(3), 4, "what does not parse is left out");
}

#[test]
fn a_searchable_tag_is_kept_once_a_day() {
    let catalog = core();
    let mut rows = Rows::default();
    for minute in [202_611_211_230, 202_611_211_231, 202_611_220_001] {
        let tag = oap_model::source::TagAutocomplete { key: "http.method", value: "GET", time_bucket: minute };
        catalog.aggregate(&Source::TagAutocomplete(tag), &mut rows);
    }
    let (stream, _) = catalog.find("tag_autocomplete").expect("the tag stream");
    let mut ids: Vec<&str> = rows.all(&catalog).filter(|row| row.0 == stream).map(|row| row.1).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids, ["20261121_TRACE_http.method_GET", "20261122_TRACE_http.method_GET"]);
    let (fixed, value) = rows.get(&catalog, "tag_autocomplete", "20261121_TRACE_http.method_GET").expect("row");
    assert_eq!(fixed, [Value::Text("http.method".into()), Value::Text("GET".into()), Value::Text("TRACE".into())]);
    assert_eq!(value, MetricValue::Fixed);
}

#[test]
fn an_instance_report_and_its_trace_traffic_fill_one_instance_traffic_row() {
    let catalog = core();
    let mut rows = Rows::default();
    let minute = 202_611_211_230;
    let instance = oap_model::source::ServiceInstance {
        name: "i1",
        service_name: "py-backend",
        service_layer: Layer::GENERAL,
        endpoint_name: "/work",
        request: facts(20, true, &[]),
    };
    catalog.aggregate(&Source::ServiceInstance(instance), &mut rows);
    let update = oap_model::source::ServiceInstanceUpdate {
        service_name: "py-backend".into(),
        name: "i1".into(),
        properties: Some(r#"{"language":"python"}"#.into()),
        time_bucket: minute,
    };
    catalog.aggregate(&Source::ServiceInstanceUpdate(update), &mut rows);
    let (stream, _) = catalog.find("instance_traffic").expect("the traffic stream");
    // base64("py-backend") = "cHktYmFja2VuZA==", base64("i1") = "aTE=".
    let traffic: Vec<_> = rows.all(&catalog).filter(|row| row.0 == stream).collect();
    assert_eq!(traffic.len(), 1, "one row: the report merged into the trace's");
    assert_eq!(traffic[0].1, "cHktYmFja2VuZA==.1_aTE=");
    let properties = Some(r#"{"language":"python"}"#.to_owned());
    assert_eq!(traffic[0].2.value, MetricValue::Ping { last_ping: minute, properties });
    let (cpm, _) = catalog.find("service_instance_cpm").expect("instance cpm");
    assert_eq!(
        rows.all(&catalog).filter(|row| row.0 == cpm).map(|row| &row.2.value).collect::<Vec<_>>(),
        [&MetricValue::Cpm { total: 1 }]
    );
}

#[test]
fn every_group_has_a_slot_per_stream_and_every_stream_one_group() {
    let catalog = core();
    let mut placed: Vec<StreamId> = (0..u16::MAX)
        .map(GroupId)
        .take_while(|group| !catalog.group_streams(*group).is_empty() || usize::from(group.0) < Scope::COUNT)
        .flat_map(|group| catalog.group_streams(group).to_vec())
        .collect();
    placed.sort_unstable();
    let all: Vec<StreamId> = (0..catalog.streams().len() as u32).map(StreamId).collect();
    assert_eq!(placed, all);
}

#[test]
fn a_scope_past_what_a_program_numbers_still_evaluates_every_metric_as_written() {
    // 70 distinct filters on one scope: the program numbers 64; the others filter themselves.
    let script: String = (0..70)
        .map(|n| format!("over_{n} = from(Service.latency).filter(latency > {}).longAvg();\n", n * 10))
        .collect();
    let definitions = crate::load("many.oal", &script).expect("compiles");
    let catalog = Catalog::new(definitions, ApdexThresholds::default()).expect("a catalog");
    assert!(!catalog.programs[Scope::Service.index()].numbers_everything());
    let mut rows = Rows::default();
    for latency in [5, 305, 695] {
        let service = Service {
            name: "svc",
            layer: Layer::GENERAL,
            service_instance_name: "i1",
            endpoint_name: "/work",
            request: facts(latency, true, &[]),
        };
        catalog.aggregate(&Source::Service(service), &mut rows);
    }
    let entity = ids::service_id("svc", true);
    // Metric n takes the latencies above n × 10: n < 1 all three, n < 31 two, n < 70 one.
    for n in 0..70 {
        let expected = [5, 305, 695].into_iter().filter(|&latency| latency > n * 10).collect::<Vec<i64>>();
        let held = rows.get(&catalog, &format!("over_{n}"), &entity).map(|row| row.1.clone());
        let wanted = (!expected.is_empty())
            .then(|| MetricValue::LongAvg { summation: expected.iter().sum(), count: expected.len() as i64 });
        assert_eq!(held, wanted, "over_{n}");
    }
}
