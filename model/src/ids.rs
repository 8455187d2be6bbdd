//! Entity ids, encoded exactly as SkyWalking encodes them (docs/reference/analysis.md §11): names
//! in standard base64 with padding, joined by `.`, `_` and `-`, which base64 never produces, so
//! every id splits back into its parts. A blank name is encoded as `_blank`.
//!
//! Analysis builds the same few thousand services', instances' and endpoints' ids for every
//! segment, so each thread remembers the encodings of the names it met last
//! ([`MEMO_NAMES`] at most, forgotten all at once when full).

use std::cell::RefCell;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hashbrown::HashMap;

/// What a blank name is replaced by before encoding.
const BLANK: &str = "_blank";

/// Names whose encoding a thread remembers.
pub const MEMO_NAMES: usize = 16_384;
/// Longer names are encoded each time.
const MEMO_NAME_LEN: usize = 256;

thread_local! {
    static ENCODED: RefCell<HashMap<Box<str>, Box<str>>> = RefCell::new(HashMap::new());
}

/// Appends `base64(name)` (or of `_blank` for a blank name) to `out`.
pub fn push_encoded(out: &mut String, name: &str) {
    if name.len() > MEMO_NAME_LEN {
        return encode_into(out, name);
    }
    ENCODED.with_borrow_mut(|memo| {
        if let Some(encoded) = memo.get(name) {
            out.push_str(encoded);
            return;
        }
        let start = out.len();
        encode_into(out, name);
        if memo.len() >= MEMO_NAMES {
            memo.clear();
        }
        memo.insert(name.into(), out[start..].into());
    });
}

fn encode_into(out: &mut String, name: &str) {
    let name = if name.trim().is_empty() { BLANK } else { name };
    STANDARD.encode_string(name, out);
}

/// `base64(name)`.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len() * 4 / 3 + 4);
    push_encoded(&mut out, name);
    out
}

/// The decoded name of an encoded id part, if it is valid base64 of UTF-8.
pub fn decode(encoded: &str) -> Option<String> {
    STANDARD.decode(encoded).ok().and_then(|bytes| String::from_utf8(bytes).ok())
}

/// `ServiceID`: `base64(name) + "." + (normal ? "1" : "0")`.
pub fn service_id(name: &str, normal: bool) -> String {
    let mut id = String::with_capacity(name.len() * 4 / 3 + 6);
    push_encoded(&mut id, name);
    id.push_str(if normal { ".1" } else { ".0" });
    id
}

/// `InstanceID`: `serviceId + "_" + base64(instanceName)`.
pub fn instance_id(service_id: &str, instance_name: &str) -> String {
    joined(service_id, '_', instance_name)
}

/// `EndpointID`: `serviceId + "_" + base64(endpointName)`.
pub fn endpoint_id(service_id: &str, endpoint_name: &str) -> String {
    joined(service_id, '_', endpoint_name)
}

/// A service or instance relation: `sourceId + "-" + destId`.
pub fn relation_id(source_id: &str, dest_id: &str) -> String {
    let mut id = String::with_capacity(source_id.len() + dest_id.len() + 1);
    id.push_str(source_id);
    id.push('-');
    id.push_str(dest_id);
    id
}

/// An endpoint relation:
/// `serviceId + "-" + base64(endpoint) + "-" + childServiceId + "-" + base64(childEndpoint)`.
pub fn endpoint_relation_id(service_id: &str, endpoint: &str, child_service_id: &str, child_endpoint: &str) -> String {
    let mut id = String::with_capacity(
        service_id.len() + child_service_id.len() + 4 * (endpoint.len() + child_endpoint.len()) / 3 + 12,
    );
    id.push_str(service_id);
    id.push('-');
    push_encoded(&mut id, endpoint);
    id.push('-');
    id.push_str(child_service_id);
    id.push('-');
    push_encoded(&mut id, child_endpoint);
    id
}

/// The id of a `service_traffic` row: `base64(name) + "." + layerNumber`.
pub fn service_traffic_id(name: &str, layer_number: i32) -> String {
    let mut id = String::with_capacity(name.len() * 4 / 3 + 8);
    push_encoded(&mut id, name);
    id.push('.');
    id.push_str(itoa::Buffer::new().format(layer_number));
    id
}

/// The id of a network-address alias: `base64(address)`.
pub fn network_address_alias_id(address: &str) -> String {
    encode(address)
}

/// The name and normal flag a service id encodes.
pub fn parse_service_id(id: &str) -> Option<(String, bool)> {
    let (encoded, normal) = id.rsplit_once('.')?;
    let normal = match normal {
        "1" => true,
        "0" => false,
        _ => return None,
    };
    Some((decode(encoded)?, normal))
}

fn joined(prefix: &str, separator: char, name: &str) -> String {
    let mut id = String::with_capacity(prefix.len() + 1 + name.len() * 4 / 3 + 4);
    id.push_str(prefix);
    id.push(separator);
    push_encoded(&mut id, name);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_the_reference_examples() {
        assert_eq!(service_id("py-backend", true), "cHktYmFja2VuZA==.1");
        assert_eq!(service_id("User", false), "VXNlcg==.0");
        let backend = service_id("py-backend", true);
        assert_eq!(
            instance_id(&backend, "py-backend-24906@127.0.0.1"),
            "cHktYmFja2VuZA==.1_cHktYmFja2VuZC0yNDkwNkAxMjcuMC4wLjE="
        );
        assert_eq!(endpoint_id(&backend, "/work"), "cHktYmFja2VuZA==.1_L3dvcms=");
        let frontend = service_id("py-frontend", true);
        assert_eq!(relation_id(&frontend, &backend), "cHktZnJvbnRlbmQ=.1-cHktYmFja2VuZA==.1");
        assert_eq!(
            endpoint_relation_id(&frontend, "/api", &backend, "/work"),
            "cHktZnJvbnRlbmQ=.1-L2FwaQ==-cHktYmFja2VuZA==.1-L3dvcms="
        );
        assert_eq!(network_address_alias_id("127.0.0.1:18082"), "MTI3LjAuMC4xOjE4MDgy");
        assert_eq!(service_traffic_id("py-backend", 2), "cHktYmFja2VuZA==.2");
    }

    #[test]
    fn remembered_encodings_equal_fresh_ones_before_and_after_the_memo_fills() {
        let fresh = |name: &str| {
            let mut out = String::new();
            encode_into(&mut out, name);
            out
        };
        let long = "x".repeat(MEMO_NAME_LEN + 1);
        for round in 0..2 {
            // The second round reads what the first remembered; the memo is cleared in between
            // (MEMO_NAMES + 1 names) and refilled.
            for n in 0..=MEMO_NAMES {
                let name = format!("service-{n}");
                assert_eq!(encode(&name), fresh(&name), "round {round}, name {n}");
            }
            assert_eq!(encode(&long), fresh(&long));
            assert_eq!(encode(" "), fresh("_blank"));
            // "py" encodes as "cHk=": appended after what `out` already holds.
            let mut out = "prefix.".to_owned();
            push_encoded(&mut out, "py");
            assert_eq!(out, "prefix.cHk=");
        }
        assert!(ENCODED.with_borrow(|memo| memo.len()) <= MEMO_NAMES);
    }

    #[test]
    fn blank_names_are_encoded_as_blank_marker() {
        assert_eq!(service_id("", true), format!("{}.1", encode("_blank")));
        assert_eq!(service_id("  ", false), format!("{}.0", encode("_blank")));
    }

    #[test]
    fn service_ids_parse_back() {
        assert_eq!(parse_service_id("cHktYmFja2VuZA==.1"), Some(("py-backend".to_owned(), true)));
        assert_eq!(parse_service_id("VXNlcg==.0"), Some(("User".to_owned(), false)));
        assert_eq!(parse_service_id("nonsense"), None);
    }
}
