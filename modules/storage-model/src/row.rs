//! Rows: one stored entry of a model — its id, its time bucket, and one value per column in the
//! model's column order, so a row carries no column names.

/// One column's value.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub enum Value {
    /// No value (a column the writer left out).
    #[default]
    Null,
    /// A 32-bit integer.
    Int(i32),
    /// A 64-bit integer.
    Long(i64),
    /// A 64-bit float.
    Double(f64),
    /// Text.
    Text(String),
    /// Raw bytes.
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A list of texts.
    TextList(Vec<String>),
}

impl Value {
    /// The value as an integer, for range filters and sorting: ints, longs, and doubles
    /// truncated toward zero.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(value) => Some(i64::from(*value)),
            Value::Long(value) => Some(*value),
            // Truncation toward zero is the meaning wanted here.
            #[allow(clippy::cast_possible_truncation)]
            Value::Double(value) => Some(*value as i64),
            _ => None,
        }
    }

    /// The value as text, if it is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(text) => Some(text),
            _ => None,
        }
    }
}

/// A column's value borrowed from where it is stored: what a store tests filters on before it
/// copies a row out. It reads the same bytes as [`Value`] (same variants in the same order), so
/// a store can decode a row without allocating its texts and bytes.
#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize)]
pub enum ValueRef<'a> {
    /// No value.
    #[default]
    Null,
    /// A 32-bit integer.
    Int(i32),
    /// A 64-bit integer.
    Long(i64),
    /// A 64-bit float.
    Double(f64),
    /// Text.
    Text(&'a str),
    /// Raw bytes.
    Bytes(&'a [u8]),
    /// A list of texts.
    TextList(#[serde(borrow)] Vec<&'a str>),
}

impl ValueRef<'_> {
    /// The value copied out.
    pub fn to_value(&self) -> Value {
        match self {
            ValueRef::Null => Value::Null,
            ValueRef::Int(value) => Value::Int(*value),
            ValueRef::Long(value) => Value::Long(*value),
            ValueRef::Double(value) => Value::Double(*value),
            ValueRef::Text(text) => Value::Text((*text).to_owned()),
            ValueRef::Bytes(bytes) => Value::Bytes(bytes.to_vec()),
            ValueRef::TextList(list) => Value::TextList(list.iter().map(|text| (*text).to_owned()).collect()),
        }
    }

    /// The value as an integer, as [`Value::as_i64`].
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            ValueRef::Int(value) => Some(i64::from(*value)),
            ValueRef::Long(value) => Some(*value),
            // Truncation toward zero is the meaning wanted here.
            #[allow(clippy::cast_possible_truncation)]
            ValueRef::Double(value) => Some(*value as i64),
            _ => None,
        }
    }
}

impl PartialEq<Value> for ValueRef<'_> {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (ValueRef::Null, Value::Null) => true,
            (ValueRef::Int(a), Value::Int(b)) => a == b,
            (ValueRef::Long(a), Value::Long(b)) => a == b,
            (ValueRef::Double(a), Value::Double(b)) => a == b,
            (ValueRef::Text(a), Value::Text(b)) => a == b,
            (ValueRef::Bytes(a), Value::Bytes(b)) => a == b,
            (ValueRef::TextList(a), Value::TextList(b)) => a.iter().eq(b.iter()),
            _ => false,
        }
    }
}

impl Value {
    /// The value borrowed.
    pub fn as_value_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Int(value) => ValueRef::Int(*value),
            Value::Long(value) => ValueRef::Long(*value),
            Value::Double(value) => ValueRef::Double(*value),
            Value::Text(text) => ValueRef::Text(text),
            Value::Bytes(bytes) => ValueRef::Bytes(bytes),
            Value::TextList(list) => ValueRef::TextList(list.iter().map(String::as_str).collect()),
        }
    }
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The storage id (`service_cpm`'s `202611211230_<entity>`, a segment id).
    pub id: String,
    /// The time bucket: `yyyyMMddHHmm` for minute rows, `yyyyMMddHH` for hour rows,
    /// `yyyyMMdd` for day rows, `yyyyMMddHHmmss` for segments. It picks the row's day.
    pub time_bucket: i64,
    /// One value per column of the model, in its order.
    pub values: Vec<Value>,
}

impl Row {
    /// The value of column `index`; `Null` past the end.
    pub fn value(&self, index: usize) -> &Value {
        self.values.get(index).unwrap_or(&Value::Null)
    }

    /// The value of column `index` as an integer (0 when absent or not numeric).
    pub fn long(&self, index: usize) -> i64 {
        self.value(index).as_i64().unwrap_or_default()
    }

    /// Takes the text of column `index` out of the row (empty when absent or not text).
    pub fn take_text(&mut self, index: usize) -> String {
        match self.values.get_mut(index).map(std::mem::take) {
            Some(Value::Text(text)) => text,
            _ => String::new(),
        }
    }

    /// Takes the bytes of column `index` out of the row (empty when absent or not bytes).
    pub fn take_bytes(&mut self, index: usize) -> Vec<u8> {
        match self.values.get_mut(index).map(std::mem::take) {
            Some(Value::Bytes(bytes)) => bytes,
            _ => Vec::new(),
        }
    }

    /// Takes the text list of column `index` out of the row (empty when absent or not a list).
    pub fn take_text_list(&mut self, index: usize) -> Vec<String> {
        match self.values.get_mut(index).map(std::mem::take) {
            Some(Value::TextList(list)) => list,
            _ => Vec::new(),
        }
    }
}

/// Where a row lives: its id, and its time bucket (which names its day).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RowKey {
    /// The storage id.
    pub id: String,
    /// The row's time bucket.
    pub time_bucket: i64,
}

pub use oap_model::day_of;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_granularity_names_its_day() {
        assert_eq!(day_of(20_261_121_123_456), 20_261_121, "second");
        assert_eq!(day_of(202_611_211_234), 20_261_121, "minute");
        assert_eq!(day_of(2_026_112_112), 20_261_121, "hour");
        assert_eq!(day_of(20_261_121), 20_261_121, "day");
    }

    #[test]
    fn missing_values_read_as_null() {
        let row = Row { id: "a".to_owned(), time_bucket: 202_611_211_234, values: vec![Value::Int(3)] };
        assert_eq!(row.value(0).as_i64(), Some(3));
        assert_eq!(row.value(5), &Value::Null);
    }
}
