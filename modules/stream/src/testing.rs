//! Test helpers: a store in memory that records what was written and when, and can be told to
//! fail (unit tests of the pipeline's logic only; the real stores are tested through the storage
//! suite and the server), and sources to feed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use oap_model::Layer;
use oap_model::source::{RequestFacts, Service, SpanTags};
use oap_storage::dao::{MetadataQueryDao, MetricsQueryDao, TopologyQueryDao, TraceQueryDao};
use oap_storage::{Expect, Model, ModelRef, Row, RowKey, RowVersion, ScanQuery, Storage, StorageError, Write, Written};
use tokio::time::Instant;

/// Rows by (model, id, bucket); metadata rows by (model, id).
#[derive(Default)]
pub struct MemoryStore {
    pub rows: Mutex<HashMap<(String, String, i64), Row>>,
    pub writes: Mutex<Vec<(Instant, String, Row)>>,
    pub multi_gets: AtomicUsize,
    /// Multi-gets that fail for good (`Invalid`) before they work again.
    pub failing_reads: AtomicUsize,
    /// Writes that fail as `Unavailable` before they work again.
    pub failing_writes: AtomicUsize,
    /// A batch with a row of this id is refused for good (`Invalid`).
    pub refused_id: Option<String>,
    /// Conditional writes refused for good (`Invalid`) before they work again.
    pub refusals: AtomicUsize,
    /// `delete_before` calls.
    pub deletions: AtomicUsize,
    /// Keep a version per row, as Elasticsearch does: reads return it, and a
    /// [`Write::Checked`] whose expectation fails is a conflict.
    pub versioned: bool,
    /// Versions of the rows, by the same key as `rows`.
    pub versions: Mutex<HashMap<(String, String, i64), i64>>,
    /// Batches that are stored but answered `Unavailable` (the answer lost on the way).
    pub lost_answers: AtomicUsize,
}

fn bucket_key(model: &Model, bucket: i64) -> i64 {
    if matches!(model.kind, oap_storage::ModelKind::Metrics { time_relative: false, .. }) { 0 } else { bucket }
}

impl MemoryStore {
    /// The stored row of `model` for `id` at `bucket`.
    pub fn row(&self, model: &str, id: &str, bucket: i64) -> Option<Row> {
        self.rows.lock().expect("lock").get(&(model.to_owned(), id.to_owned(), bucket)).cloned()
    }

    /// The ids of every row written, in order.
    pub fn stored(&self) -> Vec<String> {
        self.writes.lock().expect("lock").iter().map(|(_, _, row)| row.id.clone()).collect()
    }

    /// When rows of `model` were written, in order.
    pub fn write_times(&self, model: &str) -> Vec<Instant> {
        self.writes.lock().expect("lock").iter().filter(|(_, name, _)| name == model).map(|(at, _, _)| *at).collect()
    }
}

#[async_trait]
impl Storage for MemoryStore {
    async fn install(&self, _models: &[ModelRef]) -> Result<(), StorageError> {
        Ok(())
    }

    async fn write(&self, batch: &[Write]) -> Result<(), StorageError> {
        let written = self.write_checked(batch).await?;
        if written.contains(&Written::Conflict) {
            return Err(StorageError::Invalid("a write found the stored row not as expected".to_owned()));
        }
        Ok(())
    }

    async fn write_checked(&self, batch: &[Write]) -> Result<Vec<Written>, StorageError> {
        if self.failing_writes.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(StorageError::Unavailable("disk busy".to_owned()));
        }
        if batch.iter().any(|write| Some(&write.row().id) == self.refused_id.as_ref()) {
            return Err(StorageError::Invalid("refused: the row cannot be stored".to_owned()));
        }
        if self.refusals.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(StorageError::Invalid("refused this once".to_owned()));
        }
        let now = Instant::now();
        let mut written = Vec::with_capacity(batch.len());
        for write in batch {
            let (model, row) = (write.model(), write.row());
            let key = (model.name.to_string(), row.id.clone(), bucket_key(model, row.time_bucket));
            let mut versions = self.versions.lock().expect("lock");
            let held = versions.get(&key).copied();
            let conflict = self.versioned
                && match write {
                    Write::Checked(_, _, Expect::Absent) => held.is_some(),
                    Write::Checked(_, _, Expect::Version(version)) => held != Some(version.seq_no),
                    Write::Insert(..) | Write::Update(..) => false,
                };
            if conflict {
                written.push(Written::Conflict);
                continue;
            }
            let version = held.unwrap_or(0) + 1;
            versions.insert(key.clone(), version);
            self.rows.lock().expect("lock").insert(key, row.clone());
            self.writes.lock().expect("lock").push((now, model.name.to_string(), row.clone()));
            written.push(Written::Stored(self.versioned.then_some(RowVersion { seq_no: version, primary_term: 1 })));
        }
        if self.lost_answers.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(StorageError::Unavailable("the answer was lost".to_owned()));
        }
        Ok(written)
    }

    async fn multi_get_versioned(
        &self,
        model: &Model,
        keys: &[RowKey],
    ) -> Result<Vec<(Row, Option<RowVersion>)>, StorageError> {
        let rows = self.multi_get(model, keys).await?;
        let versions = self.versions.lock().expect("lock");
        Ok(rows
            .into_iter()
            .map(|row| {
                let key = (model.name.to_string(), row.id.clone(), bucket_key(model, row.time_bucket));
                let version = versions.get(&key).filter(|_| self.versioned);
                let version = version.map(|seq_no| RowVersion { seq_no: *seq_no, primary_term: 1 });
                (row, version)
            })
            .collect())
    }

    async fn multi_get(&self, model: &Model, keys: &[RowKey]) -> Result<Vec<Row>, StorageError> {
        self.multi_gets.fetch_add(1, Ordering::Relaxed);
        if self.failing_reads.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok() {
            return Err(StorageError::Invalid("failing on purpose".to_owned()));
        }
        let rows = self.rows.lock().expect("lock");
        Ok(keys
            .iter()
            .filter_map(|key| {
                rows.get(&(model.name.to_string(), key.id.clone(), bucket_key(model, key.time_bucket))).cloned()
            })
            .collect())
    }

    async fn scan(&self, _model: &Model, _query: &ScanQuery) -> Result<Vec<Row>, StorageError> {
        Ok(Vec::new())
    }

    async fn delete_before(&self, _model: &Model, _day: i64) -> Result<usize, StorageError> {
        self.deletions.fetch_add(1, Ordering::SeqCst);
        Ok(0)
    }
}

impl MetricsQueryDao for MemoryStore {}
impl TraceQueryDao for MemoryStore {}
impl TopologyQueryDao for MemoryStore {}
impl MetadataQueryDao for MemoryStore {}

/// A request served by `service` in minute `time_bucket`.
pub fn service(name: &'static str, latency: i32, status: bool, time_bucket: i64) -> Service<'static> {
    Service {
        name,
        layer: Layer::GENERAL,
        service_instance_name: "instance",
        endpoint_name: "/work",
        request: RequestFacts {
            latency,
            status,
            http_response_status_code: 200,
            rpc_status_code: "",
            request_type: None,
            tags: SpanTags(&[]),
            time_bucket,
        },
    }
}

/// A metric of one call to entity `YQ==.1` in stream 0 (whatever the catalog), of `epoch`.
pub fn one_call(epoch: u64) -> oap_oal::catalog::Metric {
    oap_oal::catalog::Metric {
        stream: oap_oal::StreamId(0),
        entity_id: "YQ==.1".into(),
        time_bucket: 202_611_211_230,
        fixed: Vec::new().into(),
        value: oap_oal::MetricValue::Cpm { total: 1 },
        epoch,
    }
}

/// The catalog of the shipped `core.oal`.
pub fn core_catalog() -> std::sync::Arc<oap_oal::Catalog> {
    let definitions = oap_oal::load("core.oal", oap_oal::CORE_OAL).expect("core.oal compiles");
    std::sync::Arc::new(oap_oal::Catalog::new(definitions, oap_oal::ApdexThresholds::default()).expect("catalog"))
}
