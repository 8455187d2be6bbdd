//! Segments encoded once and stamped many times: building and encoding a `SegmentObject` costs
//! a client more than decoding it costs the server, so the generator encodes a pool of segments
//! at start and, per send, copies one and overwrites its ids and times in place.
//!
//! Every id of a template (the trace id, the segment id, a ref's trace id and parent segment
//! id) is 32 characters: a 30-character trace prefix and a 2-character suffix (`00` for the
//! trace, the segment's number otherwise), so stamping writes a fresh prefix into each. Every
//! time is an epoch-millisecond varint of 6 bytes (2^35 ms to 2^42 ms: the years 1971 to
//! 2109), so a fresh time takes exactly the bytes of the old one.

use bytes::{BufMut, Bytes, BytesMut};
use oap_proto::v3::SegmentObject;
use prost::Message;
use prost::encoding::{WireType, decode_key, decode_varint, encode_varint, encoded_len_varint};

/// Characters of the prefix every id of a trace shares.
pub const PREFIX_LEN: usize = 30;

/// Bytes an arena of stamped segments holds.
const ARENA: usize = 256 << 10;

/// The epoch milliseconds templates are built at; stamping moves them to the send time.
pub const BUILT_AT: i64 = 1_700_000_000_000;

/// Which bytes a stamp rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Patch {
    /// The first [`PREFIX_LEN`] bytes of an id.
    Id,
    /// A 6-byte time varint, `offset` ms after [`BUILT_AT`].
    Time { offset: i64 },
}

/// One encoded segment and where its ids and times lie.
#[derive(Debug, Clone)]
pub struct Template {
    bytes: Vec<u8>,
    patches: Vec<(usize, Patch)>,
}

/// Why a segment cannot be a template.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// An id is not 32 characters.
    #[error("id `{0}` is not {PREFIX_LEN} + 2 characters")]
    IdLength(String),
    /// A time does not encode in 6 bytes.
    #[error("time {0} is not a 6-byte varint")]
    TimeLength(u64),
    /// A field runs past the end of its message (a bug: prost encoded it).
    #[error("a field runs past the end of its message")]
    Truncated,
    /// A group, which the protocol never uses.
    #[error("groups are not used by the protocol")]
    Group,
    /// The encoding could not be walked (a bug: prost encoded it).
    #[error("cannot walk the encoded segment: {0}")]
    Walk(#[from] prost::DecodeError),
}

impl Template {
    /// Encodes `segment`, whose ids follow the prefix rule and whose times lie near
    /// [`BUILT_AT`].
    pub fn new(segment: &SegmentObject) -> Result<Self, TemplateError> {
        let bytes = segment.encode_to_vec();
        let mut patches = Vec::new();
        walk(&bytes, 0, Level::Segment, &mut patches)?;
        Ok(Self { bytes, patches })
    }

    /// Bytes of the encoded segment.
    pub fn encoded_len(&self) -> usize {
        self.bytes.len()
    }

    /// A copy with every id prefixed by `prefix` and every time moved to `start_ms` plus its
    /// offset in the trace. The copy is cut from `arena`, which is best kept across calls (it
    /// allocates a large block now and then instead of a small one per segment).
    pub fn stamp(&self, prefix: &[u8; PREFIX_LEN], start_ms: i64, arena: &mut BytesMut) -> Bytes {
        if arena.capacity() - arena.len() < self.bytes.len() {
            *arena = BytesMut::with_capacity(ARENA.max(self.bytes.len()));
        }
        arena.put_slice(&self.bytes);
        let copy = &mut arena[..];
        for &(at, patch) in &self.patches {
            match patch {
                Patch::Id => copy[at..at + PREFIX_LEN].copy_from_slice(prefix),
                Patch::Time { offset } => {
                    let mut field = &mut copy[at..at + 6];
                    // `start_ms` lies within the 6-byte range, as the pool checked at build.
                    encode_varint(u64::try_from(start_ms + offset).unwrap_or_default(), &mut field);
                }
            }
        }
        arena.split().freeze()
    }
}

/// Whether `ms` encodes in 6 varint bytes, as every stamped time must.
pub fn fits(ms: i64) -> bool {
    u64::try_from(ms).is_ok_and(|ms| encoded_len_varint(ms) == 6)
}

#[derive(Debug, Clone, Copy)]
enum Level {
    Segment,
    Span,
    Ref,
}

/// Records the ids and times of the message `bytes` (at `base` in the whole) of kind `level`.
fn walk(bytes: &[u8], base: usize, level: Level, patches: &mut Vec<(usize, Patch)>) -> Result<(), TemplateError> {
    let mut rest = bytes;
    while !rest.is_empty() {
        let (field, wire_type) = decode_key(&mut rest)?;
        match wire_type {
            WireType::Varint => {
                let at = base + bytes.len() - rest.len();
                let value = decode_varint(&mut rest)?;
                if let (Level::Span, 3 | 4) = (level, field) {
                    let length = base + bytes.len() - rest.len() - at;
                    if length != 6 {
                        return Err(TemplateError::TimeLength(value));
                    }
                    let offset = i64::try_from(value).unwrap_or_default() - BUILT_AT;
                    patches.push((at, Patch::Time { offset }));
                }
            }
            WireType::LengthDelimited => {
                let length = usize::try_from(decode_varint(&mut rest)?).unwrap_or(usize::MAX);
                let at = base + bytes.len() - rest.len();
                let Some(body) = rest.get(..length) else {
                    return Err(TemplateError::Truncated);
                };
                match (level, field) {
                    (Level::Segment, 1 | 2) | (Level::Ref, 2 | 3) => {
                        if length != PREFIX_LEN + 2 {
                            return Err(TemplateError::IdLength(String::from_utf8_lossy(body).into_owned()));
                        }
                        patches.push((at, Patch::Id));
                    }
                    (Level::Segment, 3) => walk(body, at, Level::Span, patches)?,
                    (Level::Span, 5) => walk(body, at, Level::Ref, patches)?,
                    _ => {}
                }
                rest = &rest[length..];
            }
            WireType::SixtyFourBit => rest = rest.get(8..).unwrap_or_default(),
            WireType::ThirtyTwoBit => rest = rest.get(4..).unwrap_or_default(),
            WireType::StartGroup | WireType::EndGroup => {
                return Err(TemplateError::Group);
            }
        }
    }
    Ok(())
}

/// Writes `counter` as the last 22 hex digits of a prefix that starts with `run`'s 8.
pub fn prefix(run: u32, counter: u64) -> [u8; PREFIX_LEN] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'0'; PREFIX_LEN];
    for (index, slot) in out[..8].iter_mut().enumerate() {
        *slot = HEX[((run >> (28 - 4 * index)) & 0xf) as usize];
    }
    let mut value = counter;
    for slot in out[8..].iter_mut().rev() {
        *slot = HEX[(value & 0xf) as usize];
        value >>= 4;
    }
    out
}

#[cfg(test)]
mod tests {
    use oap_proto::v3::{RefType, SegmentReference, SpanObject};

    use super::*;

    fn id(suffix: &str) -> String {
        format!("{}{suffix}", "0".repeat(PREFIX_LEN))
    }

    #[test]
    fn a_stamp_rewrites_every_id_and_time_and_nothing_else() {
        let segment = SegmentObject {
            trace_id: id("00"),
            trace_segment_id: id("02"),
            service: "service-3".to_owned(),
            service_instance: "instance-3-1".to_owned(),
            spans: vec![SpanObject {
                span_id: 0,
                parent_span_id: -1,
                start_time: BUILT_AT + 10,
                end_time: BUILT_AT + 250,
                refs: vec![SegmentReference {
                    ref_type: RefType::CrossProcess as i32,
                    trace_id: id("00"),
                    parent_trace_segment_id: id("01"),
                    parent_span_id: 1,
                    parent_service: "service-1".to_owned(),
                    ..SegmentReference::default()
                }],
                operation_name: "/api".to_owned(),
                ..SpanObject::default()
            }],
            ..SegmentObject::default()
        };
        let template = Template::new(&segment).expect("a template");
        let now = 1_795_262_903_577;
        assert!(fits(now));
        let mut arena = BytesMut::new();
        let prefix = prefix(0xdead_beef, 0x1234);
        let first = template.stamp(&prefix, now, &mut arena);
        let again = template.stamp(&prefix, now, &mut arena);
        assert_eq!(first, again, "each stamp is a whole copy of its own");
        let stamped = SegmentObject::decode(first).expect("decodes");
        let fresh = |suffix: &str| format!("deadbeef{}1234{suffix}", "0".repeat(18));
        let mut expected = segment.clone();
        expected.trace_id = fresh("00");
        expected.trace_segment_id = fresh("02");
        expected.spans[0].start_time = now + 10;
        expected.spans[0].end_time = now + 250;
        expected.spans[0].refs[0].trace_id = fresh("00");
        expected.spans[0].refs[0].parent_trace_segment_id = fresh("01");
        assert_eq!(stamped, expected);
    }

    #[test]
    fn ids_and_times_must_keep_their_length() {
        let short = SegmentObject { trace_id: "t1".to_owned(), trace_segment_id: id("01"), ..SegmentObject::default() };
        assert!(matches!(Template::new(&short), Err(TemplateError::IdLength(_))));
        let early = SegmentObject {
            trace_id: id("00"),
            trace_segment_id: id("01"),
            spans: vec![SpanObject { start_time: 5, ..SpanObject::default() }],
            ..SegmentObject::default()
        };
        assert!(matches!(Template::new(&early), Err(TemplateError::TimeLength(5))));
        assert!(!fits(1 << 42));
    }
}
