//! The ingest benchmark: starts `oap-server` pinned to one core on the embedded store, drives
//! it with the generator from the other core, and reports what BENCHMARKS.md records — time to
//! ready, idle RSS, sustained segments/s with its ack latencies, RSS at 20k segments/s, what
//! twice the sustained rate offered does (backpressure: slower acks, bounded RSS, nothing failed),
//! peak RSS, how soon data shows through the query API, bytes on disk per span — then the
//! decode-only ceiling measured the same way against the sink, and the ratio.
//!
//! With `--elasticsearch host:port` the server stores in Elasticsearch (under a namespace of
//! the run's own) and the report adds what the bulk writer did at saturation — documents/s,
//! documents and bytes per `_bulk` request — and the bytes the Elasticsearch-API server reports
//! for the run's indices, per span.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use oap_proto::v3::{SegmentObject, SpanLayer, SpanObject, SpanType};
use prost::Message;
use serde_json::{Value, json};

use crate::drive::{self, Load, Outcome};
use crate::pool::Pool;

/// What the benchmark runs.
#[derive(Debug, Clone)]
pub struct Bench {
    /// The server binary.
    pub server: PathBuf,
    /// The directory the server runs in (where `application.yml` and `oal/` are).
    pub workdir: PathBuf,
    /// The core the server and the sink are pinned to.
    pub server_cpu: usize,
    /// Seconds of each measured phase.
    pub seconds: u64,
    /// Simulated agents.
    pub agents: usize,
    /// Traces per stream.
    pub batch: usize,
    /// The fixed rate the memory phase holds, segments/s.
    pub steady_rate: f64,
    /// Elasticsearch's `host:port`, to store there instead of the embedded store.
    pub elasticsearch: Option<String>,
}

/// A process started by the benchmark, stopped when dropped.
struct Managed {
    child: Child,
}

impl Drop for Managed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Managed {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Asks the process to stop (SIGTERM) and waits for it, up to `patience`.
    fn stop(mut self, patience: Duration) -> anyhow::Result<()> {
        let status = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status()?;
        if !status.success() {
            bail!("cannot signal process {}", self.pid());
        }
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("process {} did not stop within {patience:?}", self.pid())
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Memory of a process from `/proc/<pid>/status`, KiB: (VmRSS, VmHWM).
pub fn memory(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Bytes of the files under `dir`: (all, without the journal's `*.jnl` files).
fn disk_bytes(dir: &Path) -> anyhow::Result<(u64, u64)> {
    let (mut all, mut tables) = (0, 0);
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                all += meta.len();
                if entry.path().extension().is_none_or(|extension| extension != "jnl") {
                    tables += meta.len();
                }
            }
        }
    }
    Ok((all, tables))
}

fn wait_for_ports(ports: &[u16], child: &mut Child, timeout: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for &port in ports {
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait()? {
                bail!("the process exited with {status} before it listened on {port}");
            }
            if started.elapsed() > timeout {
                bail!("port {port} not open within {timeout:?}");
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    Ok(started.elapsed())
}

/// Runs the benchmark and prints its report.
pub async fn run(bench: &Bench, pool: Arc<Pool>, spans_per_segment: usize) -> anyhow::Result<()> {
    let data = std::env::temp_dir().join(format!("oap-bench-{}", std::process::id()));
    // The server's ingest log, beside its store (not in the working directory).
    let log_dir = std::env::temp_dir().join(format!("oap-bench-log-{}", std::process::id()));
    let namespace = format!("bench{}", std::process::id());
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_dir_all(&log_dir);
    let (grpc, rest, telemetry) = (free_port()?, free_port()?, free_port()?);
    eprintln!("pool: {} traces, {} B per segment on average", pool.traces(), pool.average_segment_bytes());

    // Time to ready: from the spawn until the gRPC, REST and telemetry ports accept connections.
    let spawned = Instant::now();
    let mut command = Command::new("taskset");
    match &bench.elasticsearch {
        Some(node) => command
            .env("SW_STORAGE", "elasticsearch")
            .env("SW_STORAGE_ES_CLUSTER_NODES", node)
            .env("SW_NAMESPACE", &namespace),
        None => command.env("SW_STORAGE", "embedded"),
    };
    let mut server = command
        .arg("-c")
        .arg(bench.server_cpu.to_string())
        .arg(&bench.server)
        .current_dir(&bench.workdir)
        .env("SW_CORE_GRPC_HOST", "127.0.0.1")
        .env("SW_CORE_GRPC_PORT", grpc.to_string())
        .env("SW_CORE_REST_HOST", "127.0.0.1")
        .env("SW_CORE_REST_PORT", rest.to_string())
        .env("SW_TELEMETRY_PROMETHEUS_HOST", "127.0.0.1")
        .env("SW_TELEMETRY_PROMETHEUS_PORT", telemetry.to_string())
        .env("SW_STORAGE_EMBEDDED_DATA_DIR", &data)
        .env("SW_PIPELINE_LOG_DIR", &log_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {}", bench.server.display()))?;
    wait_for_ports(&[grpc, rest, telemetry], &mut server, Duration::from_secs(30))?;
    let ready = spawned.elapsed();
    let server = Managed { child: server };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (idle_rss, _) = memory(server.pid())?;
    eprintln!("ready in {ready:?}; idle RSS {:.1} MiB", mib(idle_rss));

    let target = format!("http://127.0.0.1:{grpc}");
    let load = |rate: Option<f64>, seconds: u64| Load {
        target: target.clone(),
        agents: bench.agents,
        rate,
        duration: Duration::from_secs(seconds),
        batch: bench.batch,
        progress: true,
    };
    eprintln!("warm-up, 5 s closed loop");
    let mut acked_total = drive::drive(pool.clone(), &load(None, 5)).await?.acked;
    eprintln!("saturation, {} s closed loop", bench.seconds);
    let bulk_before = BulkCounters::scrape(telemetry).await?;
    let saturated = sample_rss(server.pid(), drive::drive(pool.clone(), &load(None, bench.seconds))).await?;
    let bulk = BulkCounters::scrape(telemetry).await?.since(&bulk_before);
    acked_total += saturated.0.acked;
    eprintln!("steady {} segments/s, {} s", bench.steady_rate, bench.seconds);
    let steady =
        sample_rss(server.pid(), drive::drive(pool.clone(), &load(Some(bench.steady_rate), bench.seconds))).await?;
    acked_total += steady.0.acked;
    let overload_rate = 2.0 * saturated.0.acked_per_second();
    eprintln!("overload: twice the sustained rate, {overload_rate:.0} segments/s offered, {} s", bench.seconds);
    let overload =
        sample_rss(server.pid(), drive::drive(pool.clone(), &load(Some(overload_rate), bench.seconds))).await?;
    acked_total += overload.0.acked;
    // Elasticsearch may still be taking L2's backlog of the overload phase.
    let patience = Duration::from_secs(if bench.elasticsearch.is_some() { 600 } else { 120 });
    let (trace_visible, metric_visible) = visibility(&target, rest, patience).await?;
    let (_, peak_rss) = memory(server.pid())?;
    let errors = analysis_errors(telemetry).await.unwrap_or_else(|error| format!("unknown ({error})"));
    // A clean stop writes what L2 holds; Elasticsearch may still be taking the overload's backlog.
    server.stop(patience)?;
    let (disk_all, disk_tables) = match &bench.elasticsearch {
        Some(node) => {
            let bytes = elasticsearch_bytes(node, &namespace).await?;
            (bytes, bytes)
        }
        None => disk_bytes(&data)?,
    };
    let spans = acked_total * spans_per_segment as u64;
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_dir_all(&log_dir);

    eprintln!("decode-only sink, {} s closed loop", bench.seconds);
    let sink_port = free_port()?;
    let mut sink = Command::new("taskset")
        .arg("-c")
        .arg(bench.server_cpu.to_string())
        .arg(std::env::current_exe()?)
        .args(["sink", "--port", &sink_port.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .context("cannot start the sink")?;
    wait_for_ports(&[sink_port], &mut sink, Duration::from_secs(10))?;
    let sink = Managed { child: sink };
    let mut sink_load = load(None, bench.seconds);
    sink_load.target = format!("http://127.0.0.1:{sink_port}");
    let ceiling = drive::drive(pool.clone(), &sink_load).await?;
    drop(sink);

    let (outcome, _) = &saturated;
    let rate = outcome.acked_per_second();
    println!("| figure | result |");
    println!("| --- | --- |");
    println!("| time to ready (spawn → gRPC, REST and telemetry ports open) | {:.1} ms |", ready.as_secs_f64() * 1e3);
    println!("| idle RSS, 3 s after ready | {:.1} MiB |", mib(idle_rss));
    println!(
        "| sustained, closed loop ({} agents × {} traces per stream) | {:.0} segments/s = {:.0} spans/s; {} segments failed {:?}; analysis errors {errors} |",
        bench.agents,
        bench.batch,
        rate,
        rate * spans_per_segment as f64,
        outcome.failed_total(),
        outcome.failed,
    );
    println!(
        "| ack latency at saturation (stream start → ack), p50 / p99 / p99.9 | {:.1} / {:.1} / {:.1} ms |",
        outcome.latency_ms(0.5),
        outcome.latency_ms(0.99),
        outcome.latency_ms(0.999)
    );
    println!("| RSS at saturation, highest sample | {:.1} MiB |", mib(saturated.1));
    println!(
        "| at {} segments/s: achieved, ack p50 / p99 / p99.9, highest RSS | {:.0} segments/s; {:.1} / {:.1} / {:.1} ms; {:.1} MiB |",
        bench.steady_rate,
        steady.0.acked_per_second(),
        steady.0.latency_ms(0.5),
        steady.0.latency_ms(0.99),
        steady.0.latency_ms(0.999),
        mib(steady.1)
    );
    let seconds = overload.0.elapsed.as_secs_f64().max(f64::EPSILON);
    println!(
        "| twice the sustained rate offered ({overload_rate:.0} segments/s): sent, acked, failed; ack p50 / p99 / p99.9; highest RSS | {:.0} / {:.0} segments/s, {} failed; {:.1} / {:.1} / {:.1} ms; {:.1} MiB |",
        overload.0.sent as f64 / seconds,
        overload.0.acked_per_second(),
        overload.0.failed_total(),
        overload.0.latency_ms(0.5),
        overload.0.latency_ms(0.99),
        overload.0.latency_ms(0.999),
        mib(overload.1)
    );
    println!("| peak RSS (VmHWM) over the run | {:.1} MiB |", mib(peak_rss));
    println!(
        "| visible through the query API after the ack: the trace / its endpoint's cpm | {:.0} ms / {:.1} s |",
        trace_visible.as_secs_f64() * 1e3,
        metric_visible.as_secs_f64()
    );
    if bench.elasticsearch.is_some() {
        let seconds = saturated.0.elapsed.as_secs_f64().max(f64::EPSILON);
        println!(
            "| Elasticsearch at saturation: documents stored/s; _bulk requests/s; documents and KiB per request; documents sent again | {:.0}; {:.1}; {:.0} and {:.0} KiB; {:.0} |",
            bulk.documents / seconds,
            bulk.requests / seconds,
            bulk.documents / bulk.requests.max(1.0),
            bulk.bytes / bulk.requests.max(1.0) / 1024.0,
            bulk.retried
        );
        println!(
            "| bytes per span on the Elasticsearch-API server ({spans} spans; store size of the run's indices as it reports them) | {:.1} B |",
            disk_all as f64 / spans.max(1) as f64
        );
    } else {
        println!(
            "| bytes on disk per span ({} spans): tables / with the journal | {:.1} B / {:.1} B |",
            spans,
            disk_tables as f64 / spans.max(1) as f64,
            disk_all as f64 / spans.max(1) as f64
        );
    }
    let ceiling_rate = ceiling.acked_per_second();
    println!(
        "| decode-only ceiling (tonic + prost sink, same core, same generator) | {:.0} segments/s; oap-server reaches {:.1} % of it |",
        ceiling_rate,
        100.0 * rate / ceiling_rate.max(f64::EPSILON)
    );
    Ok(())
}

/// Runs `work` while sampling the RSS of `pid` every 250 ms; returns its outcome and the
/// highest sample, KiB.
async fn sample_rss(
    pid: u32,
    work: impl std::future::Future<Output = anyhow::Result<Outcome>>,
) -> anyhow::Result<(Outcome, u64)> {
    let highest = Arc::new(AtomicU64::new(0));
    let sampler = {
        let highest = highest.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let Ok((rss, _)) = memory(pid) else { return };
                highest.fetch_max(rss, Ordering::Relaxed);
            }
        })
    };
    let outcome = work.await;
    sampler.abort();
    if let Ok((rss, _)) = memory(pid) {
        highest.fetch_max(rss, Ordering::Relaxed);
    }
    Ok((outcome?, highest.load(Ordering::Relaxed)))
}

/// Sends one trace of a service no load used and measures how long after its ack the trace,
/// and then its endpoint's cpm, can be read through the GraphQL API.
async fn visibility(target: &str, rest: u16, patience: Duration) -> anyhow::Result<(Duration, Duration)> {
    let now = drive::now_ms();
    let trace_id = format!("probe{now:027}");
    let first = SegmentObject {
        trace_id: trace_id.clone(),
        trace_segment_id: format!("{trace_id}-1"),
        spans: vec![SpanObject {
            span_id: 0,
            parent_span_id: -1,
            start_time: now - 10,
            end_time: now,
            operation_name: "/probe".to_owned(),
            span_type: SpanType::Entry as i32,
            span_layer: SpanLayer::Http as i32,
            component_id: 1,
            ..SpanObject::default()
        }],
        service: format!("bench-probe-{now}"),
        service_instance: "probe-1".to_owned(),
        is_size_limited: false,
    };
    let endpoint = "/probe";
    let segments = vec![bytes::Bytes::from(first.encode_to_vec())];
    let channel = tonic::transport::Endpoint::from_shared(target.to_owned())?.connect().await?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/skywalking.v3.TraceSegmentReportService/collect");
    grpc.client_streaming(tonic::Request::new(tokio_stream::iter(segments)), path, crate::codec::RawCodec).await?;
    let acked = Instant::now();

    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{rest}/graphql");
    let ask = |query: &'static str, variables: Value| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let response: Value =
                client.post(url).json(&json!({ "query": query, "variables": variables })).send().await?.json().await?;
            anyhow::Ok(response)
        }
    };
    let deadline = acked + patience;
    let trace_visible = loop {
        let found = ask(
            "query($id: ID!) { trace: queryTrace(traceId: $id) { spans { spanId } } }",
            json!({ "id": first.trace_id }),
        )
        .await?;
        if found["data"]["trace"]["spans"].as_array().is_some_and(|spans| !spans.is_empty()) {
            break acked.elapsed();
        }
        if Instant::now() > deadline {
            bail!("the trace was not visible within {patience:?}: {found}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let minute = |ms: i64| {
        let text = jiff::Timestamp::from_millisecond(ms)
            .map(|t| t.to_zoned(jiff::tz::TimeZone::system()).strftime("%Y-%m-%d %H%M").to_string());
        text.unwrap_or_default()
    };
    let now = drive::now_ms();
    let variables = json!({
        "entity": { "serviceName": first.service, "normal": true, "endpointName": endpoint },
        "duration": { "start": minute(now - 120_000), "end": minute(now + 60_000), "step": "MINUTE" },
    });
    let metric_visible = loop {
        let found = ask(
            "query($entity: Entity!, $duration: Duration!) { cpm: execExpression(expression: \"endpoint_cpm\", entity: $entity, duration: $duration) { results { values { value } } error } }",
            variables.clone(),
        )
        .await?;
        let values = found["data"]["cpm"]["results"][0]["values"].as_array().cloned().unwrap_or_default();
        if values.iter().any(|value| !value["value"].is_null()) {
            break acked.elapsed();
        }
        if Instant::now() > deadline {
            bail!("the endpoint's cpm was not visible within {patience:?}: {found}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    Ok((trace_visible, metric_visible))
}

/// The bulk writer's counters, scraped from the server's telemetry (zero on the embedded store).
#[derive(Debug, Default)]
struct BulkCounters {
    requests: f64,
    documents: f64,
    bytes: f64,
    retried: f64,
}

impl BulkCounters {
    async fn scrape(port: u16) -> anyhow::Result<Self> {
        let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await?.text().await?;
        let value = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        Ok(Self {
            requests: value("elasticsearch_bulk_request_count"),
            documents: value("elasticsearch_bulk_document_count"),
            bytes: value("elasticsearch_bulk_byte_count"),
            retried: value("elasticsearch_bulk_retry_count"),
        })
    }

    fn since(&self, before: &Self) -> Self {
        Self {
            requests: self.requests - before.requests,
            documents: self.documents - before.documents,
            bytes: self.bytes - before.bytes,
            retried: self.retried - before.retried,
        }
    }
}

/// The store size the Elasticsearch-API server at `node` reports for `namespace`'s indices.
async fn elasticsearch_bytes(node: &str, namespace: &str) -> anyhow::Result<u64> {
    let url = format!("http://{node}/{namespace}_*/_stats/store");
    let stats: Value = reqwest::get(url).await?.json().await?;
    stats["_all"]["primaries"]["store"]["size_in_bytes"].as_u64().context("no store size in the stats")
}

/// `trace_analysis_error_count` as the server's telemetry reports it.
async fn analysis_errors(port: u16) -> anyhow::Result<String> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await?.text().await?;
    let total: f64 = text
        .lines()
        .filter(|line| line.starts_with("trace_analysis_error_count"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    Ok(format!("{total}"))
}
