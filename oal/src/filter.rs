//! Compiled operands and conditions: a field resolved to a [`Field`], a literal resolved to a
//! typed constant, an operator to a [`Test`] — evaluated per source by `match`, with no look-up
//! by name (docs/reference/oal.md §1.1).

use oap_model::source::Source;

use crate::ast::Cast;
use crate::scope::{EnumConst, Field, FieldValue};

/// A compiled attribute of a source, perhaps cast from text to a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operand {
    /// The field.
    pub field: Field,
    /// The key of `tag["key"]`; empty otherwise.
    pub key: Box<str>,
    /// `(str->long)` or `(str->int)`.
    pub cast: Option<Cast>,
}

impl Operand {
    /// The operand's value in `source`; a cast of text that is not a number reads as null.
    pub fn read<'s>(&self, source: &'s Source<'s>) -> FieldValue<'s> {
        let value = self.field.read(source, &self.key);
        match (self.cast, value) {
            (None, value) => value,
            (Some(cast), FieldValue::Str(text)) => {
                let text = text.trim();
                let parsed = match cast {
                    Cast::Long => text.parse::<i64>().ok(),
                    Cast::Int => text.parse::<i32>().ok().map(i64::from),
                };
                parsed.map_or(FieldValue::Null, FieldValue::Long)
            }
            (Some(_), value) => value,
        }
    }

    /// The operand as an integer, if it is one.
    pub fn read_long(&self, source: &Source<'_>) -> Option<i64> {
        match self.read(source) {
            FieldValue::Long(value) => Some(value),
            _ => None,
        }
    }

    /// The operand as a boolean, if it is one.
    pub fn read_bool(&self, source: &Source<'_>) -> Option<bool> {
        match self.read(source) {
            FieldValue::Bool(value) => Some(value),
            _ => None,
        }
    }
}

/// A constant a field is compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Const {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Long(i64),
    /// Text.
    Str(Box<str>),
    /// An enum constant.
    Enum(EnumConst),
}

impl Const {
    fn matches(&self, value: &FieldValue<'_>) -> bool {
        match (self, value) {
            (Const::Null, FieldValue::Null) => true,
            (Const::Bool(expected), FieldValue::Bool(actual)) => expected == actual,
            (Const::Long(expected), FieldValue::Long(actual)) => expected == actual,
            (Const::Str(expected), FieldValue::Str(actual)) => **expected == **actual,
            (Const::Enum(expected), FieldValue::Enum(actual)) => expected == actual,
            _ => false,
        }
    }
}

/// A `like` pattern: `%` only at the start, the end, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Like {
    /// `"%x%"`.
    Contains(Box<str>),
    /// `"%x"`.
    EndsWith(Box<str>),
    /// `"x%"`.
    StartsWith(Box<str>),
    /// No wildcard: the whole text.
    Exactly(Box<str>),
}

impl Like {
    /// The pattern OAL text means.
    pub fn new(pattern: &str) -> Self {
        match (pattern.strip_prefix('%'), pattern.strip_suffix('%')) {
            (Some(rest), Some(_)) if !rest.is_empty() => Like::Contains(rest[..rest.len() - 1].into()),
            (Some(rest), _) => Like::EndsWith(rest.into()),
            (None, Some(start)) => Like::StartsWith(start.into()),
            (None, None) => Like::Exactly(pattern.into()),
        }
    }

    fn matches(&self, text: &str) -> bool {
        match self {
            Like::Contains(part) => text.contains(&**part),
            Like::EndsWith(end) => text.ends_with(&**end),
            Like::StartsWith(start) => text.starts_with(&**start),
            Like::Exactly(whole) => text == &**whole,
        }
    }
}

/// A comparison, with its right side compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    /// `==`.
    Eq(Const),
    /// `!=`.
    Ne(Const),
    /// `>`.
    Gt(i64),
    /// `<`.
    Lt(i64),
    /// `>=`.
    Ge(i64),
    /// `<=`.
    Le(i64),
    /// `like`.
    Like(Like),
    /// `in [...]`.
    In(Vec<Const>),
    /// `contain`: the tag list has `key:value`.
    Contain(Box<str>),
    /// `not contain`.
    NotContain(Box<str>),
}

/// A compiled condition: `operand test`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The left side.
    pub operand: Operand,
    /// The comparison and right side.
    pub test: Test,
}

impl Condition {
    /// Whether `source` meets the condition. A null never compares as a number, never
    /// matches `like`, and is in no list.
    pub fn holds(&self, source: &Source<'_>) -> bool {
        let value = self.operand.read(source);
        match &self.test {
            Test::Eq(expected) => expected.matches(&value),
            Test::Ne(expected) => !expected.matches(&value),
            Test::Gt(bound) => matches!(value, FieldValue::Long(actual) if actual > *bound),
            Test::Lt(bound) => matches!(value, FieldValue::Long(actual) if actual < *bound),
            Test::Ge(bound) => matches!(value, FieldValue::Long(actual) if actual >= *bound),
            Test::Le(bound) => matches!(value, FieldValue::Long(actual) if actual <= *bound),
            Test::Like(pattern) => matches!(value, FieldValue::Str(text) if pattern.matches(text)),
            Test::In(list) => list.iter().any(|expected| expected.matches(&value)),
            Test::Contain(pair) => matches!(value, FieldValue::Tags(tags) if tags.contains(pair)),
            Test::NotContain(pair) => !matches!(value, FieldValue::Tags(tags) if tags.contains(pair)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_match_as_the_reference_says() {
        assert!(Like::new("%user%").matches("/api/user/1"));
        assert!(!Like::new("%user%").matches("/api/users"[..6].as_ref()));
        assert!(Like::new("%.jpg").matches("a.jpg"));
        assert!(!Like::new("%.jpg").matches("a.jpgx"));
        assert!(Like::new("/api%").matches("/api/x"));
        assert!(!Like::new("/api%").matches("/ap"));
        assert!(Like::new("/exact").matches("/exact"));
        assert!(Like::new("%").matches("anything"), "a lone % ends with nothing");
    }
}
