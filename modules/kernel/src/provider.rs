//! Providers: the implementations of modules, their lifecycle, and the factories that build
//! them from their block of `application.yml`.

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde_yaml_ng::{Mapping, Value};

use crate::error::{ConfigError, ModuleError};
use crate::services::ModuleContext;

/// A running implementation of a module.
///
/// The kernel calls every provider's `prepare`, then every `start`, then every
/// `after_all_started`, each in dependency order (a provider after the providers of the modules
/// it requires), and to stop, `stop_intake` then `shutdown`, each in the reverse order: every
/// door closes before anything is flushed, so nothing taken in after a flush is left behind.
/// `shutdown` is also called when a later step of the boot failed, so it must cope with a
/// provider that never started.
#[async_trait]
pub trait ModuleProvider: Send {
    /// Creates and registers the module's services; must not start background work.
    async fn prepare(&mut self, ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError>;

    /// Starts the provider's work; may use the services of required modules.
    async fn start(&mut self, _ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        Ok(())
    }

    /// Runs once every provider has started, e.g. to begin serving requests.
    async fn after_all_started(&mut self, _ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        Ok(())
    }

    /// Stops taking work from outside (servers, receivers, consumers), and returns once nothing
    /// taken in is still on its way in; the first step of a stop, before any provider flushes.
    async fn stop_intake(&mut self) -> Result<(), ModuleError> {
        Ok(())
    }

    /// Flushes what the provider holds and stops its work.
    async fn shutdown(&mut self) -> Result<(), ModuleError> {
        Ok(())
    }
}

/// Builds one provider of one module from its settings; erased form of
/// [`TypedProviderFactory`], which is what implementations write.
pub trait ProviderFactory: Send + Sync {
    /// The module this provider implements.
    fn module(&self) -> &'static str;
    /// The provider's name, as a selector names it.
    fn name(&self) -> &'static str;
    /// The modules whose services the provider uses.
    fn requires(&self) -> &'static [&'static str];
    /// Deserializes and validates the settings, and builds the provider; every problem is
    /// reported with its full path (`module.provider.key`).
    fn build(&self, settings: &Mapping) -> Result<Box<dyn ModuleProvider>, Vec<ConfigError>>;
}

/// A provider factory with typed settings.
pub trait TypedProviderFactory: Send + Sync + 'static {
    /// The module this provider implements.
    const MODULE: &'static str;
    /// The provider's name.
    const NAME: &'static str;
    /// The modules whose services the provider uses.
    const REQUIRES: &'static [&'static str] = &[];
    /// The settings. Missing keys take their defaults (use `#[serde(default)]`). Unknown keys
    /// are collected and rejected by the kernel, every one with its path, so do not use
    /// `deny_unknown_fields`, which would stop at the first.
    type Config: DeserializeOwned;

    /// Validates the settings and builds the provider. Error paths are relative to the
    /// provider's block (`gRPCPort`, not `core.default.gRPCPort`).
    fn build(&self, config: Self::Config) -> Result<Box<dyn ModuleProvider>, Vec<ConfigError>>;
}

impl<F: TypedProviderFactory> ProviderFactory for F {
    fn module(&self) -> &'static str {
        F::MODULE
    }

    fn name(&self) -> &'static str {
        F::NAME
    }

    fn requires(&self) -> &'static [&'static str] {
        F::REQUIRES
    }

    fn build(&self, settings: &Mapping) -> Result<Box<dyn ModuleProvider>, Vec<ConfigError>> {
        let prefix = format!("{}.{}", F::MODULE, F::NAME);
        let config = deserialize_settings::<F::Config>(settings, &prefix)?;
        TypedProviderFactory::build(self, config).map_err(|errors| {
            errors.into_iter().map(|error| ConfigError::new(join_path(&prefix, &error.path), error.message)).collect()
        })
    }
}

/// Deserializes a provider block, reporting every unknown key and every badly typed value, each
/// with its full path. A badly typed value is set aside (so its default applies) and the block is
/// read again, until it reads or nothing more can be set aside.
pub fn deserialize_settings<T: DeserializeOwned>(settings: &Mapping, prefix: &str) -> Result<T, Vec<ConfigError>> {
    let mut remaining = settings.clone();
    let mut errors: Vec<ConfigError> = Vec::new();
    loop {
        let mut unknown_keys = Vec::new();
        let mut record_unknown = |path: serde_ignored::Path<'_>| unknown_keys.push(path.to_string());
        let deserializer = serde_ignored::Deserializer::new(Value::Mapping(remaining.clone()), &mut record_unknown);
        let result: Result<T, _> = serde_path_to_error::deserialize(deserializer);
        for key in unknown_keys {
            let error = ConfigError::new(join_path(prefix, &key), "unknown setting");
            if !errors.contains(&error) {
                errors.push(error);
            }
        }
        match result {
            Ok(config) if errors.is_empty() => return Ok(config),
            Ok(_) => return Err(errors),
            Err(error) => {
                let set_aside = remove_at(&mut remaining, error.path());
                errors.push(ConfigError::new(
                    join_path(prefix, &error.path().to_string()),
                    error.into_inner().to_string(),
                ));
                if !set_aside {
                    return Err(errors);
                }
            }
        }
    }
}

/// Removes the deepest map entry on `path`; false when the path names no map entry.
fn remove_at(mapping: &mut Mapping, path: &serde_path_to_error::Path) -> bool {
    let keys: Vec<&str> = path
        .iter()
        .map_while(|segment| match segment {
            serde_path_to_error::Segment::Map { key } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    let Some((last, parents)) = keys.split_last() else { return false };
    let mut current = mapping;
    for key in parents {
        match current.get_mut(*key).and_then(Value::as_mapping_mut) {
            Some(next) => current = next,
            None => return false,
        }
    }
    current.shift_remove(*last).is_some()
}

fn join_path(prefix: &str, path: &str) -> String {
    let path = path.trim_start_matches('.');
    if path.is_empty() { prefix.to_owned() } else { format!("{prefix}.{path}") }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    struct Sample {
        #[serde(rename = "gRPCPort")]
        grpc_port: u16,
        nested: Nested,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    struct Nested {
        depth: u32,
    }

    fn parse(yaml: &str) -> Result<Sample, Vec<ConfigError>> {
        let mapping: Mapping = serde_yaml_ng::from_str(yaml).expect("test yaml");
        deserialize_settings(&mapping, "core.default")
    }

    #[test]
    fn every_unknown_key_is_reported_with_its_full_path() {
        let errors = parse("{gRPCPort: 1, grpcPort: 2, nested: {depth: 1, deep: 2}}").expect_err("two unknown keys");
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["core.default.grpcPort", "core.default.nested.deep"]);
        assert!(errors.iter().all(|e| e.message == "unknown setting"));
    }

    #[test]
    fn type_errors_carry_their_path() {
        let errors = parse("{gRPCPort: 70000}").expect_err("out of range");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "core.default.gRPCPort");
        assert!(errors[0].message.contains("70000"), "{}", errors[0].message);
    }

    #[test]
    fn every_badly_typed_value_is_reported() {
        let errors = parse("{gRPCPort: x, nested: {depth: -1}, extra: 1}").expect_err("three problems");
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        // In file order: each pass reports what it meets before the next bad value.
        assert_eq!(paths, ["core.default.gRPCPort", "core.default.nested.depth", "core.default.extra"]);
    }

    #[test]
    fn missing_keys_take_defaults() {
        let sample = parse("{}").expect("valid");
        assert_eq!(sample.grpc_port, 0);
        assert_eq!(sample.nested.depth, 0);
    }
}
