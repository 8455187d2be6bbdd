//! A GraphQL document's nesting, measured before it is parsed. async-graphql's parser recurses
//! once per level of a list or object value (`[[[…]]]`, `{a: {a: …}}`) and checks nothing on the
//! way: a few hundred levels overflow a worker's stack and abort the server. Selections
//! (`{a{a{…}}}`) are bounded by the parser (64) and by `maxQueryDepth`, but only once parsed. So
//! every document is scanned first — a single pass over its bytes that skips strings, block
//! strings and comments — and one whose brackets nest deeper than [`MAX_NESTING`] is refused
//! without being parsed.

/// The deepest `{`, `[` and `(` may nest in a document. The UI's documents nest about 8 levels;
/// the parser refuses selections deeper than 64 anyway.
pub const MAX_NESTING: usize = 64;

/// A document nested too deep to parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the document is nested deeper than {MAX_NESTING} levels of `{{`, `[` and `(`, so it is not parsed")]
pub struct TooDeep;

/// Whether `document`'s brackets nest at most [`MAX_NESTING`] deep (outside strings and
/// comments); it stops at the first level too many.
pub fn check_nesting(document: &str) -> Result<(), TooDeep> {
    let bytes = document.as_bytes();
    let mut depth = 0usize;
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(TooDeep);
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            b'#' => {
                // A comment runs to the end of the line.
                while at < bytes.len() && bytes[at] != b'\n' && bytes[at] != b'\r' {
                    at += 1;
                }
            }
            b'"' if bytes[at..].starts_with(b"\"\"\"") => {
                // A block string ends at the next `"""` not escaped as `\"""`.
                at += 3;
                while at < bytes.len() && !bytes[at..].starts_with(b"\"\"\"") {
                    at += if bytes[at..].starts_with(b"\\\"\"\"") { 4 } else { 1 };
                }
                at += 2;
            }
            b'"' => {
                // A string ends at the next `"` not escaped, or at the end of the line.
                at += 1;
                while at < bytes.len() && bytes[at] != b'"' && bytes[at] != b'\n' {
                    at += if bytes[at] == b'\\' { 2 } else { 1 };
                }
            }
            _ => {}
        }
        at += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(open: &str, close: &str, depth: usize) -> String {
        format!("{}{}", open.repeat(depth), close.repeat(depth))
    }

    #[test]
    fn brackets_nest_up_to_the_bound() {
        assert_eq!(check_nesting(&nested("{a", "}", MAX_NESTING)), Ok(()));
        assert_eq!(check_nesting(&nested("{a", "}", MAX_NESTING + 1)), Err(TooDeep));
        assert_eq!(check_nesting(&nested("[", "]", 20_000)), Err(TooDeep));
        // Mixed kinds count together.
        let mixed = format!("{{ f(x: {}) }}", nested("{a: [", "]}", MAX_NESTING / 2));
        assert_eq!(check_nesting(&mixed), Err(TooDeep));
        // Depth, not count: siblings do not add up.
        assert_eq!(check_nesting(&"{ a { b } }".repeat(10_000)), Ok(()));
        // Unbalanced closers do not make room for more openers.
        assert_eq!(check_nesting(&format!("{}{}", "}".repeat(100), "[".repeat(MAX_NESTING + 1))), Err(TooDeep));
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let deep = "(".repeat(20_000);
        assert_eq!(check_nesting(&format!("{{ execExpression(expression: \"{deep}\") }}")), Ok(()));
        assert_eq!(check_nesting(&format!("{{ f(x: \"\\\"{deep}\") }}")), Ok(()));
        assert_eq!(check_nesting(&format!("{{ f(x: \"\"\"{deep} \\\"\"\" {deep}\"\"\") }}")), Ok(()));
        assert_eq!(check_nesting(&format!("# {deep}\n{{ version }}")), Ok(()));
        // A string ends at its line, as GraphQL's do; what follows counts again.
        assert_eq!(check_nesting(&format!("{{ f(x: \"open\n{deep}")), Err(TooDeep));
        // After the string, brackets count.
        assert_eq!(check_nesting(&format!("{{ f(x: \"{{\") {} }}", nested("{a", "}", MAX_NESTING))), Err(TooDeep));
    }

    #[test]
    fn the_uis_documents_pass() {
        let document = "query queryData($duration: Duration!, $entity: Entity!) {\
            expression00: execExpression(expression: \"avg(service_cpm)\", entity: $entity, duration: $duration) {\
              type results { metric { labels { key value } } values { name: id value refId: traceID \
              owner { scope serviceID serviceName normal } } } error } }";
        assert_eq!(check_nesting(document), Ok(()));
    }
}
