//! Helpers shared by the integration tests: running the real `oap-server` binary.

#![allow(dead_code)]

pub mod agent;
pub mod etcd;
pub mod graphql;
pub mod tls;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A port that was free a moment ago, on loopback.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// A scratch directory unique to this test run.
pub fn scratch_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("oap-test-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// The ports one server listens on.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub grpc: u16,
    pub rest: u16,
    pub telemetry: u16,
}

impl Ports {
    pub fn free() -> Self {
        Self { grpc: free_port(), rest: free_port(), telemetry: free_port() }
    }

    /// The environment that puts a server on these ports, on loopback.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SW_CORE_GRPC_HOST", "127.0.0.1".to_owned()),
            ("SW_CORE_GRPC_PORT", self.grpc.to_string()),
            ("SW_CORE_REST_HOST", "127.0.0.1".to_owned()),
            ("SW_CORE_REST_PORT", self.rest.to_string()),
            ("SW_TELEMETRY_PROMETHEUS_HOST", "127.0.0.1".to_owned()),
            ("SW_TELEMETRY_PROMETHEUS_PORT", self.telemetry.to_string()),
        ]
    }

    /// Port 0 everywhere: the server binds what the system gives it and reports it
    /// ([`OapProcess::start`]).
    pub fn any() -> Self {
        Self { grpc: 0, rest: 0, telemetry: 0 }
    }

    pub fn all(&self) -> [u16; 3] {
        [self.grpc, self.rest, self.telemetry]
    }
}

/// A running `oap-server`; killed when dropped.
pub struct OapProcess {
    child: Child,
    pub dir: PathBuf,
}

impl OapProcess {
    /// Starts the binary in `dir` with extra environment and arguments; output goes to
    /// `dir/oap.log`.
    pub fn spawn(dir: PathBuf, env: &[(&str, String)], args: &[&str]) -> Self {
        let log = std::fs::File::create(dir.join("oap.log")).expect("create log file");
        let child = Command::new(env!("CARGO_BIN_EXE_oap-server"))
            .current_dir(&dir)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("start oap-server");
        Self { child, dir }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's resident memory from `/proc/<pid>/status`, in KiB: now (`VmRSS`) and its
    /// peak so far (`VmHWM`).
    pub fn memory_kib(&self) -> (u64, u64) {
        oap_loadgen::bench::memory(self.pid()).expect("the process's status")
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("oap.log")).unwrap_or_default()
    }

    /// Starts the binary in `dir` on ports the system picks (port 0 on loopback; `env` comes
    /// after, so it may name ports of its own), and waits until the server writes them to its
    /// ready file: no port is chosen before the server binds it, so none can be taken meanwhile.
    pub fn start(dir: PathBuf, env: &[(&str, String)], args: &[&str]) -> (Self, Ports) {
        let ready = dir.join("ready.json");
        let _ = std::fs::remove_file(&ready);
        let mut all = Ports::any().env();
        all.extend(env.iter().map(|(key, value)| (*key, value.clone())));
        let ready_arg = ready.to_string_lossy().into_owned();
        let mut all_args = vec!["--ready-file", ready_arg.as_str()];
        all_args.extend_from_slice(args);
        let mut server = Self::spawn(dir, &all, &all_args);
        let deadline = Instant::now() + Duration::from_secs(30);
        let text = loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                break text;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("oap-server exited with {status} before it was ready:\n{}", server.log());
            }
            assert!(Instant::now() < deadline, "oap-server not ready within 30 s:\n{}", server.log());
            std::thread::sleep(Duration::from_millis(20));
        };
        let json: serde_json::Value = serde_json::from_str(&text).expect("the ready file is JSON");
        let port = |name: &str| u16::try_from(json[name].as_u64().unwrap_or(0)).expect("a port");
        (server, Ports { grpc: port("grpc"), rest: port("rest"), telemetry: port("telemetry") })
    }

    /// Waits until every port accepts connections.
    pub fn wait_ready(&mut self, ports: &[u16], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for port in ports {
            let address = SocketAddr::from(([127, 0, 0, 1], *port));
            while TcpStream::connect_timeout(&address, Duration::from_millis(100)).is_err() {
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!("oap-server exited with {status} before it was ready:\n{}", self.log());
                }
                assert!(Instant::now() < deadline, "port {port} not ready within {timeout:?}:\n{}", self.log());
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status =
            Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status().expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll child") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for OapProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where a test's server keeps its data: the embedded store in the test's directory, or an
/// Elasticsearch-API server (osmem-server) the test started, which stops with the value.
pub enum Backend {
    /// `SW_STORAGE=embedded`, in `<dir>/data`.
    Embedded,
    /// `SW_STORAGE=elasticsearch` on this server, every bulk request refreshing so that reads
    /// right after a write see it.
    Elasticsearch(oap_storage_elasticsearch::test_server::TestServer),
}

impl Backend {
    /// A new Elasticsearch-API server.
    pub fn elasticsearch() -> Self {
        Backend::Elasticsearch(
            oap_storage_elasticsearch::test_server::TestServer::start().expect("the Elasticsearch-API server starts"),
        )
    }

    /// The environment that points a server at this storage (and its ingest log into `dir`,
    /// also for a server booted inside the test's process).
    pub fn env(&self, dir: &std::path::Path) -> Vec<(&'static str, String)> {
        let log = ("SW_PIPELINE_LOG_DIR", dir.join("ingest-log").display().to_string());
        match self {
            Backend::Embedded => vec![
                ("SW_STORAGE", "embedded".to_owned()),
                ("SW_STORAGE_EMBEDDED_DATA_DIR", dir.join("data").display().to_string()),
                log,
            ],
            Backend::Elasticsearch(server) => vec![
                ("SW_STORAGE", "elasticsearch".to_owned()),
                ("SW_STORAGE_ES_CLUSTER_NODES", server.node().to_owned()),
                ("SW_STORAGE_ES_BULK_REFRESH", "true".to_owned()),
                log,
            ],
        }
    }

    /// The store the server wrote, opened by the test (once the server has stopped, for the
    /// embedded store, which one process holds at a time).
    pub async fn open(&self, dir: &std::path::Path) -> oap_storage::StorageRef {
        match self {
            Backend::Embedded => std::sync::Arc::new(
                oap_storage_embedded::EmbeddedStore::open(dir.join("data"), oap_storage_embedded::Budget::default())
                    .expect("open the store"),
            ),
            Backend::Elasticsearch(server) => {
                use oap_storage_elasticsearch::{ElasticsearchConfig, bulk::BulkTelemetry, client, open_store};
                let config =
                    ElasticsearchConfig { cluster_nodes: server.node().to_owned(), ..ElasticsearchConfig::default() };
                let client = client::connect(&config).expect("a client");
                let metrics = BulkTelemetry::new(&oap_telemetry::MetricsRegistry::new()).expect("metrics");
                std::sync::Arc::new(open_store(&config, client, Duration::from_secs(1), metrics).expect("a store"))
            }
        }
    }
}

/// Starts the server on `ports` with its store in `dir`, storing every second, with the
/// shipped OAL and database calls slower than 25 ms as slow statements; waits until it listens.
pub fn start_server(dir: &std::path::Path, ports: &Ports) -> OapProcess {
    start_server_on(dir, ports, &Backend::Embedded)
}

/// [`start_server`] on `backend`.
pub fn start_server_on(dir: &std::path::Path, ports: &Ports, backend: &Backend) -> OapProcess {
    let mut env = ports.env();
    env.extend(test_settings(dir, backend));
    let mut server = OapProcess::spawn(dir.to_path_buf(), &env, &[]);
    server.wait_ready(&ports.all(), Duration::from_secs(20));
    server
}

/// [`start_server_on`] on ports the server picks and reports (no port can be taken meanwhile).
pub fn start_server_with(dir: &std::path::Path, backend: &Backend) -> (OapProcess, Ports) {
    start_server_with_env(dir, backend, &[])
}

/// [`start_server_with`] with more environment.
pub fn start_server_with_env(
    dir: &std::path::Path,
    backend: &Backend,
    extra: &[(&'static str, String)],
) -> (OapProcess, Ports) {
    let mut env = test_settings(dir, backend);
    env.extend(extra.iter().cloned());
    OapProcess::start(dir.to_path_buf(), &env, &[])
}

/// The settings of the servers of [`start_server_on`]: the store, storing every second, the
/// shipped OAL, database calls slower than 25 ms as slow statements.
fn test_settings(dir: &std::path::Path, backend: &Backend) -> Vec<(&'static str, String)> {
    let mut env = vec![("SW_SLOW_DB_THRESHOLD", "default:25".to_owned())];
    env.extend(backend.env(dir));
    env.push(("SW_CORE_PERSISTENT_PERIOD", "1".to_owned()));
    env.push(("SW_CORE_OAL_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/../oal").to_owned()));
    env
}

/// The ids of every segment in an embedded store's data directory (the server must have
/// stopped: the store belongs to one process).
pub async fn stored_segment_ids(data_dir: &std::path::Path) -> std::collections::BTreeSet<String> {
    use oap_storage::dao::{TraceQueryDao, TraceSearch};
    let store = oap_storage_embedded::EmbeddedStore::open(data_dir, oap_storage_embedded::Budget::default())
        .expect("the server's store opens");
    let search = TraceSearch { limit: usize::MAX, ..TraceSearch::default() };
    let segments = store.search_segments(&search).await.expect("read the store");
    segments.into_iter().map(|segment| segment.segment_id).collect()
}

/// Fails the test if any segment of `acked` is not in `stored`, naming a few.
pub fn assert_none_lost(acked: &std::collections::BTreeSet<String>, stored: &std::collections::BTreeSet<String>) {
    let lost: Vec<&String> = acked.difference(stored).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged segments lost, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
}

/// Waits until every metric the server settled before this call is stored by L2's own cycle —
/// no flush is asked for — at `level`: `"minute"`, or `"all"` for hours and days too. Two
/// completed L1 flushes (`metrics_l1_flush_count`) hand everything settled to L2; then two
/// completed rounds of every partition (`metrics_l2_round_count`) persist it, since a round takes
/// in what was queued when it began. Panics with the server's log after `patience`.
pub async fn wait_until_persisted(server: &OapProcess, telemetry_port: u16, level: &str, patience: Duration) {
    let deadline = Instant::now() + patience;
    let wait = async |what: &str, done: &dyn Fn(&agent::Scrape) -> bool| loop {
        if done(&agent::Scrape::from_port(telemetry_port).await) {
            return;
        }
        assert!(Instant::now() < deadline, "{what} within {patience:?}:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let flushes = agent::Scrape::from_port(telemetry_port).await.value("metrics_l1_flush_count");
    wait("two L1 flushes", &|scrape| scrape.value("metrics_l1_flush_count") >= flushes + 2.0).await;
    let rounds = agent::Scrape::from_port(telemetry_port).await.l2_rounds(level);
    assert!(!rounds.is_empty(), "no metrics_l2_round_count of level {level}");
    wait("two L2 rounds of every partition", &|scrape| {
        let now = scrape.l2_rounds(level);
        now.len() == rounds.len() && now.iter().zip(&rounds).all(|(now, before)| *now >= before + 2.0)
    })
    .await;
}
