//! `oap-server`: loads `application.yml`, boots the modules, runs until SIGINT or SIGTERM,
//! then shuts the modules down in reverse order and exits 0.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use oap_kernel::{BootPlan, ConfigOverride};
use tracing::{error, info, warn};

mod allocator;

/// The oap-rs observability analysis platform: a SkyWalking-compatible OAP server.
#[derive(Debug, Parser)]
#[command(name = "oap-server", version)]
struct Cli {
    /// The configuration file [default: ./application.yml if present, else the built-in defaults]
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Override one setting, e.g. `core.default.role=Receiver` or `storage.selector=elasticsearch`
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<ConfigOverride>,
    /// Once ready, write the ports the server listens on to this file, as JSON
    /// (`{"grpc":11800,"rest":12800,"telemetry":1234}`; written whole, by a rename), so that a
    /// server started on port 0 can be found
    #[arg(long, value_name = "PATH")]
    ready_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let started = Instant::now();
    allocator::purge_at_once();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run(cli, started));
    // Tasks a module left running past the shutdown deadline (a write retried until the store
    // returns) are not waited for: what agents saw acknowledged is already durable.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

async fn run(cli: Cli, started: Instant) -> ExitCode {
    let (text, origin) = match read_config(cli.config.as_deref()) {
        Ok(source) => source,
        Err(message) => {
            error!("{message}");
            return ExitCode::from(2);
        }
    };
    let env = |name: &str| std::env::var(name).ok();
    let plan = match BootPlan::from_yaml(&text, &origin, &env, &cli.overrides, &oap_server::catalog()) {
        Ok(plan) => plan,
        Err(errors) => {
            error!("{origin}: {errors}");
            return ExitCode::from(2);
        }
    };
    let modules: Vec<String> = plan.order().iter().map(|(module, provider)| format!("{module}/{provider}")).collect();
    info!(config = %origin, modules = %modules.join(", "), "configuration loaded");

    // Listening before the boot: a signal that comes while the modules start stops the server
    // once they have, instead of killing it half-started.
    let mut signals = match Signals::listen() {
        Ok(signals) => signals,
        Err(error) => {
            error!(%error, "cannot listen for shutdown signals");
            return ExitCode::FAILURE;
        }
    };
    let kernel = match plan.boot().await {
        Ok(kernel) => kernel,
        Err(error) => {
            error!("{error}");
            return ExitCode::FAILURE;
        }
    };
    info!(ready_in_ms = started.elapsed().as_millis() as u64, "oap-server ready");
    if let Some(path) = &cli.ready_file
        && let Err(error) = write_ready_file(path, &kernel)
    {
        error!(path = %path.display(), %error, "cannot write the ready file");
        return ExitCode::FAILURE;
    }

    let shutdown_timeout = kernel
        .service::<oap_core::CoreConfigRef>()
        .map_or(std::time::Duration::from_secs(30), |core| core.shutdown_timeout);
    signals.next().await;
    info!(deadline = ?shutdown_timeout, "shutting down");
    let failures = tokio::select! {
        failures = kernel.shutdown_within(shutdown_timeout) => failures,
        () = signals.next() => {
            warn!("second signal: exiting without waiting for the modules to flush");
            return ExitCode::from(130);
        }
    };
    for failure in &failures {
        error!("{failure}");
    }
    if failures.is_empty() {
        info!("stopped");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The configuration text and a name for it in messages.
/// Writes the ports the servers listen on to `path`, through a temporary file and a rename, so a
/// reader never sees half of it.
fn write_ready_file(path: &Path, kernel: &oap_kernel::Kernel) -> std::io::Result<()> {
    let port = |address: Option<std::net::SocketAddr>| address.map_or("null".to_owned(), |a| a.port().to_string());
    let grpc = kernel.service::<oap_core::GrpcServerRef>().and_then(|server| server.local_addr());
    let rest = kernel.service::<oap_core::HttpServerRef>().and_then(|server| server.local_addr());
    let telemetry = kernel.service::<oap_telemetry::MetricsCreatorRef>().and_then(|metrics| metrics.endpoint());
    let text = format!("{{\"grpc\":{},\"rest\":{},\"telemetry\":{}}}\n", port(grpc), port(rest), port(telemetry));
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, path)
}

fn read_config(path: Option<&Path>) -> Result<(String, String), String> {
    let path = match path {
        Some(path) => path.to_path_buf(),
        None => {
            let default = PathBuf::from("application.yml");
            if !default.exists() {
                return Ok((oap_server::BUILTIN_CONFIG.to_owned(), "built-in application.yml".to_owned()));
            }
            default
        }
    };
    std::fs::read_to_string(&path)
        .map(|text| (text, path.display().to_string()))
        .map_err(|error| format!("cannot read the configuration file {}: {error}", path.display()))
}

/// SIGTERM and SIGINT, each kept until asked for once registered.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn listen() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self { terminate: signal(SignalKind::terminate())?, interrupt: signal(SignalKind::interrupt())? })
    }

    /// The next signal.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}
