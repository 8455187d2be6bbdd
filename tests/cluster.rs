//! The `cluster` module through the real binary, with a real etcd: nodes find each other,
//! receivers follow the list without joining it, a node that stops leaves at once and one that
//! dies leaves when its lease expires; configurations that cannot work refuse to start with
//! the reason; and two receivers routing to two aggregators store exactly what one Mixed node
//! stores of the same traffic.

mod common;

use std::time::{Duration, Instant};

use common::agent::{RawSegmentCollection, Scrape, send_segments, span};
use common::etcd::Etcd;
use common::graphql::Client;
use common::tls::TestCa;
use common::{Backend, OapProcess, Ports, scratch_dir, start_server_with};
use oap_oal::scope::Scope;
use oap_oal::{ApdexThresholds, Catalog};
use oap_proto::v3::{KeyStringValuePair, RefType, SegmentObject, SegmentReference, SpanLayer, SpanType};
use oap_storage::{ScanQuery, StorageRef};
use prost::Message;
use serde_json::{Value, json};

/// A node of an etcd cluster on Elasticsearch, with role `role`.
fn node(etcd: &Etcd, backend: &Backend, role: &str) -> (OapProcess, Ports) {
    node_with(etcd, backend, role, Vec::new())
}

/// [`node`], with `extra` environment.
fn node_with(etcd: &Etcd, backend: &Backend, role: &str, extra: Vec<(&'static str, String)>) -> (OapProcess, Ports) {
    let dir = scratch_dir(&format!("cluster-{}", role.to_lowercase()));
    let mut env = extra;
    env.extend(backend.env(&dir));
    env.extend([
        ("SW_CORE_ROLE", role.to_owned()),
        ("SW_CLUSTER", "etcd".to_owned()),
        ("SW_CLUSTER_ETCD_ENDPOINTS", etcd.endpoint.clone()),
        ("SW_CLUSTER_ETCD_LEASE_TTL", "3".to_owned()),
        ("SW_CLUSTER_ETCD_POLL_PERIOD", "1".to_owned()),
        ("SW_CORE_PERSISTENT_PERIOD", "1".to_owned()),
        ("SW_CORE_OAL_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/../oal").to_owned()),
    ]);
    OapProcess::start(dir, &env, &[])
}

async fn listed(ports: &Ports) -> Vec<(u16, bool)> {
    let text = Client::new(ports.rest).get("/status/cluster/nodes", "application/json").await;
    let nodes: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    nodes["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|node| {
            assert_eq!(node["host"], "127.0.0.1");
            (node["port"].as_u64().and_then(|port| u16::try_from(port).ok()).expect("a port"), node["self"] == true)
        })
        .collect()
}

/// Waits until `ports`' node lists `expected` (gRPC port, self), or fails after `patience`.
async fn wait_for_list(ports: &Ports, expected: &[(u16, bool)], patience: Duration) {
    let deadline = Instant::now() + patience;
    loop {
        let now = listed(ports).await;
        if now == expected {
            return;
        }
        assert!(Instant::now() < deadline, "node on {} lists {now:?}, not {expected:?}", ports.rest);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sorted as SkyWalking sorts nodes: by `host_port` as text.
fn sorted(mut ports: Vec<u16>) -> Vec<u16> {
    ports.sort_by_key(|port| format!("127.0.0.1_{port}"));
    ports
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_find_each_other_and_leave_when_they_stop_or_die() {
    let etcd = Etcd::start();
    let backend = Backend::elasticsearch();
    let (mut mixed, mixed_ports) = node(&etcd, &backend, "Mixed");
    let (mut aggregator, aggregator_ports) = node(&etcd, &backend, "Aggregator");
    let (_receiver, receiver_ports) = node(&etcd, &backend, "Receiver");

    // The two that aggregate are listed, sorted, on every node; the receiver is not.
    let both = sorted(vec![mixed_ports.grpc, aggregator_ports.grpc]);
    let list = |this: u16| both.iter().map(|port| (*port, *port == this)).collect::<Vec<_>>();
    let patience = Duration::from_secs(10);
    wait_for_list(&mixed_ports, &list(mixed_ports.grpc), patience).await;
    wait_for_list(&aggregator_ports, &list(aggregator_ports.grpc), patience).await;
    wait_for_list(&receiver_ports, &list(0), patience).await;

    // A clean stop revokes the lease: the others see it go within a poll period or two.
    aggregator.signal("TERM");
    assert!(
        aggregator.wait_exit(Duration::from_secs(30)).is_some_and(|status| status.success()),
        "{}",
        aggregator.log()
    );
    let stopped = Instant::now();
    wait_for_list(&receiver_ports, &[(mixed_ports.grpc, false)], Duration::from_secs(3)).await;
    wait_for_list(&mixed_ports, &[(mixed_ports.grpc, true)], Duration::from_secs(3)).await;
    println!("a stopped node left the list after {:?}", stopped.elapsed());

    // A node killed outright stays until its lease (3 s) expires.
    mixed.signal("KILL");
    mixed.wait_exit(Duration::from_secs(10)).expect("killed");
    let killed = Instant::now();
    wait_for_list(&receiver_ports, &[], Duration::from_secs(10)).await;
    println!("a killed node left the list after {:?}", killed.elapsed());
    assert!(mixed.log().contains("registered in etcd"), "{}", mixed.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configurations_a_cluster_cannot_work_with_are_refused_with_the_reason() {
    // The embedded store on a node of an etcd cluster.
    let dir = scratch_dir("cluster-embedded");
    let mut env = Ports::any().env();
    env.extend(Backend::Embedded.env(&dir));
    env.extend([("SW_CLUSTER", "etcd".to_owned()), ("SW_CLUSTER_ETCD_ENDPOINTS", "127.0.0.1:1".to_owned())]);
    let mut server = OapProcess::spawn(dir, &env, &[]);
    let status = server.wait_exit(Duration::from_secs(20)).expect("it stops");
    assert!(!status.success());
    let log = server.log();
    assert!(
        log.contains("the embedded store belongs to one process") && log.contains("SW_STORAGE=elasticsearch"),
        "{log}"
    );

    // A node that would register 0.0.0.0 (core's default gRPC host, no internalComHost).
    let dir = scratch_dir("cluster-any-address");
    let mut env: Vec<(&str, String)> =
        Ports::any().env().into_iter().filter(|(name, _)| *name != "SW_CORE_GRPC_HOST").collect();
    let backend = Backend::elasticsearch();
    env.extend(backend.env(&dir));
    env.extend([("SW_CLUSTER", "etcd".to_owned()), ("SW_CLUSTER_ETCD_ENDPOINTS", "127.0.0.1:1".to_owned())]);
    let mut server = OapProcess::spawn(dir, &env, &[]);
    let status = server.wait_exit(Duration::from_secs(20)).expect("it stops");
    assert!(!status.success());
    let log = server.log();
    assert!(log.contains("would register `0.0.0.0`") && log.contains("SW_CLUSTER_INTERNAL_COM_HOST"), "{log}");
}

/// With TLS on every gRPC port (and the agent token asked of agents), a Receiver reaches the
/// Aggregator over TLS, trusting `gRPCSslTrustedCAPath`, without the token (it is no agent); a
/// node with TLS but no CA to trust its peers with refuses to start, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_send_metrics_to_each_other_over_tls() {
    const TOKEN: &str = "cluster-t0ken";
    let ca = TestCa::new(&scratch_dir("cluster-tls-ca"));
    let mut tls = ca.grpc_env();
    tls.push(("SW_AUTHENTICATION", TOKEN.to_owned()));

    // No CA for the peers.
    let etcd = Etcd::start();
    let backend = Backend::elasticsearch();
    let dir = scratch_dir("cluster-tls-no-ca");
    let mut env = Ports::any().env();
    env.extend(backend.env(&dir));
    env.extend(tls.clone());
    env.extend([("SW_CLUSTER", "etcd".to_owned()), ("SW_CLUSTER_ETCD_ENDPOINTS", etcd.endpoint.clone())]);
    let mut server = OapProcess::spawn(dir, &env, &[]);
    let status = server.wait_exit(Duration::from_secs(30)).expect("it stops");
    assert!(!status.success());
    assert!(server.log().contains("gRPCSslTrustedCAPath: needed when gRPCSslEnabled is true"), "{}", server.log());

    tls.push(("SW_CORE_GRPC_SSL_TRUSTED_CA_PATH", ca.ca_path.display().to_string()));
    let (_aggregator, aggregator) = node_with(&etcd, &backend, "Aggregator", tls.clone());
    let (_receiver, receiver) = node_with(&etcd, &backend, "Receiver", tls);
    wait_for_list(&receiver, &[(aggregator.grpc, false)], Duration::from_secs(10)).await;

    let channel = tonic::transport::Channel::from_shared(format!("https://127.0.0.1:{}", receiver.grpc))
        .expect("uri")
        .tls_config(ca.grpc_client_tls())
        .expect("TLS")
        .connect()
        .await
        .expect("TLS connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let batch = RawSegmentCollection { segments: traffic(oap_model::now_ms() - 5_000, 1) }.encode_to_vec();
    let mut request = tonic::Request::new(bytes::Bytes::from(batch));
    request.metadata_mut().insert("authentication", TOKEN.parse().expect("ASCII"));
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/skywalking.v3.TraceSegmentReportService/collectInSync");
    grpc.unary(request, path, oap_loadgen::codec::RawCodec).await.expect("the receiver takes the segments");

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let taken = Scrape::from_port(aggregator.telemetry).await.value("remote_in_count");
        if taken > 0.0 {
            println!("the aggregator took {taken} metrics over TLS");
            break;
        }
        assert!(Instant::now() < deadline, "the aggregator took no metrics from the receiver");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for ports in [&receiver, &aggregator] {
        let refused = Scrape::from_port(ports.telemetry).await.value("grpc_authentication_failure_count");
        assert_eq!(refused, 0.0, "the node on {} refused a call", ports.grpc);
    }
}

/// Known traffic that needs no network address alias (refs carry no peer address, exits go to
/// a database), so that what it becomes does not depend on which node analysed which segment:
/// 3 services × 2 instances, 4 endpoints each, `rounds` calls per endpoint and instance, the
/// later services called by the earlier ones.
fn traffic(start: i64, rounds: usize) -> Vec<Vec<u8>> {
    let mut segments = Vec::new();
    for round in 0..rounds {
        for service in 0..3 {
            for instance in 0..2 {
                for endpoint in 0..4 {
                    let n = ((round * 3 + service) * 2 + instance) * 4 + endpoint;
                    let latency = i64::try_from(10 + (n * 37) % 900).expect("small");
                    let mut entry =
                        span(0, SpanType::Entry, SpanLayer::Http, &format!("/op{endpoint}"), start, latency);
                    entry.is_error = n % 7 == 0;
                    if service > 0 {
                        entry.refs = vec![SegmentReference {
                            ref_type: RefType::CrossProcess as i32,
                            trace_id: format!("trace-{n}"),
                            parent_trace_segment_id: format!("parent-{n}"),
                            parent_span_id: 1,
                            parent_service: format!("svc-{}", service - 1),
                            parent_service_instance: format!("svc-{}-i{instance}", service - 1),
                            parent_endpoint: format!("/op{endpoint}"),
                            network_address_used_at_peer: String::new(),
                        }];
                    }
                    let mut query = span(1, SpanType::Exit, SpanLayer::Database, "SELECT", start + 1, latency / 3);
                    query.peer = "mysql:3306".to_owned();
                    query.component_id = 5;
                    query.tags = vec![KeyStringValuePair { key: "db.type".to_owned(), value: "mysql".to_owned() }];
                    segments.push(
                        SegmentObject {
                            trace_id: format!("trace-{n}"),
                            trace_segment_id: format!("segment-{n}"),
                            spans: vec![entry, query],
                            service: format!("svc-{service}"),
                            service_instance: format!("svc-{service}-i{instance}"),
                            ..SegmentObject::default()
                        }
                        .encode_to_vec(),
                    );
                }
            }
        }
    }
    segments
}

/// Every row of every metric stream, sorted, as `model/id/bucket = values` — without the epoch
/// an OAL row keeps (each node numbers its own epochs by its clock).
async fn every_metric_row(store: &StorageRef, catalog: &Catalog) -> Vec<String> {
    let mut rows = Vec::new();
    for stream in catalog.streams() {
        let model = &stream.model;
        if !model.kind.is_metrics() {
            continue;
        }
        let epoch = model.column(oap_oal::catalog::EPOCH_COLUMN);
        for mut row in store.scan(model, &ScanQuery::default()).await.expect("a scan") {
            if let Some(epoch) = epoch {
                row.values.remove(epoch);
            }
            rows.push(format!("{}/{}/{} = {:?}", model.name, row.id, row.time_bucket, row.values));
        }
    }
    rows.sort();
    rows
}

/// The MQE entity of the traffic above for a metric of `scope`; `None` for scopes it has none of.
fn entity(scope: Scope) -> Option<Value> {
    let service = json!({ "serviceName": "svc-1", "normal": true });
    let mut entity = service.clone();
    match scope {
        Scope::Service => {}
        Scope::ServiceInstance => entity["serviceInstanceName"] = json!("svc-1-i0"),
        Scope::Endpoint => entity["endpointName"] = json!("/op2"),
        Scope::ServiceRelation => {
            entity = json!({ "serviceName": "svc-0", "normal": true, "destServiceName": "svc-1", "destNormal": true });
        }
        Scope::ServiceInstanceRelation => {
            entity = json!({ "serviceName": "svc-0", "normal": true, "serviceInstanceName": "svc-0-i1",
                             "destServiceName": "svc-1", "destNormal": true, "destServiceInstanceName": "svc-1-i1" });
        }
        Scope::EndpointRelation => {
            entity = json!({ "serviceName": "svc-0", "normal": true, "endpointName": "/op3",
                             "destServiceName": "svc-1", "destNormal": true, "destEndpointName": "/op3" });
        }
        Scope::DatabaseAccess => entity = json!({ "serviceName": "mysql:3306", "normal": false }),
        _ => return None,
    }
    Some(entity)
}

/// Every core metric of a scope the traffic has, asked of the node on REST port `rest` for the
/// traffic's minute, hour and day, as the UI asks (MQE); by metric name.
async fn every_metric_answer(rest: u16, start: i64) -> Vec<(String, Value)> {
    let definitions = oap_oal::load("core.oal", oap_oal::CORE_OAL).expect("core.oal");
    let buckets = oap_model::TimeBuckets::system();
    let minute = buckets.minute(start).expect("a minute").to_string();
    let (day, hour) = (&minute[0..8], &minute[8..10]);
    let dashed = format!("{}-{}-{}", &day[0..4], &day[4..6], &day[6..8]);
    let durations = [
        json!({ "start": format!("{dashed} {hour}{}", &minute[10..12]), "end": format!("{dashed} {hour}{}", &minute[10..12]), "step": "MINUTE" }),
        json!({ "start": format!("{dashed} {hour}"), "end": format!("{dashed} {hour}"), "step": "HOUR" }),
        json!({ "start": dashed.clone(), "end": dashed.clone(), "step": "DAY" }),
    ];
    let client = Client::new(rest);
    let document = "query($expression: String!, $entity: Entity!, $duration: Duration!) { result: execExpression(\
                    expression: $expression, entity: $entity, duration: $duration) { type results { metric { labels \
                    { key value } } values { id value } } error } }";
    let mut answers = Vec::new();
    for metric in &definitions.metrics {
        let Some(entity) = entity(metric.scope) else { continue };
        for duration in &durations {
            let variables = json!({ "expression": metric.name, "entity": entity, "duration": duration });
            let answer = client.data(document, variables).await;
            answers.push((format!("{} by {}", metric.name, duration["step"]), answer["result"].clone()));
        }
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_receivers_and_two_aggregators_store_exactly_what_one_mixed_node_stores() {
    let definitions = oap_oal::load("core.oal", oap_oal::CORE_OAL).expect("core.oal");
    let catalog = Catalog::new(definitions, ApdexThresholds::default()).expect("catalog");
    let start = oap_model::now_ms() - 5_000;
    let segments = traffic(start, 5);

    // One Mixed node, standalone, on the embedded store.
    let mixed_dir = scratch_dir("cluster-mixed-reference");
    let (mut mixed, mixed_ports) = start_server_with(&mixed_dir, &Backend::Embedded);
    send_segments(mixed_ports.grpc, segments.clone()).await;

    // The cluster on Elasticsearch: the traffic split over the two receivers.
    let etcd = Etcd::start();
    let backend = Backend::elasticsearch();
    let (_aggregator_a, aggregator_a) = node(&etcd, &backend, "Aggregator");
    let (_aggregator_b, aggregator_b) = node(&etcd, &backend, "Aggregator");
    let (_receiver_a, receiver_a) = node(&etcd, &backend, "Receiver");
    let (_receiver_b, receiver_b) = node(&etcd, &backend, "Receiver");
    let both = sorted(vec![aggregator_a.grpc, aggregator_b.grpc]);
    for ports in [&receiver_a, &receiver_b] {
        wait_for_list(ports, &both.iter().map(|port| (*port, false)).collect::<Vec<_>>(), Duration::from_secs(10))
            .await;
    }
    let (first, second) = segments.split_at(segments.len() / 2);
    send_segments(receiver_a.grpc, first.to_vec()).await;
    send_segments(receiver_b.grpc, second.to_vec()).await;

    // The reference: the Mixed node stopped cleanly (which writes every minute, hour and day),
    // its rows read, then started again on the same store and asked through GraphQL.
    mixed.signal("TERM");
    assert!(mixed.wait_exit(Duration::from_secs(30)).is_some_and(|status| status.success()), "{}", mixed.log());
    let expected = every_metric_row(&Backend::Embedded.open(&mixed_dir).await, &catalog).await;
    assert!(expected.len() > 100, "the reference stored {} rows", expected.len());
    let (_mixed, mixed_ports) = start_server_with(&mixed_dir, &Backend::Embedded);
    let reference = every_metric_answer(mixed_ports.rest, start).await;
    let with_values = reference
        .iter()
        .filter(|(_, answer)| {
            answer["results"].as_array().is_some_and(|results| {
                results.iter().any(|result| {
                    result["values"]
                        .as_array()
                        .is_some_and(|values| values.iter().any(|value| !value["value"].is_null()))
                })
            })
        })
        .count();
    assert!(reference.iter().all(|(_, answer)| answer["error"].is_null()), "{reference:#?}");

    // The cluster's rows, once its aggregators have written them all.
    let store = backend.open(&mixed_dir).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored = every_metric_row(&store, &catalog).await;
        if stored == expected {
            break;
        }
        if Instant::now() > deadline {
            let missing: Vec<&String> = expected.iter().filter(|row| !stored.contains(row)).take(10).collect();
            let extra: Vec<&String> = stored.iter().filter(|row| !expected.contains(row)).take(10).collect();
            panic!(
                "the cluster stored {} rows, the Mixed node {}; missing {missing:#?}; extra {extra:#?}",
                stored.len(),
                expected.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("{} metric rows equal", expected.len());
    // Both aggregators took a share, over the network.
    for ports in [&aggregator_a, &aggregator_b] {
        let taken = Scrape::from_port(ports.telemetry).await.value("remote_in_count");
        assert!(taken > 0.0, "the aggregator on {} took no metrics", ports.grpc);
        println!("aggregator on {} took {taken} metrics", ports.grpc);
    }

    // Every core metric, at minute, hour and day, answers the same through GraphQL on every
    // node of the cluster as on the Mixed node.
    for ports in [&receiver_a, &receiver_b, &aggregator_a, &aggregator_b] {
        let answers = every_metric_answer(ports.rest, start).await;
        for ((metric, expected), (_, answer)) in reference.iter().zip(&answers) {
            assert_eq!(answer, expected, "{metric} on the node with REST port {}", ports.rest);
        }
        assert_eq!(answers.len(), reference.len());
    }
    println!("{} answers ({with_values} with values) equal on every node", reference.len());
    // 39 metrics of the scopes the traffic has, at 3 levels; the client-side relation metrics
    // have no calls here (no exit span calls a service), the rest must show values.
    assert!(with_values >= 3 * 25, "only {with_values} answers had values");

    // A receiver and an aggregator answer one chart alike.
    let minute = oap_model::TimeBuckets::system().minute(start).expect("a minute").to_string();
    let text = format!("{}-{}-{} {}", &minute[0..4], &minute[4..6], &minute[6..8], &minute[8..12]);
    let document = "query($entity: Entity!, $duration: Duration!) { cpm: execExpression(expression: \"service_cpm\", \
                    entity: $entity, duration: $duration) { results { values { value } } error } }";
    let variables = json!({
        "entity": { "serviceName": "svc-1", "normal": true },
        "duration": { "start": text, "end": text, "step": "MINUTE" },
    });
    let mut answers = Vec::new();
    for ports in [&receiver_a, &aggregator_b] {
        answers.push(Client::new(ports.rest).data(document, variables.clone()).await);
    }
    assert_eq!(answers[0], answers[1]);
    // 5 rounds × 2 instances × 4 endpoints calls to svc-1 in the minute.
    assert_eq!(answers[0]["cpm"]["results"][0]["values"][0]["value"], "40", "{}", answers[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregator_killed_under_load_loses_only_what_it_held_and_says_so() {
    let etcd = Etcd::start();
    let backend = Backend::elasticsearch();
    let (_survivor, survivor) = node(&etcd, &backend, "Aggregator");
    let (mut victim, victim_ports) = node(&etcd, &backend, "Aggregator");
    let (receiver_process, receiver) = node(&etcd, &backend, "Receiver");
    let order = sorted(vec![survivor.grpc, victim_ports.grpc]);
    wait_for_list(&receiver, &order.iter().map(|port| (*port, false)).collect::<Vec<_>>(), Duration::from_secs(10))
        .await;
    // Which of the two a service's metrics go to while both are listed.
    let survivor_index = order.iter().position(|port| *port == survivor.grpc).expect("listed");
    let services: Vec<String> = (0..12).map(|n| format!("kill-svc-{n}")).collect();
    let owned_by_survivor =
        |name: &str| oap_stream::route::target_index(&oap_model::ids::service_id(name, true), 2) == survivor_index;
    assert!(
        services.iter().any(|name| owned_by_survivor(name)) && !services.iter().all(|name| owned_by_survivor(name))
    );

    // Load: one segment of one entry span per service every 200 ms, each answered.
    let mut sent = 0usize;
    let send_round = |round: usize| {
        let now = oap_model::now_ms();
        let segments: Vec<Vec<u8>> = services
            .iter()
            .map(|service| {
                SegmentObject {
                    trace_id: format!("{service}-{round}"),
                    trace_segment_id: format!("{service}-{round}"),
                    spans: vec![span(0, SpanType::Entry, SpanLayer::Http, "/kill", now - 20, 10)],
                    service: service.clone(),
                    service_instance: format!("{service}-i"),
                    ..SegmentObject::default()
                }
                .encode_to_vec()
            })
            .collect();
        send_segments(receiver.grpc, segments)
    };
    let started = Instant::now();
    let mut killed_at = None;
    while started.elapsed() < Duration::from_secs(16) {
        send_round(sent).await;
        sent += 1;
        if killed_at.is_none() && started.elapsed() > Duration::from_secs(6) {
            victim.signal("KILL");
            victim.wait_exit(Duration::from_secs(10)).expect("killed");
            killed_at = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The survivor alone is listed now.
    wait_for_list(&receiver, &[(survivor.grpc, false)], Duration::from_secs(10)).await;

    // Calls per service, summed over the minute rows of service_cpm, once the survivor has
    // written what it holds.
    let store = backend.open(&scratch_dir("cluster-kill-read")).await;
    let definitions = oap_oal::load("core.oal", oap_oal::CORE_OAL).expect("core.oal");
    let catalog = Catalog::new(definitions, ApdexThresholds::default()).expect("catalog");
    let model = catalog.find("service_cpm").expect("service_cpm").1.model.clone();
    let total = model.column("total").expect("total");
    let counted = |rows: &[oap_storage::Row], service: &str| -> i64 {
        let id = oap_model::ids::service_id(service, true);
        rows.iter().filter(|row| row.id == id && row.time_bucket > 100_000_000_000).map(|row| row.long(total)).sum()
    };
    let sent = i64::try_from(sent).expect("small");
    let deadline = Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let rows = store.scan(&model, &ScanQuery::default()).await.expect("a scan");
        let exact = services.iter().filter(|name| owned_by_survivor(name)).all(|name| counted(&rows, name) == sent);
        if exact || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut lost = 0;
    for service in &services {
        let stored = counted(&rows, service);
        if owned_by_survivor(service) {
            assert_eq!(stored, sent, "{service}, whose aggregator survived, has every call");
        } else {
            assert!(stored > 0 && stored <= sent, "{service}: {stored} of {sent} calls; never more than sent");
            lost += sent - stored;
        }
    }
    // What the dead node held is counted and logged by the receiver that sent it.
    let scrape = Scrape::from_port(receiver.telemetry).await;
    let at_risk = scrape.value("remote_out_at_risk_count");
    println!(
        "{sent} calls per service; {lost} calls of the victim's services lost; {at_risk} metrics reported at risk; \
         the kill {:?} before the end",
        killed_at.map(|at| at.elapsed())
    );
    if lost > 0 {
        assert!(at_risk > 0.0, "calls were lost and nothing was reported");
        assert!(
            receiver_process.log().contains("a node left the cluster holding metrics"),
            "{}",
            receiver_process.log()
        );
    }
}
