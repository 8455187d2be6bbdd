//! Spans come back in tree order across segments, whatever order they were stored in.

use super::*;

fn span(segment: &str, id: i32, parent: i32, start: i64, parent_ref: Option<(&str, i32)>) -> Span {
    Span {
        trace_id: ID("t".to_owned()),
        segment_id: ID(segment.to_owned()),
        span_id: id,
        parent_span_id: parent,
        refs: parent_ref
            .map(|(segment, span)| Ref {
                trace_id: ID("t".to_owned()),
                parent_segment_id: ID(segment.to_owned()),
                parent_span_id: span,
                ref_type: RefType::CrossProcess,
            })
            .into_iter()
            .collect(),
        service_code: String::new(),
        service_instance_name: ID(String::new()),
        start_time: Long(start),
        end_time: Long(start + 1),
        endpoint_name: None,
        span_type: "Entry".to_owned(),
        peer: None,
        component: None,
        is_error: None,
        layer: None,
        tags: Vec::new(),
        logs: Vec::new(),
        attached_events: Vec::new(),
    }
}

fn order(spans: Vec<Span>) -> Vec<String> {
    tree_order(spans).into_iter().map(|span| format!("{}{}", span.segment_id.as_str(), span.span_id)).collect()
}

#[test]
fn children_follow_their_parent_across_segments_and_roots_go_by_start() {
    // As the Python agent sends them: the backend segment first, and in each segment the exit
    // span (id 1) before its parent entry (id 0).
    let spans = vec![
        span("back", 0, -1, 105, Some(("front", 1))),
        span("front", 1, 0, 102, None),
        span("front", 0, -1, 100, None),
        // A segment whose parent segment was not stored: a root of its own, started later.
        span("orphan", 0, -1, 103, Some(("gone", 4))),
        span("front", 2, 0, 101, None),
    ];
    assert_eq!(order(spans), ["front0", "front1", "back0", "front2", "orphan0"]);
}

#[test]
fn a_cycle_of_parents_still_lists_every_span() {
    let spans = vec![span("s", 1, 2, 10, None), span("s", 2, 1, 11, None)];
    assert_eq!(order(spans).len(), 2);
}
