//! A store written before segments had block files of their own: its segments, kept in the LSM
//! tree, are still found beside the new ones until TTL drops their days.

use oap_storage::builtin::segment::{self, SegmentRow, col};
use oap_storage::dao::TraceQueryDao;
use oap_storage::dao::trace::TraceSearch;
use oap_storage::{Storage, Write};
use oap_storage_embedded::{Budget, EmbeddedStore, codec, layout};

fn row(id: &str, trace: &str, time_bucket: i64, latency: i32) -> SegmentRow {
    SegmentRow {
        segment_id: id.to_owned(),
        trace_id: trace.to_owned(),
        service_id: "svc".to_owned(),
        service_instance_id: "inst".to_owned(),
        endpoint_id: "ep".to_owned(),
        start_time: 1_765_000_000_000 + i64::from(latency),
        latency,
        is_error: false,
        time_bucket,
        data_binary: vec![7; 16],
        tags: Vec::new(),
    }
}

#[tokio::test]
async fn segments_stored_in_the_lsm_tree_are_still_found_and_expire() {
    let dir = tempfile::tempdir().expect("a directory");
    let old = row("old-seg", "t-old", 20_261_206_120_000, 40);
    {
        // The layout before: rows in `segment#day`, trace ids in `segment.lookup#day`.
        let db = fjall::Database::builder(dir.path()).open().expect("a database");
        let data = db.keyspace("segment#20261206", fjall::KeyspaceCreateOptions::default).expect("data");
        let lookup = db.keyspace("segment.lookup#20261206", fjall::KeyspaceCreateOptions::default).expect("lookup");
        let stored = old.clone().into_row();
        data.insert(
            layout::daily_key("segment", stored.time_bucket, &stored.id),
            codec::encode(&stored.values).expect("encodes"),
        )
        .expect("written");
        let key = layout::lookup_key("segment", col::TRACE_ID, "t-old", stored.time_bucket, &stored.id).expect("short");
        lookup.insert(key, Vec::<u8>::new()).expect("indexed");
        db.persist(fjall::PersistMode::SyncAll).expect("synced");
    }
    let store = EmbeddedStore::open(dir.path(), Budget::default()).expect("opens");
    let new = row("new-seg", "t-new", 20_261_207_120_000, 10);
    store.write(&[Write::Insert(segment::MODEL.clone(), new.clone().into_row())]).await.expect("written");

    let all = TraceSearch { limit: 10, ..TraceSearch::default() };
    let found = store.search_segments(&all).await.expect("a search");
    assert_eq!(found, [new.clone(), old.clone()], "newest first, both layouts");
    let second_page = TraceSearch { limit: 1, offset: 1, ..TraceSearch::default() };
    assert_eq!(store.search_segments(&second_page).await.expect("a search"), std::slice::from_ref(&old));
    assert_eq!(store.segments_of_trace("t-old", None, 10).await.expect("a trace"), std::slice::from_ref(&old));

    assert_eq!(store.delete_before(&segment::MODEL, 20_261_207).await.expect("ttl"), 1, "the old day");
    assert_eq!(store.search_segments(&all).await.expect("a search"), [new]);
}
