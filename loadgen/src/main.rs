//! `oap-loadgen`: simulated SkyWalking agents that report trace segments over gRPC, a
//! decode-only collector to measure the protocol's ceiling, and the ingest benchmark that
//! drives `oap-server` with both (see BENCHMARKS.md).
//!
//! - `oap-loadgen run --target http://127.0.0.1:11800 [--rate N] [--seconds S]` drives any
//!   collector and prints a live progress line and a summary;
//! - `oap-loadgen sink --port P` serves the decode-only collector;
//! - `oap-loadgen bench` runs the whole benchmark (build with `--release` first).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};

use oap_loadgen::pool::Pool;
use oap_loadgen::topology::{SpanShape, Topology};
use oap_loadgen::{bench, drive, sink, template};

#[derive(Debug, Parser)]
#[command(version, about = "Load generator and ingest benchmark for oap-rs")]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Drive a collector with simulated agents.
    Run {
        /// The collector's gRPC address.
        #[arg(long, default_value = "http://127.0.0.1:11800")]
        target: String,
        /// Segments per second in all; 0 sends as fast as acks come back (closed loop).
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Seconds to send.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        #[command(flatten)]
        shape: Shape,
        /// The core to pin the generator to (none when absent).
        #[arg(long)]
        cpu: Option<usize>,
    },
    /// Serve a collector that only decodes segments.
    Sink {
        /// The gRPC port.
        #[arg(long, default_value_t = 11900)]
        port: u16,
    },
    /// Run the ingest benchmark against oap-server (pinned to one core) and the sink.
    Bench {
        /// The server binary.
        #[arg(long, default_value = "target/release/oap-server")]
        server: PathBuf,
        /// The directory the server runs in (its application.yml and oal/).
        #[arg(long, default_value = ".")]
        workdir: PathBuf,
        /// The core for the server and the sink.
        #[arg(long, default_value_t = 1)]
        server_cpu: usize,
        /// The core for the generator.
        #[arg(long, default_value_t = 0)]
        generator_cpu: usize,
        /// Seconds of each measured phase.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// The rate of the memory phase, segments/s.
        #[arg(long, default_value_t = 20_000.0)]
        steady_rate: f64,
        /// Store in Elasticsearch at this `host:port` (SW_STORAGE=elasticsearch) instead of the
        /// embedded store; the report adds documents/s, bulk sizes and the server's bytes.
        #[arg(long)]
        elasticsearch: Option<String>,
        #[command(flatten)]
        shape: Shape,
    },
}

/// What the agents send.
#[derive(Debug, Args)]
struct Shape {
    /// Simulated agents, each with its own connection.
    #[arg(long, default_value_t = 40)]
    agents: usize,
    /// Traces per `collect` stream.
    #[arg(long, default_value_t = 20)]
    batch: usize,
    /// Services.
    #[arg(long, default_value_t = 20)]
    services: usize,
    /// Instances per service.
    #[arg(long, default_value_t = 20)]
    instances: usize,
    /// Endpoints per service.
    #[arg(long, default_value_t = 100)]
    endpoints: usize,
    /// Segments per trace.
    #[arg(long, default_value_t = 5)]
    segments_per_trace: usize,
    /// Spans per segment.
    #[arg(long, value_enum, default_value = "5")]
    spans: SpanShape,
    /// The share of traces that fail.
    #[arg(long, default_value_t = 0.0)]
    error_ratio: f64,
    /// Distinct traces encoded at start.
    #[arg(long, default_value_t = 4_000)]
    pool: usize,
}

impl Shape {
    fn pool(&self) -> anyhow::Result<(Arc<Pool>, usize)> {
        let topology = Topology {
            services: self.services,
            instances: self.instances,
            endpoints: self.endpoints,
            segments_per_trace: self.segments_per_trace,
            shape: self.spans,
        };
        if !template::fits(drive::now_ms()) {
            bail!("the clock is outside the years a 6-byte varint time covers");
        }
        Ok((Arc::new(Pool::build(&topology, self.pool, self.error_ratio)?), self.spans.spans()))
    }
}

/// Pins this process (and the threads it starts later) to one core.
fn pin(cpu: usize) -> anyhow::Result<()> {
    let status = Command::new("taskset")
        .args(["-p", "-c", &cpu.to_string(), &std::process::id().to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .context("cannot run taskset")?;
    if !status.success() {
        bail!("taskset could not pin the generator to core {cpu}");
    }
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Commands::Run { target, rate, seconds, shape, cpu } => {
            if let Some(cpu) = cpu {
                pin(cpu)?;
            }
            let (pool, spans) = shape.pool()?;
            let load = drive::Load {
                target,
                agents: shape.agents,
                rate: (rate > 0.0).then_some(rate),
                duration: Duration::from_secs(seconds),
                batch: shape.batch,
                progress: true,
            };
            let outcome = runtime()?.block_on(drive::drive(pool, &load))?;
            println!(
                "sent {} segments, acked {} ({} spans) in {:.1} s: {:.0} segments/s; failed {:?}; ack p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms",
                outcome.sent,
                outcome.acked,
                outcome.acked * spans as u64,
                outcome.elapsed.as_secs_f64(),
                outcome.acked_per_second(),
                outcome.failed,
                outcome.latency_ms(0.5),
                outcome.latency_ms(0.99),
                outcome.latency_ms(0.999),
            );
            Ok(())
        }
        Commands::Sink { port } => runtime()?.block_on(sink::serve(([127, 0, 0, 1], port).into())),
        Commands::Bench { server, workdir, server_cpu, generator_cpu, seconds, steady_rate, elasticsearch, shape } => {
            pin(generator_cpu)?;
            let (pool, spans) = shape.pool()?;
            let bench = bench::Bench {
                server,
                workdir,
                server_cpu,
                seconds,
                agents: shape.agents,
                batch: shape.batch,
                steady_rate,
                elasticsearch,
            };
            runtime()?.block_on(bench::run(&bench, pool, spans))
        }
    }
}
