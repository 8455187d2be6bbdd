//! Names as the analysis and the receivers record them: cut to SkyWalking's length limits
//! (`serviceNameMaxLength`, `instanceNameMaxLength`, `endpointNameMaxLength`), endpoint names
//! grouped by the rules of `endpoint-name-grouping.yml` ([`grouping`]), and the distinct
//! ungrouped endpoint names and instances of each service bounded ([`budget`]) — a name past its
//! service's budget becomes [`ABANDONED`].

pub mod budget;
pub mod grouping;

use std::sync::Arc;

pub use self::budget::{ABANDONED, Admission, NameBudget};
pub use self::grouping::{EndpointGrouping, Grouped};

/// How names are cut, grouped and bounded; cheap to clone, and every clone shares the budgets.
#[derive(Debug, Clone)]
pub struct NamingControl {
    /// `serviceNameMaxLength`: service names, peers used as service names, alias addresses.
    pub service_name_max_length: usize,
    /// `instanceNameMaxLength`.
    pub instance_name_max_length: usize,
    /// `endpointNameMaxLength`.
    pub endpoint_name_max_length: usize,
    grouping: Arc<EndpointGrouping>,
    endpoints: Arc<NameBudget>,
    instances: Arc<NameBudget>,
}

impl Default for NamingControl {
    fn default() -> Self {
        Self::new(70, 70, 150)
    }
}

/// What the endpoint budget holds, for its log line.
const ENDPOINTS: &str =
    "ungrouped endpoint names than maxHttpUrisNumberPerService (group them in endpoint-name-grouping.yml)";

/// What the instance budget holds, for its log line.
const INSTANCES: &str = "instances than maxInstancesNumberPerService";

/// Ungrouped endpoint names a service may have by default (`maxHttpUrisNumberPerService`).
pub const DEFAULT_MAX_ENDPOINTS: usize = 3_000;

/// Instances a service may have by default (`maxInstancesNumberPerService`).
pub const DEFAULT_MAX_INSTANCES: usize = 1_000;

impl NamingControl {
    /// Names cut to these lengths, with no grouping rules and the default budgets.
    pub fn new(
        service_name_max_length: usize,
        instance_name_max_length: usize,
        endpoint_name_max_length: usize,
    ) -> Self {
        Self {
            service_name_max_length,
            instance_name_max_length,
            endpoint_name_max_length,
            grouping: Arc::new(EndpointGrouping::default()),
            endpoints: Arc::new(NameBudget::new(DEFAULT_MAX_ENDPOINTS, ENDPOINTS)),
            instances: Arc::new(NameBudget::new(DEFAULT_MAX_INSTANCES, INSTANCES)),
        }
    }

    /// The same limits, with these grouping rules and budgets (fresh: nothing admitted yet).
    pub fn with(self, grouping: EndpointGrouping, max_endpoints: usize, max_instances: usize) -> Self {
        Self {
            grouping: Arc::new(grouping),
            endpoints: Arc::new(NameBudget::new(max_endpoints, ENDPOINTS)),
            instances: Arc::new(NameBudget::new(max_instances, INSTANCES)),
            ..self
        }
    }

    /// A service name (or a peer address used as one), cut to the limit.
    pub fn service<'a>(&self, name: &'a str) -> &'a str {
        truncate_utf16(name, self.service_name_max_length)
    }

    /// An instance name of `service` (already cut), cut to the limit; [`ABANDONED`] once the
    /// service has `maxInstancesNumberPerService` others.
    pub fn instance<'a>(&self, service: &str, name: &'a str) -> &'a str {
        let name = truncate_utf16(name, self.instance_name_max_length);
        if name.is_empty() {
            return name;
        }
        self.instances.name(service, name)
    }

    /// An endpoint name of `service` (already cut): cut to the limit, then grouped by the rules;
    /// an ungrouped name becomes [`ABANDONED`] once the service has
    /// `maxHttpUrisNumberPerService` others. Names of an empty service are only cut (SkyWalking
    /// leaves them whole; a bound holds for every name here).
    pub fn endpoint<'a>(&'a self, service: &str, name: &'a str) -> &'a str {
        let name = truncate_utf16(name, self.endpoint_name_max_length);
        if service.is_empty() || name.is_empty() {
            return name;
        }
        if let Grouped::As(grouped) = self.grouping.group(service, name) {
            return grouped;
        }
        self.endpoints.name(service, name)
    }

    /// Moves the budgets to the generation of `now_ms` (called every minute or so).
    pub fn turn(&self, now_ms: i64) {
        self.endpoints.turn(now_ms);
        self.instances.turn(now_ms);
    }

    /// Endpoint names and instances refused so far.
    pub fn abandoned(&self) -> (u64, u64) {
        (self.endpoints.refused(), self.instances.refused())
    }
}

/// The longest prefix of `text` that is at most `max` UTF-16 code units, never splitting a
/// character (a character that would straddle the limit is left out).
pub fn truncate_utf16(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text; // every char is at least one byte and at most as many units as bytes
    }
    let mut units = 0;
    for (index, character) in text.char_indices() {
        units += character.len_utf16();
        if units > max {
            return &text[..index];
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_cut_to_the_limit() {
        let naming = NamingControl::default();
        let long = "s".repeat(100);
        assert_eq!(naming.service(&long).len(), 70);
        assert_eq!(naming.instance("svc", &long).len(), 70);
        assert_eq!(naming.endpoint("svc", &"e".repeat(200)).len(), 150);
        assert_eq!(naming.service("short"), "short");
        assert_eq!(naming.endpoint("", &"e".repeat(200)).len(), 150, "no service: only cut");
    }

    #[test]
    fn endpoints_are_grouped_then_bounded_per_service() {
        let rules = vec!["/users/{var}".to_owned()];
        let naming = NamingControl::default().with(EndpointGrouping::new([("shop", rules.as_slice())]), 2, 1);
        assert_eq!(naming.endpoint("shop", "/users/1"), "/users/{var}");
        assert_eq!(naming.endpoint("shop", "/users/2"), "/users/{var}", "grouped names take no place");
        assert_eq!(naming.endpoint("shop", "/a"), "/a", "one segment, in a service with rules: kept, no place");
        assert_eq!(naming.endpoint("shop", "/b/c"), "/b/c");
        assert_eq!(naming.endpoint("shop", "/d/e"), "/d/e");
        assert_eq!(naming.endpoint("shop", "/x/y"), ABANDONED);
        assert_eq!(naming.endpoint("shop", "/b/c"), "/b/c");
        assert_eq!(naming.instance("shop", "i1"), "i1");
        assert_eq!(naming.instance("shop", "i2"), ABANDONED);
        assert_eq!(naming.abandoned(), (1, 1));
        let clone = naming.clone();
        assert_eq!(clone.endpoint("shop", "/f/g"), ABANDONED, "clones share the budgets");
    }

    #[test]
    fn limits_count_utf16_units_and_keep_characters_whole() {
        // 'é' is one unit, '😀' is two.
        assert_eq!(truncate_utf16("éééé", 3), "ééé");
        assert_eq!(truncate_utf16("a😀b", 2), "a");
        assert_eq!(truncate_utf16("a😀b", 3), "a😀");
    }
}
