//! Errors of configuration loading and of the module lifecycle.

use std::fmt;

/// One problem in the configuration, at a dotted path such as `core.default.gRPCPort`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the problem is: `module`, `module.selector` or `module.provider.key…`; empty for
    /// problems of the whole file.
    pub path: String,
    /// What is wrong, lowercase, naming the alternatives where there are some.
    pub message: String,
}

impl ConfigError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() { write!(f, "{}", self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// Every problem found in one configuration; loading reports them all at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The problems, in the order they were found.
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }

    /// `Ok(())` when there is no problem.
    pub fn into_result(self) -> Result<(), ConfigErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [single] => write!(f, "invalid configuration: {single}"),
            errors => {
                write!(f, "invalid configuration ({} errors):", errors.len())?;
                for error in errors {
                    write!(f, "\n  - {error}")?;
                }
                Ok(())
            }
        }
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        Self(vec![error])
    }
}

/// What kind of failure a [`ModuleError`] is, for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The configuration or the wiring between modules is wrong.
    InvalidInput,
    /// A resource (a port, a directory, a remote server) cannot be had now.
    Unavailable,
    /// A bug: an invariant of the module system was broken.
    Internal,
}

/// A failure inside a provider's lifecycle step.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// A provider asked for a service it may not use, or that nobody registered.
    #[error("service `{service}` cannot be used: {reason}")]
    Service {
        /// The Rust type name of the service.
        service: &'static str,
        /// Why not.
        reason: String,
    },
    /// An I/O step failed, such as binding a port.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. `cannot bind gRPC server to 0.0.0.0:11800`.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The provider's own settings are unusable.
    #[error("{0}")]
    Config(String),
    /// Any other failure.
    #[error("{0}")]
    Other(String),
}

impl ModuleError {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ModuleError::Service { .. } => ErrorKind::Internal,
            ModuleError::Io { .. } => ErrorKind::Unavailable,
            ModuleError::Config(_) => ErrorKind::InvalidInput,
            ModuleError::Other(_) => ErrorKind::Internal,
        }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ModuleError::Io { context: context.into(), source }
    }
}

/// The step of the lifecycle a provider failed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Registering services.
    Prepare,
    /// Starting work.
    Start,
    /// Starting what needs every module running.
    AfterAllStarted,
    /// Flushing and stopping.
    Shutdown,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Prepare => "prepare",
            Phase::Start => "start",
            Phase::AfterAllStarted => "finish starting",
            Phase::Shutdown => "shut down",
        })
    }
}

/// A provider failed a lifecycle step.
#[derive(Debug, thiserror::Error)]
#[error("module `{module}` (provider `{provider}`) failed to {phase}: {source}")]
pub struct LifecycleError {
    /// The module.
    pub module: &'static str,
    /// Its provider.
    pub provider: &'static str,
    /// The step.
    pub phase: Phase,
    /// What went wrong.
    #[source]
    pub source: ModuleError,
}
