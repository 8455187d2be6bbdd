//! `${NAME:default}` placeholders, resolved the way SkyWalking resolves them in `application.yml`.
//!
//! - `NAME` is looked up first; when it is unset, the text after the **first** `:` is the
//!   default (`${SW_SLOW_DB_THRESHOLD:default:200}` defaults to `default:200`).
//! - Placeholders nest: `${A:${B:x}}` is `A`, else `B`, else `x`.
//! - A placeholder whose name is unset and which has no default is left as it is.
//! - A variable that is set to the empty string yields the empty string, not the default.
//! - Values found in the environment are taken literally, never resolved again.
//! - Placeholders nest at most [`MAX_NESTING`] deep; what is nested deeper is plain text. (Each
//!   level was a recursion and a scan of the rest of the text: a value of 10,000 nested `${`
//!   overflowed the stack.)

/// How deep placeholders nest; SkyWalking's own configuration nests two.
pub const MAX_NESTING: usize = 16;

/// Replaces every placeholder in `text`; `lookup` gives the value of a name (the process
/// environment in production, a map in tests).
pub fn resolve_placeholders(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    resolve_nested(text, lookup, 0)
}

/// [`resolve_placeholders`] of the body of placeholders `depth` deep.
fn resolve_nested(text: &str, lookup: &dyn Fn(&str) -> Option<String>, depth: usize) -> String {
    if depth == MAX_NESTING {
        return text.to_owned();
    }
    let mut resolved = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        resolved.push_str(&rest[..start]);
        let body = &rest[start + 2..];
        let Some(end) = matching_close(body) else {
            // An unterminated `${` is plain text.
            resolved.push_str(&rest[start..]);
            return resolved;
        };
        let inner = resolve_nested(&body[..end], lookup, depth + 1);
        resolved.push_str(&resolve_one(&inner, lookup));
        rest = &body[end + 1..];
    }
    resolved.push_str(rest);
    resolved
}

/// True when `text` holds at least one `${` that could start a placeholder.
pub fn has_placeholder(text: &str) -> bool {
    text.contains("${")
}

/// The byte index of the `}` that closes a placeholder whose body starts at `body[0]`.
fn matching_close(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut depth = 0usize;
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'$' if bytes.get(index + 1) == Some(&b'{') => {
                depth += 1;
                index += 1;
            }
            b'}' if depth == 0 => return Some(index),
            b'}' => depth -= 1,
            _ => {}
        }
        index += 1;
    }
    None
}

fn resolve_one(content: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let (name, default) = match content.split_once(':') {
        Some((name, default)) => (name, Some(default)),
        None => (content, None),
    };
    match (lookup(name), default) {
        (Some(value), _) => value,
        (None, Some(default)) => default.to_owned(),
        (None, None) => format!("${{{content}}}"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn resolve_with(text: &str, vars: &[(&str, &str)]) -> String {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        resolve_placeholders(text, &|name| vars.get(name).cloned())
    }

    #[test]
    fn set_variable_wins_over_default() {
        assert_eq!(resolve_with("${SW_CORE_GRPC_PORT:11800}", &[("SW_CORE_GRPC_PORT", "21800")]), "21800");
    }

    #[test]
    fn unset_variable_takes_default() {
        assert_eq!(resolve_with("${SW_CORE_GRPC_PORT:11800}", &[]), "11800");
    }

    #[test]
    fn default_is_everything_after_the_first_colon() {
        assert_eq!(resolve_with("${SW_SLOW_DB_THRESHOLD:default:200,mongodb:100}", &[]), "default:200,mongodb:100");
        assert_eq!(resolve_with("${SW_STORAGE_ES_CLUSTER_NODES:localhost:9200}", &[]), "localhost:9200");
    }

    #[test]
    fn empty_variable_yields_empty_not_default() {
        assert_eq!(resolve_with("${SW_NAMESPACE:sw}", &[("SW_NAMESPACE", "")]), "");
    }

    #[test]
    fn empty_default_yields_empty() {
        assert_eq!(resolve_with("${SW_CLUSTER_ETCD_USER:}", &[]), "");
    }

    #[test]
    fn unset_without_default_is_left_as_is() {
        assert_eq!(resolve_with("${SW_NOT_SET}", &[]), "${SW_NOT_SET}");
    }

    #[test]
    fn placeholders_nest() {
        let text = "${A:${B:x}}";
        assert_eq!(resolve_with(text, &[]), "x");
        assert_eq!(resolve_with(text, &[("B", "b")]), "b");
        assert_eq!(resolve_with(text, &[("A", "a"), ("B", "b")]), "a");
        assert_eq!(resolve_with("${A:${B:${C:deep}}}", &[]), "deep");
    }

    #[test]
    fn placeholders_inside_longer_text() {
        assert_eq!(
            resolve_with("http://${HOST:localhost}:${PORT:9200}/x", &[("PORT", "9201")]),
            "http://localhost:9201/x"
        );
    }

    #[test]
    fn unterminated_placeholder_is_plain_text() {
        assert_eq!(resolve_with("abc ${OOPS:1", &[]), "abc ${OOPS:1");
    }

    #[test]
    fn environment_values_are_not_resolved_again() {
        assert_eq!(resolve_with("${A:x}", &[("A", "${B:y}")]), "${B:y}");
    }

    #[test]
    fn placeholders_nested_past_the_limit_are_plain_text() {
        let nested = |depth: usize| format!("{}x{}", "${A:".repeat(depth), "}".repeat(depth));
        assert_eq!(resolve_with(&nested(MAX_NESTING), &[]), "x");
        // One level more: the innermost is text, the default of the one around it.
        assert_eq!(resolve_with(&nested(MAX_NESTING + 1), &[]), "${A:x}");
        // 10,000 levels overflowed the stack (found while writing tests/fuzz_config.rs).
        let deep = nested(100_000);
        let resolved = resolve_with(&deep, &[]);
        assert!(resolved.len() < deep.len(), "{} of {} bytes", resolved.len(), deep.len());
    }
}
