//! Row values on disk: postcard (compact varints, no column names), checked against the model's
//! column types on the way in. Metadata values carry their time bucket; daily rows keep it in
//! the key.

use oap_storage::{StorageError, Value, ValueRef};

/// The stored form of a daily row's values, written into a buffer sized for it up front (a
/// segment's kilobyte of bytes would otherwise be copied at every doubling).
pub fn encode(values: &[Value]) -> Result<Vec<u8>, StorageError> {
    postcard::to_extend(values, Vec::with_capacity(size_hint(values)))
        .map_err(|error| StorageError::Invalid(format!("cannot encode a row: {error}")))
}

/// At least the encoded length of `values` (varint lengths and tags take at most 10 bytes).
fn size_hint(values: &[Value]) -> usize {
    let texts = |list: &[String]| list.iter().map(|text| text.len() + 10).sum::<usize>();
    10 + values
        .iter()
        .map(|value| match value {
            Value::Text(text) => text.len() + 10,
            Value::Bytes(bytes) => bytes.len() + 10,
            Value::TextList(list) => texts(list) + 10,
            _ => 10,
        })
        .sum::<usize>()
}

/// The stored form of a metadata row: its bucket, then its values.
pub fn encode_meta(time_bucket: i64, values: &[Value]) -> Result<Vec<u8>, StorageError> {
    postcard::to_allocvec(&(time_bucket, values))
        .map_err(|error| StorageError::Invalid(format!("cannot encode a row: {error}")))
}

/// A daily row's values read back.
pub fn decode(bytes: &[u8]) -> Result<Vec<Value>, StorageError> {
    postcard::from_bytes(bytes).map_err(|error| StorageError::Corrupt(format!("unreadable row: {error}")))
}

/// A daily row's values borrowed from its stored bytes, to test filters before copying.
pub fn decode_borrowed(bytes: &[u8]) -> Result<Vec<ValueRef<'_>>, StorageError> {
    postcard::from_bytes(bytes).map_err(|error| StorageError::Corrupt(format!("unreadable row: {error}")))
}

/// A metadata row's bucket and values read back.
pub fn decode_meta(bytes: &[u8]) -> Result<(i64, Vec<Value>), StorageError> {
    postcard::from_bytes(bytes).map_err(|error| StorageError::Corrupt(format!("unreadable row: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let values = vec![Value::Int(-3), Value::Bytes(vec![0, 255])];
        let stored = encode(&values).expect("encodes");
        assert_eq!(decode(&stored).expect("decodes"), values);
        assert!(stored.len() <= size_hint(&values) && stored.capacity() == size_hint(&values), "sized up front");
        let borrowed = decode_borrowed(&stored).expect("decodes borrowed");
        assert_eq!(borrowed.iter().map(ValueRef::to_value).collect::<Vec<_>>(), values);
        let list = vec![Value::TextList(vec!["a=1".to_owned(), "b=2".to_owned()]), Value::Double(0.5), Value::Null];
        let stored = encode(&list).expect("encodes");
        assert_eq!(
            decode_borrowed(&stored).expect("decodes borrowed"),
            [ValueRef::TextList(vec!["a=1", "b=2"]), ValueRef::Double(0.5), ValueRef::Null]
        );
        assert_eq!(decode_meta(&encode_meta(7, &values).expect("encodes")).expect("decodes"), (7, values));
        assert!(matches!(decode(&[0xff, 0xff]), Err(StorageError::Corrupt(_))));
    }
}
