//! The `cluster` module through the real binary, with a real etcd: nodes find each other,
//! receivers follow the list without joining it, a node that stops leaves at once and one that
//! dies leaves when its lease expires; configurations that cannot work refuse to start with
//! the reason.

mod common;

use std::time::{Duration, Instant};

use common::etcd::Etcd;
use common::graphql::Client;
use common::{Backend, OapProcess, Ports, scratch_dir};
use serde_json::Value;

/// A node of an etcd cluster on Elasticsearch, with role `role`.
fn node(etcd: &Etcd, backend: &Backend, role: &str) -> (OapProcess, Ports) {
    let dir = scratch_dir(&format!("cluster-{}", role.to_lowercase()));
    let ports = Ports::free();
    let mut env = ports.env();
    env.extend(backend.env(&dir));
    env.extend([
        ("SW_CORE_ROLE", role.to_owned()),
        ("SW_CLUSTER", "etcd".to_owned()),
        ("SW_CLUSTER_ETCD_ENDPOINTS", etcd.endpoint.clone()),
        ("SW_CLUSTER_ETCD_LEASE_TTL", "3".to_owned()),
        ("SW_CLUSTER_ETCD_POLL_PERIOD", "1".to_owned()),
        ("SW_CORE_OAL_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/../oal").to_owned()),
    ]);
    let mut server = OapProcess::spawn(dir, &env, &[]);
    server.wait_ready(&ports.all(), Duration::from_secs(30));
    (server, ports)
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
    let ports = Ports::free();
    let mut env = ports.env();
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
    let ports = Ports::free();
    let mut env: Vec<(&str, String)> =
        ports.env().into_iter().filter(|(name, _)| *name != "SW_CORE_GRPC_HOST").collect();
    let backend = Backend::elasticsearch();
    env.extend(backend.env(&dir));
    env.extend([("SW_CLUSTER", "etcd".to_owned()), ("SW_CLUSTER_ETCD_ENDPOINTS", "127.0.0.1:1".to_owned())]);
    let mut server = OapProcess::spawn(dir, &env, &[]);
    let status = server.wait_exit(Duration::from_secs(20)).expect("it stops");
    assert!(!status.success());
    let log = server.log();
    assert!(log.contains("would register `0.0.0.0`") && log.contains("SW_CLUSTER_INTERNAL_COM_HOST"), "{log}");
}
