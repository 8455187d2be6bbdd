//! What makes a segment unanalysable. Such a segment is rejected whole, with an error that says
//! why, and nothing of it is emitted; the receiver counts it and goes on with the next.
//!
//! SkyWalking checks little more than that a segment has spans; we check what would otherwise
//! reach a store or a query as nonsense, and refuse rather than repair, since a segment is one
//! agent's report and cutting it up would misreport it:
//! - every id (trace, segment, a reference's parent segment and trace) is at most
//!   [`MAX_ID_LENGTH`] bytes: ids are keys, and an id cannot be cut without merging traces;
//! - at most `maxSpansPerSegment` spans, span ids unique, and the parent links form a tree: no
//!   span is its own parent or ancestor (a parent id that names no span of the segment is
//!   allowed — agents drop spans past their own limits);
//! - every span's times are real times within the stores' window: not older than the longest
//!   TTL (nothing of it would be kept) and at most [`MAX_AHEAD_MS`] ahead of the server's clock.

use oap_model::TimeBuckets;
use oap_proto::v3::{SegmentObject, SpanType};

/// The longest id a segment may carry, in bytes: past SkyWalking's 150-character id columns,
/// within an Elasticsearch document id and a key of the embedded store.
pub const MAX_ID_LENGTH: usize = 255;

/// How far ahead of the server's clock a span may end (agents' clocks drift; a day is a broken
/// clock, not drift).
pub const MAX_AHEAD_MS: i64 = 24 * 3_600_000;

/// The most of an id an error message shows.
const SHOWN_ID: usize = 64;

/// Why a segment was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnalysisError {
    /// The segment has no spans.
    #[error("segment `{segment_id}` has no spans")]
    NoSpans {
        /// The segment (cut to 64 bytes).
        segment_id: String,
    },
    /// A field every segment needs is empty.
    #[error("segment `{segment_id}` has an empty `{field}`")]
    MissingField {
        /// The segment (cut to 64 bytes).
        segment_id: String,
        /// The empty field.
        field: &'static str,
    },
    /// An id is longer than [`MAX_ID_LENGTH`].
    #[error("segment `{segment_id}`: `{field}` is {length} bytes long, longer than the {MAX_ID_LENGTH} an id may be")]
    IdTooLong {
        /// The segment (cut to 64 bytes).
        segment_id: String,
        /// The field.
        field: &'static str,
        /// Its length in bytes.
        length: usize,
    },
    /// More spans than `maxSpansPerSegment`.
    #[error("segment `{segment_id}` has {count} spans, more than the {max} a segment may have (maxSpansPerSegment)")]
    TooManySpans {
        /// The segment (cut to 64 bytes).
        segment_id: String,
        /// Its spans.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The spans do not form a tree.
    #[error("segment `{segment_id}`: {reason}")]
    NotATree {
        /// The segment (cut to 64 bytes).
        segment_id: String,
        /// What is wrong.
        reason: String,
    },
    /// A span's times are impossible.
    #[error("span {span_id} of segment `{segment_id}`: {reason}")]
    InvalidSpan {
        /// The segment (cut to 64 bytes).
        segment_id: String,
        /// The span.
        span_id: i32,
        /// What is wrong.
        reason: String,
    },
}

/// The limits a segment is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentLimits {
    /// `maxSpansPerSegment`.
    pub max_spans: usize,
    /// The oldest a span may be, ms before the server's clock: the longest TTL.
    pub max_age_ms: i64,
}

impl Default for SegmentLimits {
    fn default() -> Self {
        Self { max_spans: 10_000, max_age_ms: 7 * 24 * 3_600_000 }
    }
}

/// At most [`SHOWN_ID`] bytes of an id, for a message.
fn shown(id: &str) -> String {
    if id.len() <= SHOWN_ID {
        return id.to_owned();
    }
    let mut end = SHOWN_ID;
    while !id.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &id[..end])
}

/// Checks the segment against `limits`, received at `now_ms`. A segment that passes has spans
/// whose times all have time buckets, and whose parent links form a tree.
pub(super) fn validate(segment: &SegmentObject, limits: &SegmentLimits, now_ms: i64) -> Result<(), AnalysisError> {
    let segment_id = || shown(&segment.trace_segment_id);
    let missing = |field| Err(AnalysisError::MissingField { segment_id: segment_id(), field });
    if segment.trace_segment_id.is_empty() {
        return missing("traceSegmentId");
    }
    if segment.trace_id.is_empty() {
        return missing("traceId");
    }
    if segment.service.trim().is_empty() {
        return missing("service");
    }
    let too_long = |field: &'static str, id: &str| {
        (id.len() > MAX_ID_LENGTH).then(|| AnalysisError::IdTooLong {
            segment_id: segment_id(),
            field,
            length: id.len(),
        })
    };
    if let Some(error) =
        too_long("traceSegmentId", &segment.trace_segment_id).or_else(|| too_long("traceId", &segment.trace_id))
    {
        return Err(error);
    }
    if segment.spans.is_empty() {
        return Err(AnalysisError::NoSpans { segment_id: segment_id() });
    }
    if segment.spans.len() > limits.max_spans {
        return Err(AnalysisError::TooManySpans {
            segment_id: segment_id(),
            count: segment.spans.len(),
            max: limits.max_spans,
        });
    }
    let oldest = now_ms.saturating_sub(limits.max_age_ms);
    let latest = now_ms.saturating_add(MAX_AHEAD_MS);
    for span in &segment.spans {
        let invalid = |reason: String| {
            Err(AnalysisError::InvalidSpan { segment_id: segment_id(), span_id: span.span_id, reason })
        };
        if SpanType::try_from(span.span_type).is_err() {
            return invalid(format!("unknown span type {}", span.span_type));
        }
        if span.start_time <= 0 {
            return invalid(format!("start time {} is not a time", span.start_time));
        }
        if span.end_time < span.start_time {
            return invalid(format!("ends ({}) before it starts ({})", span.end_time, span.start_time));
        }
        if span.end_time - span.start_time > i64::from(i32::MAX) {
            return invalid(format!(
                "lasts {} ms, longer than the 24.8 days a latency can hold",
                span.end_time - span.start_time
            ));
        }
        if !TimeBuckets::is_representable(span.end_time) {
            return invalid(format!("end time {} is outside the calendar", span.end_time));
        }
        if span.start_time < oldest {
            return invalid(format!(
                "starts at {} ms, older than the stores keep (the longest TTL, from {oldest} ms)",
                span.start_time
            ));
        }
        if span.end_time > latest {
            return invalid(format!(
                "ends at {} ms, more than a day ahead of the server's clock ({now_ms} ms)",
                span.end_time
            ));
        }
        for reference in &span.refs {
            if let Some(error) = too_long("refs.parentTraceSegmentId", &reference.parent_trace_segment_id)
                .or_else(|| too_long("refs.traceId", &reference.trace_id))
            {
                return Err(error);
            }
        }
    }
    check_tree(segment).map_err(|reason| AnalysisError::NotATree { segment_id: segment_id(), reason })
}

/// Span ids are unique and following parents from any span ends at a root (`-1`, or an id that
/// names no span of the segment) without coming back: O(n log n), no recursion.
fn check_tree(segment: &SegmentObject) -> Result<(), String> {
    let spans = &segment.spans;
    // Small segments (the common case) are checked pairwise, with no allocation.
    if spans.len() <= 16 {
        for (index, span) in spans.iter().enumerate() {
            if spans[..index].iter().any(|other| other.span_id == span.span_id) {
                return Err(format!("two spans have the id {}", span.span_id));
            }
        }
        for span in spans {
            let mut parent = span.parent_span_id;
            for _ in 0..spans.len() {
                if parent == span.span_id {
                    return Err(cycle(span.span_id));
                }
                match spans.iter().find(|other| other.span_id == parent) {
                    Some(other) => parent = other.parent_span_id,
                    None => break,
                }
            }
        }
        return Ok(());
    }
    let mut links: Vec<(i32, i32)> = spans.iter().map(|span| (span.span_id, span.parent_span_id)).collect();
    links.sort_unstable();
    if let Some(pair) = links.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(format!("two spans have the id {}", pair[0].0));
    }
    const UNSEEN: u8 = 0;
    const ON_PATH: u8 = 1;
    const ROOTED: u8 = 2;
    let mut state = vec![UNSEEN; links.len()];
    let mut path = Vec::new();
    for start in 0..links.len() {
        let mut at = start;
        loop {
            match state[at] {
                ROOTED => break,
                ON_PATH => return Err(cycle(links[at].0)),
                _ => {}
            }
            state[at] = ON_PATH;
            path.push(at);
            match links.binary_search_by_key(&links[at].1, |link| link.0) {
                Ok(parent) => at = parent,
                Err(_) => break,
            }
        }
        for index in path.drain(..) {
            state[index] = ROOTED;
        }
    }
    Ok(())
}

fn cycle(span_id: i32) -> String {
    format!("span {span_id} is its own parent or ancestor")
}

#[cfg(test)]
mod tests {
    use oap_proto::v3::{SegmentReference, SpanObject};

    use super::*;

    const NOW: i64 = 1_795_262_903_572;

    fn span(id: i32, parent: i32) -> SpanObject {
        SpanObject {
            span_id: id,
            parent_span_id: parent,
            start_time: NOW - 10,
            end_time: NOW,
            span_type: SpanType::Local as i32,
            ..SpanObject::default()
        }
    }

    fn segment(spans: Vec<SpanObject>) -> SegmentObject {
        SegmentObject {
            trace_id: "t".into(),
            trace_segment_id: "s".into(),
            service: "svc".into(),
            spans,
            ..SegmentObject::default()
        }
    }

    fn check(segment: &SegmentObject) -> Result<(), AnalysisError> {
        validate(segment, &SegmentLimits::default(), NOW)
    }

    fn chain(len: i32) -> Vec<SpanObject> {
        (0..len).map(|id| span(id, id - 1)).collect()
    }

    #[test]
    fn a_tree_in_any_order_passes_small_or_large() {
        let mut small = chain(5);
        small.reverse();
        check(&segment(small)).expect("a chain in finish order");
        let mut large = chain(5_000);
        large.reverse();
        check(&segment(large)).expect("a long chain, no recursion");
        // A parent id naming no span of the segment: agents drop spans past their limits.
        check(&segment(vec![span(0, -1), span(7, 3)])).expect("a dangling parent is a root");
    }

    #[test]
    fn self_parents_cycles_and_duplicate_ids_are_refused() {
        for spans in [
            vec![span(0, -1), span(1, 1)],
            vec![span(0, 2), span(1, 0), span(2, 1)],
            vec![span(0, -1), span(1, 0), span(1, 0)],
        ] {
            assert!(matches!(check(&segment(spans)), Err(AnalysisError::NotATree { .. })));
        }
        let mut looped = chain(100);
        looped[0].parent_span_id = 99;
        let refused = check(&segment(looped)).expect_err("a cycle of 100");
        assert!(refused.to_string().contains("its own parent or ancestor"), "{refused}");
        let mut doubled = chain(100);
        doubled[50].span_id = 10;
        assert!(check(&segment(doubled)).expect_err("duplicate").to_string().contains("two spans have the id 10"));
    }

    #[test]
    fn long_ids_are_refused_and_shown_cut() {
        let mut long = segment(chain(2));
        long.trace_id = "t".repeat(65_535);
        let refused = check(&long).expect_err("a 64 KiB trace id");
        assert!(matches!(refused, AnalysisError::IdTooLong { field: "traceId", length: 65_535, .. }));
        long.trace_id = "t".repeat(MAX_ID_LENGTH);
        check(&long).expect("exactly the limit");
        long.trace_segment_id = "é".repeat(1_000);
        let refused = check(&long).expect_err("a long segment id");
        assert!(refused.to_string().len() < 300, "the message shows a cut id: {refused}");
        let mut referred = segment(chain(1));
        referred.spans[0].refs.push(SegmentReference {
            parent_trace_segment_id: "p".repeat(MAX_ID_LENGTH + 1),
            ..SegmentReference::default()
        });
        assert!(matches!(check(&referred), Err(AnalysisError::IdTooLong { field: "refs.parentTraceSegmentId", .. })));
    }

    #[test]
    fn too_many_spans_and_times_outside_the_window_are_refused() {
        let limits = SegmentLimits { max_spans: 3, max_age_ms: 1_000 };
        assert!(matches!(
            validate(&segment(chain(4)), &limits, NOW),
            Err(AnalysisError::TooManySpans { count: 4, max: 3, .. })
        ));
        validate(&segment(chain(3)), &limits, NOW).expect("at the limit");
        let mut old = segment(chain(1));
        old.spans[0].start_time = 1;
        old.spans[0].end_time = 2;
        assert!(validate(&old, &limits, NOW).expect_err("1970").to_string().contains("older than the stores keep"));
        let mut ahead = segment(chain(1));
        ahead.spans[0].end_time = NOW + MAX_AHEAD_MS + 1;
        ahead.spans[0].start_time = NOW;
        assert!(validate(&ahead, &limits, NOW).expect_err("ahead").to_string().contains("ahead of the server's clock"));
    }
}
