//! Typing of substituted values: the resolved text is read again as YAML, as SkyWalking does,
//! so `${SW_CORE_GRPC_PORT:11800}` is the number 11800 and `${X:true}` the boolean `true`.

use serde_yaml_ng::Value;

/// The typed YAML value of a placeholder's resolved text.
///
/// Numbers, booleans, strings and lists of scalars keep their YAML type; blank text is the empty
/// string; anything else (maps, null, `-`) stays the raw text, so a selector `-` or a JSON blob in
/// a setting arrive as strings.
pub fn typed_value(resolved: &str) -> Value {
    if resolved.trim().is_empty() {
        return Value::String(String::new());
    }
    match serde_yaml_ng::from_str::<Value>(resolved) {
        Ok(value @ (Value::Number(_) | Value::Bool(_) | Value::String(_))) => value,
        Ok(Value::Sequence(items)) if items.iter().all(is_scalar) => Value::Sequence(items),
        _ => Value::String(resolved.to_owned()),
    }
}

fn is_scalar(value: &Value) -> bool {
    matches!(value, Value::Number(_) | Value::Bool(_) | Value::String(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_bools_are_typed() {
        assert_eq!(typed_value("11800"), Value::from(11800));
        assert_eq!(typed_value("-1"), Value::from(-1));
        assert_eq!(typed_value("0.5"), Value::from(0.5));
        assert_eq!(typed_value("true"), Value::Bool(true));
        assert_eq!(typed_value("false"), Value::Bool(false));
    }

    #[test]
    fn lists_are_typed() {
        assert_eq!(typed_value("[Hour, Day]"), Value::Sequence(vec![Value::from("Hour"), Value::from("Day")]));
    }

    #[test]
    fn strings_stay_strings() {
        assert_eq!(typed_value("0.0.0.0"), Value::from("0.0.0.0"));
        assert_eq!(typed_value("localhost:9200"), Value::from("localhost:9200"));
        assert_eq!(typed_value("default:200,mongodb:100"), Value::from("default:200,mongodb:100"));
        assert_eq!(typed_value("Mixed"), Value::from("Mixed"));
    }

    #[test]
    fn quoted_empty_default_is_empty_string() {
        assert_eq!(typed_value("\"\""), Value::from(""));
        assert_eq!(typed_value("   "), Value::from(""));
    }

    #[test]
    fn other_yaml_shapes_keep_the_raw_text() {
        assert_eq!(typed_value("-"), Value::from("-"));
        assert_eq!(typed_value("~"), Value::from("~"));
        let json = r#"{"analyzer":{"oap_analyzer":{"type":"stop"}}}"#;
        assert_eq!(typed_value(json), Value::from(json));
    }
}
