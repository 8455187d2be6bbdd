//! The server's one [`NamingControl`]: the name limits and budgets of `core.default` with the
//! endpoint name grouping rules of `endpoint-name-grouping.yml`, shared by every receiver and
//! analysis, so a service's budget counts its names whichever way they arrive. A task turns the
//! budgets' generations and counts what they refused in `endpoint_name_abandoned_count` and
//! `instance_name_abandoned_count`.
//!
//! The rules file, as SkyWalking's:
//! ```yaml
//! grouping:
//!   - service-name: serviceA
//!     rules:
//!       - /prod/{var}
//!       - /prod/{var}/info
//! ```

use std::time::Duration;

use oap_kernel::ModuleError;
use oap_model::NamingControl;
use oap_model::naming::EndpointGrouping;
use oap_telemetry::MetricsCreator;
use serde::Deserialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::CoreConfig;

/// How often the budgets' generation is looked at and their refusals counted.
const TURN_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupingFile {
    #[serde(default)]
    grouping: Option<Vec<ServiceRules>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceRules {
    #[serde(rename = "service-name")]
    service_name: String,
    #[serde(default)]
    rules: Vec<String>,
}

/// The grouping rules of a file's text.
pub fn parse_grouping(text: &str) -> Result<EndpointGrouping, String> {
    let file: GroupingFile =
        serde_yaml_ng::from_str::<Option<GroupingFile>>(text).map_err(|error| error.to_string())?.unwrap_or_default();
    let services = file.grouping.unwrap_or_default();
    if let Some(index) = services.iter().position(|rules| rules.service_name.trim().is_empty()) {
        return Err(format!("grouping[{index}] has an empty `service-name`"));
    }
    Ok(EndpointGrouping::new(services.iter().map(|rules| (rules.service_name.as_str(), rules.rules.as_slice()))))
}

/// The naming of `config`, with the rules of its grouping file (none when there is no file).
pub fn load(config: &CoreConfig) -> Result<NamingControl, ModuleError> {
    let path = &config.endpoint_name_grouping_file;
    let grouping = match std::fs::read_to_string(path) {
        Ok(text) => parse_grouping(&text).map_err(|error| ModuleError::Other(format!("{path}: {error}")))?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            info!(file = %path, "no endpoint name grouping file; endpoint names are not grouped");
            EndpointGrouping::default()
        }
        Err(error) => return Err(ModuleError::io(format!("cannot read {path}"), error)),
    };
    Ok(config.naming_with(grouping))
}

/// Turns the budgets' generations and counts their refusals, until `shutdown`.
pub fn keep(
    naming: NamingControl,
    metrics: &dyn MetricsCreator,
    shutdown: CancellationToken,
) -> Result<JoinHandle<()>, ModuleError> {
    let endpoints = metrics.counter(
        "endpoint_name_abandoned_count",
        "Endpoint names recorded as _abandoned: their service had maxHttpUrisNumberPerService others",
        &[],
    )?;
    let instances = metrics.counter(
        "instance_name_abandoned_count",
        "Instance names recorded as _abandoned: their service had maxInstancesNumberPerService others",
        &[],
    )?;
    Ok(tokio::spawn(async move {
        let mut tick = tokio::time::interval(TURN_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => break,
            }
            naming.turn(oap_model::now_ms());
            let (endpoint_total, instance_total) = naming.abandoned();
            endpoints.inc_by(endpoint_total.saturating_sub(endpoints.get()));
            instances.inc_by(instance_total.saturating_sub(instances.get()));
        }
    }))
}

#[cfg(test)]
mod tests {
    use oap_model::naming::Grouped;

    use super::*;

    #[test]
    fn the_rules_file_reads_as_skywalking_writes_it() {
        let grouping = parse_grouping(
            "grouping:\n  - service-name: serviceA\n    rules:\n      - /prod/{var}\n      - /prod/{var}/info\n",
        )
        .expect("rules");
        assert_eq!(grouping.group("serviceA", "/prod/1/info"), Grouped::As("/prod/{var}/info"));
        assert!(parse_grouping("# only comments\n").expect("no rules").is_empty());
        assert!(parse_grouping("grouping:\n").expect("no rules").is_empty());
        let empty = parse_grouping("grouping:\n  - service-name: ''\n    rules: ['/a/{var}']\n").expect_err("empty");
        assert!(empty.contains("service-name"), "{empty}");
        assert!(parse_grouping("groupings: []\n").is_err(), "an unknown key is an error");
    }
}
