//! The Elasticsearch store: [`Storage`] on the indices [`Layout`] names.
//!
//! - **install** merges the models into their tables' mappings, puts one index template per
//!   table and adds new fields to the table's existing indices;
//! - **write** creates the daily indices it needs (once per process; Elasticsearch would create
//!   them from the template too, unless `action.auto_create_index` forbids it) and hands the
//!   documents to the [`BulkWriter`];
//! - **multi_get** is one `_mget` by index and id; metadata rows, whose index their id does not
//!   tell, are looked up by id through the alias, as SkyWalking does;
//! - **scan** is a search of the range's indices, paged with `search_after` on a total order;
//! - **delete_before** deletes the daily indices whose days are all past;
//! - top-N entities are a terms aggregation ordered by an average (the one DAO read answered
//!   natively).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use elasticsearch::indices::{
    IndicesCreateParts, IndicesDeleteParts, IndicesGetAliasParts, IndicesGetMappingParts, IndicesPutIndexTemplateParts,
    IndicesPutMappingParts,
};
use elasticsearch::{Elasticsearch, MgetParts, SearchParts};
use oap_storage::dao::{EntityAverage, MetadataQueryDao, MetricsQueryDao, Top, TopologyQueryDao, TraceQueryDao};
use oap_storage::{
    Expect, Filter, Model, ModelKind, ModelRef, Row, RowKey, RowVersion, ScanQuery, Storage, StorageError, Write,
    Written, day_of,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};
use tracing::{debug, info};

use crate::bulk::BulkWriter;
use crate::client::{self, answer};
use crate::document::{self, Fields};
use crate::layout::Layout;
use crate::mapping::{IndexSettings, TableMapping, index_template};
use crate::search;

/// The settings of the tables' indices.
#[derive(Debug, Clone, Copy)]
pub struct TableSettings {
    /// Metrics and records: shards, replicas, refresh.
    pub regular: IndexSettings,
    /// Super datasets (`segment`).
    pub super_dataset: IndexSettings,
    /// The templates' priority.
    pub template_priority: u32,
    /// Rows per page of a long read.
    pub page_size: usize,
}

/// The store.
pub struct ElasticsearchStore {
    client: Elasticsearch,
    layout: Layout,
    settings: TableSettings,
    bulk: BulkWriter,
    /// Each table's mapping, merged from the models installed; held across the install's
    /// requests so that two installs do not interleave.
    tables: tokio::sync::Mutex<HashMap<String, TableMapping>>,
    /// Models installed, by name.
    installed: Mutex<HashSet<String>>,
    /// Daily indices known to exist.
    indices: Mutex<HashSet<String>>,
    /// The day each table's indices were last deleted before.
    expired: Mutex<HashMap<String, i64>>,
}

/// The rows of one model in a write batch: the field of their ids, and the index of the day
/// last seen.
struct BatchModel<'b> {
    model: &'b ModelRef,
    id_field: String,
    day: Option<(i64, String)>,
}

/// A `_bulk` action line: `{"index":{"_index":…,"_id":…}}`, `{"create":…}`, or an `index` that
/// names the version it replaces.
#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
enum Action<'a> {
    /// Written whatever is stored, or only if the stored version is `if_seq_no`/`if_primary_term`.
    Index(ActionTarget<'a>),
    /// Written only if nothing is stored under the id.
    Create(ActionTarget<'a>),
}

#[derive(Serialize)]
struct ActionTarget<'a> {
    #[serde(rename = "_index")]
    index: &'a str,
    #[serde(rename = "_id")]
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    if_seq_no: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    if_primary_term: Option<i64>,
}

#[derive(Deserialize)]
struct Hit {
    #[serde(rename = "_source", default)]
    source: Map<String, Json>,
    #[serde(default)]
    sort: Vec<Json>,
}

#[derive(Deserialize)]
struct Hits {
    hits: Vec<Hit>,
}

#[derive(Deserialize)]
struct SearchAnswer {
    hits: Hits,
    #[serde(default)]
    aggregations: Option<Json>,
}

#[derive(Deserialize)]
struct MgetDoc {
    #[serde(default)]
    found: bool,
    #[serde(rename = "_seq_no", default)]
    seq_no: Option<i64>,
    #[serde(rename = "_primary_term", default)]
    primary_term: Option<i64>,
    #[serde(rename = "_source", default)]
    source: Map<String, Json>,
    #[serde(default)]
    error: Option<Json>,
}

#[derive(Deserialize)]
struct MgetAnswer {
    docs: Vec<MgetDoc>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn invalid(reason: String) -> StorageError {
    StorageError::Invalid(reason)
}

impl ElasticsearchStore {
    /// A store on `client`, writing through `bulk`.
    pub fn new(client: Elasticsearch, layout: Layout, settings: TableSettings, bulk: BulkWriter) -> Self {
        Self {
            client,
            layout,
            settings,
            bulk,
            tables: tokio::sync::Mutex::new(HashMap::new()),
            installed: Mutex::new(HashSet::new()),
            indices: Mutex::new(HashSet::new()),
            expired: Mutex::new(HashMap::new()),
        }
    }

    fn fields<'m>(&self, model: &'m Model, id_field: &'m str) -> Fields<'m> {
        Fields { table: self.layout.table_field(model).map(|field| (field, &*model.name)), id: id_field }
    }

    /// Puts the template of `table` and adds its new fields to the table's existing indices.
    async fn put_table(&self, table: &str, super_dataset: bool, mapping: &TableMapping) -> Result<(), StorageError> {
        let alias = self.layout.alias_of(table);
        let settings = if super_dataset { self.settings.super_dataset } else { self.settings.regular };
        let template = index_template(&alias, mapping, settings, self.settings.template_priority);
        let response = self
            .client
            .indices()
            .put_index_template(IndicesPutIndexTemplateParts::Name(&alias))
            .body(template)
            .send()
            .await
            .map_err(client::unreachable)?;
        answer::<Json>(response, &format!("index template {alias}")).await?;

        let pattern = format!("{alias}-*");
        let response = self
            .client
            .indices()
            .get_mapping(IndicesGetMappingParts::Index(&[&pattern]))
            .allow_no_indices(true)
            .ignore_unavailable(true)
            .send()
            .await
            .map_err(client::unreachable)?;
        let existing: Map<String, Json> = answer(response, &format!("mappings of {pattern}")).await?;
        let properties = mapping.properties();
        for (index, current) in existing {
            let known = &current["mappings"]["properties"];
            let missing: Map<String, Json> = properties
                .iter()
                .filter(|(name, _)| known.get(name.as_str()).is_none())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if missing.is_empty() {
                continue;
            }
            debug!(%index, fields = missing.len(), "adding fields to an existing index");
            let response = self
                .client
                .indices()
                .put_mapping(IndicesPutMappingParts::Index(&[&index]))
                .body(json!({ "properties": missing }))
                .send()
                .await
                .map_err(client::unreachable)?;
            answer::<Json>(response, &format!("mapping of {index}")).await?;
        }
        Ok(())
    }

    /// Installs the models not installed yet (a write may name one no install did).
    async fn ensure_installed(&self, batch: &[Write]) -> Result<(), StorageError> {
        let missing: Vec<ModelRef> = {
            let installed = lock(&self.installed);
            let mut missing: Vec<ModelRef> = Vec::new();
            for write in batch {
                let model = write.model();
                if !installed.contains(&*model.name) && !missing.iter().any(|known| known.name == model.name) {
                    missing.push(model.clone());
                }
            }
            missing
        };
        if missing.is_empty() { Ok(()) } else { self.install(&missing).await }
    }

    /// Creates the indices not known to exist.
    async fn ensure_indices(&self, names: HashSet<String>) -> Result<(), StorageError> {
        let missing: Vec<String> = {
            let known = lock(&self.indices);
            names.into_iter().filter(|name| !known.contains(name)).collect()
        };
        for name in missing {
            let response = self
                .client
                .indices()
                .create(IndicesCreateParts::Index(&name))
                .send()
                .await
                .map_err(client::unreachable)?;
            let status = response.status_code().as_u16();
            if !(200..300).contains(&status) {
                let body = response.text().await.unwrap_or_default();
                if !body.contains("resource_already_exists_exception") {
                    return Err(client::status_error(status, &format!("creating index {name}: {body}")));
                }
            } else {
                info!(index = %name, "index created");
            }
            lock(&self.indices).insert(name);
        }
        Ok(())
    }

    /// One page of a search.
    async fn search_page(&self, indices: &[String], body: Json) -> Result<SearchAnswer, StorageError> {
        let names: Vec<&str> = indices.iter().map(String::as_str).collect();
        let response = self
            .client
            .search(SearchParts::Index(&names))
            .ignore_unavailable(true)
            .allow_no_indices(true)
            .body(body)
            .send()
            .await
            .map_err(client::unreachable)?;
        if response.status_code().as_u16() == 404 {
            // The alias exists only once an index does.
            return Ok(SearchAnswer { hits: Hits { hits: Vec::new() }, aggregations: None });
        }
        answer(response, "search").await
    }

    /// Metadata rows by id: a search by document id through the alias.
    async fn metadata_by_id(&self, model: &Model, keys: &[RowKey]) -> Result<Vec<Row>, StorageError> {
        let id_field = self.layout.id_field(model);
        let ids: Vec<String> =
            keys.iter().map(|key| self.layout.document_id(model, &key.id, key.time_bucket)).collect();
        let mut rows: HashMap<String, Row> = HashMap::with_capacity(keys.len());
        for ids in ids.chunks(self.settings.page_size) {
            let body = json!({
                "query": { "ids": { "values": ids } },
                "size": ids.len(),
                "track_total_hits": false,
            });
            let found = self.search_page(&[self.layout.alias(model)], body).await?;
            for hit in found.hits.hits {
                let row = document::read(model, self.fields(model, &id_field), &hit.source)?;
                // A row whose first-seen day moved has a copy in each day's index: the newest wins.
                match rows.get(&row.id) {
                    Some(known) if known.time_bucket >= row.time_bucket => {}
                    _ => {
                        rows.insert(row.id.clone(), row);
                    }
                }
            }
        }
        Ok(rows.into_values().collect())
    }
}

#[async_trait]
impl Storage for ElasticsearchStore {
    async fn install(&self, models: &[ModelRef]) -> Result<(), StorageError> {
        let mut tables = self.tables.lock().await;
        let mut changed: Vec<(String, bool)> = Vec::new();
        let mut merged = tables.clone();
        for model in models {
            let table = self.layout.table(model).to_owned();
            let super_dataset = matches!(model.kind, ModelKind::Record { super_dataset: true });
            let mapping = merged.entry(table.clone()).or_default();
            if mapping.add(model, &self.layout.id_field(model)).map_err(invalid)?
                && !changed.iter().any(|(known, _)| *known == table)
            {
                changed.push((table, super_dataset));
            }
        }
        for (table, super_dataset) in &changed {
            self.put_table(table, *super_dataset, &merged[table]).await?;
        }
        *tables = merged;
        lock(&self.installed).extend(models.iter().map(|model| model.name.to_string()));
        Ok(())
    }

    async fn write(&self, batch: &[Write]) -> Result<(), StorageError> {
        let written = self.write_checked(batch).await?;
        match written.iter().filter(|written| **written == Written::Conflict).count() {
            0 => Ok(()),
            conflicts => Err(invalid(format!("{conflicts} write(s) found the stored row not as expected"))),
        }
    }

    async fn write_checked(&self, batch: &[Write]) -> Result<Vec<Written>, StorageError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.ensure_installed(batch).await?;
        let mut indices = HashSet::new();
        let mut documents = Vec::with_capacity(batch.len());
        // A batch is mostly one model's rows of one day: their id field and index are worked
        // out once per model and day, not per row.
        let mut models: Vec<BatchModel<'_>> = Vec::new();
        for write in batch {
            let (model, row) = (write.model(), write.row());
            model.check(&row.values)?;
            let at = match models.iter().position(|known| Arc::ptr_eq(known.model, model)) {
                Some(at) => at,
                None => {
                    models.push(BatchModel { model, id_field: self.layout.id_field(model), day: None });
                    models.len() - 1
                }
            };
            let context = &mut models[at];
            let day = day_of(row.time_bucket);
            let index = match &context.day {
                Some((known, index)) if *known == day => index,
                _ => {
                    let index = self.layout.index(model, row.time_bucket).ok_or_else(|| {
                        invalid(format!("time bucket {} of a `{}` row is not a date", row.time_bucket, model.name))
                    })?;
                    indices.insert(index.clone());
                    &context.day.insert((day, index)).1
                }
            };
            let id = self.layout.document_id(model, &row.id, row.time_bucket);
            document::check_limits(model, &id, row)?;
            let mut line = Vec::with_capacity(256);
            let target = |version: Option<RowVersion>| ActionTarget {
                index,
                id: &id,
                if_seq_no: version.map(|version| version.seq_no),
                if_primary_term: version.map(|version| version.primary_term),
            };
            let action = match write {
                Write::Checked(_, _, Expect::Absent) => Action::Create(target(None)),
                Write::Checked(_, _, Expect::Version(version)) => Action::Index(target(Some(*version))),
                Write::Insert(..) | Write::Update(..) => Action::Index(target(None)),
            };
            serde_json::to_writer(&mut line, &action)
                .map_err(|error| invalid(format!("cannot encode an action: {error}")))?;
            line.push(b'\n');
            document::write(&mut line, model, self.fields(model, &context.id_field), row)?;
            line.push(b'\n');
            documents.push(Bytes::from(line));
        }
        self.ensure_indices(indices.clone()).await?;
        let outcome = self.bulk.write(documents).await;
        if outcome.as_ref().is_err_and(StorageError::is_retryable) {
            // An index may have been deleted meanwhile (TTL on another node): check again.
            let mut known = lock(&self.indices);
            for index in &indices {
                known.remove(index);
            }
        }
        outcome
    }

    async fn multi_get(&self, model: &Model, keys: &[RowKey]) -> Result<Vec<Row>, StorageError> {
        Ok(self.multi_get_versioned(model, keys).await?.into_iter().map(|(row, _)| row).collect())
    }

    async fn multi_get_versioned(
        &self,
        model: &Model,
        keys: &[RowKey],
    ) -> Result<Vec<(Row, Option<RowVersion>)>, StorageError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if matches!(model.kind, ModelKind::Metrics { time_relative: false, .. }) {
            let rows = self.metadata_by_id(model, keys).await?;
            return Ok(rows.into_iter().map(|row| (row, None)).collect());
        }
        let id_field = self.layout.id_field(model);
        let mut docs = Vec::with_capacity(keys.len());
        for key in keys {
            // A bucket that is not a date has no index, hence no row.
            if let Some(index) = self.layout.index(model, key.time_bucket) {
                docs.push(json!({ "_index": index, "_id": self.layout.document_id(model, &key.id, key.time_bucket) }));
            }
        }
        let mut rows = Vec::with_capacity(docs.len());
        for docs in docs.chunks(self.settings.page_size) {
            let response = self
                .client
                .mget(MgetParts::None)
                .body(json!({ "docs": docs }))
                .send()
                .await
                .map_err(client::unreachable)?;
            let found: MgetAnswer = answer(response, "mget").await?;
            for doc in found.docs {
                if let Some(error) = doc.error {
                    if error["type"] == "index_not_found_exception" {
                        continue;
                    }
                    return Err(StorageError::Unavailable(format!("mget: {error}")));
                }
                if doc.found {
                    let version = doc
                        .seq_no
                        .zip(doc.primary_term)
                        .map(|(seq_no, primary_term)| RowVersion { seq_no, primary_term });
                    rows.push((document::read(model, self.fields(model, &id_field), &doc.source)?, version));
                }
            }
        }
        Ok(rows)
    }

    async fn scan(&self, model: &Model, query: &ScanQuery) -> Result<Vec<Row>, StorageError> {
        let id_field = self.layout.id_field(model);
        let indices = self.layout.search_indices(model, query.time_range);
        let filter =
            search::query(model, self.layout.table_field(model), query.time_range, &query.filters).map_err(invalid)?;
        let sort = search::sort(model, query.sort, &id_field).map_err(invalid)?;
        let wanted = search::wanted(query);
        let mut rows = Vec::new();
        let mut after: Option<Vec<Json>> = None;
        loop {
            let size =
                wanted.map_or(self.settings.page_size, |wanted| (wanted - rows.len()).min(self.settings.page_size));
            if size == 0 {
                break;
            }
            let mut body = json!({ "query": filter, "sort": sort, "size": size, "track_total_hits": false });
            if let Some(after) = after.take() {
                body["search_after"] = Json::Array(after);
            }
            let page = self.search_page(&indices, body).await?.hits.hits;
            let complete = page.len() < size;
            for hit in page {
                rows.push(document::read(model, self.fields(model, &id_field), &hit.source)?);
                after = Some(hit.sort);
            }
            if complete || after.is_none() {
                break;
            }
        }
        Ok(rows.into_iter().skip(query.offset).collect())
    }

    async fn delete_before(&self, model: &Model, day: i64) -> Result<usize, StorageError> {
        let table = self.layout.table(model).to_owned();
        if lock(&self.expired).get(&table) == Some(&day) {
            return Ok(0);
        }
        let super_dataset = matches!(model.kind, ModelKind::Record { super_dataset: true });
        let pattern = format!("{}-*", self.layout.alias_of(&table));
        let response = self
            .client
            .indices()
            .get_alias(IndicesGetAliasParts::Index(&[&pattern]))
            .allow_no_indices(true)
            .ignore_unavailable(true)
            .send()
            .await
            .map_err(client::unreachable)?;
        let indices: Map<String, Json> = if response.status_code().as_u16() == 404 {
            Map::new()
        } else {
            answer(response, &format!("indices of {pattern}")).await?
        };
        let mut dropped = 0;
        let mut expired: Vec<&String> = indices
            .keys()
            .filter(|index| self.layout.last_day_of_index(&table, super_dataset, index).is_some_and(|last| last < day))
            .collect();
        expired.sort();
        for index in expired {
            let response = self
                .client
                .indices()
                .delete(IndicesDeleteParts::Index(&[index]))
                .send()
                .await
                .map_err(client::unreachable)?;
            answer::<Json>(response, &format!("deleting {index}")).await?;
            lock(&self.indices).remove(index);
            info!(%index, "expired index deleted");
            dropped += 1;
        }
        lock(&self.expired).insert(table, day);
        Ok(dropped)
    }
}

#[async_trait]
impl MetricsQueryDao for ElasticsearchStore {
    async fn sort_metrics(
        &self,
        model: &Model,
        value_column: usize,
        mut filters: Vec<Filter>,
        top: Top,
    ) -> Result<Vec<EntityAverage>, StorageError> {
        let Top { range, limit, descending } = top;
        let value = model
            .columns
            .get(value_column)
            .map(|column| column.name)
            .ok_or_else(|| invalid(format!("model `{}` has no column {value_column}", model.name)))?;
        // Rows without a number in the column do not count.
        filters.push(Filter::Range { column: value_column, min: None, max: None });
        let id_field = self.layout.id_field(model);
        let body = json!({
            "query": search::query(model, self.layout.table_field(model), Some(range), &filters).map_err(invalid)?,
            "size": 0,
            "track_total_hits": false,
            "aggs": { "entities": {
                "terms": {
                    "field": id_field,
                    "size": limit.max(1),
                    "shard_size": limit.max(1).saturating_mul(10).max(100),
                    "order": [{ "average": if descending { "desc" } else { "asc" } }, { "_key": "asc" }],
                },
                "aggs": { "average": { "avg": { "field": value } } },
            } },
        });
        let found = self.search_page(&self.layout.search_indices(model, Some(range)), body).await?;
        let buckets =
            found.aggregations.as_ref().and_then(|aggregations| aggregations["entities"]["buckets"].as_array());
        let mut ranked = Vec::new();
        for bucket in buckets.into_iter().flatten().take(limit) {
            let (Some(entity_id), Some(average)) = (bucket["key"].as_str(), bucket["average"]["value"].as_f64()) else {
                continue;
            };
            // SkyWalking reports the average truncated.
            #[allow(clippy::cast_possible_truncation)]
            ranked.push(EntityAverage { entity_id: entity_id.to_owned(), average: average as i64 });
        }
        Ok(ranked)
    }
}

impl TraceQueryDao for ElasticsearchStore {}
impl TopologyQueryDao for ElasticsearchStore {}
impl MetadataQueryDao for ElasticsearchStore {}
