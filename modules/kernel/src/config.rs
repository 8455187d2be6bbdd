//! Loading `application.yml`: SkyWalking's layout (`module → selector + provider blocks →
//! settings`), `${NAME:default}` placeholders, `--set` overrides, and every problem reported
//! at once.
//!
//! Loading goes in steps, each of which collects errors instead of stopping at the first:
//! 1. parse the YAML text;
//! 2. resolve placeholders in every string and type the result ([`typing`]);
//! 3. pick each module's provider by its `selector` (`-` disables the module) and drop the
//!    other provider blocks, as SkyWalking does;
//! 4. apply overrides (`core.default.role=Receiver`, `storage.selector=elasticsearch`).
//!
//! Which modules and providers exist, and what their settings look like, is checked later by
//! [`crate::boot::plan`], which knows the catalog of providers.

pub mod de;
mod overrides;
mod placeholder;
mod typing;

use serde_yaml_ng::{Mapping, Value};

pub use self::overrides::ConfigOverride;
pub use self::placeholder::resolve_placeholders;
pub use self::typing::typed_value;
use crate::error::{ConfigError, ConfigErrors};

/// The selector value that disables a module.
pub const DISABLED_SELECTOR: &str = "-";

/// A loaded configuration: the modules in file order, each with its chosen provider.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplicationConfig {
    /// Modules in the order the file lists them.
    pub modules: Vec<ModuleConfig>,
}

/// One module of the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleConfig {
    /// The module name, e.g. `core`.
    pub name: String,
    /// What the selector chose.
    pub selection: Selection,
}

impl ModuleConfig {
    /// The chosen provider, if the module is enabled and its block is valid.
    pub fn provider(&self) -> Option<&ProviderConfig> {
        match &self.selection {
            Selection::Provider(provider) => Some(provider),
            Selection::Disabled | Selection::Invalid => None,
        }
    }
}

/// The outcome of a module's selector.
#[derive(Debug, Clone, PartialEq)]
pub enum Selection {
    /// A provider was chosen.
    Provider(ProviderConfig),
    /// The selector is `-`.
    Disabled,
    /// The module's block is wrong; the error was reported while loading.
    Invalid,
}

/// The provider a module's selector chose, with its resolved settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    /// The provider name, e.g. `default` or `prometheus`.
    pub name: String,
    /// Its settings, placeholders resolved and typed.
    pub settings: Mapping,
}

impl ApplicationConfig {
    /// The module called `name`, if the file lists it.
    pub fn module(&self, name: &str) -> Option<&ModuleConfig> {
        self.modules.iter().find(|module| module.name == name)
    }

    /// Loads a configuration from YAML text. `origin` names the text in messages (a path, or
    /// `built-in defaults`), `env` looks up placeholder names, and `overrides` apply last.
    pub fn load(
        text: &str,
        origin: &str,
        env: &dyn Fn(&str) -> Option<String>,
        overrides: &[ConfigOverride],
    ) -> Result<ApplicationConfig, ConfigErrors> {
        let (config, errors) = Self::load_collecting(text, origin, env, overrides);
        ConfigErrors(errors).into_result()?;
        Ok(config)
    }

    /// Like [`ApplicationConfig::load`], but returns what could be loaded together with the
    /// problems, so that later checks can add theirs and all are reported at once. A module whose
    /// block is wrong is kept as [`Selection::Invalid`].
    pub fn load_collecting(
        text: &str,
        origin: &str,
        env: &dyn Fn(&str) -> Option<String>,
        overrides: &[ConfigOverride],
    ) -> (ApplicationConfig, Vec<ConfigError>) {
        let mut config = ApplicationConfig { modules: Vec::new() };
        let mut root = match serde_yaml_ng::from_str::<Value>(text) {
            Ok(Value::Mapping(root)) => root,
            Ok(Value::Null) => Mapping::new(),
            Ok(_) => {
                return (
                    config,
                    vec![ConfigError::new("", format!("{origin}: expected a map of modules at the top level"))],
                );
            }
            Err(error) => return (config, vec![ConfigError::new("", format!("{origin}: invalid YAML: {error}"))]),
        };
        resolve_tree(&mut root, env);

        let mut errors = Vec::new();
        for (key, value) in root {
            let Some(name) = key.as_str().map(str::to_owned) else {
                errors.push(ConfigError::new("", format!("module names must be text, got `{}`", render(&key))));
                continue;
            };
            let selection = match select_provider(&name, value, overrides) {
                Ok(Some(provider)) => Selection::Provider(provider),
                Ok(None) => Selection::Disabled,
                Err(error) => {
                    errors.push(error);
                    Selection::Invalid
                }
            };
            config.modules.push(ModuleConfig { name, selection });
        }
        overrides::apply(&mut config, overrides, &mut errors);
        (config, errors)
    }
}

/// Resolves placeholders in every string of the tree, typing the values that had one.
fn resolve_tree(mapping: &mut Mapping, env: &dyn Fn(&str) -> Option<String>) {
    for (_, value) in mapping.iter_mut() {
        resolve_value(value, env);
    }
}

fn resolve_value(value: &mut Value, env: &dyn Fn(&str) -> Option<String>) {
    match value {
        Value::String(text) if placeholder::has_placeholder(text) => {
            *value = typed_value(&resolve_placeholders(text, env));
        }
        Value::Mapping(mapping) => resolve_tree(mapping, env),
        Value::Sequence(items) => items.iter_mut().for_each(|item| resolve_value(item, env)),
        _ => {}
    }
}

/// Applies the module's selector: keeps the chosen provider's block and drops the others.
fn select_provider(
    module: &str,
    value: Value,
    overrides: &[ConfigOverride],
) -> Result<Option<ProviderConfig>, ConfigError> {
    let mut blocks = match value {
        Value::Mapping(blocks) => blocks,
        Value::Null => Mapping::new(),
        other => {
            return Err(ConfigError::new(
                module,
                format!("expected a map with a selector and provider blocks, got `{}`", render(&other)),
            ));
        }
    };
    let selector_path = format!("{module}.selector");
    let file_selector = blocks.shift_remove("selector");
    let selector = match overrides::selector_for(module, overrides) {
        Some(selector) => Some(selector.to_owned()),
        None => match file_selector {
            None => None,
            Some(Value::String(selector)) => Some(selector),
            Some(other) => {
                return Err(ConfigError::new(
                    selector_path,
                    format!("expected a provider name, got `{}`", render(&other)),
                ));
            }
        },
    };
    let provider_names: Vec<String> = blocks.keys().filter_map(|key| key.as_str().map(str::to_owned)).collect();
    let name = match selector {
        Some(selector) if selector.trim() == DISABLED_SELECTOR => return Ok(None),
        Some(selector) => {
            let selector = selector.trim().to_owned();
            if !blocks.contains_key(selector.as_str()) {
                return Err(ConfigError::new(
                    selector_path,
                    format!(
                        "selects provider `{selector}`, but module `{module}` has no `{selector}` block (blocks: {})",
                        list_or_none(&provider_names)
                    ),
                ));
            }
            selector
        }
        None => match provider_names.as_slice() {
            [single] => single.clone(),
            [] => return Err(ConfigError::new(module, "has no selector and no provider block")),
            several => {
                return Err(ConfigError::new(
                    module,
                    format!("has several provider blocks ({}) but no selector to choose one", several.join(", ")),
                ));
            }
        },
    };
    let settings = match blocks.shift_remove(name.as_str()) {
        Some(Value::Mapping(settings)) => settings,
        Some(Value::Null) | None => Mapping::new(),
        Some(other) => {
            return Err(ConfigError::new(
                format!("{module}.{name}"),
                format!("expected a map of settings, got `{}`", render(&other)),
            ));
        }
    };
    Ok(Some(ProviderConfig { name, settings }))
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
}

/// A short one-line rendering of a YAML value for messages.
pub(crate) fn render(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => serde_yaml_ng::to_string(other).map(|text| text.trim().to_owned()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load_with(text: &str, vars: &[(&str, &str)]) -> Result<ApplicationConfig, ConfigErrors> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ApplicationConfig::load(text, "test.yml", &|name| vars.get(name).cloned(), &[])
    }

    fn setting<'a>(config: &'a ApplicationConfig, module: &str, key: &str) -> &'a Value {
        let provider = config.module(module).and_then(|m| m.provider()).expect("module enabled");
        provider.settings.get(key).expect("setting present")
    }

    const SAMPLE: &str = r#"
core:
  selector: ${SW_CORE:default}
  default:
    role: ${SW_CORE_ROLE:Mixed}
    gRPCPort: ${SW_CORE_GRPC_PORT:11800}
    enableDataKeeperExecutor: ${SW_CORE_ENABLE_DATA_KEEPER_EXECUTOR:true}
    namespace: ${SW_NAMESPACE:""}
    downsampling:
      - Hour
      - Day
storage:
  selector: ${SW_STORAGE:embedded}
  embedded:
    dataDir: ${SW_STORAGE_EMBEDDED_DATA_DIR:./data}
  elasticsearch:
    clusterNodes: ${SW_STORAGE_ES_CLUSTER_NODES:localhost:9200}
telemetry:
  selector: ${SW_TELEMETRY:-}
  prometheus:
    port: 1234
"#;

    #[test]
    fn placeholders_are_resolved_and_typed() {
        let config = load_with(SAMPLE, &[("SW_CORE_GRPC_PORT", "21800")]).expect("valid");
        assert_eq!(setting(&config, "core", "role"), &Value::from("Mixed"));
        assert_eq!(setting(&config, "core", "gRPCPort"), &Value::from(21800));
        assert_eq!(setting(&config, "core", "enableDataKeeperExecutor"), &Value::Bool(true));
        assert_eq!(setting(&config, "core", "namespace"), &Value::from(""));
        assert_eq!(
            setting(&config, "core", "downsampling"),
            &Value::Sequence(vec![Value::from("Hour"), Value::from("Day")])
        );
    }

    #[test]
    fn selector_keeps_only_the_chosen_block() {
        let config = load_with(SAMPLE, &[]).expect("valid");
        let storage = config.module("storage").and_then(|m| m.provider()).expect("enabled");
        assert_eq!(storage.name, "embedded");
        assert_eq!(storage.settings.get("dataDir"), Some(&Value::from("./data")));
        let config = load_with(SAMPLE, &[("SW_STORAGE", "elasticsearch")]).expect("valid");
        let storage = config.module("storage").and_then(|m| m.provider()).expect("enabled");
        assert_eq!(storage.name, "elasticsearch");
        assert_eq!(storage.settings.get("clusterNodes"), Some(&Value::from("localhost:9200")));
    }

    #[test]
    fn dash_selector_disables_the_module() {
        let config = load_with(SAMPLE, &[]).expect("valid");
        assert_eq!(config.module("telemetry").map(|m| m.provider().is_none()), Some(true));
        let config = load_with(SAMPLE, &[("SW_TELEMETRY", "prometheus")]).expect("valid");
        assert_eq!(setting(&config, "telemetry", "port"), &Value::from(1234));
    }

    #[test]
    fn selector_without_block_is_an_error() {
        let errors = load_with(SAMPLE, &[("SW_STORAGE", "mysql")]).expect_err("no mysql block");
        assert_eq!(
            errors.errors(),
            [ConfigError::new(
                "storage.selector",
                "selects provider `mysql`, but module `storage` has no `mysql` block (blocks: embedded, elasticsearch)"
            )]
        );
    }

    #[test]
    fn module_without_selector_keeps_its_single_block() {
        let config = load_with("query:\n  graphql:\n    maxQueryComplexity: 3000\n", &[]).expect("valid");
        let query = config.module("query").and_then(|m| m.provider()).expect("enabled");
        assert_eq!(query.name, "graphql");
        let errors = load_with("cluster:\n  standalone:\n  etcd:\n", &[]).expect_err("ambiguous");
        assert_eq!(errors.errors()[0].path, "cluster");
    }

    #[test]
    fn several_errors_are_reported_together() {
        let text = "core:\n  selector: nope\n  default: {}\nstorage:\n  selector: [a]\n  embedded: {}\ncluster: 5\n";
        let errors = load_with(text, &[]).expect_err("three problems");
        let paths: Vec<&str> = errors.errors().iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["core.selector", "storage.selector", "cluster"]);
    }

    #[test]
    fn invalid_yaml_names_the_origin() {
        let errors = load_with("core: [unclosed", &[]).expect_err("bad yaml");
        assert!(errors.to_string().contains("test.yml: invalid YAML"), "{errors}");
    }
}
