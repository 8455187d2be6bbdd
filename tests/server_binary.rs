//! The real `oap-server` binary: it starts, answers on its three ports (moved by SkyWalking's
//! env names or by `--set`), serves its own metrics, stops cleanly on SIGTERM and SIGINT, and
//! refuses a bad configuration with a message that names the problem.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{OapProcess, Ports, scratch_dir};
use oap_proto::v3::SegmentCollection;
use oap_proto::v3::trace_segment_report_service_client::TraceSegmentReportServiceClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const READY_TIMEOUT: Duration = Duration::from_secs(10);
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("test runtime")
}

#[test]
fn serves_on_env_ports_and_stops_on_sigterm() {
    let ports = Ports::free();
    let mut server = OapProcess::spawn(scratch_dir("env-ports"), &ports.env(), &[]);
    let started = Instant::now();
    server.wait_ready(&ports.all(), READY_TIMEOUT);
    eprintln!("ports answered after {:?}", started.elapsed());

    runtime().block_on(async {
        // gRPC on SW_CORE_GRPC_PORT: the health service says SERVING ...
        let endpoint = format!("http://127.0.0.1:{}", ports.grpc);
        let channel = tonic::transport::Channel::from_shared(endpoint.clone())
            .expect("uri")
            .connect()
            .await
            .expect("connect gRPC");
        let mut health = HealthClient::new(channel);
        let status = health.check(HealthCheckRequest { service: String::new() }).await.expect("health check");
        assert_eq!(status.into_inner().status(), ServingStatus::Serving);
        // ... and the trace receiver answers an (empty) batch with empty Commands.
        let mut traces = TraceSegmentReportServiceClient::connect(endpoint).await.expect("connect gRPC");
        let commands = traces.collect_in_sync(SegmentCollection::default()).await.expect("served");
        assert!(commands.into_inner().commands.is_empty());

        // HTTP on SW_CORE_REST_PORT answers (404 where no route is).
        let response = reqwest::get(format!("http://127.0.0.1:{}/", ports.rest)).await.expect("HTTP answers");
        assert_eq!(response.status(), reqwest::StatusCode::NOT_FOUND);

        // Telemetry on SW_TELEMETRY_PROMETHEUS_PORT serves the Prometheus text format.
        let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", ports.telemetry))
            .await
            .expect("scrape /metrics")
            .text()
            .await
            .expect("metrics body");
        assert!(metrics.contains("# TYPE uptime gauge"), "{metrics}");
        let uptime: f64 = metrics
            .lines()
            .find_map(|line| line.strip_prefix("uptime "))
            .and_then(|value| value.parse().ok())
            .expect("an uptime sample");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
        assert!((now - uptime).abs() < 60.0, "uptime is the start time in epoch seconds, got {uptime}");
    });

    server.signal("TERM");
    let status = server.wait_exit(EXIT_TIMEOUT).expect("exits within a few seconds of SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", server.log());
    let log = server.log();
    assert!(log.contains("oap-server ready"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

#[test]
fn set_flag_moves_a_port_and_sigint_stops() {
    let ports = Ports::free();
    let moved = common::free_port();
    let set = format!("core.default.gRPCPort={moved}");
    let mut server = OapProcess::spawn(scratch_dir("set-flag"), &ports.env(), &["--set", &set]);
    server.wait_ready(&[moved, ports.rest, ports.telemetry], READY_TIMEOUT);
    server.signal("INT");
    let status = server.wait_exit(EXIT_TIMEOUT).expect("exits after SIGINT");
    assert_eq!(status.code(), Some(0), "{}", server.log());
}

#[test]
fn config_file_in_working_directory_is_used() {
    let ports = Ports::free();
    let dir = scratch_dir("cwd-config");
    let config = format!(
        "core:\n  default:\n    gRPCHost: 127.0.0.1\n    gRPCPort: {}\n    restHost: 127.0.0.1\n    restPort: {}\ntelemetry:\n  selector: none\n  none:\n",
        ports.grpc, ports.rest
    );
    std::fs::write(dir.join("application.yml"), config).expect("write config");
    let mut server = OapProcess::spawn(dir, &[], &[]);
    server.wait_ready(&[ports.grpc, ports.rest], READY_TIMEOUT);
    let log = server.log();
    let loaded = log.lines().find(|line| line.contains("configuration loaded")).expect("a configuration line");
    // Only the modules the file lists are booted.
    assert!(loaded.ends_with("config=application.yml modules=telemetry/none, core/default"), "{loaded}");
    server.signal("TERM");
    assert_eq!(server.wait_exit(EXIT_TIMEOUT).and_then(|s| s.code()), Some(0), "{}", server.log());
}

fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = scratch_dir("bad-config");
    let output = Command::new(env!("CARGO_BIN_EXE_oap-server"))
        .current_dir(&dir)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run oap-server");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), text)
}

#[test]
fn unknown_key_is_refused_by_name() {
    let dir = scratch_dir("unknown-key");
    let path = dir.join("wrongkey.yml");
    std::fs::write(&path, "core:\n  selector: default\n  default:\n    gRPCPortt: 11800\ntelemetry:\n  none:\n")
        .expect("write config");
    let (code, output) = run_to_exit(&["--config", path.to_str().expect("utf-8 path")], &[]);
    assert_eq!(code, Some(2), "{output}");
    assert!(output.contains("core.default.gRPCPortt: unknown setting"), "{output}");
}

#[test]
fn bad_env_value_and_missing_file_are_refused() {
    let (code, output) = run_to_exit(&["--set", "telemetry.selector=none"], &[("SW_CORE_ROLE", "Reciever")]);
    assert_eq!(code, Some(2), "{output}");
    assert!(output.contains("core.default.role: unknown role `Reciever`"), "{output}");

    let (code, output) = run_to_exit(&["--config", "/nonexistent/application.yml"], &[]);
    assert_eq!(code, Some(2), "{output}");
    assert!(output.contains("cannot read the configuration file /nonexistent/application.yml"), "{output}");
}

#[test]
fn taken_port_fails_the_boot_clearly() {
    let ports = Ports::free();
    let _taken = std::net::TcpListener::bind(("127.0.0.1", ports.rest)).expect("hold the REST port");
    let mut server = OapProcess::spawn(scratch_dir("taken-port"), &ports.env(), &[]);
    let status = server.wait_exit(READY_TIMEOUT).expect("exits when a port is taken");
    assert_eq!(status.code(), Some(1));
    let log = server.log();
    assert!(log.contains(&format!("cannot bind the HTTP server to 127.0.0.1:{}", ports.rest)), "{log}");
}
