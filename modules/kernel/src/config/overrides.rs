//! Single-setting overrides from the command line: `--set core.default.role=Receiver` or
//! `--set storage.selector=elasticsearch`.
//!
//! Values are typed like placeholder values (`--set core.default.gRPCPort=21800` is a number).
//! An override for a provider the module did not select is an error rather than silently
//! ignored, so a typo in the provider name is caught.

use std::str::FromStr;

use serde_yaml_ng::{Mapping, Value};

use super::{ApplicationConfig, Selection, typed_value};
use crate::error::ConfigError;

/// One `KEY=VALUE` override.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigOverride {
    /// The dotted path split at the dots: `[module, "selector"]` or `[module, provider, key…]`.
    pub path: Vec<String>,
    /// The typed value.
    pub value: Value,
}

impl FromStr for ConfigOverride {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let Some((key, value)) = text.split_once('=') else {
            return Err(format!("expected KEY=VALUE, got `{text}`"));
        };
        let path: Vec<String> = key.trim().split('.').map(str::to_owned).collect();
        let well_formed =
            path.iter().all(|part| !part.is_empty()) && (path.len() >= 3 || (path.len() == 2 && path[1] == "selector"));
        if !well_formed {
            return Err(format!("expected `module.provider.key=VALUE` or `module.selector=VALUE`, got `{text}`"));
        }
        Ok(ConfigOverride { path, value: typed_value(value) })
    }
}

impl ConfigOverride {
    fn key(&self) -> String {
        self.path.join(".")
    }

    fn is_selector(&self) -> bool {
        self.path.len() == 2
    }
}

/// The selector an override sets for `module`, the last one winning.
pub(super) fn selector_for<'a>(module: &str, overrides: &'a [ConfigOverride]) -> Option<&'a str> {
    overrides.iter().rev().filter(|o| o.is_selector() && o.path[0] == module).find_map(|o| o.value.as_str())
}

/// Applies the key overrides to the selected providers' settings.
pub(super) fn apply(config: &mut ApplicationConfig, overrides: &[ConfigOverride], errors: &mut Vec<ConfigError>) {
    for item in overrides {
        let module_name = &item.path[0];
        let Some(module) = config.modules.iter_mut().find(|m| &m.name == module_name) else {
            errors.push(ConfigError::new(
                item.key(),
                format!("cannot override: the configuration has no module `{module_name}`"),
            ));
            continue;
        };
        if item.is_selector() {
            if item.value.as_str().is_none() {
                errors.push(ConfigError::new(item.key(), "expected a provider name"));
            }
            continue;
        }
        let provider = match &mut module.selection {
            Selection::Provider(provider) => provider,
            Selection::Disabled => {
                errors
                    .push(ConfigError::new(item.key(), format!("cannot override: module `{module_name}` is disabled")));
                continue;
            }
            Selection::Invalid => continue,
        };
        if provider.name != item.path[1] {
            errors.push(ConfigError::new(
                item.key(),
                format!(
                    "cannot override: module `{module_name}` selects provider `{}`, not `{}`",
                    provider.name, item.path[1]
                ),
            ));
            continue;
        }
        set_nested(&mut provider.settings, &item.path[2..], item.value.clone());
    }
}

fn set_nested(mapping: &mut Mapping, path: &[String], value: Value) {
    let (last, parents) = path.split_last().expect("an override key has at least one part");
    let mut current = mapping;
    for part in parents {
        let entry = current.entry(Value::from(part.as_str())).or_insert_with(|| Value::Mapping(Mapping::new()));
        if !entry.is_mapping() {
            *entry = Value::Mapping(Mapping::new());
        }
        current = entry.as_mapping_mut().expect("just made a mapping");
    }
    current.insert(Value::from(last.as_str()), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "core:\n  selector: default\n  default:\n    role: Mixed\n    gRPCPort: 11800\nstorage:\n  selector: embedded\n  embedded: {}\n  elasticsearch: {}\n";

    fn load(overrides: &[&str]) -> Result<ApplicationConfig, crate::ConfigErrors> {
        let overrides: Vec<ConfigOverride> = overrides.iter().map(|o| o.parse().expect("well formed")).collect();
        ApplicationConfig::load(TEXT, "test.yml", &|_| None, &overrides)
    }

    #[test]
    fn key_override_replaces_and_types_the_value() {
        let config = load(&["core.default.role=Receiver", "core.default.gRPCPort=21800"]).expect("valid");
        let core = config.module("core").and_then(|m| m.provider()).expect("enabled");
        assert_eq!(core.settings.get("role"), Some(&Value::from("Receiver")));
        assert_eq!(core.settings.get("gRPCPort"), Some(&Value::from(21800)));
    }

    #[test]
    fn selector_override_switches_the_provider() {
        let config = load(&["storage.selector=elasticsearch"]).expect("valid");
        let storage = config.module("storage").and_then(|m| m.provider()).expect("enabled");
        assert_eq!(storage.name, "elasticsearch");
        let config = load(&["storage.selector=-"]).expect("valid");
        assert!(config.module("storage").and_then(|m| m.provider()).is_none());
    }

    #[test]
    fn override_of_an_unselected_provider_is_an_error() {
        let errors = load(&["core.defualt.role=Receiver", "nope.default.x=1"]).expect_err("two problems");
        let messages: Vec<String> = errors.errors().iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "core.defualt.role: cannot override: module `core` selects provider `default`, not `defualt`",
                "nope.default.x: cannot override: the configuration has no module `nope`",
            ]
        );
    }

    #[test]
    fn malformed_overrides_are_rejected() {
        assert!("core.default.role".parse::<ConfigOverride>().is_err());
        assert!("core.role=Mixed".parse::<ConfigOverride>().is_err());
        assert!("core..role=Mixed".parse::<ConfigOverride>().is_err());
    }
}
