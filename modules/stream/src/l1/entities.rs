//! A shard's entities: every entity a source names is interned on first sight — its key
//! ([`EntityKey`]: the names its id is made of) kept with a handle and the id's text, built once —
//! so that a source finds its group by hashing and comparing a few names and integers, not by
//! building SkyWalking's id and hashing its 20–100 bytes.
//!
//! The table is bounded (by default [`MAX_ENTITIES`]): at its bound it is emptied before the next entity is added. A
//! handle is never given twice, so a group keyed by a handle from before still means its entity;
//! the worst an emptying does is split one entity's contributions over two groups of one epoch,
//! which L2 merges into the same stored row as any two contributions.

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::DefaultHashBuilder;
use hashbrown::hash_table::HashTable;
use oap_oal::EntityKey;
use oap_oal::entity::OwnedEntityKey;

/// Entities a shard keeps interned at most, unless [`crate::l1::L1::with_entity_bound`] says
/// otherwise.
pub const MAX_ENTITIES: usize = 32_768;

/// The entities one shard has seen.
#[derive(Default)]
pub struct Entities {
    table: HashTable<Known>,
    /// The last handle given.
    last: u64,
}

struct Known {
    hash: u64,
    key: OwnedEntityKey,
    handle: u64,
    id: Arc<str>,
}

impl Entities {
    /// The handle and id of `key`'s entity, interned on first sight; the table is emptied first
    /// when it holds `bound` entities.
    pub fn intern(&mut self, hasher: &DefaultHashBuilder, key: &EntityKey<'_>, bound: usize) -> (u64, &Arc<str>) {
        let hash = hasher.hash_one(key);
        let table = match self.table.find_entry(hash, |known| known.key.is(key)) {
            Ok(found) => {
                let known = found.into_mut();
                return (known.handle, &known.id);
            }
            Err(absent) => absent.into_table(),
        };
        if table.len() >= bound {
            table.clear();
        }
        self.last += 1;
        let known = Known { hash, key: OwnedEntityKey::of(key), handle: self.last, id: key.id().into() };
        let known = table.insert_unique(hash, known, |known| known.hash).into_mut();
        (known.handle, &known.id)
    }

    /// Entities interned now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.table.len()
    }
}

#[cfg(test)]
mod tests {
    use oap_oal::entity::IdKind;

    use super::*;

    #[test]
    fn an_entity_keeps_its_handle_and_its_id_is_skywalkings() {
        let hasher = DefaultHashBuilder::default();
        let mut entities = Entities::default();
        let endpoint = EntityKey::under_service(IdKind::Endpoint, "svc", true, "/a");
        let (handle, id) = entities.intern(&hasher, &endpoint, MAX_ENTITIES);
        assert_eq!(**id, oap_model::ids::endpoint_id(&oap_model::ids::service_id("svc", true), "/a"));
        let (again, _) =
            entities.intern(&hasher, &EntityKey::under_service(IdKind::Endpoint, "svc", true, "/a"), MAX_ENTITIES);
        assert_eq!(again, handle);
        let (other, _) =
            entities.intern(&hasher, &EntityKey::under_service(IdKind::Endpoint, "svc", false, "/a"), MAX_ENTITIES);
        assert_ne!(other, handle);
        assert_eq!(entities.len(), 2);
    }

    #[test]
    fn past_its_bound_the_table_empties_and_never_gives_a_handle_twice() {
        let hasher = DefaultHashBuilder::default();
        let mut entities = Entities::default();
        let bound = 8;
        let names: Vec<String> = (0..=bound).map(|n| format!("svc-{n}")).collect();
        let mut handles = std::collections::HashSet::new();
        for name in &names {
            let (handle, id) = entities.intern(&hasher, &EntityKey::service(name, true), bound);
            assert_eq!(**id, oap_model::ids::service_id(name, true));
            assert!(handles.insert(handle), "handle {handle} given twice");
        }
        assert_eq!(entities.len(), 1, "emptied at the bound, then the last one added");
        let (first_again, _) = entities.intern(&hasher, &EntityKey::service(&names[0], true), bound);
        assert!(handles.insert(first_again), "an entity seen before the emptying gets a new handle");
    }
}
