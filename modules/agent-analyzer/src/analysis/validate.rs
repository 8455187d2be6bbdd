//! What makes a segment unanalysable. Such a segment is rejected whole, with an error that says
//! why, and nothing of it is emitted; the receiver counts it and goes on with the next.

use oap_model::TimeBuckets;
use oap_proto::v3::{SegmentObject, SpanType};

/// Why a segment was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnalysisError {
    /// The segment has no spans.
    #[error("segment `{segment_id}` has no spans")]
    NoSpans {
        /// The segment.
        segment_id: String,
    },
    /// A field every segment needs is empty.
    #[error("segment `{segment_id}` has an empty `{field}`")]
    MissingField {
        /// The segment.
        segment_id: String,
        /// The empty field.
        field: &'static str,
    },
    /// A span's times are impossible.
    #[error("span {span_id} of segment `{segment_id}`: {reason}")]
    InvalidSpan {
        /// The segment.
        segment_id: String,
        /// The span.
        span_id: i32,
        /// What is wrong.
        reason: String,
    },
}

/// Checks the segment. A segment that passes has spans whose times all have time buckets.
pub(super) fn validate(segment: &SegmentObject) -> Result<(), AnalysisError> {
    let segment_id = || segment.trace_segment_id.clone();
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
    if segment.spans.is_empty() {
        return Err(AnalysisError::NoSpans { segment_id: segment_id() });
    }
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
    }
    Ok(())
}
