//! The module system of oap-rs, after SkyWalking's: `application.yml` names modules (`core`,
//! `storage`, `telemetry`, …), each module's `selector` picks one provider, and the providers
//! are booted in dependency order and shut down in reverse.
//!
//! - [`config`]: loading `application.yml` with `${NAME:default}` placeholders and overrides.
//! - [`module`]: a module's definition — its name and the services its providers offer.
//! - [`provider`]: the provider lifecycle and the typed factories that build providers.
//! - [`services`]: the typed service registry through which providers find each other.
//! - [`boot`]: validating a configuration against the catalog, booting and shutting down.
//!
//! There are no global singletons: a provider reaches another module's service through the
//! [`ModuleContext`] it is handed, and only if it declared that module as required.

pub mod boot;
pub mod config;
pub mod error;
pub mod module;
pub mod provider;
pub mod services;

pub use boot::{BootPlan, Kernel, ModuleCatalog};
pub use config::{ApplicationConfig, ConfigOverride};
pub use error::{ConfigError, ConfigErrors, ErrorKind, LifecycleError, ModuleError, Phase};
pub use module::{ModuleDefinition, ServiceDecl};
pub use provider::{ModuleProvider, ProviderFactory, TypedProviderFactory};
pub use services::ModuleContext;
