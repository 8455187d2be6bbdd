//! L1 finds a source's row by its entity key (the names its id is built from, `oal/src/entity.rs`),
//! not by the id text: over the load generator's default estate, what L1 drains must equal, row
//! for row, what the catalog makes of the same sources in a sink keyed by SkyWalking's id text.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::BytesMut;
use oap_agent_analyzer::{AnalysisRules, NetworkAddressAliasCache, SegmentAnalyzer};
use oap_loadgen::drive::now_ms;
use oap_loadgen::pool::Pool;
use oap_loadgen::topology::Topology;
use oap_model::TimeBuckets;
use oap_model::source::Source;
use oap_oal::catalog::{GroupId, Metric, MetricSink, Slot};
use oap_oal::{Catalog, EntityKey, MetricValue};
use oap_proto::v3::SegmentObject;
use oap_storage_model::Value;
use oap_stream::l1::L1;
use prost::Message;

/// A row: stream, entity id, bucket.
type RowKey = (u32, String, i64);

/// A row's fixed columns and merged value.
type RowValue = (Arc<[Value]>, MetricValue);

/// Rows keyed by the id text, as L1 kept them before interning.
#[derive(Default)]
struct ByText(BTreeMap<(GroupId, String, i64), Vec<Option<Slot>>>);

impl MetricSink for ByText {
    fn group(&mut self, group: GroupId, slots: usize, entity: &EntityKey<'_>, time_bucket: i64) -> &mut [Option<Slot>] {
        self.0.entry((group, entity.id(), time_bucket)).or_insert_with(|| vec![None; slots])
    }
}

fn catalog() -> Arc<Catalog> {
    let oal = concat!(env!("CARGO_MANIFEST_DIR"), "/../oal");
    Arc::new(oap_core::catalog::load_catalog(oal, "no-apdex-file").expect("the shipped OAL compiles"))
}

/// Every source of `traces` traces of the default estate, handed to `each`.
fn sources(traces: usize, each: &mut dyn FnMut(&Source<'_>)) {
    let pool = Pool::build(&Topology::default(), traces, 0.0).expect("the default estate builds");
    let (mut arena, mut wire) = (BytesMut::new(), Vec::new());
    let now = now_ms();
    for index in 0..traces {
        pool.stamp(index, now, &mut arena, &mut wire);
    }
    let analyzer = SegmentAnalyzer::new(
        AnalysisRules::default(),
        TimeBuckets::system(),
        Arc::new(NetworkAddressAliasCache::new()),
    );
    for bytes in &wire {
        let segment = SegmentObject::decode(bytes.clone()).expect("decodes");
        analyzer.analyze(&segment, bytes, now, &mut |source: Source<'_>| each(&source)).expect("a valid segment");
    }
}

/// L1's drained metrics by row (each row once: a second would be a split entity).
fn merged(metrics: Vec<Metric>) -> BTreeMap<RowKey, RowValue> {
    let mut rows: BTreeMap<RowKey, RowValue> = BTreeMap::new();
    for metric in metrics {
        let key = (metric.stream.0, metric.entity_id.to_string(), metric.time_bucket);
        let held = rows.insert(key.clone(), (metric.fixed, metric.value));
        assert!(held.is_none(), "{key:?} drained twice");
    }
    rows
}

#[test]
fn l1_drains_what_the_catalog_makes_keyed_by_id_text() {
    let catalog = catalog();
    let l1 = L1::new(catalog.clone(), usize::MAX);
    let mut reference = ByText::default();
    let mut count = 0;
    sources(200, &mut |source| {
        count += 1;
        l1.accept(source);
        catalog.aggregate(source, &mut reference);
    });
    assert!(count > 1_000, "the estate makes sources: {count}");
    let mut expected: BTreeMap<RowKey, RowValue> = BTreeMap::new();
    for ((group, entity, bucket), slots) in reference.0 {
        for (stream, slot) in catalog.group_streams(group).iter().zip(slots) {
            if let Some(Slot { fixed, value }) = slot {
                expected.insert((stream.0, entity.clone(), bucket), (fixed, value));
            }
        }
    }
    let drained = merged(l1.drain());
    assert_eq!(drained.len(), expected.len(), "rows");
    for (key, (fixed, value)) in &expected {
        let Some((held_fixed, held_value)) = drained.get(key) else { panic!("L1 lacks {key:?}") };
        assert_eq!(held_value, value, "{key:?}");
        assert_eq!(held_fixed, fixed, "{key:?}");
    }
}
