//! One entry as it lies in a segment file:
//!
//! | bytes | field |
//! |---|---|
//! | 4 | `len`: the bytes after the checksum (13 + payload), little-endian |
//! | 4 | `crc`: CRC-32 (IEEE) of those bytes |
//! | 8 | `epoch`: the pipeline epoch the entry was taken in |
//! | 1 | `kind`: what the payload is ([`EntryKind`]) |
//! | len − 9 | the payload, as the agent (or Kafka) sent it |
//!
//! A frame is read only whole and with a matching checksum: a length past the end of the file
//! or past [`MAX_PAYLOAD`], or a checksum that does not match, is where the readable log ends.

/// Bytes before the payload.
pub const HEADER: usize = 4 + 4 + 8 + 1;
/// The largest payload a frame may carry (larger than any message a receiver takes).
pub const MAX_PAYLOAD: usize = 256 << 20;

/// What an entry's payload is. Each kind is one message type of one protocol, so that replay
/// hands it to the receiver that took it; new kinds are added, never renumbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntryKind(pub u8);

impl EntryKind {
    /// A v3 `SegmentObject`, protobuf-encoded (gRPC, HTTP, Kafka).
    pub const SEGMENT: EntryKind = EntryKind(1);
    /// A batch of metrics another node of the cluster routed to this one: an `oap.remote.v1`
    /// `MetricBatch`, protobuf-encoded.
    pub const REMOTE_METRICS: EntryKind = EntryKind(2);
}

/// An entry read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The pipeline epoch it was taken in.
    pub epoch: u64,
    /// What the payload is.
    pub kind: EntryKind,
    /// The message.
    pub payload: Vec<u8>,
}

/// Appends the frame of one entry to `out`.
pub fn encode(out: &mut Vec<u8>, epoch: u64, kind: EntryKind, payload: &[u8]) {
    let len = u32::try_from(payload.len() + 9).expect("payloads are bounded by MAX_PAYLOAD");
    let start = out.len();
    out.reserve(HEADER + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&epoch.to_le_bytes());
    out.push(kind.0);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// What the first bytes of `bytes` hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A whole frame.
    Frame {
        /// What it holds.
        entry: Entry,
        /// Its bytes, header included.
        size: usize,
    },
    /// Not a whole, valid frame: the readable log ends here.
    End,
}

/// Reads the frame at the start of `bytes`.
pub fn decode(bytes: &[u8]) -> Decoded {
    let Some(header) = bytes.get(..8) else { return Decoded::End };
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    if !(9..=MAX_PAYLOAD + 9).contains(&len) {
        return Decoded::End;
    }
    let Some(body) = bytes.get(8..8 + len) else { return Decoded::End };
    if crc32fast::hash(body) != crc {
        return Decoded::End;
    }
    let epoch = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
    let entry = Entry { epoch, kind: EntryKind(body[8]), payload: body[9..].to_vec() };
    Decoded::Frame { entry, size: 8 + len }
}

/// The size of the frame whose first 8 bytes are `header`, if its length is possible.
pub fn frame_size(header: &[u8; 8]) -> Option<usize> {
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    (9..=MAX_PAYLOAD + 9).contains(&len).then_some(8 + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_reads_back_as_written() {
        let mut bytes = Vec::new();
        encode(&mut bytes, 7, EntryKind::SEGMENT, b"segment");
        encode(&mut bytes, 8, EntryKind(9), b"");
        assert_eq!(bytes.len(), 2 * HEADER + 7);
        let Decoded::Frame { entry, size } = decode(&bytes) else { panic!("a frame") };
        assert_eq!(
            (entry.epoch, entry.kind, entry.payload.as_slice(), size),
            (7, EntryKind::SEGMENT, &b"segment"[..], 24)
        );
        let Decoded::Frame { entry, size } = decode(&bytes[size..]) else { panic!("a second frame") };
        assert_eq!((entry.epoch, entry.kind, entry.payload.len(), size), (8, EntryKind(9), 0, HEADER));
    }

    #[test]
    fn a_torn_or_damaged_frame_is_the_end_never_an_entry() {
        let mut bytes = Vec::new();
        encode(&mut bytes, 1, EntryKind::SEGMENT, &[42; 100]);
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), Decoded::End, "cut at {cut}");
        }
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            assert_eq!(decode(&damaged), Decoded::End, "a bit flipped at {at}");
        }
        assert_eq!(decode(&[0xff; 64]), Decoded::End, "an impossible length");
        assert_eq!(decode(&[0; 64]), Decoded::End, "zeros (a file extended but not written)");
    }
}
