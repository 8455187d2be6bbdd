//! Entity keys: what a row's entity id is built from, borrowed from a source. An id is
//! SkyWalking's text (`base64(name).1`, joined with `_` and `-` for instances, endpoints and
//! relations); building it per source costs allocations and base64 look-ups, and hashing it costs
//! its 20–100 bytes. A key holds the few names and flags the id is made of instead: equal keys
//! make equal ids, so a sink (L1's group table) finds a row by hashing and comparing the names
//! alone, and builds the id's text ([`EntityKey::id`]) once per row.

use oap_model::ids;

/// The shape of an id made of parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// `serviceId`: `[service]`, `normal[0]`.
    Service,
    /// `serviceId_base64(instance)`: `[service, instance]`.
    Instance,
    /// `serviceId_base64(endpoint)`: `[service, endpoint]`.
    Endpoint,
    /// `sourceServiceId-destServiceId`: `[source, dest]`, `normal` of each.
    ServiceRelation,
    /// `sourceInstanceId-destInstanceId`: `[source service, dest service, source instance, dest
    /// instance]`.
    InstanceRelation,
    /// `serviceId-base64(endpoint)-childServiceId-base64(childEndpoint)`: `[service, endpoint,
    /// child service, child endpoint]`.
    EndpointRelation,
    /// A `service_traffic` row, `base64(service).layerNumber`: `[service]`.
    ServiceTraffic {
        /// The layer's number.
        layer: i32,
    },
    /// A `tag_autocomplete` row, `day_type_key_value` of the day of `minute`: `[type, key, value]`.
    Tag {
        /// The minute bucket the tag was seen in.
        minute: i64,
    },
}

/// What an entity id is built from. Two keys that are equal build the same id; two that differ
/// may still build the same one (a sink that keys by them then holds two rows of one entity,
/// which merge downstream as any two contributions do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityKey<'a> {
    /// The names of an id of `kind` (unused ones empty) and whether each service is normal.
    Parts {
        /// The id's shape.
        kind: IdKind,
        /// Whether the first and the second service are normal (`.1`) or not (`.0`).
        normal: [bool; 2],
        /// The names, in the order [`IdKind`] gives.
        parts: [&'a str; 4],
    },
    /// An id built already.
    Text(&'a str),
}

impl<'a> EntityKey<'a> {
    /// A service's key.
    pub fn service(name: &'a str, normal: bool) -> Self {
        Self::Parts { kind: IdKind::Service, normal: [normal, false], parts: [name, "", "", ""] }
    }

    /// The key of a name under a service (an instance or an endpoint).
    pub fn under_service(kind: IdKind, service: &'a str, normal: bool, name: &'a str) -> Self {
        Self::Parts { kind, normal: [normal, false], parts: [service, name, "", ""] }
    }

    /// The key as shape (`None` for [`EntityKey::Text`]), flags and names (the text alone for
    /// [`EntityKey::Text`]).
    fn flat(&self) -> (Option<IdKind>, [bool; 2], [&'a str; 4]) {
        match *self {
            EntityKey::Parts { kind, normal, parts } => (Some(kind), normal, parts),
            EntityKey::Text(text) => (None, [false; 2], [text, "", "", ""]),
        }
    }

    /// The id's text.
    pub fn id(&self) -> String {
        match *self {
            EntityKey::Text(id) => id.to_owned(),
            EntityKey::Parts { kind, normal: [first, second], parts: [a, b, c, d] } => match kind {
                IdKind::Service => ids::service_id(a, first),
                IdKind::Instance => ids::instance_id(&ids::service_id(a, first), b),
                IdKind::Endpoint => ids::endpoint_id(&ids::service_id(a, first), b),
                IdKind::ServiceRelation => ids::relation_id(&ids::service_id(a, first), &ids::service_id(b, second)),
                IdKind::InstanceRelation => ids::relation_id(
                    &ids::instance_id(&ids::service_id(a, first), c),
                    &ids::instance_id(&ids::service_id(b, second), d),
                ),
                IdKind::EndpointRelation => {
                    ids::endpoint_relation_id(&ids::service_id(a, first), b, &ids::service_id(c, second), d)
                }
                IdKind::ServiceTraffic { layer } => ids::service_traffic_id(a, layer),
                IdKind::Tag { minute } => oap_storage_model::builtin::tag::id(minute, a, b, c),
            },
        }
    }
}

/// An [`EntityKey`] kept beyond its source: what a sink stores to recognise the key again. Its
/// names sit in one buffer, their lengths beside it, so that recognising a key reads one
/// allocation (a look-up per source: scattered allocations cost a cache miss each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedEntityKey {
    /// The id's shape; `None` for an id built already ([`EntityKey::Text`]).
    kind: Option<IdKind>,
    normal: [bool; 2],
    /// The length of each name (of the text alone, for [`EntityKey::Text`]).
    lengths: [u32; 4],
    /// The names, one after the other.
    bytes: Box<[u8]>,
}

impl OwnedEntityKey {
    /// `key`, owned.
    pub fn of(key: &EntityKey<'_>) -> Self {
        let (kind, normal, parts) = key.flat();
        let lengths = parts.map(|part| u32::try_from(part.len()).unwrap_or(u32::MAX));
        // Sized once and copied a name at a time: collecting byte by byte grew it repeatedly.
        let mut bytes = Vec::with_capacity(parts.iter().map(|part| part.len()).sum());
        for part in parts {
            bytes.extend_from_slice(part.as_bytes());
        }
        Self { kind, normal, lengths, bytes: bytes.into_boxed_slice() }
    }

    /// Whether this is `key`.
    pub fn is(&self, key: &EntityKey<'_>) -> bool {
        let (kind, normal, parts) = key.flat();
        if self.kind != kind
            || self.normal != normal
            || self.lengths.iter().zip(&parts).any(|(&length, part)| length as usize != part.len())
        {
            return false;
        }
        let mut at = 0;
        parts.iter().all(|part| {
            let held = &self.bytes[at..at + part.len()];
            at += part.len();
            part.is_empty() || held == part.as_bytes()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_builds_skywalkings_id() {
        let service = ids::service_id("svc", true);
        assert_eq!(EntityKey::service("svc", true).id(), service);
        assert_eq!(EntityKey::service("db:3306", false).id(), ids::service_id("db:3306", false));
        assert_eq!(
            EntityKey::under_service(IdKind::Instance, "svc", true, "i-1").id(),
            ids::instance_id(&service, "i-1")
        );
        assert_eq!(
            EntityKey::under_service(IdKind::Endpoint, "svc", true, "/a").id(),
            ids::endpoint_id(&service, "/a")
        );
        let other = ids::service_id("other", false);
        let relation =
            EntityKey::Parts { kind: IdKind::ServiceRelation, normal: [true, false], parts: ["svc", "other", "", ""] };
        assert_eq!(relation.id(), ids::relation_id(&service, &other));
        let instances = EntityKey::Parts {
            kind: IdKind::InstanceRelation,
            normal: [true, false],
            parts: ["svc", "other", "i-1", "i-2"],
        };
        assert_eq!(
            instances.id(),
            ids::relation_id(&ids::instance_id(&service, "i-1"), &ids::instance_id(&other, "i-2"))
        );
        let endpoints = EntityKey::Parts {
            kind: IdKind::EndpointRelation,
            normal: [true, false],
            parts: ["svc", "/a", "other", "/b"],
        };
        assert_eq!(endpoints.id(), ids::endpoint_relation_id(&service, "/a", &other, "/b"));
        assert_eq!(EntityKey::Text("made").id(), "made");
        let traffic = EntityKey::Parts {
            kind: IdKind::ServiceTraffic { layer: 2 },
            normal: [false; 2],
            parts: ["svc", "", "", ""],
        };
        assert_eq!(traffic.id(), ids::service_traffic_id("svc", 2));
        let tag = EntityKey::Parts {
            kind: IdKind::Tag { minute: 202_612_071_504 },
            normal: [false; 2],
            parts: ["TRACE", "http.method", "GET", ""],
        };
        assert_eq!(tag.id(), oap_storage_model::builtin::tag::id(202_612_071_504, "TRACE", "http.method", "GET"));
    }

    #[test]
    fn an_owned_key_recognises_its_key_and_no_other() {
        let key = EntityKey::under_service(IdKind::Endpoint, "svc", true, "/a");
        let owned = OwnedEntityKey::of(&key);
        assert!(owned.is(&key));
        assert!(!owned.is(&EntityKey::under_service(IdKind::Endpoint, "svc", false, "/a")));
        assert!(!owned.is(&EntityKey::under_service(IdKind::Instance, "svc", true, "/a")));
        assert!(!owned.is(&EntityKey::under_service(IdKind::Endpoint, "svc", true, "/b")));
        assert!(!owned.is(&EntityKey::Text("svc")));
        let text = OwnedEntityKey::of(&EntityKey::Text("an-id"));
        assert!(text.is(&EntityKey::Text("an-id")));
        assert!(!text.is(&EntityKey::Text("an-id2")));
    }
}
