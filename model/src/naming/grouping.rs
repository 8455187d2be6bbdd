//! Endpoint name grouping rules, as SkyWalking reads them from `endpoint-name-grouping.yml`:
//! per service, URI patterns whose `/`-separated segments are literals or `{var}`; a name that
//! matches a pattern becomes the pattern's text (`/prod/123` → `/prod/{var}`), so one endpoint
//! stands for all the names it covers.
//!
//! Matching is SkyWalking's: a leading `/` is ignored and a trailing one adds no segment; a
//! `{var}` segment matches any one segment, anything else only itself; every segment must
//! match. Where several patterns match, the one with a literal at the first place they differ
//! wins. For a service that has rules, a one-segment name counts as grouped and is kept as it is.

use hashbrown::HashMap;

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(String),
    Var,
}

/// One pattern: its text (the grouped name) and its segments.
#[derive(Debug, Clone)]
struct Pattern {
    text: String,
    tokens: Vec<Token>,
}

/// The grouping rules of every service.
#[derive(Debug, Clone, Default)]
pub struct EndpointGrouping {
    by_service: HashMap<String, Vec<Pattern>>,
}

/// What grouping made of a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouped<'a> {
    /// The name matched a rule and becomes this (or is a one-segment name of a ruled service).
    As(&'a str),
    /// No rule covers the name.
    Ungrouped,
}

fn segments(name: &str) -> impl Iterator<Item = &str> {
    let name = name.strip_prefix('/').unwrap_or(name);
    let name = name.strip_suffix('/').unwrap_or(name);
    name.split('/')
}

impl EndpointGrouping {
    /// The rules of `(service, patterns)` pairs; empty patterns are skipped.
    pub fn new<'a>(rules: impl IntoIterator<Item = (&'a str, &'a [String])>) -> Self {
        let mut by_service: HashMap<String, Vec<Pattern>> = HashMap::new();
        for (service, patterns) in rules {
            let list = by_service.entry(service.to_owned()).or_default();
            for text in patterns.iter().map(|text| text.trim()).filter(|text| !text.is_empty()) {
                let tokens = segments(text)
                    .map(|segment| match segment {
                        "{var}" => Token::Var,
                        literal => Token::Literal(literal.to_owned()),
                    })
                    .collect();
                list.push(Pattern { text: text.to_owned(), tokens });
            }
            // Literals before variables, place by place: the first match is the most literal.
            list.sort_by(|a, b| {
                let shape = |pattern: &Pattern| pattern.tokens.iter().map(|t| *t == Token::Var).collect::<Vec<_>>();
                shape(a).cmp(&shape(b))
            });
        }
        Self { by_service }
    }

    /// Whether there are no rules at all.
    pub fn is_empty(&self) -> bool {
        self.by_service.is_empty()
    }

    /// What the rules make of `name`, an endpoint of `service`.
    pub fn group<'a>(&'a self, service: &str, name: &'a str) -> Grouped<'a> {
        let Some(patterns) = self.by_service.get(service) else { return Grouped::Ungrouped };
        if segments(name).nth(1).is_none() {
            return Grouped::As(name);
        }
        let matches = |pattern: &Pattern| {
            let mut parts = segments(name);
            pattern.tokens.iter().all(|token| match (token, parts.next()) {
                (Token::Var, Some(_)) => true,
                (Token::Literal(literal), Some(part)) => literal == part,
                (_, None) => false,
            }) && parts.next().is_none()
        };
        patterns
            .iter()
            .find(|pattern| matches(pattern))
            .map_or(Grouped::Ungrouped, |pattern| Grouped::As(&pattern.text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(service: &str, patterns: &[&str]) -> EndpointGrouping {
        let patterns: Vec<String> = patterns.iter().map(|p| (*p).to_owned()).collect();
        EndpointGrouping::new([(service, patterns.as_slice())])
    }

    #[test]
    fn names_matching_a_pattern_become_the_pattern() {
        let grouping = rules("shop", &["/prod/{var}", "/prod/{var}/info", "/prod/top", ""]);
        assert_eq!(grouping.group("shop", "/prod/123"), Grouped::As("/prod/{var}"));
        assert_eq!(grouping.group("shop", "prod/123/"), Grouped::As("/prod/{var}"));
        assert_eq!(grouping.group("shop", "/prod/9/info"), Grouped::As("/prod/{var}/info"));
        assert_eq!(grouping.group("shop", "/prod/top"), Grouped::As("/prod/top"), "the literal wins");
        assert_eq!(grouping.group("shop", "/prod/9/other"), Grouped::Ungrouped);
        assert_eq!(grouping.group("shop", "GET:/prod/123"), Grouped::Ungrouped, "`GET:` is a segment");
        assert_eq!(grouping.group("shop", "/health"), Grouped::As("/health"), "one segment is kept");
        assert_eq!(grouping.group("other", "/prod/123"), Grouped::Ungrouped, "rules are per service");
    }
}
