//! The official SkyWalking Python agent (apache-skywalking 1.3.0) traces two Flask services,
//! `py-frontend` calling `py-backend`, and reports to the server over gRPC, unchanged. The
//! server runs in this process so the test can watch the sources analysis dispatches; the
//! agents, their HTTP traffic and every byte on the wire are real.
//!
//! Expected, by docs/reference/analysis.md: each request makes one segment per service; the
//! backend's entry span (with a ref from the frontend) yields the server-side relations and teaches
//! the alias `127.0.0.1:<backend port>` → `py-backend`; the frontend's exit span to that address
//! then yields client-side relations whose destination is the callee service itself, not the
//! address. Management calls yield instance properties (`language` = `python`) and heartbeats.
//!
//! A third test runs the same agents over TLS with the agent token: the server's gRPC port has a
//! certificate from a CA the test makes, which the agents' gRPC library trusts through
//! `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH` (it trusts only the system's roots otherwise), and asks for
//! a token, which the agents send from `SW_AGENT_AUTHENTICATION`.
//!
//! The agent is installed by `tests/setup-python-agent.sh` (which `tests/run.sh` runs).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::agent::Scrape;
use common::tls::TestCa;
use common::{Backend, Ports, free_port, scratch_dir};
use oap_core::{SourceConsumer, SourceDispatcherRef};
use oap_kernel::{BootPlan, Kernel};
use oap_model::source::{DetectPoint, Source};
use oap_storage::StorageRef;
use oap_storage::dao::TraceSearch;
use oap_telemetry::MetricsCreatorRef;
use prost::Message;

/// Sources as the test keeps them: owned, and only what it checks.
#[derive(Debug, Default)]
struct Seen {
    /// (service, instance, entry endpoint, trace id) of every segment record.
    segments: Vec<(String, String, String, String)>,
    /// (detect point, source service, dest service, component id) of every service relation.
    service_relations: Vec<(DetectPoint, String, String, i32)>,
    /// (detect point, source instance, dest instance) of every instance relation.
    instance_relations: Vec<(DetectPoint, String, String)>,
    /// (endpoint, service, child endpoint, child service) of every endpoint relation.
    endpoint_relations: Vec<(String, String, String, String)>,
    /// (address, service) of every alias learned.
    aliases: Vec<(String, String)>,
    /// (service, instance, properties) of every instance update.
    instance_updates: Vec<(String, String, Option<String>)>,
}

#[derive(Default)]
struct Recorder(Mutex<Seen>);

impl SourceConsumer for Recorder {
    fn accept(&self, source: &Source<'_>) {
        let mut seen = self.0.lock().expect("lock");
        match source {
            Source::Segment(record) => seen.segments.push((
                record.service_name.to_owned(),
                record.service_instance_name.to_owned(),
                record.endpoint_name.to_owned(),
                record.trace_id.to_owned(),
            )),
            Source::ServiceRelation(relation) => seen.service_relations.push((
                relation.detect_point,
                relation.source_service_name.to_owned(),
                relation.dest_service_name.to_owned(),
                relation.component_id,
            )),
            Source::ServiceInstanceRelation(relation) => seen.instance_relations.push((
                relation.detect_point,
                relation.source_service_instance_name.to_owned(),
                relation.dest_service_instance_name.to_owned(),
            )),
            Source::EndpointRelation(relation) => seen.endpoint_relations.push((
                relation.endpoint.to_owned(),
                relation.service_name.to_owned(),
                relation.child_endpoint.to_owned(),
                relation.child_service_name.to_owned(),
            )),
            Source::NetworkAddressAliasSetup(alias) => {
                seen.aliases.push((alias.address.to_owned(), alias.represent_service_name.to_owned()))
            }
            Source::ServiceInstanceUpdate(update) => seen.instance_updates.push((
                update.service_name.to_string(),
                update.name.to_string(),
                update.properties.clone(),
            )),
            _ => {}
        }
    }
}

impl Recorder {
    /// Waits until `done` holds for what was seen, failing after `timeout` with `what`.
    async fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&Seen) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.0.lock().expect("lock")) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; seen: {:#?}", self.0.lock());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The virtualenv's Python, with the agent installed.
fn agent_python() -> PathBuf {
    let venv = std::env::var_os("OAP_PYTHON_AGENT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-deps/python-agent"));
    let python = venv.join("bin/python");
    assert!(
        venv.join(".oap-ready").exists() && python.exists(),
        "the SkyWalking Python agent is not installed in {}: run `bash tests/setup-python-agent.sh` \
         (tests/run.sh runs it)",
        venv.display()
    );
    python
}

/// A Flask service under the agent; interrupted (so the agent runs its exit path) when dropped.
struct TracedService {
    child: Child,
    log: PathBuf,
}

impl TracedService {
    /// Starts service `name` on `port`, calling `downstream`, its agent reporting to `grpc_port`
    /// with `agent_env` besides the usual settings.
    fn start(
        name: &str,
        port: u16,
        downstream: Option<u16>,
        grpc_port: u16,
        dir: &std::path::Path,
        agent_env: &[(&str, String)],
    ) -> Self {
        let log = dir.join(format!("{name}.log"));
        let output = std::fs::File::create(&log).expect("log file");
        let app = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/python-agent/app.py");
        let mut command = Command::new(agent_python());
        command
            .arg(app)
            .arg(port.to_string())
            .args(downstream.map(|port| format!("http://127.0.0.1:{port}")))
            .env("SW_AGENT_NAME", name)
            .env("SW_AGENT_INSTANCE_NAME", format!("{name}-1@127.0.0.1"))
            .env("SW_AGENT_COLLECTOR_BACKEND_SERVICES", format!("127.0.0.1:{grpc_port}"))
            .env("SW_AGENT_PROTOCOL", "grpc")
            .env("SW_AGENT_COLLECTOR_HEARTBEAT_PERIOD", "2")
            .env("SW_AGENT_METER_REPORTER_PERIOD", "1")
            .env("SW_AGENT_LOGGING_LEVEL", "INFO")
            .env("PYTHONUNBUFFERED", "1")
            .envs(agent_env.iter().map(|(key, value)| (*key, value.as_str())))
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("clone"))
            .stderr(output);
        Self { child: command.spawn().expect("start the Python service"), log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Interrupts the service and waits for it to exit.
    fn stop(&mut self) {
        let _ = Command::new("kill").arg("-INT").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TracedService {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn wait_listening(port: u16, service: &TracedService) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "port {port} not listening:\n{}", service.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the agent wrote that is not normal operation. The agent warns about each of its
/// plugins whose library is not installed (aiohttp, redis, ...); that says nothing of the server.
fn agent_trouble(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| !line.contains("failed to install, please ignore this warning"))
        .filter(|line| {
            ["[ERROR]", "[WARNING]", "[CRITICAL]", "Traceback", "Exception", "StatusCode."]
                .iter()
                .any(|mark| line.contains(mark))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_agents_report_two_linked_services() {
    python_agents(Backend::Embedded).await;
}

/// The same agents, with the server storing in Elasticsearch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_agents_report_two_linked_services_into_elasticsearch() {
    python_agents(Backend::elasticsearch()).await;
}

async fn python_agents(backend: Backend) {
    let python = agent_python();
    eprintln!("agent: {}", python.display());
    let dir = scratch_dir("python-agent");

    let mut vars: HashMap<String, String> = Ports::any().env().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    vars.insert("SW_TELEMETRY".to_owned(), "none".to_owned());
    vars.extend(backend.env(&dir).into_iter().map(|(k, v)| (k.to_owned(), v)));
    let kernel = boot_in_process(&vars).await;
    let grpc = bound_grpc_port(&kernel);
    let recorder = Arc::new(Recorder::default());
    let dispatcher = kernel.service::<SourceDispatcherRef>().expect("the dispatcher");
    dispatcher.subscribe(recorder.clone()).expect("no source dispatched before the agents start");

    let (backend_port, frontend_port) = (free_port(), free_port());
    let mut backend = TracedService::start("py-backend", backend_port, None, grpc, &dir, &[]);
    let mut frontend = TracedService::start("py-frontend", frontend_port, Some(backend_port), grpc, &dir, &[]);
    wait_listening(backend_port, &backend).await;
    wait_listening(frontend_port, &frontend).await;

    let client = reqwest::Client::new();
    let call = || async {
        let response = client.get(format!("http://127.0.0.1:{frontend_port}/api")).send().await.expect("GET /api");
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        assert_eq!(response.text().await.expect("body"), "ok");
    };

    // The first call teaches the alias once the backend's segment arrives; which agent reports
    // first is up to them, so the client-side relation is checked on the calls after it.
    call().await;
    let backend_address = format!("127.0.0.1:{backend_port}");
    recorder
        .wait_for("the alias of the backend's address", Duration::from_secs(30), |seen| {
            seen.aliases.contains(&(backend_address.clone(), "py-backend".to_owned()))
        })
        .await;
    for _ in 0..3 {
        call().await;
    }
    recorder
        .wait_for("4 segments of each service", Duration::from_secs(30), |seen| {
            ["py-frontend", "py-backend"]
                .iter()
                .all(|service| seen.segments.iter().filter(|segment| segment.0 == *service).count() >= 4)
        })
        .await;
    recorder
        .wait_for("both instances' properties", Duration::from_secs(30), |seen| {
            ["py-frontend", "py-backend"]
                .iter()
                .all(|service| seen.instance_updates.iter().any(|update| update.0 == *service && update.2.is_some()))
        })
        .await;

    // The agents' other calls were answered too: meters (9 per instance and period), the
    // profiling-task poll at start, properties and heartbeats.
    let metrics = kernel.service::<MetricsCreatorRef>().expect("telemetry");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let scrape = Scrape(metrics.render());
        let count = |family: &str| scrape.value(&format!(r#"{family}_in_latency_count{{protocol="grpc"}}"#));
        let errors = |family: &str| scrape.value(&format!(r#"{family}_analysis_error_count{{protocol="grpc"}}"#));
        if count("meter") >= 18.0 && count("profile") >= 2.0 && count("management") >= 4.0 {
            for family in ["trace", "meter", "profile", "management"] {
                assert_eq!(errors(family), 0.0, "{family} rejected a message of the real agent");
            }
            break;
        }
        assert!(Instant::now() < deadline, "the agents' meter, profile and management calls:\n{}", scrape.0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert_sources(&recorder.0.lock().expect("lock"), &backend_address);
    assert_stored(&kernel.service::<StorageRef>().expect("the store")).await;

    // The agents ran their exit path (an empty profiling stream) and said nothing was wrong.
    stop_cleanly([&mut frontend, &mut backend], kernel).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_agents_report_over_tls_with_the_agent_token() {
    const TOKEN: &str = "py-t0ken";
    let python = agent_python();
    eprintln!("agent: {}", python.display());
    let dir = scratch_dir("python-agent-tls");
    let ca = TestCa::new(&dir);

    let mut vars: HashMap<String, String> = Ports::any().env().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    vars.extend(ca.grpc_env().into_iter().map(|(k, v)| (k.to_owned(), v)));
    vars.insert("SW_AUTHENTICATION".to_owned(), TOKEN.to_owned());
    vars.insert("SW_TELEMETRY".to_owned(), "none".to_owned());
    vars.extend(Backend::Embedded.env(&dir).into_iter().map(|(k, v)| (k.to_owned(), v)));
    let kernel = boot_in_process(&vars).await;
    let grpc = bound_grpc_port(&kernel);

    // The agents reach the server at 127.0.0.1, a name the certificate holds.
    let agent_env = [
        ("SW_AGENT_FORCE_TLS", "true".to_owned()),
        ("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", ca.ca_path.display().to_string()),
        ("SW_AGENT_AUTHENTICATION", TOKEN.to_owned()),
    ];
    let (backend_port, frontend_port) = (free_port(), free_port());
    let mut backend = TracedService::start("py-backend", backend_port, None, grpc, &dir, &agent_env);
    let mut frontend = TracedService::start("py-frontend", frontend_port, Some(backend_port), grpc, &dir, &agent_env);
    wait_listening(backend_port, &backend).await;
    wait_listening(frontend_port, &frontend).await;

    let client = reqwest::Client::new();
    for _ in 0..3 {
        let response = client.get(format!("http://127.0.0.1:{frontend_port}/api")).send().await.expect("GET /api");
        assert_eq!(response.status(), reqwest::StatusCode::OK);
    }

    // Every call's two segments arrive and are stored.
    let store = kernel.service::<StorageRef>().expect("the store");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let frontend_segments = stored_segments(&store, "py-frontend").await;
        let backend_segments = stored_segments(&store, "py-backend").await;
        if frontend_segments >= 3 && backend_segments >= 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stored: {frontend_segments} frontend, {backend_segments} backend segments\nfrontend:\n{}\nbackend:\n{}",
            frontend.log(),
            backend.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Their other calls came over TLS with the token too, and none was refused.
    let scrape = Scrape(kernel.service::<MetricsCreatorRef>().expect("telemetry").render());
    assert_eq!(scrape.value("grpc_authentication_failure_count"), 0.0);
    assert!(scrape.value(r#"management_in_latency_count{protocol="grpc"}"#) >= 2.0, "{}", scrape.0);

    stop_cleanly([&mut frontend, &mut backend], kernel).await;
}

/// How many segments of `service` the store holds.
async fn stored_segments(store: &StorageRef, service: &str) -> usize {
    let search = TraceSearch {
        service_id: Some(oap_model::ids::service_id(service, true)),
        limit: 100,
        ..TraceSearch::default()
    };
    store.search_segments(&search).await.expect("search the store").len()
}

/// The store holds each of the backend's 4 segments, in a trace with the frontend's `/api`
/// segment, with the bytes the agent sent.
async fn assert_stored(store: &StorageRef) {
    let backend = oap_model::ids::service_id("py-backend", true);
    let search = TraceSearch { service_id: Some(backend.clone()), limit: 100, ..TraceSearch::default() };
    let deadline = Instant::now() + Duration::from_secs(10);
    let segments = loop {
        let segments = store.search_segments(&search).await.expect("search the store");
        if segments.len() >= 4 || Instant::now() > deadline {
            break segments;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(segments.len(), 4, "one backend segment per call");
    let frontend_api = oap_model::ids::endpoint_id(&oap_model::ids::service_id("py-frontend", true), "/api");
    for segment in &segments {
        let decoded = oap_proto::v3::SegmentObject::decode(segment.data_binary.as_slice()).expect("the stored bytes");
        assert_eq!(
            (decoded.trace_id.as_str(), decoded.trace_segment_id.as_str()),
            (segment.trace_id.as_str(), segment.segment_id.as_str())
        );
        let trace = store.segments_of_trace(&segment.trace_id, None, 200).await.expect("the trace");
        let endpoints: Vec<&str> = trace.iter().map(|segment| segment.endpoint_id.as_str()).collect();
        assert!(
            trace.len() == 2 && endpoints.contains(&frontend_api.as_str()),
            "trace {}: {endpoints:?}",
            segment.trace_id
        );
    }
}

/// What the sources must show once every call was reported (see the module doc).
fn assert_sources(seen: &Seen, backend_address: &str) {
    // Segments: the frontend's entry endpoint is /api, the backend's /work; a trace has one of each.
    for (service, instance, endpoint, _) in &seen.segments {
        let expected = match service.as_str() {
            "py-frontend" => ("py-frontend-1@127.0.0.1", "/api"),
            "py-backend" => ("py-backend-1@127.0.0.1", "/work"),
            other => panic!("unexpected service {other}"),
        };
        assert_eq!((instance.as_str(), endpoint.as_str()), expected);
    }
    let traces = |service: &str| {
        let mut ids: Vec<&str> = seen.segments.iter().filter(|s| s.0 == service).map(|s| s.3.as_str()).collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(traces("py-frontend"), traces("py-backend"), "each trace spans both services");

    // Server side: the backend's entry span, with the frontend's ref, links the two (Flask, 7001).
    let server_side = (DetectPoint::Server, "py-frontend".to_owned(), "py-backend".to_owned(), 7001);
    assert_eq!(seen.service_relations.iter().filter(|r| **r == server_side).count(), 4, "{seen:#?}");
    assert!(seen.instance_relations.contains(&(
        DetectPoint::Server,
        "py-frontend-1@127.0.0.1".to_owned(),
        "py-backend-1@127.0.0.1".to_owned()
    )));
    // The Python agent's parentEndpoint is the callee path (/work), not the caller's /api.
    assert!(seen.endpoint_relations.contains(&(
        "/work".to_owned(),
        "py-frontend".to_owned(),
        "/work".to_owned(),
        "py-backend".to_owned()
    )));
    // Client side: the frontend's exit span (requests, 7002) resolves through the alias to the
    // callee service, at least for the calls made once the alias was known.
    let client_side = (DetectPoint::Client, "py-frontend".to_owned(), "py-backend".to_owned(), 7002);
    let resolved = seen.service_relations.iter().filter(|r| **r == client_side).count();
    assert!(resolved >= 3, "{resolved} client-side relations resolved to py-backend: {seen:#?}");
    let unresolved = seen
        .service_relations
        .iter()
        .filter(|r| r.0 == DetectPoint::Client && r.2 != "py-backend")
        .map(|r| r.2.as_str())
        .collect::<Vec<_>>();
    assert!(unresolved.iter().all(|dest| *dest == backend_address), "{unresolved:?}");
    assert!(seen.instance_relations.contains(&(
        DetectPoint::Client,
        "py-frontend-1@127.0.0.1".to_owned(),
        "py-backend-1@127.0.0.1".to_owned()
    )));

    // Management: properties with the language, and heartbeats.
    for service in ["py-frontend", "py-backend"] {
        let properties = seen
            .instance_updates
            .iter()
            .find_map(|(s, instance, properties)| {
                (s == service && instance == &format!("{service}-1@127.0.0.1")).then_some(properties.as_ref()?)
            })
            .expect("properties");
        let properties: serde_json::Value = serde_json::from_str(properties).expect("a JSON object");
        assert_eq!(properties["language"], "python", "{properties}");
        assert_eq!(properties["ipv4s"], "127.0.0.1", "{properties}");
        assert!(seen.instance_updates.iter().any(|u| u.0 == service && u.2.is_none()), "a heartbeat of {service}");
    }
}

/// The shipped configuration with `vars` as the environment, booted in this process.
async fn boot_in_process(vars: &HashMap<String, String>) -> Kernel {
    let plan = BootPlan::from_yaml(
        oap_server::BUILTIN_CONFIG,
        "application.yml",
        &|name| vars.get(name).cloned(),
        &[],
        &oap_server::catalog(),
    )
    .expect("the shipped configuration");
    plan.boot().await.expect("the server boots")
}

/// The port the in-process server's gRPC server bound (it was asked for any).
fn bound_grpc_port(kernel: &Kernel) -> u16 {
    let server = kernel.service::<oap_core::GrpcServerRef>().expect("the gRPC server");
    server.local_addr().expect("bound").port()
}

/// Stops the agents' services, checks that they reported no trouble, and stops the server.
async fn stop_cleanly(services: [&mut TracedService; 2], kernel: Kernel) {
    for service in services {
        service.stop();
        let log = service.log();
        assert!(agent_trouble(&log).is_empty(), "the agent reported trouble:\n{log}");
    }
    assert!(kernel.shutdown().await.is_empty(), "clean shutdown");
}
