//! The simulated agents: each holds its own connection and reports batches of whole traces, one
//! `collect` stream per batch as the SkyWalking agents do, at a share of a fixed rate or as fast
//! as the acks come back (closed loop).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use bytes::BytesMut;
use hdrhistogram::Histogram;
use tonic::Request;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Endpoint;

use crate::codec::RawCodec;
use crate::pool::Pool;

const COLLECT: &str = "/skywalking.v3.TraceSegmentReportService/collect";

/// How hard and how long to drive a collector.
#[derive(Debug, Clone)]
pub struct Load {
    /// The collector's gRPC address, `http://host:port`.
    pub target: String,
    /// Simulated agents, each with its own connection.
    pub agents: usize,
    /// Segments per second in all; `None` sends as fast as the acks come back.
    pub rate: Option<f64>,
    /// How long to send.
    pub duration: Duration,
    /// Traces per `collect` stream.
    pub batch: usize,
    /// Print a progress line every second.
    pub progress: bool,
}

/// Counts shared by the agents while they run.
#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    acked: AtomicU64,
    failed: AtomicU64,
}

/// What a run did.
#[derive(Debug)]
pub struct Outcome {
    /// Segments sent in streams that ended (acked or failed).
    pub sent: u64,
    /// Segments the collector acknowledged.
    pub acked: u64,
    /// Segments in streams that failed, by status code.
    pub failed: BTreeMap<String, u64>,
    /// From the first send to the last ack.
    pub elapsed: Duration,
    /// Per acknowledged stream, µs from its start to its ack.
    pub ack_latency: Histogram<u64>,
}

impl Outcome {
    /// Acknowledged segments per second.
    pub fn acked_per_second(&self) -> f64 {
        self.acked as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Segments in failed streams.
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    /// Ack latency at quantile `q`, ms.
    pub fn latency_ms(&self, q: f64) -> f64 {
        self.ack_latency.value_at_quantile(q) as f64 / 1_000.0
    }
}

/// Epoch milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| i64::try_from(since.as_millis()).unwrap_or(0))
}

/// Drives the collector at `load.target` with `pool`'s traces.
pub async fn drive(pool: Arc<Pool>, load: &Load) -> anyhow::Result<Outcome> {
    let counters = Arc::new(Counters::default());
    let started = Instant::now();
    let deadline = started + load.duration;
    let mut agents = Vec::with_capacity(load.agents);
    for agent in 0..load.agents {
        let channel = Endpoint::from_shared(load.target.clone())
            .context("the target is not a URI")?
            .tcp_nodelay(true)
            .connect_lazy();
        let (pool, counters) = (pool.clone(), counters.clone());
        let rate = load.rate.map(|rate| rate / load.agents as f64);
        let batch = load.batch.max(1);
        agents.push(tokio::spawn(
            async move { run_agent(agent, channel, &pool, &counters, rate, batch, deadline).await },
        ));
    }
    let progress = load.progress.then(|| tokio::spawn(report_progress(counters.clone(), started)));
    let mut ack_latency = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).context("histogram bounds")?;
    let mut failed = BTreeMap::new();
    for agent in agents {
        let (histogram, failures) = agent.await.context("an agent panicked")?;
        ack_latency.add(histogram).context("histograms of the same bounds")?;
        for (code, count) in failures {
            *failed.entry(code).or_insert(0) += count;
        }
    }
    let elapsed = started.elapsed();
    if let Some(progress) = progress {
        progress.abort();
        eprintln!();
    }
    Ok(Outcome {
        sent: counters.sent.load(Ordering::Relaxed),
        acked: counters.acked.load(Ordering::Relaxed),
        failed,
        elapsed,
        ack_latency,
    })
}

async fn run_agent(
    agent: usize,
    channel: tonic::transport::Channel,
    pool: &Pool,
    counters: &Counters,
    rate: Option<f64>,
    batch: usize,
    deadline: Instant,
) -> (Histogram<u64>, BTreeMap<String, u64>) {
    let mut latencies = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).unwrap_or_else(|_| unreachable!());
    let mut failures = BTreeMap::new();
    let mut grpc = tonic::client::Grpc::new(channel);
    let path = PathAndQuery::from_static(COLLECT);
    let mut arena = BytesMut::new();
    let mut index = agent.wrapping_mul(7_919);
    let started = Instant::now();
    let mut sent = 0u64;
    while Instant::now() < deadline {
        if let Some(rate) = rate {
            let due = started + Duration::from_secs_f64(sent as f64 / rate);
            if due >= deadline {
                break;
            }
            tokio::time::sleep_until(due.into()).await;
        }
        let mut segments = Vec::with_capacity(batch * 5);
        let now = now_ms();
        for _ in 0..batch {
            pool.stamp(index, now, &mut arena, &mut segments);
            index = index.wrapping_add(1);
        }
        let count = segments.len() as u64;
        let call = Instant::now();
        let mut request = Request::new(tokio_stream::iter(segments));
        request.set_timeout(Duration::from_secs(60));
        let outcome = match grpc.ready().await {
            Ok(()) => grpc.client_streaming(request, path.clone(), RawCodec).await.map(drop),
            Err(error) => Err(tonic::Status::unavailable(error.to_string())),
        };
        sent += count;
        counters.sent.fetch_add(count, Ordering::Relaxed);
        match outcome {
            Ok(()) => {
                let micros = u64::try_from(call.elapsed().as_micros()).unwrap_or(u64::MAX);
                let _ = latencies.record(micros.max(1));
                counters.acked.fetch_add(count, Ordering::Relaxed);
            }
            Err(status) => {
                *failures.entry(format!("{:?}", status.code())).or_insert(0) += count;
                counters.failed.fetch_add(count, Ordering::Relaxed);
                // A collector that is down or refusing is not hammered in a tight loop.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    (latencies, failures)
}

async fn report_progress(counters: Arc<Counters>, started: Instant) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let (mut last_sent, mut last_acked) = (0, 0);
    loop {
        tick.tick().await;
        let (sent, acked) = (counters.sent.load(Ordering::Relaxed), counters.acked.load(Ordering::Relaxed));
        let failed = counters.failed.load(Ordering::Relaxed);
        eprint!(
            "\r{:>5.0} s  sent {:>8} seg/s  acked {:>8} seg/s  failed {failed:>8}  total acked {acked:>10}  ",
            started.elapsed().as_secs_f64(),
            sent - last_sent,
            acked - last_acked,
        );
        let _ = std::io::stderr().flush();
        (last_sent, last_acked) = (sent, acked);
    }
}
