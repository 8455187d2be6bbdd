//! Metrics as the query side reads them (docs/reference/query-api.md §5): which metric a name is,
//! what kind of value it holds, which entity scope it belongs to and which column a chart reads —
//! the compiled OAL metrics of the catalog plus the sampled top-N records — and, in [`read`], the
//! reads every metric query shares.
//!
//! A metric's query scope is the catalog its OAL scope belongs to, as in SkyWalking: database,
//! cache and MQ access metrics are Service metrics (their entity is the conjectural service),
//! MQ endpoint access metrics are Endpoint metrics.

pub mod entity;
pub mod read;

use async_graphql::Enum;
use oap_oal::Catalog;
use oap_oal::function::Function;
use oap_oal::scope::Scope as OalScope;
use oap_storage::ModelRef;
use oap_storage::builtin::top_n;

pub use self::entity::{Entity, Owner};
use crate::schema::common::Scope;

/// What kind of value a metric holds, which decides how it can be queried.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsType {
    /// No such metric.
    Unknown,
    /// One number per entity and bucket (`cpm`, `longAvg`, `percent`, `apdex`, …).
    RegularValue,
    /// Numbers by label (`percentile2`'s `p=50` … `p=99`).
    LabeledValue,
    /// Bucket counts (`histogram`).
    Heatmap,
    /// Sampled records (the top-N statements), read only through `top_n`.
    SampledRecord,
}

/// A metric the node can answer for.
#[derive(Debug, Clone)]
pub struct MetricInfo {
    /// Its storage model (its name is the metric's).
    pub model: ModelRef,
    /// The scope of its entities.
    pub scope: Scope,
    /// Its kind of value.
    pub kind: MetricsType,
    /// The position of the column charts read.
    pub value_column: usize,
}

impl MetricInfo {
    /// The metric called `name`, if the node has it.
    pub fn lookup(catalog: &Catalog, name: &str) -> Option<Self> {
        if let Some((id, stream)) = catalog.find(name) {
            let definition = catalog.metrics().get(id.0 as usize)?;
            let kind = match definition.function {
                Function::Percentile2 { .. } => MetricsType::LabeledValue,
                Function::Histogram { .. } => MetricsType::Heatmap,
                _ => MetricsType::RegularValue,
            };
            let value_column = stream.model.column(definition.function.value_column())?;
            return Some(Self {
                model: stream.model.clone(),
                scope: query_scope(definition.scope),
                kind,
                value_column,
            });
        }
        top_n::models().into_iter().find(|model| &*model.name == name && !catalog.is_disabled(name)).map(|model| Self {
            model,
            scope: Scope::Service,
            kind: MetricsType::SampledRecord,
            value_column: top_n::col::LATENCY,
        })
    }

    /// Every metric of the node: the OAL metrics in script order, then the sampled records.
    pub fn all(catalog: &Catalog) -> Vec<Self> {
        let names = catalog.metrics().iter().map(|metric| metric.name.clone());
        let records = top_n::models().into_iter().map(|model| model.name.to_string());
        names.chain(records).filter_map(|name| Self::lookup(catalog, &name)).collect()
    }

    /// The metric's name.
    pub fn name(&self) -> &str {
        &self.model.name
    }

    /// SkyWalking's name of the scope's catalog (`SERVICE`, `SERVICE_INSTANCE`, …).
    pub fn catalog(&self) -> &'static str {
        match self.scope {
            Scope::All => "ALL",
            Scope::Service => "SERVICE",
            Scope::ServiceInstance => "SERVICE_INSTANCE",
            Scope::Endpoint => "ENDPOINT",
            Scope::Process => "PROCESS",
            Scope::ServiceRelation => "SERVICE_RELATION",
            Scope::ServiceInstanceRelation => "SERVICE_INSTANCE_RELATION",
            Scope::EndpointRelation => "ENDPOINT_RELATION",
            Scope::ProcessRelation => "PROCESS_RELATION",
        }
    }
}

/// The query scope (catalog) of an OAL scope.
fn query_scope(scope: OalScope) -> Scope {
    match scope {
        OalScope::Service | OalScope::DatabaseAccess | OalScope::CacheAccess | OalScope::MqAccess => Scope::Service,
        OalScope::ServiceInstance => Scope::ServiceInstance,
        OalScope::Endpoint | OalScope::MqEndpointAccess => Scope::Endpoint,
        OalScope::ServiceRelation => Scope::ServiceRelation,
        OalScope::ServiceInstanceRelation => Scope::ServiceInstanceRelation,
        OalScope::EndpointRelation => Scope::EndpointRelation,
    }
}
