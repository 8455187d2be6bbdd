//! The models SkyWalking hard-codes rather than generating from OAL: the `segment` record, the
//! traffic (metadata) streams, the network address alias, the relation (topology) streams and
//! the top-N slow statements and the tag autocomplete (docs/reference/analysis.md §5.2, §6.1, §6.5,
//! §7, §9.1, §9.2) — each with a typed row that converts to and from a storage [`Row`](crate::Row).

pub mod alias;
pub mod relation;
pub mod segment;
pub mod tag;
pub mod top_n;
pub mod traffic;

use std::sync::LazyLock;

use crate::model::{Column, ColumnType, Indexing, Model, ModelKind, ModelRef};

/// Every built-in model, for installation at start.
pub fn models() -> Vec<ModelRef> {
    let mut models = vec![
        segment::MODEL.clone(),
        traffic::SERVICE.clone(),
        traffic::INSTANCE.clone(),
        traffic::ENDPOINT.clone(),
        alias::MODEL.clone(),
        tag::MODEL.clone(),
    ];
    models.extend(relation::models());
    models.extend(top_n::models());
    models
}

/// The metadata kind: one row per entity, no downsampling.
pub(crate) const METADATA: ModelKind = ModelKind::Metrics { time_relative: false, downsampling: false, update: true };

/// Builds a model from a static column list; the lists are fixed here, so a clash is a bug.
pub(crate) fn model(name: &'static str, kind: ModelKind, columns: &[(&'static str, ColumnType, Indexing)]) -> ModelRef {
    let columns = columns.iter().map(|&(name, ty, indexing)| Column::new(name, ty, indexing)).collect();
    match Model::new(name, kind, columns) {
        Ok(model) => model.into(),
        Err(error) => panic!("built-in model: {error}"),
    }
}

/// A lazily built model.
pub(crate) type Lazy = LazyLock<ModelRef>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_models_are_well_formed_and_distinct() {
        let models = models();
        let mut names: Vec<&str> = models.iter().map(|model| &*model.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), models.len());
        assert_eq!(models.len(), 15);
    }
}
