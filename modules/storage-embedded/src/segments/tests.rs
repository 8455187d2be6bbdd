//! The segment store against the scan semantics every store shares, across open and sealed
//! blocks, a crash that leaves a block open with a torn end, and rows written twice.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Mutex;

use fjall::{Database, Keyspace, KeyspaceCreateOptions};
use oap_storage::builtin::segment::{SegmentRow, col};
use oap_storage::{Filter, Row, ScanQuery, Sort, SortKey, StorageError, TimeRange, Value};

use super::{Indexes, Prepared, Segments, block_path};

/// Index partitions in a database of their own.
struct TestIndexes {
    db: Database,
    days: Mutex<BTreeMap<i64, Keyspace>>,
}

impl TestIndexes {
    fn open(path: &std::path::Path) -> Self {
        let db = Database::builder(path).open().expect("a database");
        let mut days = BTreeMap::new();
        for name in db.list_keyspace_names() {
            let name = name.to_string();
            let day = crate::layout::parse_daily(&name).expect("an index partition").1;
            days.insert(day, db.keyspace(&name, KeyspaceCreateOptions::default).expect("a partition"));
        }
        Self { db, days: Mutex::new(days) }
    }
}

impl Indexes for TestIndexes {
    fn index_for_write(&self, day: i64) -> Result<Keyspace, StorageError> {
        let mut days = self.days.lock().expect("lock");
        let name = super::index_partition(day);
        Ok(days
            .entry(day)
            .or_insert_with(|| self.db.keyspace(&name, KeyspaceCreateOptions::default).expect("a partition"))
            .clone())
    }

    fn index(&self, day: i64) -> Option<Keyspace> {
        self.days.lock().expect("lock").get(&day).cloned()
    }

    fn index_days(&self) -> Vec<i64> {
        self.days.lock().expect("lock").keys().copied().collect()
    }

    fn drop_index(&self, day: i64) -> Result<(), StorageError> {
        if let Some(keyspace) = self.days.lock().expect("lock").remove(&day) {
            self.db.delete_keyspace(keyspace).expect("dropped");
        }
        Ok(())
    }
}

fn segment(n: u64) -> Row {
    // Two days, three services, a handful of traces and endpoints, latencies and errors mixed.
    let day: i64 = if n.is_multiple_of(5) { 20_261_206 } else { 20_261_207 };
    let second = i64::try_from((n * 7919) % 3_600).expect("small");
    let time_bucket = day * 1_000_000 + (second / 60) * 100 + second % 60;
    SegmentRow {
        segment_id: format!("seg-{n}"),
        trace_id: format!("trace-{}", n % 9),
        service_id: format!("svc-{}", n % 3),
        service_instance_id: format!("inst-{}", n % 4),
        endpoint_id: format!("ep-{}", n % 6),
        start_time: 1_765_000_000_000 + second * 1_000 + i64::try_from(n % 1_000).expect("small"),
        latency: i32::try_from((n * 31) % 500).expect("small"),
        is_error: n.is_multiple_of(7),
        time_bucket,
        data_binary: vec![u8::try_from(n % 251).expect("small"); 40],
        tags: if n.is_multiple_of(2) { vec!["http.method=GET".to_owned()] } else { Vec::new() },
    }
    .into_row()
}

fn prepared(row: &Row) -> Prepared {
    Prepared::of(row.time_bucket, &row.id, &row.values).expect("a segment row")
}

fn queries() -> Vec<ScanQuery> {
    let text = |column, value: &str| Filter::Eq { column, value: Value::Text(value.to_owned()) };
    let newest = Some(Sort { key: SortKey::TimeBucketThen(col::START_TIME), descending: true });
    let slowest = Some(Sort { key: SortKey::Column(col::LATENCY), descending: true });
    let hour = TimeRange { start: 20_261_207_000_000, end: 20_261_207_002_959 };
    vec![
        ScanQuery { sort: newest, limit: Some(20), ..ScanQuery::default() },
        ScanQuery { sort: newest, offset: 20, limit: Some(20), ..ScanQuery::default() },
        ScanQuery { time_range: Some(hour), sort: slowest, limit: Some(15), ..ScanQuery::default() },
        ScanQuery { filters: vec![text(col::TRACE_ID, "trace-4")], ..ScanQuery::default() },
        ScanQuery { filters: vec![text(col::TRACE_ID, "trace-4")], time_range: Some(hour), ..ScanQuery::default() },
        ScanQuery {
            filters: vec![text(col::ENDPOINT_ID, "ep-2")],
            sort: newest,
            limit: Some(7),
            ..ScanQuery::default()
        },
        ScanQuery {
            filters: vec![
                text(col::SERVICE_ID, "svc-1"),
                Filter::Range { column: col::LATENCY, min: Some(100), max: Some(300) },
                Filter::Eq { column: col::IS_ERROR, value: Value::Int(0) },
            ],
            sort: slowest,
            limit: Some(10),
            ..ScanQuery::default()
        },
        ScanQuery {
            filters: vec![Filter::HasAll { column: col::TAGS, texts: vec!["http.method=GET".to_owned()] }],
            time_range: Some(hour),
            sort: newest,
            limit: Some(25),
            ..ScanQuery::default()
        },
        ScanQuery { filters: vec![text(col::TRACE_ID, "no-such-trace")], ..ScanQuery::default() },
    ]
}

fn ids(rows: &[Row]) -> Vec<String> {
    rows.iter().map(|row| row.id.clone()).collect()
}

#[test]
fn searches_answer_as_the_shared_semantics_say_across_open_and_sealed_blocks() {
    let dir = tempfile::tempdir().expect("a directory");
    let indexes = TestIndexes::open(&dir.path().join("db"));
    let store = Segments::open(&dir.path().join("segments"), &indexes).expect("opens");
    let rows: Vec<Row> = (0..600).map(segment).collect();
    // Three batches: the first two sealed into the index, the last left open.
    for (batch, chunk) in rows.chunks(200).enumerate() {
        store.append(chunk.iter().map(prepared)).expect("appended");
        if batch < 2 {
            store.seal(&indexes, true);
        }
    }
    for query in queries() {
        let expected = query.finish(rows.iter().filter(|row| query.matches(row)).cloned().collect());
        let found = store.scan(&indexes, &query).expect("a search");
        assert_eq!(ids(&found), ids(&expected), "{query:?}");
        assert_eq!(found, expected, "{query:?}");
    }
    let key = oap_storage::RowKey { id: rows[42].id.clone(), time_bucket: rows[42].time_bucket };
    assert_eq!(store.multi_get(&indexes, &[key]).expect("a get"), [rows[42].clone()]);
}

#[test]
fn a_block_a_crash_left_open_is_read_again_and_sealed_with_its_torn_end_cut() {
    let dir = tempfile::tempdir().expect("a directory");
    let rows: Vec<Row> = (1..=30).filter(|n: &u64| !n.is_multiple_of(5)).map(segment).collect();
    let day = 20_261_207;
    let path = block_path(&dir.path().join("segments"), day, 0);
    {
        let indexes = TestIndexes::open(&dir.path().join("db"));
        let store = Segments::open(&dir.path().join("segments"), &indexes).expect("opens");
        store.append(rows.iter().map(prepared)).expect("appended");
        // The process dies here: the block is neither sealed nor closed, and a frame was being
        // written when it died.
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).expect("the block");
        file.write_all(&[200, 0, 0, 0, 100, 0, 0, 0, 1, 2]).expect("a torn frame");
    }
    let whole = std::fs::metadata(&path).expect("the block").len() - 10;
    let indexes = TestIndexes::open(&dir.path().join("db"));
    let store = Segments::open(&dir.path().join("segments"), &indexes).expect("opens again");
    assert_eq!(std::fs::metadata(&path).expect("the block").len(), whole, "the torn frame is cut");
    assert!(indexes.index(day).expect("sealed at start").contains_key(super::entry::sealed_mark(0)).expect("read"));
    let all = ScanQuery::default();
    assert_eq!(store.scan(&indexes, &all).expect("a search"), all.finish(rows.clone()));
    // New rows go to a new block.
    store.append(vec![prepared(&segment(31))]).expect("appended");
    assert!(block_path(&dir.path().join("segments"), day, 1).exists());
}

#[test]
fn a_row_written_twice_is_returned_once() {
    let dir = tempfile::tempdir().expect("a directory");
    let indexes = TestIndexes::open(&dir.path().join("db"));
    let store = Segments::open(&dir.path().join("segments"), &indexes).expect("opens");
    let row = segment(4);
    store.append(vec![prepared(&row)]).expect("appended");
    store.seal(&indexes, true);
    // A replay of the ingest log writes it again, into the open block.
    store.append(vec![prepared(&row), prepared(&segment(13))]).expect("appended");
    let all = ScanQuery::default();
    assert_eq!(ids(&store.scan(&indexes, &all).expect("a search")), ["seg-13", "seg-4"]);
    let of_trace = ScanQuery {
        filters: vec![Filter::Eq { column: col::TRACE_ID, value: Value::Text("trace-4".to_owned()) }],
        ..all
    };
    assert_eq!(ids(&store.scan(&indexes, &of_trace).expect("a search")), ["seg-13", "seg-4"]);
}

#[test]
fn expired_days_go_whole() {
    let dir = tempfile::tempdir().expect("a directory");
    let indexes = TestIndexes::open(&dir.path().join("db"));
    let store = Segments::open(&dir.path().join("segments"), &indexes).expect("opens");
    store.append((0..20).map(segment).map(|row| prepared(&row))).expect("appended");
    store.seal(&indexes, true);
    store.append((20..40).map(segment).map(|row| prepared(&row))).expect("appended");
    assert_eq!(store.drop_before(&indexes, 20_261_207).expect("dropped"), 1);
    assert!(!dir.path().join("segments").join("20261206").exists());
    let left = store.scan(&indexes, &ScanQuery::default()).expect("a search");
    assert!(!left.is_empty() && left.iter().all(|row| row.time_bucket / 1_000_000 == 20_261_207));
    assert_eq!(store.drop_before(&indexes, 20_261_207).expect("nothing left"), 0);
}

#[test]
fn a_damaged_frame_loses_its_own_rows_only() {
    let dir = tempfile::tempdir().expect("a directory");
    let rows: Vec<Row> = (1..=1_500).filter(|n: &u64| !n.is_multiple_of(5)).map(segment).collect();
    let path = block_path(&dir.path().join("segments"), 20_261_207, 0);
    {
        let indexes = TestIndexes::open(&dir.path().join("db"));
        let store = Segments::open(&dir.path().join("segments"), &indexes).expect("opens");
        store.append(rows.iter().map(prepared)).expect("appended");
    }
    // A bit flips inside the first frame's body; the frames after it are whole.
    let mut bytes = std::fs::read(&path).expect("the block");
    let first = super::frame::Header::read(&bytes).expect("a header");
    assert!(bytes.len() > super::frame::HEADER + first.compressed, "more than one frame");
    bytes[super::frame::HEADER + 10] ^= 0x40;
    std::fs::write(&path, &bytes).expect("damaged");
    let first_rows = super::frame::rows(
        &lz4_flex::block::decompress(
            &std::fs::read(&path).expect("the block")[super::frame::HEADER..super::frame::HEADER + first.compressed],
            first.raw,
        )
        .unwrap_or_default(),
    )
    .count();

    let indexes = TestIndexes::open(&dir.path().join("db"));
    let store = Segments::open(&dir.path().join("segments"), &indexes).expect("opens with a damaged frame");
    assert_eq!(std::fs::metadata(&path).expect("the block").len(), bytes.len() as u64, "nothing is cut");
    let found = store.scan(&indexes, &ScanQuery::default()).expect("a search");
    assert!(found.len() < rows.len() && found.len() + first_rows >= rows.len(), "{} of {}", found.len(), rows.len());
    let last = rows.last().expect("rows");
    assert!(found.iter().any(|row| row == last), "rows after the damaged frame are kept");
}
