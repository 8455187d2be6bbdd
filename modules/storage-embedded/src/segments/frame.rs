//! A block file's contents: frames of rows, each frame LZ4-compressed as one and checked by a
//! CRC-32, so a torn last frame is found and cut when the block is opened again.
//!
//! A frame is `raw length (u32) · compressed length (u32) · CRC-32 of the compressed bytes
//! (u32) · compressed bytes`, all little-endian. Uncompressed, it is a run of rows, each
//! `length (u32) · bucket (i64) · id length (u16) · id · values (postcard)`.

use oap_storage::{StorageError, Value};

use crate::codec;

/// A frame's header length.
pub const HEADER: usize = 12;

/// Rows gathered into one frame at most, uncompressed bytes (a frame may exceed it by its last
/// row): reading one row decompresses its whole frame.
pub const FRAME_TARGET: usize = 64 << 10;

/// The longest row's values a frame holds (its lengths are 32-bit; room is left for the row's
/// bucket and id and for LZ4's worst case).
pub const LONGEST_ROW: usize = (u32::MAX as usize / 2) - (1 << 20);

/// Appends one row's stored form to `raw`.
pub fn push_row(raw: &mut Vec<u8>, time_bucket: i64, id: &str, values: &[u8]) -> Result<(), StorageError> {
    let id_len = u16::try_from(id.len())
        .map_err(|_| StorageError::Invalid(format!("a segment id of {} bytes cannot be stored", id.len())))?;
    let len = 8 + 2 + id.len() + values.len();
    let len =
        u32::try_from(len).map_err(|_| StorageError::Invalid(format!("a row of {len} bytes cannot be stored")))?;
    raw.extend_from_slice(&len.to_le_bytes());
    raw.extend_from_slice(&time_bucket.to_le_bytes());
    raw.extend_from_slice(&id_len.to_le_bytes());
    raw.extend_from_slice(id.as_bytes());
    raw.extend_from_slice(values);
    Ok(())
}

/// The frame of `raw` rows, header and all.
pub fn seal(raw: &[u8]) -> Vec<u8> {
    let compressed = lz4_flex::block::compress(raw);
    let mut frame = Vec::with_capacity(HEADER + compressed.len());
    frame.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    frame.extend_from_slice(&(compressed.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(&compressed).to_le_bytes());
    frame.extend_from_slice(&compressed);
    frame
}

/// A frame's header: raw and compressed lengths and CRC.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    /// Uncompressed bytes.
    pub raw: usize,
    /// Compressed bytes after the header.
    pub compressed: usize,
    crc: u32,
}

impl Header {
    /// Reads a header; `None` if `bytes` is short.
    pub fn read(bytes: &[u8]) -> Option<Self> {
        let word = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
        Some(Self { raw: word(0)? as usize, compressed: word(4)? as usize, crc: word(8)? })
    }

    /// The rows of the frame whose compressed bytes are `body`, or `None` if it is damaged.
    pub fn open(&self, body: &[u8]) -> Option<Vec<u8>> {
        if body.len() != self.compressed || crc32fast::hash(body) != self.crc {
            return None;
        }
        lz4_flex::block::decompress(body, self.raw).ok().filter(|raw| raw.len() == self.raw)
    }
}

/// One stored row, borrowed from its frame.
#[derive(Debug, Clone, Copy)]
pub struct StoredRow<'a> {
    /// Its bucket.
    pub time_bucket: i64,
    /// Its id.
    pub id: &'a str,
    /// Its values, postcard-encoded.
    pub values: &'a [u8],
}

impl StoredRow<'_> {
    /// Its values read back.
    pub fn decode(&self) -> Result<Vec<Value>, StorageError> {
        codec::decode(self.values)
    }
}

/// The rows of an uncompressed frame, in order; an error ends the run.
pub fn rows(raw: &[u8]) -> impl Iterator<Item = Result<StoredRow<'_>, StorageError>> {
    let mut rest = raw;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let corrupt = || StorageError::Corrupt("a segment block holds an unreadable row".to_owned());
        let row = (|| {
            let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            let body = rest.get(4..4 + len)?;
            let time_bucket = i64::from_le_bytes(body.get(..8)?.try_into().ok()?);
            let id_len = u16::from_le_bytes(body.get(8..10)?.try_into().ok()?) as usize;
            let id = std::str::from_utf8(body.get(10..10 + id_len)?).ok()?;
            let values = body.get(10 + id_len..)?;
            rest = &rest[4 + len..];
            Some(StoredRow { time_bucket, id, values })
        })();
        match row {
            Some(row) => Some(Ok(row)),
            None => {
                rest = &[];
                Some(Err(corrupt()))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_a_frame_and_damage_is_found() {
        let mut raw = Vec::new();
        push_row(&mut raw, 20_261_207_120_000, "s1", &codec::encode(&[Value::Int(3)]).expect("encodes")).expect("row");
        push_row(&mut raw, 20_261_207_120_001, "s2", &codec::encode(&[Value::Null]).expect("encodes")).expect("row");
        let frame = seal(&raw);
        let header = Header::read(&frame).expect("header");
        let opened = header.open(&frame[HEADER..]).expect("intact");
        let read: Vec<_> = rows(&opened).map(|row| row.expect("readable")).collect();
        assert_eq!(
            read.iter().map(|row| (row.time_bucket, row.id)).collect::<Vec<_>>(),
            [(20_261_207_120_000, "s1"), (20_261_207_120_001, "s2")]
        );
        assert_eq!(read[0].decode().expect("values"), [Value::Int(3)]);

        let mut damaged = frame.clone();
        *damaged.last_mut().expect("bytes") ^= 1;
        assert!(header.open(&damaged[HEADER..]).is_none(), "a flipped bit fails the CRC");
        assert!(header.open(&frame[HEADER..frame.len() - 1]).is_none(), "a torn frame is short");
        assert!(rows(&raw[..raw.len() - 1]).any(|row| row.is_err()), "a cut row is an error");
    }
}
