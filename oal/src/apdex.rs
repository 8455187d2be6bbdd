//! Apdex thresholds (docs/reference/oal.md §3.1): the response time, in ms, under which a service's
//! request satisfies, per service name, from a file shaped like SkyWalking's
//! `service-apdex-threshold.yml` (`<serviceName>: <ms>` lines and `default: <ms>`).

use std::collections::HashMap;

/// The threshold SkyWalking uses when the file names neither the service nor a default.
const FALLBACK_MS: i64 = 500;

/// Thresholds by service name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApdexThresholds {
    default: i64,
    by_service: HashMap<String, i64>,
}

impl Default for ApdexThresholds {
    fn default() -> Self {
        Self { default: FALLBACK_MS, by_service: HashMap::new() }
    }
}

impl ApdexThresholds {
    /// Reads the file's text: a YAML map of names to positive integers.
    pub fn parse(text: &str) -> Result<Self, crate::DefinitionError> {
        let entries: Option<HashMap<String, serde_yaml_ng::Value>> =
            serde_yaml_ng::from_str(text).map_err(|error| crate::DefinitionError::Apdex(error.to_string()))?;
        let mut thresholds = Self::default();
        for (name, value) in entries.unwrap_or_default() {
            let ms = value.as_i64().filter(|ms| *ms > 0).ok_or_else(|| {
                crate::DefinitionError::Apdex(format!(
                    "`{name}`: the threshold must be a positive number of milliseconds, found {value:?}"
                ))
            })?;
            if name == "default" {
                thresholds.default = ms;
            } else {
                thresholds.by_service.insert(name, ms);
            }
        }
        Ok(thresholds)
    }

    /// The threshold of a service: its own, else the default. With only a default (the shipped
    /// file) no name is looked up.
    pub fn of(&self, service: &str) -> i64 {
        if self.by_service.is_empty() {
            return self.default;
        }
        self.by_service.get(service).copied().unwrap_or(self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_take_their_own_threshold_else_the_default() {
        let thresholds = ApdexThresholds::parse("default: 300\npy-backend: 100\n").expect("valid");
        assert_eq!(thresholds.of("py-backend"), 100);
        assert_eq!(thresholds.of("other"), 300);
        assert_eq!(ApdexThresholds::parse("# nothing\n").expect("empty").of("any"), 500);
        let error = ApdexThresholds::parse("default: fast\n").expect_err("not a number");
        assert!(error.to_string().contains("`default`"), "{error}");
    }
}
