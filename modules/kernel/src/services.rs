//! The typed service registry through which providers find each other, and the context a
//! provider sees during each lifecycle step.
//!
//! Services are values (typically `Arc<dyn Trait>`) keyed by their type. A provider registers the
//! services its module declares, during `prepare`, and may look up services of its own module and
//! of the modules it requires — nothing else, so a missing requirement is caught at the first
//! look-up instead of becoming a start-order race.

use std::any::{Any, TypeId, type_name};
use std::collections::HashMap;

use crate::error::{ModuleError, Phase};
use crate::module::ModuleDefinition;

/// Every registered service, with the module that owns each service type.
#[derive(Default)]
pub struct ServiceRegistry {
    owners: HashMap<TypeId, &'static str>,
    services: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl ServiceRegistry {
    /// A registry that knows which module owns which service type.
    pub fn new<'a>(modules: impl IntoIterator<Item = &'a ModuleDefinition>) -> Self {
        let owners = modules
            .into_iter()
            .flat_map(|module| module.services.iter().map(move |service| (service.type_id, module.name)))
            .collect();
        Self { owners, services: HashMap::new() }
    }

    /// The service of type `T`, if some provider registered it.
    pub fn get<T: Clone + 'static>(&self) -> Option<T> {
        self.services.get(&TypeId::of::<T>()).and_then(|service| service.downcast_ref::<T>()).cloned()
    }

    pub(crate) fn is_registered(&self, type_id: TypeId) -> bool {
        self.services.contains_key(&type_id)
    }
}

/// What a provider sees during one lifecycle step: who it is, and the services it may use.
pub struct ModuleContext<'a> {
    module: &'static str,
    provider: &'static str,
    requires: &'static [&'static str],
    phase: Phase,
    registry: &'a mut ServiceRegistry,
}

impl<'a> ModuleContext<'a> {
    pub(crate) fn new(
        module: &'static str,
        provider: &'static str,
        requires: &'static [&'static str],
        phase: Phase,
        registry: &'a mut ServiceRegistry,
    ) -> Self {
        Self { module, provider, requires, phase, registry }
    }

    /// The module this provider implements.
    pub fn module(&self) -> &'static str {
        self.module
    }

    /// The provider's name.
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// Registers service `T`, which this provider's module must declare; only during `prepare`.
    pub fn register<T: Clone + Send + Sync + 'static>(&mut self, service: T) -> Result<(), ModuleError> {
        let type_id = TypeId::of::<T>();
        let reject = |reason: String| Err(ModuleError::Service { service: type_name::<T>(), reason });
        if self.phase != Phase::Prepare {
            return reject(format!("`{}/{}` may register services only while preparing", self.module, self.provider));
        }
        match self.registry.owners.get(&type_id) {
            Some(owner) if *owner == self.module => {}
            Some(owner) => return reject(format!("it belongs to module `{owner}`, not `{}`", self.module)),
            None => return reject(format!("module `{}` does not declare it", self.module)),
        }
        if self.registry.services.insert(type_id, Box::new(service)).is_some() {
            return reject("it was registered twice".to_owned());
        }
        Ok(())
    }

    /// The service `T` of this module or of a module this provider requires.
    pub fn service<T: Clone + Send + Sync + 'static>(&self) -> Result<T, ModuleError> {
        let type_id = TypeId::of::<T>();
        let reject = |reason: String| Err(ModuleError::Service { service: type_name::<T>(), reason });
        let Some(owner) = self.registry.owners.get(&type_id).copied() else {
            return reject("no module declares it".to_owned());
        };
        if owner != self.module && !self.requires.contains(&owner) {
            return reject(format!(
                "it belongs to module `{owner}`, which provider `{}/{}` does not require",
                self.module, self.provider
            ));
        }
        match self.registry.get::<T>() {
            Some(service) => Ok(service),
            None => reject(format!("module `{owner}` has not registered it (yet)")),
        }
    }
}
