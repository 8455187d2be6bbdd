//! The network-address alias cache (docs/reference/analysis.md §5): which service instance answers
//! at an address that callers dial, so an exit span's peer resolves to the real service.
//!
//! SkyWalking learns an alias only after it went through L2 persistence and a periodic reload
//! (up to ~35 s), attributing earlier calls to a conjectural `host:port` service. oap-rs also
//! puts every learned alias into this cache at once, so topology is right from the first
//! call after the callee has reported; the persisted stream still carries aliases to other nodes
//! and across restarts (loaded through [`NetworkAddressAliasCache::insert`]).

use std::sync::Arc;

use dashmap::DashMap;

/// The largest number of aliases kept (`maxSizeOfNetworkAddressAlias`).
pub const MAX_ALIASES: usize = 1_000_000;

/// Where an address leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasTarget {
    /// The service answering at the address (a normal service).
    pub service_name: Arc<str>,
    /// The instance answering at the address.
    pub service_instance_name: Arc<str>,
}

/// Aliases by address, shared by every analysis task.
#[derive(Debug, Default)]
pub struct NetworkAddressAliasCache {
    aliases: DashMap<Box<str>, AliasTarget>,
}

impl NetworkAddressAliasCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The target of `address`, if known.
    pub fn get(&self, address: &str) -> Option<AliasTarget> {
        self.aliases.get(address).map(|entry| entry.value().clone())
    }

    /// Records that `address` leads to `service` / `instance`; a later alias replaces an earlier
    /// one. Returns false, recording nothing, when the address is new and the cache is full.
    pub fn insert(&self, address: &str, service: &str, instance: &str) -> bool {
        if let Some(mut existing) = self.aliases.get_mut(address) {
            if &*existing.service_name != service || &*existing.service_instance_name != instance {
                *existing = AliasTarget { service_name: service.into(), service_instance_name: instance.into() };
            }
            return true;
        }
        if self.aliases.len() >= MAX_ALIASES {
            return false;
        }
        self.aliases.insert(
            address.into(),
            AliasTarget { service_name: service.into(), service_instance_name: instance.into() },
        );
        true
    }

    /// How many aliases are known.
    pub fn len(&self) -> usize {
        self.aliases.len()
    }

    /// Whether no alias is known.
    pub fn is_empty(&self) -> bool {
        self.aliases.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_aliases_replace_earlier_ones() {
        let cache = NetworkAddressAliasCache::new();
        assert_eq!(cache.get("127.0.0.1:18082"), None);
        assert!(cache.insert("127.0.0.1:18082", "py-backend", "backend-1"));
        assert!(cache.insert("127.0.0.1:18082", "py-backend", "backend-2"));
        let target = cache.get("127.0.0.1:18082").expect("known");
        assert_eq!((&*target.service_name, &*target.service_instance_name), ("py-backend", "backend-2"));
        assert_eq!(cache.len(), 1);
    }
}
